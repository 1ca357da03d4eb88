// examples/clinic_server under faults: its command line (both option forms, --help, usage errors
// that never show a value), the database at start (a wrong password, a certificate that does
// not verify, no such database: exit 2; down: 503, then 200 by itself), descriptor exhaustion
// (RLIMIT_NOFILE 128 and 200 half-sent requests), the connection cap, slow clients (header,
// body and idle deadlines) and malformed requests (400, 413, 431).
//
// clinic_server runs as a child process against MariaDB servers of the test's own (one that
// stays up, shared by the tests, and one that the database test stops). No assertion depends
// on timing; waits are bounded.
#include "clinic_server_child.hpp"
#include "own_sandbox.hpp"
#include "test_server.hpp"

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/migrator.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using cloudmysql::test::contains;
using cloudmysql::test::raw_client;
using cloudmysql::test::request;
using cloudmysql::test::request_until;
using cloudmysql::test::run_clinic_server;
using cloudmysql::test::web_server;

// A server with the clinic schema for the tests that keep it up, started once and stopped
// when the tests end.
const std::string& clinic_url() {
    static const auto sandbox = [] {
        auto s =
            std::make_unique<cloudmysql::test::own_sandbox>("CLOUDMYSQL_CLINIC_FAULTS_SANDBOX_DIR");
        cloudmysql::migrator(s->options(), cloudmysql::clinic::migrations()).up();
        return s;
    }();
    static const std::string url = sandbox->url();
    return url;
}

// `url` with its password replaced by `password`.
std::string with_password(const std::string& url, const std::string& password) {
    const auto colon = url.find(':', url.find("//") + 2);
    const auto at = url.rfind('@');
    return url.substr(0, colon + 1) + password + url.substr(at);
}

// `url` with its query parameter `name` set to `value` (replaced when present).
std::string with_parameter(const std::string& url, const std::string& name,
                           const std::string& value) {
    const auto at = url.find(name + "=");
    if (at == std::string::npos)
        return url + (contains(url, "?") ? "&" : "?") + name + "=" + value;
    const auto end = url.find('&', at);
    return url.substr(0, at) + name + "=" + value +
           (end == std::string::npos ? "" : url.substr(end));
}

// The status line's code of a raw response ("HTTP/1.1 400 Bad Request..." -> 400), 0 if none.
unsigned status_of(std::string_view response) {
    if (!response.starts_with("HTTP/1.1 ") || response.size() < 12)
        return 0;
    return static_cast<unsigned>(std::stoul(std::string(response.substr(9, 3))));
}

std::string body_of(std::string_view response) {
    const auto end = response.find("\r\n\r\n");
    return end == std::string_view::npos ? "" : std::string(response.substr(end + 4));
}

// This process's own descriptor limit, raised for the clients a test opens.
void allow_descriptors(rlim_t wanted) {
    rlimit rl{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < wanted && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= wanted)) {
        rl.rlim_cur = wanted;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    }
}

} // namespace

TEST_CASE("clinic_server command line: --opt X and --opt=X, --help, usage errors that name the "
          "option and never show its value") {
    const auto help = run_clinic_server(std::nullopt, {"--help"});
    CHECK(help.code == 0);
    CHECK(contains(help.out, "--max-connections"));
    CHECK(contains(help.out, "--header-timeout"));

    const std::string secret = "S3cr3t-Pa55w0rd";
    struct bad_usage {
        std::vector<std::string> args;
        std::string says;
    };
    const std::vector<bad_usage> cases{
        {{"--url=mysql://app:" + secret + "@db.example.com/clinic"}, "unknown option --url"},
        {{"--url", "mysql://app:" + secret + "@db.example.com/clinic"}, "unknown option --url"},
        {{secret}, "unexpected argument: the 1st one that is not an option"},
        {{"--port=" + secret}, "--port needs a whole number from 0 to 65535"},
        {{"--pool-size", secret}, "--pool-size needs a whole number"},
        {{"--threads=0"}, "--threads needs a whole number from 1 to 256"},
        {{"--header-timeout=" + secret}, "--header-timeout needs seconds"},
        {{"--max-connections", "0"}, "--max-connections needs a whole number"},
        {{"--threads"}, "--threads needs a value"},
        {{"--port", "1", secret}, "unexpected argument: the 1st one that is not an option"},
    };
    for (const auto& c : cases) {
        const auto r = run_clinic_server(std::nullopt, c.args);
        INFO("clinic_server ", fmt::format("{}", fmt::join(c.args, " ")), " printed: ", r.err);
        CHECK(r.code == 2);
        CHECK(contains(r.err, c.says));
        CHECK(contains(r.err, "clinic_server --help for more"));
        CHECK_FALSE(contains(r.err, secret));
        CHECK_FALSE(contains(r.out, secret));
    }

    // Both forms work: the values reach the server (its port and its cap).
    web_server equals(clinic_url(), {"--threads=2", "--pool-size", "2", "--max-connections=1"},
                      std::nullopt, true);
    {
        raw_client holder(equals.port()); // the one connection allowed
        const auto busy = request(equals.port(), "/healthz");
        CHECK(busy.status == 503);
        CHECK(contains(busy.body, "limit of 1 connections"));
    }
    const auto health = request_until(equals.port(), "/healthz", 200);
    CHECK_MESSAGE(health.status == 200, health.body);
    CHECK(equals.stop(SIGTERM) == 0);
}

