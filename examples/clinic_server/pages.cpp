#include "clinic_server/pages.hpp"

#include "common/json_string.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <utility>

namespace clinic_server {

namespace {

using cloudmysql::clinic::medical_record;
using cloudmysql::clinic::patient;

// ---- text -----------------------------------------------------------------------------------

std::string html(std::string_view s) {
    std::string out;
    for (const char c : s)
        out += c == '&'    ? "&amp;"
               : c == '<'  ? "&lt;"
               : c == '>'  ? "&gt;"
               : c == '"'  ? "&quot;"
               : c == '\'' ? "&#39;"
                           : std::string_view(&c, 1);
    return out;
}

// A JSON string literal, quotes included.
std::string json(std::string_view s) {
    return cloudmysql_examples::json_string(s);
}

std::string percent_encode(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~')
            out += c;
        else
            out += fmt::format("%{:02X}", u);
    }
    return out;
}

// A request's path as messages quote it: printable ASCII as it is, other bytes percent-encoded
// (so that a message is valid UTF-8 and one line in any form), at most 200 characters.
std::string quoted_path(std::string_view path) {
    std::string out;
    for (const char c : path.substr(0, 200)) {
        const auto u = static_cast<unsigned char>(c);
        if (u > 0x20 && u < 0x7f)
            out += c;
        else
            out += fmt::format("%{:02X}", u);
    }
    return path.size() > 200 ? out + "..." : out;
}

// The value of `name` in the target's query string, percent-decoded; empty when absent.
std::string query_param(std::string_view target, std::string_view name) {
    const auto question = target.find('?');
    std::string_view rest = question == target.npos ? "" : target.substr(question + 1);
    std::string_view value;
    while (!rest.empty() && value.data() == nullptr) {
        const std::string_view pair = rest.substr(0, rest.find('&'));
        rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
        if (pair.starts_with(name) && pair.substr(name.size()).starts_with('='))
            value = pair.substr(name.size() + 1);
    }
    std::string out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        unsigned char byte = 0;
        const char* hex = value.data() + i + 1;
        if (value[i] == '%' && i + 2 < value.size() &&
            std::from_chars(hex, hex + 2, byte, 16).ptr == hex + 2) {
            out += static_cast<char>(byte);
            i += 2;
        } else {
            out += value[i] == '+' ? ' ' : value[i];
        }
    }
    return out;
}

std::optional<std::int64_t> parse_id(std::string_view s) {
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || id < 0)
        return std::nullopt;
    return id;
}

