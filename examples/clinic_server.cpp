// clinic_server: a small web front end to the clinic database; many requests at once from a
// few threads and a small pool.
//
// Shows: async_acquire with boost::asio::use_awaitable (a request waits in the pool's queue
// without holding an I/O thread), the blocking queries run on a thread pool of their own, every
// value a bound parameter, the pool's metrics for Prometheus, and a service that answers 503
// with the reason while the database is down and recovers by itself when it is back.
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic'
//   clinic_load --patients 1000      # applies the clinic migrations, then loads patients
//   clinic_server --port 8080 --threads 2 --pool-size 8
//   clinic_server --connect-per-request 1   # no pool: a new session per request (benchmarks)
//   curl 'http://127.0.0.1:8080/api/patients?q=sm'
//
// Routes (GET only): / (?after=ID for the next page, ?q=PREFIX searches by last name),
// /patients/ID, /api/patients?after=ID&q=PREFIX, /api/patients/ID, /metrics, /healthz.
// With --port 0 the system picks a free port; the first line on stdout names it.
#include "common/json_string.hpp"

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using cloudmysql::clinic::medical_record;
using cloudmysql::clinic::patient;
using response = http::response<http::string_body>;
using namespace std::chrono_literals;

constexpr std::size_t page_size = 25;

struct app {
    cloudmysql::pool& pool;
    asio::thread_pool& db_threads; // where the blocking libmariadb calls run
    std::atomic<int> in_flight{0};
    std::atomic<bool> stopping{false};
    // Opens a session per request instead of leasing one (the baseline scripts/bench loads).
    bool connect_per_request = false;
};

// ---- text ---------------------------------------------------------------------------------

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
    if (ec != std::errc{} || end != s.data() + s.size() || id < 0)
        return std::nullopt;
    return id;
}