TEST_CASE("clinic_server with the database down at start: configuration errors stop it (exit "
          "2), an unreachable database is served as 503 until it answers") {
    cloudmysql::test::own_sandbox sandbox("CLOUDMYSQL_CLINIC_DOWN_SANDBOX_DIR");
    const std::string url = sandbox.url();
    cloudmysql::migrator(sandbox.options(), cloudmysql::clinic::migrations()).up();
    const std::string real_password = sandbox.options().password;

    {
        // A wrong password: the library's message, no byte of either password.
        const std::string wrong = "Wr0ng-P4ssw0rd-7d3f";
        const auto r = run_clinic_server(with_password(url, wrong), {"--port", "0"});
        INFO("stderr: ", r.err);
        CHECK(r.code == 2);
        CHECK(contains(r.err, "Access denied"));
        CHECK(contains(r.err, "check the user name and password"));
        CHECK_FALSE(contains(r.err, wrong));
        CHECK_FALSE(contains(r.err, real_password));
        CHECK_FALSE(contains(r.out, "listening"));
    }
    {
        // A CA that did not sign the server's certificate.
        const auto r = run_clinic_server(
            with_parameter(url, "ssl-ca", sandbox.dir() + "/tls/other-ca.pem"), {"--port", "0"});
        INFO("stderr: ", r.err);
        CHECK(r.code == 2);
        CHECK(contains(r.err, "certificate"));
        CHECK_FALSE(contains(r.err, real_password));
    }
    {
        // No such database.
        const auto slash = url.find('/', url.find('@'));
        const auto query = url.find('?', slash);
        const auto r = run_clinic_server(
            url.substr(0, slash + 1) + "no_such_database" + url.substr(query), {"--port", "0"});
        INFO("stderr: ", r.err);
        CHECK(r.code == 2);
        CHECK(contains(r.err, "no_such_database"));
    }

    // Down at start: it serves 503 with the reason, then 200 once the database is back.
    sandbox.stop_server();
    web_server server(url, {"--threads", "2", "--pool-size", "2"});
    CHECK(contains(server.errors(), "the database is unavailable at start"));
    const auto down = request(server.port(), "/healthz");
    CHECK(down.status == 503);
    CHECK_MESSAGE(down.body.starts_with("database unavailable: "), down.body);
    CHECK(down.retry_after == "5");
    CHECK(request(server.port(), "/api/patients").status == 503);

    sandbox.restart_server();
    const auto up = request_until(server.port(), "/healthz", 200);
    CHECK_MESSAGE(up.status == 200, up.body);
    CHECK(request(server.port(), "/api/patients").status == 200);
    CHECK(server.stop(SIGTERM) == 0);
}

