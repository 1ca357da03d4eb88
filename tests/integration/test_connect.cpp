// Connecting to a real MariaDB: TLS modes, verification failures and refused logins.
#include "tcp_forwarder.hpp"
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <tuple>

using namespace cloudmysql;
using cloudmysql::test::contains;
using cloudmysql::test::plain_server_options;
using cloudmysql::test::sandbox_dir;
using cloudmysql::test::server_options;
using cloudmysql::test::tcp_forwarder;
using cloudmysql::test::try_connect;

TEST_CASE("every TLS mode that the server accepts gives the protection it names") {
    const connect_options base = server_options();

    for (auto mode : {tls_mode::preferred, tls_mode::required, tls_mode::verify_ca,
                      tls_mode::verify_identity}) {
        CAPTURE(to_string(mode));
        connect_options opts = base;
        opts.tls_mode = mode;
        connection conn(opts);
        CHECK(conn.is_open());
        CHECK_FALSE(conn.tls_cipher().empty());
        CHECK(conn.tls_version().rfind("TLSv1.", 0) == 0);
        // The server agrees that this session is encrypted.
        const auto r = conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
        REQUIRE(r.size() == 1);
        CHECK(r[0].get<std::string>(1) == conn.tls_cipher());
    }
}

TEST_CASE("the connection reports what it is connected to") {
    connection conn(server_options());
    CHECK(conn.flavor() == server_flavor::mariadb);
    CHECK(contains(conn.server_version(), "MariaDB"));
    const auto id = conn.query("SELECT CONNECTION_ID()")[0].get<std::uint64_t>(0);
    CHECK(conn.connection_id() == id);
    conn.ping();
    conn.close();
    CHECK_FALSE(conn.is_open());
    CHECK(conn.server_version().empty());
    CHECK_THROWS_AS(conn.ping(), database_error);
}

TEST_CASE("a client with TLS disabled is refused by a server that requires TLS") {
    connect_options opts = server_options();
    opts.tls_mode = tls_mode::disabled;
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(ec.value() == 1045);
    CHECK(diag.error_class() == error_class::auth);
    CHECK(contains(diag.server_message(), "Access denied"));
    CHECK(contains(diag.client_message(), "require_secure_transport"));
    CHECK(contains(diag.client_message(), "ssl-mode=REQUIRED"));
}

TEST_CASE("verify_identity refuses a certificate that does not name the host") {
    if (sandbox_dir().empty())
        return; // needs the sandbox's certificate, which names only localhost and 127.0.0.1
    connect_options opts = server_options();
    // 127.0.0.2 is loopback too, but the certificate does not name it.
    tcp_forwarder relay("127.0.0.2", opts.host, opts.port, tcp_forwarder::mode::forward);
    opts.host = "127.0.0.2";
    opts.port = relay.port();

    opts.tls_mode = tls_mode::verify_identity;
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(ec.value() == 2026);
    CHECK(diag.error_class() == error_class::tls);
    CHECK(contains(diag.client_message(), "does not name the host"));
    CHECK(contains(diag.client_message(), "VERIFY_CA"));

    // The chain is fine: verify_ca (what Cloud SQL needs) accepts the same certificate.
    opts.tls_mode = tls_mode::verify_ca;
    connection conn(opts);
    CHECK_FALSE(conn.tls_cipher().empty());
}

TEST_CASE("verify_ca refuses a certificate signed by another CA") {
    if (sandbox_dir().empty())
        return;
    connect_options opts = server_options();
    opts.ssl_ca = sandbox_dir() + "/tls/other-ca.pem";
    REQUIRE(std::filesystem::exists(opts.ssl_ca));
    for (auto mode : {tls_mode::verify_ca, tls_mode::verify_identity}) {
        CAPTURE(to_string(mode));
        opts.tls_mode = mode;
        const auto [ec, diag] = try_connect(opts);
        REQUIRE(ec);
        CHECK(ec.value() == 2026);
        CHECK(diag.error_class() == error_class::tls);
        CHECK(contains(diag.client_message(), "does not chain to a trusted root"));
    }
}

TEST_CASE("required TLS never falls back to plaintext") {
    const connect_options plain = plain_server_options();

    // The server without TLS works for a client that does not insist...
    connect_options opts = plain;
    opts.tls_mode = tls_mode::preferred;
    {
        connection conn(opts);
        CHECK(conn.tls_cipher().empty());
        CHECK(conn.tls_version().empty());
    }
    // ...and every mode that requires TLS refuses it.
    for (auto mode : {tls_mode::required, tls_mode::verify_ca, tls_mode::verify_identity}) {
        CAPTURE(to_string(mode));
        opts.tls_mode = mode;
        const auto [ec, diag] = try_connect(opts);
        REQUIRE(ec);
        CHECK(diag.error_class() == error_class::tls);
        CHECK(contains(diag.client_message(), "TLS"));
    }
}

TEST_CASE("a wrong password is classed as auth and says what to check") {
    connect_options opts = server_options();
    opts.password = "not-the-password";
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(ec.value() == 1045);
    CHECK(ec.category() == mysql_category());
    CHECK(diag.sqlstate() == "28000");
    CHECK(diag.error_class() == error_class::auth);
    CHECK(contains(diag.client_message(), "check the user name and password"));
    // The throwing form carries the same.
    try {
        connection conn(opts);
        FAIL("connected with a wrong password");
    } catch (const database_error& e) {
        CHECK(e.get_error_code() == ec);
        CHECK(e.error_class() == error_class::auth);
        CHECK(contains(e.what(), "Access denied"));
        CHECK_FALSE(contains(e.what(), "not-the-password"));
    }
}

