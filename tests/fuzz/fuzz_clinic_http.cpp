// libFuzzer target: clinic_server's HTTP layer (examples/clinic_server/pages.cpp) on the bytes a
// client sends. They are read the way a connection reads them (Beast's request parser with the
// server's limits, requests one after another while the client keeps the connection alive),
// routed, and answered with a stand-in for the database that is deterministic and returns the
// client's own bytes as rows (as a real one may: patient data is user input).
//
// Properties, beyond no crash and no undefined behaviour:
// - every request read gets one well-formed HTTP/1.1 response: Beast parses it back, its status
//   is one the server uses, Content-Length matches, and it says Connection: close exactly when
//   the connection ends (always after a refusal);
// - bytes that are no request get 400, 413 or 431, or nothing while the request is unfinished
//   (the header deadline then closes the connection); the end of the input mid-request is
//   answered by nothing;
// - pages never carry the client's bytes unescaped: every '<' opens one of the pages' own tags,
//   every attribute is one of theirs with a quoted value free of quotes and angle brackets;
// - JSON parses (nlohmann-json) and gives the rows' text back exactly; every body is UTF-8.
#include "clinic_server/pages.hpp"

#include <cloudmysql/clinic/schema.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

namespace {

namespace http = boost::beast::http;
using namespace clinic_server;
using cloudmysql::clinic::medical_record;
using cloudmysql::clinic::patient;

// Small limits, so that inputs of a few KiB reach them.
constexpr request_limits limits{2048, 512};

[[noreturn]] void fail(const char* property, std::string_view detail) {
    std::fprintf(stderr, "property violated: %s\n--- detail:\n%.*s\n", property,
                 static_cast<int>(detail.size()), detail.data());
    std::abort();
}

void require(bool ok, const char* property, std::string_view detail = {}) {
    if (!ok)
        fail(property, detail);
}

std::string_view text(boost::string_view s) {
    return {s.data(), s.size()};
}

bool is_utf8(std::string_view s) {
    return cloudmysql::clinic::utf8_length(s).has_value();
}

// What a utf8mb4 column could hold of `bytes`: the bytes with anything not UTF-8 replaced.
std::string column_text(std::string_view bytes, std::size_t at_most) {
    std::string out;
    for (const char c : bytes.substr(0, at_most)) {
        const std::string one(1, c);
        out += is_utf8(one) ? one : "\xEF\xBF\xBD";
    }
    return out;
}

// ---- the stand-in database ------------------------------------------------------------------

answer database(const query& q, const request& req) {
    using namespace std::chrono;
    const std::string agent = column_text(text(req[http::field::user_agent]), 100);
    const std::string target =
        column_text(std::string_view(req.target().data(), req.target().size()), 200);
    if (std::holds_alternative<health_check>(q))
        return health{1.5};
    if (std::holds_alternative<metrics_text>(q))
        return metrics{"db_client_connection_count{pool_name=\"clinic_server\",state=\"idle\"} "
                       "1\n"};
    if (const auto* list = std::get_if<patient_list>(&q)) {
        listing l;
        if (list->after % 7 == 3)
            return l; // an empty page
        const std::string last = list->q.empty() ? "O'Hara & <Lee>" : list->q;
        l.patients.push_back({list->after + 1, agent, last, year_month_day(1980y, March, 14d),
                              "\"x\"", std::nullopt});
        l.patients.push_back({list->after + 2, target, last + "<b>", year_month_day(1999y, May, 1d),
                              "female", agent});
        if (list->after % 2 == 0)
            l.next = list->after + 2;
        return l;
    }
    const auto id = std::get<patient_page>(q).id;
    patient_file f;
    if (id % 3 == 0)
        return f; // no such patient
    f.who = patient{id, agent, target, year_month_day(1970y, January, 1d), "'>", agent};
    f.records.push_back({1, id, agent, target, year_month_day(2024y, January, 2d),
                         year_month_day(2024y, March, 3d)});
    f.records.push_back(
        {2, id, "</td><script>", agent, year_month_day(2025y, June, 30d), std::nullopt});
    return f;
}

// ---- the checks ---------------------------------------------------------------------------

// Every '<' opens one of the pages' own tags; inside a tag, only their attributes, each with a
// double-quoted value free of quotes and angle brackets. Outside tags, no quote or '>'.
void check_html(std::string_view body) {
    static const std::set<std::string_view> tags{
        "!doctype", "html", "head", "meta",  "title",  "style", "body", "h1", "h2",
        "a",        "p",    "form", "input", "button", "table", "tr",   "th", "td"};
    static const std::set<std::string_view> attributes{
        "lang", "charset", "href", "action", "name", "value", "class", "placeholder", "html"};
    std::size_t i = 0;
    while (i < body.size()) {
        const char c = body[i];
        if (c != '<') {
            require(c != '>' && c != '"', "no '>' or '\"' outside a tag", body);
            ++i;
            continue;
        }
        std::size_t j = i + 1;
        if (j < body.size() && body[j] == '/')
            ++j;
        const std::size_t name_start = j;
        while (j < body.size() && body[j] != ' ' && body[j] != '>' && body[j] != '\n')
            ++j;
        const std::string_view name = body.substr(name_start, j - name_start);
        require(tags.contains(name), "every '<' opens one of the pages' own tags",
                body.substr(i, 80));
        // Attributes: name="value" or a bare word (doctype's html).
        while (j < body.size() && body[j] != '>') {
            require(body[j] == ' ' || body[j] == '\n', "attributes separated by spaces",
                    body.substr(i, 80));
            ++j;
            const std::size_t attr_start = j;
            while (j < body.size() && body[j] != '=' && body[j] != '>' && body[j] != ' ')
                ++j;
            require(attributes.contains(body.substr(attr_start, j - attr_start)),
                    "only the pages' own attributes", body.substr(i, 80));
            if (j < body.size() && body[j] == '=') {
                require(j + 1 < body.size() && body[j + 1] == '"', "attribute values quoted",
                        body.substr(i, 80));
                const std::size_t end = body.find('"', j + 2);
                require(end != std::string_view::npos, "attribute values closed",
                        body.substr(i, 80));
                const std::string_view value = body.substr(j + 2, end - j - 2);
                require(value.find_first_of("<>") == std::string_view::npos,
                        "no angle bracket in an attribute value", value);
                j = end + 1;
            }
        }
        require(j < body.size(), "tags closed", body.substr(i, 80));
        i = j + 1;
    }
}

void check_json(std::string_view body, const query* q, const answer* a) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
        fail("JSON bodies parse", std::string(e.what()) + "\n" + std::string(body));
    }
    if (doc.contains("error")) {
        require(doc["error"].is_string(), "an error is a string", body);
        return;
    }
    if (a == nullptr)
        return;
    if (const auto* l = std::get_if<listing>(a)) {
        require(doc["patients"].size() == l->patients.size(), "every patient listed", body);
        for (std::size_t k = 0; k < l->patients.size(); ++k) {
            const auto& p = doc["patients"][k];
            require(p["last_name"] == l->patients[k].last_name &&
                        p["first_name"] == l->patients[k].first_name &&
                        p["gender"] == l->patients[k].gender,
                    "JSON gives the rows' text back exactly", body);
        }
        require(l->next ? doc["next"] == *l->next : doc["next"].is_null(), "next as given", body);
    } else if (const auto* f = std::get_if<patient_file>(a); f && f->who) {
        require(doc["last_name"] == f->who->last_name, "JSON gives the rows' text back", body);
        require(doc["records"].size() == f->records.size(), "every record listed", body);
        require(doc["records"][1]["diagnosis"] == f->records[1].diagnosis &&
                    doc["records"][1]["discharge_date"].is_null(),
                "records as stored", body);
    }
    (void)q;
}

