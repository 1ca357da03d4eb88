// Credential providers against real servers: a connect waits for a token at most until its
// connect_timeout, a pool survives a token command that hangs, and under VERIFY_CA the session
// that carries a token refuses to go on without TLS (the certificate pin), within one deadline.
#include "tcp_forwarder.hpp"
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/credentials.hpp>
#include <cloudmysql/pool.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <unistd.h>

using namespace cloudmysql;
using namespace std::chrono_literals;
using cloudmysql::test::contains;
using cloudmysql::test::plain_server_options;
using cloudmysql::test::server_options;
using cloudmysql::test::tcp_forwarder;
using cloudmysql::test::try_connect;

namespace {

// A directory of the test's own, removed at the end, with the app user's password in a file
// that the token commands print.
struct scratch_dir {
    std::filesystem::path path;
    scratch_dir() {
        std::string name = (std::filesystem::temp_directory_path() / "cloudmysql-token-XXXXXX");
        REQUIRE(::mkdtemp(name.data()) != nullptr);
        path = name;
        std::ofstream(file("password")) << server_options().password << '\n';
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

int line_count(const std::string& path) {
    std::ifstream in(path);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The sandbox with TLS under VERIFY_IDENTITY (its certificate names 127.0.0.1), the password
// left out: it comes from a provider.
connect_options token_options() {
    connect_options opts = server_options();
    opts.tls_mode = tls_mode::verify_identity;
    opts.password.clear();
    return opts;
}

// A provider that returns a password the test sets, and counts how often it was asked.
struct counted_password {
    std::mutex mutex;
    std::string password;
    std::atomic<int> asked = 0;

    void set(std::string p) {
        const std::lock_guard lock(mutex);
        password = std::move(p);
    }
    credential_provider provider(std::string name) {
        return credential_provider(std::move(name), [this] {
            ++asked;
            const std::lock_guard lock(mutex);
            return password;
        });
    }
};

// The TLS sandbox reached through a forwarder (listening on `address`) under VERIFY_CA, with a
// counted provider. Pins are kept per host and port: each test that must start without one
// listens on a loopback address of its own, so that a port an earlier test used cannot bring
// its pin along.
connect_options verify_ca_through(const std::string& address, const tcp_forwarder& relay,
                                  counted_password& source, const std::string& name) {
    connect_options opts = server_options();
    opts.tls_mode = tls_mode::verify_ca;
    opts.host = address;
    opts.port = relay.port();
    source.set(opts.password);
    opts.password.clear();
    opts.credentials = source.provider(name);
    return opts;
}

} // namespace

TEST_CASE("a connect waits for a token at most until its connect_timeout; the token still comes "
          "for the next") {
    scratch_dir dir;
    connect_options opts = token_options();
    opts.connect_timeout = 1s;
    opts.credentials =
        command_token_provider("slow-cli", fmt::format("echo run >> {}; sleep 2; cat {}",
                                                       dir.file("runs"), dir.file("password")));

    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(ec == client_errc::credential_provider_failed);
    CHECK(diag.error_class() == error_class::timeout);
    const std::string& text = diag.client_message();
    CAPTURE(text);
    CHECK(contains(text, "the credential provider 'slow-cli' gave no token within "
                         "connect_timeout (1 s); its command has run for"));
    CHECK(contains(text, "goes on"));
    CHECK(contains(text, "a later connect uses its token once it arrives"));

    // Bounded: the command ends 2 s after it started; each attempt takes at most 1 s.
    bool connected = false;
    for (int attempt = 0; attempt < 30 && !connected; ++attempt)
        connected = !try_connect(opts).first;
    CHECK(connected);
    CHECK(line_count(dir.file("runs")) == 1); // the one command served both
}

TEST_CASE("a pool whose token command hangs fails each acquire in time with the provider's "
          "message, and works again once the command does") {
    scratch_dir dir;
    connect_options opts = token_options();
    command_token_options command;
    command.timeout = 3s;
    opts.credentials = command_token_provider(
        "hung-cli",
        fmt::format("if [ -e {} ]; then cat {}; else echo run >> {}; sleep 30; fi",
                    dir.file("signed-in"), dir.file("password"), dir.file("runs")),
        command);
    pool_options options;
    options.max_size = 4;
    options.connect_timeout = 1s;
    options.acquire_timeout = 2s;
    pool p(opts, options);

    // Four threads, two acquires each: every one returns, failed, naming the provider.
    std::mutex mutex;
    std::vector<std::string> failures;
    int successes = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2; ++i) {
                error_code ec;
                diagnostics diag;
                auto conn = p.acquire(ec, diag);
                const std::lock_guard lock(mutex);
                if (ec)
                    failures.push_back(diag.client_message());
                else
                    ++successes;
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(successes == 0);
    REQUIRE(failures.size() == 8);
    // Each names the provider: its token did not come within connect_timeout, or (after 3 s)
    // its command was killed.
    int gave_no_token = 0;
    for (const auto& text : failures) {
        CAPTURE(text);
        CHECK(contains(text, "the credential provider 'hung-cli'"));
        if (contains(text, "'hung-cli' gave no token within connect_timeout (1 s)"))
            ++gave_no_token;
    }
    CHECK(gave_no_token > 0);
    // One command at a time for all those connects: the first, killed at 3 s, and at most one
    // after it within the acquires' 4 s.
    CHECK(line_count(dir.file("runs")) <= 2);

    // The user signs in: once the hung command is killed, the next one answers. The breaker
    // may fail acquires at once meanwhile, hence the pause between attempts.
    std::ofstream(dir.file("signed-in")) << "yes\n";
    bool served = false;
    for (int attempt = 0; attempt < 100 && !served; ++attempt) {
        error_code ec;
        diagnostics diag;
        auto conn = p.acquire(ec, diag);
        served = !ec && conn->query("SELECT 1").size() == 1;
        if (!served)
            std::this_thread::sleep_for(100ms);
    }
    REQUIRE(served);
    std::vector<pooled_connection> held;
    for (int i = 0; i < 4; ++i)
        held.push_back(p.acquire());
    for (auto& c : held)
        CHECK(c->query("SELECT 1").size() == 1);
}

TEST_CASE("under VERIFY_CA, a path that strips TLS from the session carrying the token gets no "
          "token") {
    // The certificate is read on one connection, which reaches the TLS server; the login
    // session goes to a server without TLS, whose app user has the token as its password: had
    // the token been sent, the login would succeed there.
    const connect_options plain = plain_server_options();
    tcp_forwarder relay("127.0.0.3", server_options().host, server_options().port,
                        tcp_forwarder::mode::forward);
    counted_password source;
    const connect_options opts = verify_ca_through("127.0.0.3", relay, source, "rotating-password");
    source.set(plain.password);
    relay.set_target_after(1, plain.host, plain.port);

    const auto [ec, diag] = try_connect(opts);
    CAPTURE(diag.client_message());
    CHECK(ec == client_errc::tls_not_negotiated);
    CHECK(diag.error_class() == error_class::tls);
    CHECK(contains(diag.client_message(),
                   "the server offers no TLS, so the token from the credential provider "
                   "'rotating-password' was not sent: enable TLS on the server"));
    CHECK(relay.accepted() == 2);
}

TEST_CASE("under VERIFY_CA, a server that stops offering TLS gets no token, with the pin or "
          "without") {
    const connect_options plain = plain_server_options();
    tcp_forwarder relay("127.0.0.4", server_options().host, server_options().port,
                        tcp_forwarder::mode::forward);
    counted_password source;
    const connect_options opts = verify_ca_through("127.0.0.4", relay, source, "rotating-password");
    {
        connection conn(opts); // reads and pins the certificate
        CHECK_FALSE(conn.tls_cipher().empty());
    }
    CHECK(source.asked == 1);

    relay.set_target(plain.host, plain.port);
    source.set(plain.password);
    auto [ec, diag] = try_connect(opts);
    CAPTURE(diag.client_message());
    CHECK(ec == client_errc::tls_not_negotiated);
    CHECK(contains(diag.client_message(), "the server offers no TLS, so the token from the "
                                          "credential provider 'rotating-password' was not "
                                          "sent"));
    CHECK(source.asked == 2); // asked, not sent: libmariadb stopped at the greeting

    // The pin went with the failure: the next connect reads the greeting first, and the
    // provider is not even asked.
    std::tie(ec, diag) = try_connect(opts);
    CHECK(ec == client_errc::tls_not_negotiated);
    CHECK(contains(diag.client_message(), "the server offers no TLS, so the credential provider "
                                          "'rotating-password' was not asked"));
    CHECK(source.asked == 2);
}

TEST_CASE("under VERIFY_CA, one connect_timeout covers the look at the certificate and the "
          "login") {
    // A path that accepts connections and never answers: the look at the certificate takes the
    // whole connect_timeout, and no second connection follows it.
    tcp_forwarder dead_path("127.0.0.5", "127.0.0.1", 0, tcp_forwarder::mode::blackhole);
    counted_password source;
    connect_options opts = verify_ca_through("127.0.0.5", dead_path, source, "rotating-password");
    opts.connect_timeout = 1s;
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CAPTURE(diag.client_message());
    CHECK(diag.error_class() == error_class::timeout);
    CHECK(contains(diag.client_message(), "connect-timeout=1s ran out before the login could "
                                          "start (reading the server's certificate took"));
    CHECK(dead_path.accepted() == 1);
    CHECK(source.asked == 0);
}

TEST_CASE("under VERIFY_CA, when the certificate cannot be read first, nothing is sent") {
    tcp_forwarder relay("127.0.0.6", server_options().host, server_options().port,
                        tcp_forwarder::mode::forward);
    counted_password source;
    const connect_options opts = verify_ca_through("127.0.0.6", relay, source, "rotating-password");
    relay.close_next(1); // the look at the certificate finds the connection closed

    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CAPTURE(diag.client_message());
    CHECK(diag.error_class() == error_class::tls);
    CHECK(contains(diag.client_message(), "the server's certificate could not be read before "
                                          "the login, so the credential provider "
                                          "'rotating-password' was not asked and nothing was "
                                          "sent"));
    CHECK(source.asked == 0);
    CHECK(relay.accepted() == 2);

    // The next connect reads it and logs in.
    CHECK_FALSE(try_connect(opts).first);
    CHECK(source.asked == 1);
}