TEST_CASE("clinic_server out of descriptors: RLIMIT_NOFILE 128 and 200 half-sent requests") {
    allow_descriptors(1024);
    web_server server(clinic_url(), {"--threads", "2", "--pool-size", "2"}, rlim_t{128});
    const auto port = server.port();
    CHECK(contains(server.errors(), "--max-connections lowered from 1000 to"));

    // The storm, first thing after the start (as in the attack that found it): each client
    // sends half a request and waits.
    std::vector<raw_client> storm;
    for (int i = 0; i < 200; ++i) {
        storm.emplace_back(port);
        storm.back().send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    }
    // Some give up while the server is at its limit (the moment the sanitizers once reported).
    storm.erase(storm.begin(), storm.begin() + 50);
    // A client after them gets an answer at once: 503 at the cap (it cannot be 200 while the
    // connections are taken; it must not wait in the backlog).
    cloudmysql::test::reply during;
    try {
        during = request(port, "/healthz");
    } catch (const std::exception& e) {
        const std::string failure = std::string("no answer during the storm: ") + e.what() +
                                    "; clinic_server " + (server.running() ? "runs" : "is gone") +
                                    "; it wrote: " + server.errors();
        FAIL_CHECK(failure);
    }
    CHECK_MESSAGE((during.status == 200 || during.status == 503), during.body);
    if (during.status == 503)
        CHECK(during.retry_after == "1");

    // The clients beyond the cap were told so, before the one above was answered; and the cap
    // kept the process clear of its limit (accepting never failed).
    int turned_away = 0;
    for (auto& c : storm) {
        const std::string got = c.available();
        if (got.empty())
            continue; // held: within the cap
        CHECK_MESSAGE(status_of(got) == 503, got);
        CHECK_MESSAGE(contains(got, "(--max-connections)"), got);
        ++turned_away;
    }
    CHECK(turned_away >= 200 - 128 - 50); // the first 50 may have made room for later ones
    CHECK_FALSE(contains(server.errors(), "accepting a connection failed"));

    // The storm passes: the server serves as before.
    storm.clear();
    const auto after = request_until(port, "/healthz", 200);
    CHECK_MESSAGE(after.status == 200, after.body);
    CHECK(request(port, "/api/patients").status == 200);
    REQUIRE(server.running());
    CHECK(server.stop(SIGTERM) == 0);
}

// UBSan's vptr check (the asan-ubsan preset) asks the kernel whether memory is readable with
// a pipe, and reports any object as having an "invalid vptr" when the process has no
// descriptor left for it. Here the process runs out on purpose, so the test needs a build
// without it; clinic_server keeps clear of the limit by itself otherwise (the test above).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitizer_needs_descriptors = true;
#else
constexpr bool sanitizer_needs_descriptors = false;
#endif

TEST_CASE("clinic_server out of descriptors for another reason (its limit lowered under it): "
          "waiting clients are told 503, accepting backs off and recovers" *
          doctest::skip(sanitizer_needs_descriptors)) {
    allow_descriptors(1024);
    web_server server(clinic_url(),
                      {"--threads", "2", "--pool-size", "2", "--header-timeout", "600"});
    const auto port = server.port();
    REQUIRE(request_until(port, "/healthz", 200).status == 200);
    // As if other parts of the process had taken the descriptors its cap counted on.
    const rlimit lowered{64, 64};
    REQUIRE(::prlimit(server.pid(), RLIMIT_NOFILE, &lowered, nullptr) == 0);

    std::vector<raw_client> storm;
    for (int i = 0; i < 200; ++i) {
        storm.emplace_back(port);
        storm.back().send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    }
    // Not left waiting in the backlog: told at once, through the spare descriptor.
    const auto during = request(port, "/healthz");
    CHECK(during.status == 503);
    CHECK(during.retry_after == "1");
    CHECK_MESSAGE(contains(during.body, "out of file descriptors"), during.body);
    int turned_away = 0;
    for (auto& c : storm)
        if (const std::string got = c.available(); !got.empty()) {
            CHECK_MESSAGE(status_of(got) == 503, got);
            ++turned_away;
        }
    CHECK(turned_away >= 200 - 64);

    storm.clear();
    const auto after = request_until(port, "/healthz", 200);
    CHECK_MESSAGE(after.status == 200, after.body);
    const std::string log = server.errors();
    CHECK(contains(log, "accepting a connection failed: Too many open files; retrying with "
                        "back-off"));
    CHECK(contains(log, "accepting again after"));
    REQUIRE(server.running());
    CHECK(server.stop(SIGTERM) == 0);
}

TEST_CASE("clinic_server --max-connections: the next connection gets 503, the ones before are "
          "served") {
    web_server server(clinic_url(),
                      {"--threads", "2", "--pool-size", "2", "--max-connections", "3"});
    const auto port = server.port();

    // Nothing before them: a connection just closed may not be counted out yet.
    std::vector<raw_client> first;
    for (int i = 0; i < 3; ++i)
        first.emplace_back(port);
    raw_client fourth(port);
    fourth.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const auto turned = fourth.read_until_closed();
    CHECK(turned.closed);
    if (!turned.data.empty()) {
        CHECK_MESSAGE(status_of(turned.data) == 503, turned.data);
        CHECK(contains(turned.data, "\r\nRetry-After: 1\r\n"));
        CHECK(contains(body_of(turned.data), "limit of 3 connections"));
    }

    for (auto& c : first) {
        c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        const auto served = c.read_until_closed();
        CHECK_MESSAGE(status_of(served.data) == 200, served.data);
    }
    first.clear();
    CHECK(request_until(port, "/healthz", 200).status == 200);
    CHECK(server.stop(SIGTERM) == 0);
}

