// clinic_server's HTTP layer, without sockets or a database: how much a request may hold, what
// a request that cannot be read gets (400, 413, 431), which query a request asks for, and the
// pages and JSON made of the answer. The connections (connections.cpp) and the fuzzer
// (tests/fuzz/fuzz_clinic_http.cpp) drive it alike. No coroutines: it builds with any
// compiler.
#pragma once

#include <cloudmysql/clinic/schema.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace clinic_server {

namespace http = boost::beast::http;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
using request_parser = http::request_parser<http::string_body>;

// ---- reading requests ---------------------------------------------------------------------

/// How much one request may hold.
struct request_limits {
    /// The request line and header fields, in bytes (Beast's default); more gets 431.
    std::uint32_t header_bytes = 8192;
    /// A body, in bytes; more gets 413. The server serves GET only: a body is never used.
    std::uint64_t body_bytes = 8192;
};

/// Sets `parser`'s limits (a new parser for each request).
void apply(const request_limits& limits, request_parser& parser);

/// What a client gets when its request cannot be read, to be sent before the connection closes:
/// 431 for header fields above the limit, 413 for a body above it, 400 with the parser's reason
/// for anything malformed. Nothing when no one is there to answer: the client closed, a
/// deadline passed (the connection is already closed) or the connection failed.
std::optional<response> refusal(const boost::system::error_code& ec, const request_limits& limits);

/// A whole HTTP response, as bytes, for a client turned away before anything was read: 503
/// with Retry-After and `why` as its text, the connection closed.
std::string busy_response(std::string_view why);

/// The last touches before `res` goes out: keep-alive or close, Content-Length, and the headers
/// every answer carries (no caching of patient data, no content sniffing, a content security
/// policy for pages).
void finish(response& res, bool keep_alive);

// ---- what a request asks for ----------------------------------------------------------------

/// The form of an answer: pages for people, JSON under /api/, text for /healthz and /metrics.
enum class kind { html, json, text };

struct health_check {};
struct metrics_text {};
/// A page of patients by id, or by last name with a prefix `q`, after patient `after` (0: from
/// the start).
struct patient_list {
    std::int64_t after = 0;
    std::string q;
};
/// One patient and their records.
struct patient_page {
    std::int64_t id = 0;
};
using query = std::variant<health_check, metrics_text, patient_list, patient_page>;

/// A request's answer: a response at once (405, 400, 404) or a query to run first, with the
/// form its answer takes.
struct route {
    kind form = kind::html;
    std::variant<response, query> action;
};

/// Routes (GET only): / (?after=ID, ?q=PREFIX), /patients/ID, /api/patients?after=ID&q=PREFIX,
/// /api/patients/ID, /metrics, /healthz.
route route_for(const request& req);

// ---- what the database answered, as pages -------------------------------------------------

/// A page of patients; `next` is the `after` of the following page, when there is one.
struct listing {
    std::vector<cloudmysql::clinic::patient> patients;
    std::optional<std::int64_t> next;
};

/// A patient (none: no such id) and their records.
struct patient_file {
    std::optional<cloudmysql::clinic::patient> who;
    std::vector<cloudmysql::clinic::medical_record> records;
};

/// The database answered a ping in `milliseconds`.
struct health {
    double milliseconds = 0;
};

/// The pool's metrics in Prometheus' text format.
struct metrics {
    std::string text;
};

using answer = std::variant<health, metrics, listing, patient_file>;

/// The page, JSON or text for `q`'s answer `a` (404 for a patient that does not exist).
response render(kind form, const query& q, const answer& a);

/// An error in the form asked for: a page, {"error": ...} or a line of text. `message` is
/// escaped as the form needs; 503 carries Retry-After.
response error_page(http::status status, kind form, std::string_view message);

} // namespace clinic_server
