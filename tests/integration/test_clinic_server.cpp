// examples/clinic_server against a real MariaDB: its pages and JSON (escaping, paging, search,
// 404 and 405), its metrics and health check, many clients at once on a pool of two, and a
// database that stops and comes back under the running web server: 503 with the reason while
// it is down, 200 again afterwards without restarting the web server, and exit 0 on SIGTERM.
//
// The test starts a MariaDB of its own (it stops it), applies the clinic migrations there and
// runs clinic_server as a child process with --port 0, reading the port from its first line.
// No assertion depends on timing; waits are bounded loops.
#include "clinic_server_child.hpp"
#include "own_sandbox.hpp"
#include "test_server.hpp"

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/migrator.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using cloudmysql::test::contains;
using cloudmysql::test::request;
using cloudmysql::test::request_until;
using cloudmysql::test::web_server;

std::size_t count(std::string_view text, std::string_view part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string_view::npos; at = text.find(part, at + 1))
        ++n;
    return n;
}

std::optional<std::int64_t> next_of(const std::string& json) {
    static const std::regex next(R"("next":(\d+|null)\}$)");
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(json, m, next), json);
    return m[1] == "null" ? std::nullopt : std::optional<std::int64_t>(std::stoll(m[1]));
}

std::vector<std::string> last_names(const std::string& json) {
    static const std::regex name(R"re("last_name":"([^"]*)")re");
    std::vector<std::string> names;
    for (auto it = std::sregex_iterator(json.begin(), json.end(), name);
         it != std::sregex_iterator(); ++it)
        names.push_back((*it)[1]);
    return names;
}

std::int64_t add_patient(cloudmysql::connection& conn, const std::string& first,
                         const std::string& last, std::optional<std::string> contact) {
    using namespace std::chrono;
    return static_cast<std::int64_t>(
        conn.execute("INSERT INTO patients (first_name, last_name, date_of_birth, gender, "
                     "contact_number) VALUES (?, ?, ?, ?, ?)",
                     first, last, year_month_day(1980y, March, 14d), "female", contact)
            .last_insert_id());
}

} // namespace

TEST_CASE("clinic_server: pages, JSON, metrics, and a database that stops and comes back") {
    cloudmysql::test::own_sandbox sandbox("CLOUDMYSQL_CLINIC_SANDBOX_DIR");
    const std::string url = sandbox.url();
    const auto options = cloudmysql::connect_options::from_url(url);
    cloudmysql::migrator(options, cloudmysql::clinic::migrations()).up();

    web_server server(url, {"--threads", "2", "--pool-size", "2"});
    const auto port = server.port();
    const auto get = [&](const std::string& target) { return request(port, target); };

    // Empty: the page says how to get data.
    {
        const auto page = get("/");
        CHECK(page.status == 200);
        CHECK(page.content_type == "text/html; charset=utf-8");
        CHECK_MESSAGE(contains(page.body, "no patients yet: load some with clinic_load"),
                      page.body);
        const auto api = get("/api/patients");
        CHECK(api.status == 200);
        CHECK(api.content_type == "application/json");
        CHECK(api.body == R"({"patients":[],"next":null})");
    }

    // 30 patients: one whose name and contact need escaping, with two records.
    cloudmysql::connection conn(options);
    const auto ann = add_patient(conn, "Ann", "O'Hara & <Lee>", R"(555 "0101")");
    {
        using namespace std::chrono;
        conn.execute("INSERT INTO medical_records (patient_id, diagnosis, treatment, "
                     "admission_date, discharge_date) VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)",
                     ann, "Fractured <wrist>", "Cast, 6 weeks", year_month_day(2024y, January, 2d),
                     year_month_day(2024y, January, 5d), ann, "Flu", "Rest",
                     year_month_day(2025y, March, 1d), std::nullopt);
    }
    add_patient(conn, "Bob", "Smith", std::nullopt);
    add_patient(conn, "Carla", "Smythe", "555-0199");
    for (int i = 1; i <= 27; ++i)
        add_patient(conn, fmt::format("P{}", i), fmt::format("Jones{:02}", i), std::nullopt);

    {
        const auto page = get("/");
        REQUIRE(page.status == 200);
        CHECK(count(page.body, "<tr><td>") == 25);
        CHECK(contains(page.body, "O&#39;Hara &amp; &lt;Lee&gt;, Ann"));
        CHECK(contains(page.body, "555 &quot;0101&quot;"));
        CHECK_FALSE(contains(page.body, "<Lee>"));

        const auto first = get("/api/patients");
        REQUIRE(first.status == 200);
        CHECK(count(first.body, R"("first_name":)") == 25);
        CHECK(contains(first.body, R"("last_name":"O'Hara & <Lee>")"));
        CHECK(contains(first.body, R"("contact_number":"555 \"0101\"")"));
        const auto next = next_of(first.body);
        REQUIRE(next.has_value());
        CHECK(contains(page.body, fmt::format(R"(href="/?after={}")", *next)));
        const auto second = get(fmt::format("/api/patients?after={}", *next));
        CHECK(count(second.body, R"("first_name":)") == 5);
        CHECK(next_of(second.body) == std::nullopt);
        CHECK(count(get(fmt::format("/?after={}", *next)).body, "<tr><td>") == 5);
        CHECK(get("/api/patients?after=x").status == 400);
    }
    {
        // Search by last-name prefix, case-insensitive, by name; pages go on by name.
        const auto page = get("/?q=sm");
        REQUIRE(page.status == 200);
        CHECK(contains(page.body, "Smith, Bob"));
        CHECK(contains(page.body, "Smythe, Carla"));
        CHECK_FALSE(contains(page.body, "Jones"));
        CHECK(contains(get("/?q=nobody").body, "last name starts with &ldquo;nobody&rdquo;"));
        const auto ohara = get("/api/patients?q=o%27h");
        CHECK(last_names(ohara.body) == std::vector<std::string>{"O'Hara & <Lee>"});
        CHECK(last_names(get("/api/patients?q=%25").body).empty()); // a literal %, no wildcard

        std::vector<std::string> names;
        std::optional<std::int64_t> after = 0;
        for (int pages = 0; after && pages < 10; ++pages) {
            const auto r = get(fmt::format("/api/patients?q=JONES&after={}", *after));
            REQUIRE(r.status == 200);
            const auto some = last_names(r.body);
            names.insert(names.end(), some.begin(), some.end());
            after = next_of(r.body);
        }
        CHECK(names.size() == 27);
        CHECK(std::is_sorted(names.begin(), names.end()));
        CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
    }
    {
        const auto page = get(fmt::format("/patients/{}", ann));
        REQUIRE(page.status == 200);
        CHECK(contains(page.body, "Fractured &lt;wrist&gt;"));
        CHECK(contains(page.body, "still admitted"));
        const auto api = get(fmt::format("/api/patients/{}", ann));
        REQUIRE(api.status == 200);
        CHECK(contains(api.body, R"("diagnosis":"Fractured <wrist>")"));
        CHECK(contains(api.body, R"("admission_date":"2024-01-02","discharge_date":"2024-01-05")"));
        CHECK(contains(api.body, R"("discharge_date":null)"));

        CHECK(get("/patients/999999").status == 404);
        CHECK(get("/patients/abc").status == 404);
        const auto missing = get("/api/patients/999999");
        CHECK(missing.status == 404);
        CHECK(missing.body == R"({"error":"no patient with id 999999"})");
        CHECK(get("/nothing/here").status == 404);
        CHECK(request(port, "/", http::verb::post).status == 405);
        CHECK(request(port, "/api/patients", http::verb::delete_).status == 405);
    }
    {
        // 16 clients at once on a pool of 2: requests wait for a connection, none fails.
        std::atomic<int> ok{0};
        std::mutex failures_mutex;
        std::vector<std::string> failures;
        std::vector<std::thread> clients;
        for (int c = 0; c < 16; ++c)
            clients.emplace_back([&] {
                for (int i = 0; i < 5; ++i) {
                    try {
                        const auto r = request(port, "/api/patients?q=jones");
                        if (r.status == 200)
                            ++ok;
                        else
                            throw std::runtime_error(fmt::format("{}: {}", r.status, r.body));
                    } catch (const std::exception& e) {
                        std::lock_guard lock(failures_mutex);
                        failures.emplace_back(e.what());
                    }
                }
            });
        for (auto& t : clients)
            t.join();
        CHECK_MESSAGE(failures.empty(), failures.size(),
                      " failed; first: ", failures.empty() ? "" : failures.front());
        CHECK(ok == 80);

        const auto metrics = get("/metrics");
        CHECK(metrics.status == 200);
        CHECK(metrics.content_type.starts_with("text/plain; version=0.0.4"));
        CHECK(contains(metrics.body, "db_client_connection_count"));
        CHECK(contains(metrics.body, R"(db_client_connection_max{pool_name="clinic_server"} 2)"));
        const auto health = get("/healthz");
        CHECK(health.status == 200);
        CHECK_MESSAGE(health.body.starts_with("ok: database answers ("), health.body);
    }

    // The database stops: every data route answers 503 with the reason, the rest still works.
    sandbox.stop_server();
    {
        const auto health = request_until(port, "/healthz", 503);
        REQUIRE(health.status == 503);
        CHECK_MESSAGE(health.body.starts_with("database unavailable: "), health.body);
        CHECK(health.body.size() > 40);
        const auto page = get("/");
        CHECK(page.status == 503);
        CHECK(page.content_type == "text/html; charset=utf-8");
        CHECK_MESSAGE(contains(page.body, R"(<p class="error">database unavailable: )"), page.body);
        const auto api = get(fmt::format("/api/patients/{}", ann));
        CHECK(api.status == 503);
        CHECK_MESSAGE(api.body.starts_with(R"({"error":"database unavailable: )"), api.body);
        CHECK(get("/metrics").status == 200);
        CHECK(server.running());
    }

    // It comes back: the same web server serves again, by itself.
    sandbox.restart_server();
    {
        const auto health = request_until(port, "/healthz", 200);
        CHECK_MESSAGE(health.status == 200, health.body);
        const auto page = request_until(port, "/", 200);
        CHECK(page.status == 200);
        CHECK(contains(page.body, "Smith, Bob"));
        CHECK(get(fmt::format("/api/patients/{}", ann)).status == 200);
    }

    const auto code = server.stop(SIGTERM);
    REQUIRE_MESSAGE(code.has_value(), "clinic_server did not exit within 30 s of SIGTERM");
    CHECK(*code == 0);
}

namespace {

// Sessions of `user` other than `conn`'s own: what clinic_server holds open.
std::int64_t other_sessions(cloudmysql::connection& conn, const std::string& user) {
    return conn
        .execute("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND "
                 "ID <> CONNECTION_ID()",
                 user)[0]
        .get<std::int64_t>("n");
}

// Polls until `other_sessions` is `wanted` (up to 10 s); the last count.
std::int64_t sessions_settle_at(cloudmysql::connection& conn, const std::string& user,
                                std::int64_t wanted) {
    std::int64_t n = -1;
    for (int i = 0; i < 100; ++i) {
        n = other_sessions(conn, user);
        if (n == wanted)
            break;
        std::this_thread::sleep_for(100ms);
    }
    return n;
}

} // namespace

TEST_CASE("clinic_server --connect-per-request 1: the same pages, no session kept between "
          "requests") {
    cloudmysql::test::own_sandbox sandbox("CLOUDMYSQL_CLINIC_SANDBOX_DIR");
    const std::string url = sandbox.url();
    const auto options = cloudmysql::connect_options::from_url(url);
    cloudmysql::migrator(options, cloudmysql::clinic::migrations()).up();
    cloudmysql::connection conn(options);
    const auto bob = add_patient(conn, "Bob", "Smith", "555-0100");
    const std::string page = fmt::format("/patients/{}", bob);

    std::string pooled_body;
    {
        // The pool keeps the connection it opened for the page.
        web_server pooled(url, {"--threads", "2", "--pool-size", "2"});
        const auto r = request(pooled.port(), page);
        REQUIRE(r.status == 200);
        pooled_body = r.body;
        CHECK(other_sessions(conn, options.user) >= 1);
        CHECK(pooled.stop(SIGTERM) == 0);
    }
    REQUIRE(sessions_settle_at(conn, options.user, 0) == 0);

    web_server per_request(url,
                           {"--threads", "2", "--pool-size", "2", "--connect-per-request", "1"});
    for (int i = 0; i < 3; ++i) {
        const auto r = request(per_request.port(), page);
        REQUIRE(r.status == 200);
        CHECK(r.body == pooled_body);
        CHECK(contains(r.body, "Smith, Bob"));
    }
    CHECK(request(per_request.port(), "/patients/999999").status == 404);
    // Each request closed its session: none is left once the answers are in.
    CHECK(sessions_settle_at(conn, options.user, 0) == 0);
    CHECK(per_request.stop(SIGTERM) == 0);
}