std::string iso(std::chrono::year_month_day d) {
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(d.year()),
                       static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

// ---- pages ----------------------------------------------------------------------------------

response reply(http::status status, kind form, std::string body) {
    response res(status, 11);
    res.set(http::field::content_type, form == kind::html   ? "text/html; charset=utf-8"
                                       : form == kind::json ? "application/json"
                                                            : "text/plain; charset=utf-8");
    res.set(http::field::server, "cloudmysql clinic_server");
    res.body() = std::move(body);
    return res;
}

std::string layout(std::string_view title, std::string_view body) {
    return fmt::format(
        R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{0}</title><style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:62em;color:#222}}
table{{border-collapse:collapse;width:100%}} th,td{{text-align:left;padding:.3em .6em;
border-bottom:1px solid #ddd}} th{{background:#eef2f6}} a{{color:#0b5cad}} form{{margin:1em 0}}
.error{{color:#a00}}
</style></head><body><h1><a href="/">Clinic</a> &middot; {0}</h1>
{1}</body></html>
)",
        html(title), body);
}

std::string patient_fields(const patient& p) {
    return fmt::format(R"("id":{},"first_name":{},"last_name":{},"date_of_birth":"{}",)"
                       R"("gender":{},"contact_number":{})",
                       p.id, json(p.first_name), json(p.last_name), iso(p.date_of_birth),
                       json(p.gender), p.contact_number ? json(*p.contact_number) : "null");
}

std::string listing_json(const listing& l) {
    std::string out = R"({"patients":[)";
    for (const auto& p : l.patients)
        out += (&p == l.patients.data() ? "{" : ",{") + patient_fields(p) + "}";
    return out + fmt::format(R"(],"next":{}}})", l.next ? std::to_string(*l.next) : "null");
}

std::string listing_html(const listing& l, const std::string& q, std::int64_t after) {
    std::string out = fmt::format(
        R"(<form action="/"><input name="q" value="{}" placeholder="last name starts with">
<button>Search</button></form>)",
        html(q));
    if (l.patients.empty())
        return out + (!q.empty()  ? fmt::format("<p>no patient's last name starts with "
                                                 "&ldquo;{}&rdquo;</p>",
                                                html(q))
                      : after > 0 ? "<p>no more patients</p>"
                                  : "<p>no patients yet: load some with clinic_load</p>");
    out += "<table><tr><th>ID</th><th>Name</th><th>Born</th><th>Gender</th><th>Contact</th></tr>";
    for (const auto& p : l.patients)
        out += fmt::format(R"(<tr><td>{0}</td><td><a href="/patients/{0}">{1}, {2}</a></td>)"
                           "<td>{3}</td><td>{4}</td><td>{5}</td></tr>\n",
                           p.id, html(p.last_name), html(p.first_name), iso(p.date_of_birth),
                           html(p.gender), html(p.contact_number.value_or("")));
    out += "</table>";
    if (l.next)
        out += fmt::format(R"(<p><a href="/?{}after={}">next page &rarr;</a></p>)",
                           q.empty() ? "" : "q=" + percent_encode(q) + "&amp;", *l.next);
    return out;
}

std::string file_html(const patient_file& f) {
    const patient& p = *f.who;
    std::string out =
        fmt::format("<p>Born {}, {}, contact {}</p><h2>Medical records</h2>", iso(p.date_of_birth),
                    html(p.gender), p.contact_number ? html(*p.contact_number) : "none");
    if (f.records.empty())
        return out + "<p>no records</p>";
    out +=
        "<table><tr><th>Admitted</th><th>Discharged</th><th>Diagnosis</th><th>Treatment</th></tr>";
    for (const auto& r : f.records)
        out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                           iso(r.admission_date),
                           r.discharge_date ? iso(*r.discharge_date) : "still admitted",
                           html(r.diagnosis), html(r.treatment));
    return out + "</table>";
}

std::string file_json(const patient_file& f) {
    std::string out = "{" + patient_fields(*f.who) + R"(,"records":[)";
    for (const auto& r : f.records)
        out += fmt::format(R"({}{{"id":{},"diagnosis":{},"treatment":{},"admission_date":"{}",)"
                           R"("discharge_date":{}}})",
                           &r == f.records.data() ? "" : ",", r.id, json(r.diagnosis),
                           json(r.treatment), iso(r.admission_date),
                           r.discharge_date ? '"' + iso(*r.discharge_date) + '"' : "null");
    return out + "]}";
}

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

} // namespace

// ---- reading requests ---------------------------------------------------------------------

void apply(const request_limits& limits, request_parser& parser) {
    parser.header_limit(limits.header_bytes);
    parser.body_limit(limits.body_bytes);
}

std::optional<response> refusal(const boost::system::error_code& ec, const request_limits& limits) {
    if (ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message)
        return std::nullopt; // closed, timed out or failed: no one to answer
    response res;
    if (ec == http::error::header_limit)
        res = error_page(
            http::status::request_header_fields_too_large, kind::text,
            fmt::format("request header fields too large: at most {} bytes", limits.header_bytes));
    else if (ec == http::error::body_limit)
        res = error_page(http::status::payload_too_large, kind::text,
                         fmt::format("request body too large: at most {} bytes (this server "
                                     "serves GET only)",
                                     limits.body_bytes));
    else // Beast's words for what is wrong ("bad method", "bad target"...), never the input
        res = error_page(http::status::bad_request, kind::text,
                         fmt::format("malformed request: {}", ec.message()));
    return res;
}

std::string busy_response(std::string_view why) {
    const std::string body = std::string(why) + '\n';
    return fmt::format("HTTP/1.1 503 Service Unavailable\r\nServer: cloudmysql clinic_server\r\n"
                       "Retry-After: 1\r\nConnection: close\r\nCache-Control: no-store\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
                       body.size(), body);
}

void finish(response& res, bool keep_alive) {
    res.keep_alive(keep_alive);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    if (res[http::field::content_type].starts_with("text/html"))
        res.set("Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    res.prepare_payload();
}

// ---- routes ---------------------------------------------------------------------------------

route route_for(const request& req) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const kind form = path == "/healthz" || path == "/metrics" ? kind::text
                      : path.starts_with("/api/")              ? kind::json
                                                               : kind::html;
    if (req.method() != http::verb::get) {
        auto res = error_page(http::status::method_not_allowed, form, "only GET is served here");
        res.set(http::field::allow, "GET");
        return {form, std::move(res)};
    }
    if (path == "/healthz")
        return {form, health_check{}};
    if (path == "/metrics")
        return {form, metrics_text{}};
    if (path == "/" || path == "/api/patients") {
        const std::string after_text = query_param(target, "after");
        const auto after =
            after_text.empty() ? std::optional<std::int64_t>(0) : parse_id(after_text);
        if (!after)
            return {form,
                    error_page(http::status::bad_request, form, "after must be a patient id")};
        std::string q = query_param(target, "q");
        if (!cloudmysql::clinic::utf8_length(q))
            return {form, error_page(http::status::bad_request, form, "q must be UTF-8 text")};
        return {form, patient_list{*after, std::move(q)}};
    }
    for (const std::string_view prefix : {"/patients/", "/api/patients/"})
        if (path.starts_with(prefix))
            if (const auto id = parse_id(path.substr(prefix.size())))
                return {form, patient_page{*id}};
    return {form, error_page(http::status::not_found, form,
                             fmt::format("nothing at {}", quoted_path(path)))};
}

response render(kind form, const query& q, const answer& a) {
    return std::visit(
        overloaded{
            [&](const health& h) {
                return reply(http::status::ok, form,
                             fmt::format("ok: database answers ({:.1f} ms)\n", h.milliseconds));
            },
            [&](const metrics& m) {
                auto res = reply(http::status::ok, kind::text, m.text);
                res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                return res;
            },
            [&](const listing& l) {
                const auto* asked = std::get_if<patient_list>(&q);
                const std::string q_text = asked ? asked->q : "";
                const std::int64_t after = asked ? asked->after : 0;
                return reply(http::status::ok, form,
                             form == kind::json
                                 ? listing_json(l)
                                 : layout("Patients", listing_html(l, q_text, after)));
            },
            [&](const patient_file& f) {
                if (!f.who) {
                    const auto* asked = std::get_if<patient_page>(&q);
                    return error_page(http::status::not_found, form,
                                      fmt::format("no patient with id {}", asked ? asked->id : 0));
                }
                return reply(
                    http::status::ok, form,
                    form == kind::json
                        ? file_json(f)
                        : layout(f.who->last_name + ", " + f.who->first_name, file_html(f)));
            },
        },
        a);
}

response error_page(http::status status, kind form, std::string_view message) {
    std::string body = std::string(message) + '\n';
    if (form == kind::json)
        body = fmt::format("{{\"error\":{}}}", json(message));
    else if (form == kind::html)
        body = layout(std::string(http::obsolete_reason(status)),
                      fmt::format(R"(<p class="error">{}</p>)", html(message)));
    auto res = reply(status, form, std::move(body));
    if (status == http::status::service_unavailable)
        res.set(http::field::retry_after, "5");
    return res;
}

} // namespace clinic_server