TEST_CASE("clinic_server deadlines: a slow header, a slow body and an idle connection are "
          "closed while other clients are served") {
    web_server server(clinic_url(), {"--threads", "2", "--pool-size", "2", "--header-timeout", "1",
                                     "--body-timeout", "1", "--idle-timeout", "600"});
    const auto port = server.port();
    REQUIRE(request_until(port, "/healthz", 200).status == 200);

    // Half a header, then nothing.
    raw_client half(port);
    half.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    // A header that never ends, one byte every 100 ms (slowloris): the deadline counts from
    // the first byte, however many follow. 600 bytes would take a minute.
    std::atomic<int> header_bytes{0};
    std::thread slow_header([&] {
        raw_client c(port);
        bool open = c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        while (open && header_bytes < 600) {
            std::this_thread::sleep_for(100ms);
            open = c.send("a");
            ++header_bytes;
        }
    });
    // A body that never ends.
    std::atomic<int> body_bytes{0};
    std::thread slow_body([&] {
        raw_client c(port);
        bool open =
            c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 600\r\n\r\n");
        while (open && body_bytes < 600) {
            std::this_thread::sleep_for(100ms);
            open = c.send("b");
            ++body_bytes;
        }
    });

    // Meanwhile the others are served.
    for (int i = 0; i < 3; ++i)
        CHECK(request(port, "/healthz").status == 200);

    const auto cut = half.read_until_closed();
    CHECK(cut.closed);
    CHECK(cut.data.empty());
    slow_header.join();
    slow_body.join();
    CHECK(header_bytes < 600);
    CHECK(body_bytes < 600);
    CHECK(server.stop(SIGTERM) == 0);

    // A kept-alive connection with no next request is closed after --idle-timeout.
    web_server idle_server(clinic_url(),
                           {"--threads", "2", "--pool-size", "2", "--idle-timeout", "1"});
    raw_client idle(idle_server.port());
    idle.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const auto answered = idle.read_until_closed();
    CHECK(answered.closed);
    CHECK_MESSAGE(status_of(answered.data) == 200, answered.data);
    CHECK_FALSE(contains(answered.data, "\r\nConnection: close\r\n"));
    CHECK(idle_server.stop(SIGTERM) == 0);
}

TEST_CASE("clinic_server and malformed requests: 400 with the reason, 431, 413, the connection "
          "closed, the input never echoed") {
    web_server server(clinic_url(), {"--threads", "2", "--pool-size", "2", "--max-body", "1000"});
    const auto port = server.port();
    REQUIRE(request_until(port, "/healthz", 200).status == 200);

    struct bad_request {
        std::string name;
        std::string bytes;
        unsigned status;
        std::string says;
    };
    const std::string big_chunk(1500, 'x');
    const std::vector<bad_request> cases{
        {"garbage", "\x01\x02\x03 hello\r\n\r\n", 400, "malformed request: "},
        {"script as method", "<script>alert(1)</script> / HTTP/1.1\r\n\r\n", 400,
         "malformed request: "},
        {"bad version", "GET / HTTP/x.y\r\nHost: a\r\n\r\n", 400, "malformed request: "},
        {"field without colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, "malformed request: "},
        {"bad content length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400,
         "malformed request: "},
        {"bad chunk", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
         "malformed request: "},
        {"header fields too large",
         "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(9000, 'h') + "\r\n\r\n", 431,
         "request header fields too large"},
        {"body too large", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n", 413,
         "request body too large: at most 1000 bytes"},
        {"chunked body too large",
         "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n" + big_chunk +
             "\r\n0\r\n\r\n",
         413, "request body too large"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        raw_client client(port);
        client.send(c.bytes);
        const auto got = client.read_until_closed();
        CHECK(got.closed);
        CHECK_MESSAGE(status_of(got.data) == c.status, got.data);
        CHECK(contains(got.data, "\r\nConnection: close\r\n"));
        CHECK_MESSAGE(contains(body_of(got.data), c.says), got.data);
        CHECK_FALSE(contains(got.data, "<script>"));
        CHECK_FALSE(contains(got.data, "hhhhhhhh"));
    }

    // A body within the limit is read and ignored: the request is served.
    raw_client small(port);
    small.send("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: "
               "5\r\n\r\nhello");
    CHECK(status_of(small.read_until_closed().data) == 200);
    CHECK(server.running());
    CHECK(server.stop(SIGTERM) == 0);
}