std::string iso(std::chrono::year_month_day d) {
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(d.year()),
                       static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

// ---- queries: blocking, on one connection, every value a bound parameter ------------------

struct listing {
    std::vector<patient> patients;
    std::optional<std::int64_t> next; // the `after` of the next page
};

struct patient_file {
    std::optional<patient> who;
    std::vector<medical_record> records;
};

const std::string select_patients =
    "SELECT id, first_name, last_name, date_of_birth, gender, contact_number FROM patients ";

patient to_patient(const cloudmysql::row& r) {
    return {r.get<std::int64_t>(0), r.get<std::string>(1),
            r.get<std::string>(2),  r.get<std::chrono::year_month_day>(3),
            r.get<std::string>(4),  r.get<std::optional<std::string>>(5)};
}

// A page by id, or with a prefix by name: after the (last_name, first_name, id) of patient
// `after`. One row more than a page says whether another follows.
listing list_patients(cloudmysql::connection& conn, std::int64_t after, const std::string& q) {
    cloudmysql::result rows;
    if (q.empty()) {
        rows = conn.execute(select_patients + "WHERE id > ? ORDER BY id LIMIT ?", after,
                            page_size + 1);
    } else {
        std::string like; // the prefix with LIKE's wildcards made literal
        for (const char c : q) {
            if (c == '%' || c == '_' || c == '!')
                like += '!';
            like += c;
        }
        rows = conn.execute(
            select_patients + "WHERE last_name LIKE ? ESCAPE '!' AND (? = 0 OR (last_name, "
                              "first_name, id) > (SELECT last_name, first_name, id FROM "
                              "patients WHERE id = ?)) ORDER BY last_name, first_name, id LIMIT ?",
            like + '%', after, after, page_size + 1);
    }
    listing out;
    for (const auto& r : rows)
        out.patients.push_back(to_patient(r));
    if (out.patients.size() > page_size) {
        out.patients.pop_back();
        out.next = out.patients.back().id;
    }
    return out;
}

patient_file find_patient(cloudmysql::connection& conn, std::int64_t id) {
    patient_file out;
    const auto found = conn.execute(select_patients + "WHERE id = ?", id);
    if (found.empty())
        return out;
    out.who = to_patient(found[0]);
    for (const auto& r : conn.execute("SELECT id, patient_id, diagnosis, treatment, "
                                      "admission_date, discharge_date FROM medical_records "
                                      "WHERE patient_id = ? ORDER BY admission_date, id",
                                      id))
        out.records.push_back({r.get<std::int64_t>(0), r.get<std::int64_t>(1),
                               r.get<std::string>(2), r.get<std::string>(3),
                               r.get<std::chrono::year_month_day>(4),
                               r.get<std::optional<std::chrono::year_month_day>>(5)});
    return out;
}

// Takes a connection without holding an I/O thread (the coroutine waits in the pool's queue),
// runs `work` with it on the database threads, and gives it back; a connection that failed
// mid-session is discarded instead (the pool then retires those opened before it).
template <class Work>
asio::awaitable<std::invoke_result_t<Work&, cloudmysql::connection&>> with_connection(app& a,
                                                                                      Work work) {
    using result_type = std::invoke_result_t<Work&, cloudmysql::connection&>;
    if (a.connect_per_request) {
        // At most pool-size sessions at once: one per database thread.
        co_return co_await asio::co_spawn(
            a.db_threads,
            [&]() -> asio::awaitable<result_type> {
                cloudmysql::connection conn(a.pool.connection_options());
                co_return work(conn);
            },
            asio::use_awaitable);
    }
    cloudmysql::diagnostics diag;
    cloudmysql::error_code ec;
    auto conn = co_await a.pool.async_acquire(diag, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        throw cloudmysql::database_error(ec, diag);
    try {
        co_return co_await asio::co_spawn(
            a.db_threads, [&]() -> asio::awaitable<result_type> { co_return work(*conn); },
            asio::use_awaitable);
    } catch (const cloudmysql::database_error& e) {
        if (e.error_class() != cloudmysql::error_class::bad_input)
            conn.discard(e.error_class());
        throw;
    }
}

// ---- pages ----------------------------------------------------------------------------------

enum class kind { html, json, text };

response reply(http::status status, kind k, std::string body) {
    response res(status, 11);
    res.set(http::field::content_type, k == kind::html   ? "text/html; charset=utf-8"
                                       : k == kind::json ? "application/json"
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

response error_page(http::status status, kind k, std::string_view message) {
    if (static_cast<unsigned>(status) >= 500)
        fmt::print(stderr, "clinic_server: {}\n", message);
    std::string body = std::string(message) + '\n';
    if (k == kind::json)
        body = fmt::format("{{\"error\":{}}}", json(message));
    else if (k == kind::html)
        body = layout(std::string(http::obsolete_reason(status)),
                      fmt::format(R"(<p class="error">{}</p>)", html(message)));
    auto res = reply(status, k, std::move(body));
    if (status == http::status::service_unavailable)
        res.set(http::field::retry_after, "5");
    return res;
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

// ---- routes ---------------------------------------------------------------------------------

asio::awaitable<response> route(app& a, const http::request<http::string_body>& req) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const kind k = path == "/healthz"          ? kind::text
                   : path.starts_with("/api/") ? kind::json
                                               : kind::html;
    if (req.method() != http::verb::get) {
        auto res = error_page(http::status::method_not_allowed, k, "only GET is served here");
        res.set(http::field::allow, "GET");
        co_return res;
    }
    if (path == "/metrics") {
        auto res = reply(http::status::ok, kind::text, a.pool.prometheus_text("clinic_server"));
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        co_return res;
    }
    std::optional<response> failed;
    try {
        if (path == "/healthz") {
            const auto started = std::chrono::steady_clock::now();
            co_await with_connection(a, [](cloudmysql::connection& c) {
                c.ping();
                return true;
            });
            const std::chrono::duration<double, std::milli> took =
                std::chrono::steady_clock::now() - started;
            co_return reply(http::status::ok, k,
                            fmt::format("ok: database answers ({:.1f} ms)\n", took.count()));
        }
        if (path == "/" || path == "/api/patients") {
            const std::string after_text = query_param(target, "after");
            const auto after =
                after_text.empty() ? std::optional<std::int64_t>(0) : parse_id(after_text);
            if (!after)
                co_return error_page(http::status::bad_request, k, "after must be a patient id");
            const std::string q = query_param(target, "q");
            const auto l = co_await with_connection(
                a, [&](cloudmysql::connection& c) { return list_patients(c, *after, q); });
            co_return reply(http::status::ok, k,
                            k == kind::json ? listing_json(l)
                                            : layout("Patients", listing_html(l, q, *after)));
        }
        for (const std::string_view prefix : {"/patients/", "/api/patients/"}) {
            if (!path.starts_with(prefix))
                continue;
            const auto id = parse_id(path.substr(prefix.size()));
            if (!id)
                break;
            const auto f = co_await with_connection(
                a, [&](cloudmysql::connection& c) { return find_patient(c, *id); });
            if (!f.who)
                co_return error_page(http::status::not_found, k,
                                     fmt::format("no patient with id {}", *id));
            co_return reply(http::status::ok, k,
                            k == kind::json ? file_json(f)
                                            : layout(f.who->last_name + ", " + f.who->first_name,
                                                     file_html(f)));
        }
    } catch (const cloudmysql::database_error& e) {
        failed = error_page(http::status::service_unavailable, k,
                            fmt::format("database unavailable: {}", e.what()));
    } catch (const std::exception& e) {
        failed = error_page(http::status::internal_server_error, k, e.what());
    }
    if (failed)
        co_return std::move(*failed);
    co_return error_page(http::status::not_found, k, fmt::format("nothing at {}", path));
}

// One client connection: requests in turn (HTTP/1.1 keep-alive), on a strand of its own.
asio::awaitable<void> serve(app& a, tcp::socket socket) {
    boost::beast::tcp_stream stream(std::move(socket));
    boost::beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> req;
        boost::beast::error_code ec;
        stream.expires_after(30s); // an idle keep-alive connection closes
        co_await http::async_read(stream, buffer, req,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            break; // the client closed, went quiet or sent something that is not HTTP
        ++a.in_flight;
        response res = co_await route(a, req);
        res.keep_alive(req.keep_alive() && !a.stopping);
        res.prepare_payload();
        stream.expires_after(30s);
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        --a.in_flight;
        if (ec || !res.keep_alive())
            break;
    }
    boost::beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(app& a, tcp::acceptor& acceptor) {
    while (acceptor.is_open()) {
        boost::system::error_code ec;
        auto socket = co_await acceptor.async_accept(asio::make_strand(acceptor.get_executor()),
                                                     asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            const auto strand = socket.get_executor();
            asio::co_spawn(strand, serve(a, tcp::socket(std::move(socket))), asio::detached);
        }
    }
}

// SIGINT or SIGTERM: stop accepting, let the requests under way finish (up to 10 s), stop.
asio::awaitable<void> stop_on_signal(app& a, asio::signal_set& signals, tcp::acceptor& acceptor,
                                     asio::io_context& io) {
    const int number = co_await signals.async_wait(asio::use_awaitable);
    fmt::print(stderr, "clinic_server: signal {}, finishing {} requests\n", number,
               a.in_flight.load());
    a.stopping = true;
    acceptor.close();
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (int i = 0; i < 500 && a.in_flight > 0; ++i) {
        pause.expires_after(20ms);
        co_await pause.async_wait(asio::use_awaitable);
    }
    io.stop();
}

struct settings {
    std::uint16_t port = 8080;
    int threads = 2;
    std::size_t pool_size = 8;
    bool connect_per_request = false;
};

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc)
            throw std::invalid_argument(fmt::format("{} needs a value", arg));
        const int value = std::stoi(argv[i + 1]);
        if (arg == "--port" && value >= 0 && value <= 65535)
            s.port = static_cast<std::uint16_t>(value);
        else if (arg == "--threads" && value >= 1 && value <= 256)
            s.threads = value;
        else if (arg == "--pool-size" && value >= 1 && value <= 10000)
            s.pool_size = static_cast<std::size_t>(value);
        else if (arg == "--connect-per-request" && (value == 0 || value == 1))
            s.connect_per_request = value == 1;
        else
            throw std::invalid_argument(
                fmt::format("unknown option or value out of range: {} {}", arg, argv[i + 1]));
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    std::optional<cloudmysql::connect_options> url;
    try {
        s = parse(argc, argv);
        url = cloudmysql::connect_options::from_env();
        if (!url)
            throw std::invalid_argument("set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST/DB");
    } catch (const std::exception& e) {
        fmt::print(stderr,
                   "clinic_server: {}\n"
                   "usage: clinic_server [--port N (0: any free)] [--threads N] [--pool-size N]\n"
                   "                     [--connect-per-request 0|1]\n",
                   e.what());
        return 2;
    }
    try {
        // backoff_max 2 s (default 10 s): a web service wants the database back promptly.
        cloudmysql::pool pool(*url,
                              {.max_size = s.pool_size, .acquire_timeout = 2s, .backoff_max = 2s});
        // As many database threads as connections: a request holds its connection before it
        // queues here, so no query ever waits for a thread.
        asio::thread_pool db_threads(s.pool_size);
        asio::io_context io(s.threads);
        app a{pool, db_threads};
        a.connect_per_request = s.connect_per_request;
        tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), s.port});
        auto control = asio::make_strand(io); // the acceptor's and the signal's
        asio::signal_set signals(control, SIGINT, SIGTERM);
        asio::co_spawn(control, accept_loop(a, acceptor), asio::detached);
        asio::co_spawn(control, stop_on_signal(a, signals, acceptor, io), asio::detached);
        fmt::print("listening on http://127.0.0.1:{}/\n", acceptor.local_endpoint().port());
        std::fflush(stdout);

        std::vector<std::thread> threads;
        for (int i = 0; i < s.threads; ++i)
            threads.emplace_back([&io] { io.run(); });
        for (auto& t : threads)
            t.join();
        pool.close();      // fails any acquire still waiting, before its io_context goes
        db_threads.join(); // queries still running finish before their requests are destroyed
        fmt::print(stderr, "clinic_server: stopped\n");
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "clinic_server: {}\n", e.what());
        return 1;
    }
}