// Serializes `res` and checks it as a client would read it.
void check_response(const response& res, bool keep_alive, const query* q, const answer* a) {
    std::ostringstream out;
    out << res;
    const std::string wire = out.str();
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(1 << 24);
    boost::system::error_code ec;
    parser.put(boost::asio::buffer(wire), ec);
    require(!ec && parser.is_done(), "a well-formed HTTP/1.1 response", wire);
    const auto& got = parser.get();
    static const std::set<unsigned> statuses{200, 400, 404, 405, 413, 431};
    require(statuses.contains(got.result_int()), "a status the server uses", wire);
    require(got.version() == 11, "HTTP/1.1", wire);
    require(got.keep_alive() == keep_alive, "Connection: close exactly when it ends", wire);
    require(got[http::field::content_length] == std::to_string(got.body().size()),
            "Content-Length matches", wire);
    require(got["X-Content-Type-Options"] == "nosniff", "nosniff on every answer", wire);
    if (got.result() == http::status::method_not_allowed)
        require(got[http::field::allow] == "GET", "405 says Allow: GET", wire);
    const std::string_view type = text(got[http::field::content_type]);
    const std::string_view body = got.body();
    require(is_utf8(body), "bodies are UTF-8", wire);
    if (type.starts_with("text/html"))
        check_html(body);
    else if (type == "application/json")
        check_json(body, q, a);
    else
        require(type.starts_with("text/plain"), "a known content type", wire);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    // Requests in turn on one connection, as the server reads them.
    for (int served = 0; served < 64 && !input.empty(); ++served) {
        request_parser parser;
        apply(limits, parser);
        parser.eager(true);
        boost::system::error_code ec;
        const std::size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
        input.remove_prefix(used);
        if (ec == http::error::need_more || (!ec && !parser.is_done())) {
            // The input ends mid-request: the client is still sending or has closed.
            parser.put_eof(ec);
            require(ec == http::error::partial_message || ec == http::error::end_of_stream || !ec,
                    "the end of the input mid-request ends the request");
            require(!ec || !refusal(ec, limits), "no answer to a client that closed mid-request");
            return 0;
        }
        if (ec) {
            auto refused = refusal(ec, limits);
            require(refused.has_value(), "a request that cannot be read gets an answer",
                    ec.message());
            const unsigned status = refused->result_int();
            require(status == 400 || status == 413 || status == 431, "400, 413 or 431",
                    ec.message());
            finish(*refused, false);
            check_response(*refused, false, nullptr, nullptr);
            return 0; // the connection closes
        }
        const request req = parser.release();
        route r = route_for(req);
        response res;
        std::optional<answer> a;
        const query* q = std::get_if<query>(&r.action);
        if (q != nullptr) {
            a = database(*q, req);
            res = render(r.form, *q, *a);
        } else {
            res = std::get<response>(std::move(r.action));
        }
        const bool keep_alive = req.keep_alive();
        finish(res, keep_alive);
        check_response(res, keep_alive, q, a ? &*a : nullptr);
        if (!keep_alive)
            return 0;
    }
    return 0;
}