TEST_CASE("the credential provider supplies the password for each connect") {
    connect_options opts = server_options();
    const std::string real = opts.password;
    opts.password = "stale";
    int calls = 0;
    opts.credentials = [&] {
        ++calls;
        return real;
    };
    connection a(opts);
    connection b(opts);
    CHECK(calls == 2);

    opts.credentials = []() -> std::string { throw std::runtime_error("token endpoint down"); };
    const auto [ec, diag] = try_connect(opts);
    CHECK(ec == client_errc::credential_provider_failed);
    CHECK(contains(diag.client_message(), "token endpoint down"));
}

TEST_CASE("a closed port fails at once, as unreachable") {
    connect_options opts = server_options();
    // Find a port nothing listens on: bind one, note it, close it.
    std::uint16_t port = 0;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    opts.host = "127.0.0.1";
    opts.port = port;
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK((ec.value() == 2002 || ec.value() == 2003));
    CHECK(diag.error_class() == error_class::unreachable);
    CHECK(contains(diag.client_message(), "check the host and port"));
}

TEST_CASE("a server that accepts but never answers fails at the connect timeout") {
    connect_options opts = server_options();
    tcp_forwarder dead_path("127.0.0.1", "127.0.0.1", 0, tcp_forwarder::mode::blackhole);
    opts.host = "127.0.0.1";
    opts.port = dead_path.port();
    opts.connect_timeout = std::chrono::seconds(1);
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(diag.error_class() == error_class::timeout);
    CHECK(contains(diag.client_message(), "connect-timeout=1s"));
}

TEST_CASE("every TCP connection has keepalive as its options say; a socket has none") {
    connect_options opts = server_options();
    {
        connection conn(opts);
        const auto k = conn.keepalive_in_effect();
        REQUIRE(k.has_value());
        CHECK(*k == tcp_keepalive{}); // on by default: 30 s idle, 5 s interval, 3 probes
        CHECK(k->enabled);
    }
    opts.keepalive = {true, std::chrono::seconds(7), std::chrono::seconds(2), 5};
    {
        connection conn(opts);
        CHECK(conn.keepalive_in_effect() == opts.keepalive);
    }
    opts.keepalive.enabled = false;
    {
        connection conn(opts);
        const auto k = conn.keepalive_in_effect();
        REQUIRE(k.has_value());
        CHECK_FALSE(k->enabled);
    }
    if (!sandbox_dir().empty()) {
        connect_options local = server_options();
        local.unix_socket = sandbox_dir() + "/mysqld.sock";
        local.host.clear();
        connection conn(local);
        CHECK_FALSE(conn.keepalive_in_effect().has_value());
        CHECK(conn.query("SELECT 1").size() == 1);
    }
    CHECK_FALSE(connection().keepalive_in_effect().has_value());
}

TEST_CASE("a token is never sent over plain TCP") {
    const connect_options plain = plain_server_options();
    int calls = 0;
    connect_options opts = plain;
    opts.credentials = credential_provider("cloudsql-iam", [&] {
        ++calls;
        return plain.password;
    });
    // Modes that could send it unprotected are refused before anything happens.
    for (auto mode : {tls_mode::disabled, tls_mode::preferred, tls_mode::required}) {
        CAPTURE(to_string(mode));
        opts.tls_mode = mode;
        connection conn;
        error_code ec;
        diagnostics diag;
        try {
            conn.connect(opts, ec, diag);
            FAIL("connected with a token and ssl-mode=", to_string(mode));
        } catch (const std::invalid_argument& e) {
            CHECK(contains(e.what(), "credential provider 'cloudsql-iam'"));
            CHECK(contains(e.what(), "VERIFY_CA or VERIFY_IDENTITY"));
        }
    }
    CHECK(calls == 0);
    // Verifying modes against a server without TLS stop before the login packet: libmariadb
    // does for VERIFY_IDENTITY, the library asks the server's greeting first for VERIFY_CA.
    opts.tls_mode = tls_mode::verify_identity;
    auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(diag.error_class() == error_class::tls);
    CHECK(contains(diag.client_message(), "does not support"));

    calls = 0;
    opts.tls_mode = tls_mode::verify_ca;
    std::tie(ec, diag) = try_connect(opts);
    CHECK(ec == client_errc::tls_not_negotiated);
    CHECK(diag.error_class() == error_class::tls);
    CHECK(contains(diag.client_message(), "the server offers no TLS, so the credential provider "
                                          "'cloudsql-iam' was not asked and no token was sent"));
    CHECK(calls == 0);

    // Against a server with TLS the same options log in.
    opts = server_options();
    opts.tls_mode = tls_mode::verify_ca;
    const std::string password = opts.password;
    opts.password.clear();
    opts.credentials = credential_provider("cloudsql-iam", [&] {
        ++calls;
        return password;
    });
    connection conn(opts);
    CHECK_FALSE(conn.tls_cipher().empty());
    CHECK(calls == 1);
}

TEST_CASE("a refused token names its provider, and the provider is told") {
    connect_options opts = server_options();
    int fetched = 0;
    int rejected = 0;
    opts.credentials = credential_provider(
        "azure-entra",
        [&] {
            ++fetched;
            return std::string("expired-token");
        },
        [&] { ++rejected; });
    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(diag.error_class() == error_class::auth);
    CHECK(contains(diag.client_message(), "credential provider 'azure-entra'"));
    CHECK_FALSE(contains(diag.client_message(), "expired-token"));
    CHECK(fetched == 1);
    CHECK(rejected == 1);

    opts.credentials = credential_provider("empty", [] { return std::string(); });
    const auto [ec2, diag2] = try_connect(opts);
    CHECK(ec2 == client_errc::credential_provider_failed);
    CHECK(contains(diag2.client_message(),
                   "the credential provider 'empty' failed: it returned an empty password"));
}
