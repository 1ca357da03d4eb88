// TLS as Azure and Cloud SQL need it, against two throwaway servers of this program's own: one
// with an Azure-style certificate (names localhost and 127.0.0.1, so VERIFY_IDENTITY works),
// one with a Cloud-SQL-style certificate (CN=my-project:my-instance, names no host, so only
// VERIFY_CA works). Also the Cloud SQL Auth Proxy's socket path.
#include "own_sandbox.hpp"
#include "tcp_forwarder.hpp"

#include <cloudmysql/connection.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

using namespace cloudmysql;
using cloudmysql::test::contains;
using cloudmysql::test::own_sandbox;
using cloudmysql::test::tcp_forwarder;

namespace {

// Both servers start on first use and stop when the program ends.
own_sandbox& azure_server() {
    static own_sandbox server("CLOUDMYSQL_TLS_AZURE_SANDBOX_DIR", {"--cert-style", "azure"});
    return server;
}

own_sandbox& cloudsql_server() {
    static own_sandbox server("CLOUDMYSQL_TLS_CLOUDSQL_SANDBOX_DIR", {"--cert-style", "cloudsql"});
    return server;
}

enum class style { azure, cloudsql };

const char* name_of(style s) {
    return s == style::azure ? "azure" : "cloudsql";
}

own_sandbox& server_of(style s) {
    return s == style::azure ? azure_server() : cloudsql_server();
}

std::string tls_dir_of(style s) {
    const char* variable = s == style::azure ? "CLOUDMYSQL_TLS_AZURE_SANDBOX_DIR"
                                             : "CLOUDMYSQL_TLS_CLOUDSQL_SANDBOX_DIR";
    return std::string(std::getenv(variable)) + "/tls";
}

// The server's options with the given mode and CA file (in its tls/; none when empty).
connect_options options_for(style s, tls_mode mode, const std::string& ca_file) {
    connect_options opts = server_of(s).options();
    opts.tls_mode = mode;
    opts.ssl_ca.clear();
    if (!ca_file.empty()) {
        opts.ssl_ca = tls_dir_of(s) + "/" + ca_file;
        REQUIRE(std::filesystem::exists(opts.ssl_ca));
    }
    return opts;
}

std::pair<error_code, diagnostics> try_connect(const connect_options& opts) {
    connection conn;
    error_code ec;
    diagnostics diag;
    conn.connect(opts, ec, diag);
    CHECK(conn.is_open() == !ec);
    if (!ec) {
        CHECK_FALSE(conn.tls_cipher().empty());
    }
    return {ec, diag};
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The PEM blocks of a file, in order.
std::vector<std::string> pem_blocks(const std::string& text) {
    std::vector<std::string> blocks;
    const std::string end = "-----END CERTIFICATE-----";
    for (std::size_t at = text.find("-----BEGIN CERTIFICATE-----"); at != std::string::npos;
         at = text.find("-----BEGIN CERTIFICATE-----", at + 1)) {
        const std::size_t stop = text.find(end, at);
        REQUIRE(stop != std::string::npos);
        blocks.push_back(text.substr(at, stop + end.size() - at));
    }
    return blocks;
}

// What the name check says for a certificate that names no host.
void check_names_no_host(const error_code& ec, const diagnostics& diag) {
    REQUIRE(ec);
    CHECK(ec.value() == 2026);
    CHECK(diag.error_class() == error_class::tls);
    const std::string& text = diag.client_message();
    CHECK(contains(text, "this certificate names no host (subject CN=my-project:my-instance"));
    CHECK(contains(text, "Cloud SQL"));
    CHECK(contains(text, "need ssl-mode=VERIFY_CA"));
}

} // namespace

TEST_CASE("each ssl-mode against each certificate style passes or fails as the cloud needs") {
    struct expectation {
        style server;
        tls_mode mode;
        bool connects;
    };
    const std::vector<expectation> matrix = {
        {style::azure, tls_mode::disabled, false},
        {style::azure, tls_mode::required, true},
        {style::azure, tls_mode::verify_ca, true},
        {style::azure, tls_mode::verify_identity, true},
        {style::cloudsql, tls_mode::disabled, false},
        {style::cloudsql, tls_mode::required, true},
        {style::cloudsql, tls_mode::verify_ca, true},
        {style::cloudsql, tls_mode::verify_identity, false},
    };
    // The verify modes get the server's CA; DISABLED and REQUIRED get none (with a CA file,
    // REQUIRED checks the chain as VERIFY_CA does).
    const auto ca_for = [](tls_mode mode) { return mode >= tls_mode::verify_ca ? "ca.pem" : ""; };
    // Both servers refuse plaintext, as Azure (and Cloud SQL with SSL enforced) do: that is
    // why DISABLED fails below.
    for (style s : {style::azure, style::cloudsql}) {
        connection conn(options_for(s, tls_mode::verify_ca, "ca.pem"));
        CHECK(conn.query("SELECT @@require_secure_transport")[0].get<std::int64_t>(0) == 1);
    }
    for (const auto& e : matrix) {
        CAPTURE(name_of(e.server));
        CAPTURE(to_string(e.mode));
        const auto [ec, diag] = try_connect(options_for(e.server, e.mode, ca_for(e.mode)));
        CAPTURE(diag.client_message());
        CHECK(!ec == e.connects);
        if (e.connects)
            continue;
        if (e.mode == tls_mode::disabled) {
            CHECK(ec.value() == 1045);
            CHECK(contains(diag.client_message(), "require_secure_transport"));
            CHECK(contains(diag.client_message(), "use ssl-mode=REQUIRED or stronger"));
        } else {
            check_names_no_host(ec, diag);
        }
    }
}

TEST_CASE("verify_identity against a host the certificate does not name lists the names it "
          "holds") {
    connect_options opts = options_for(style::azure, tls_mode::verify_identity, "ca.pem");
    // 127.0.0.2 is loopback too, but the certificate names only localhost and 127.0.0.1.
    tcp_forwarder relay("127.0.0.2", opts.host, opts.port, tcp_forwarder::mode::forward);
    opts.host = "127.0.0.2";
    opts.port = relay.port();

    const auto [ec, diag] = try_connect(opts);
    REQUIRE(ec);
    CHECK(ec.value() == 2026);
    CHECK(diag.error_class() == error_class::tls);
    const std::string& text = diag.client_message();
    CAPTURE(text);
    CHECK(contains(text, "does not name the host you connected to (127.0.0.2)"));
    CHECK(contains(text, "it names localhost, 127.0.0.1"));
    CHECK(contains(text, "ssl-mode=VERIFY_CA"));
    CHECK_FALSE(contains(text, "names no host"));

    // The same server under a name the certificate holds connects.
    const connect_options direct = options_for(style::azure, tls_mode::verify_identity, "ca.pem");
    opts.host = "localhost";
    opts.port = direct.port;
    CHECK_FALSE(try_connect(opts).first);
}

TEST_CASE("a CA that did not sign the certificate fails with the ssl-ca hint") {
    for (style s : {style::azure, style::cloudsql}) {
        for (tls_mode mode : {tls_mode::verify_ca, tls_mode::verify_identity}) {
            CAPTURE(name_of(s));
            CAPTURE(to_string(mode));
            const connect_options opts = options_for(s, mode, "other-ca.pem");
            const auto [ec, diag] = try_connect(opts);
            REQUIRE(ec);
            CHECK(ec.value() == 2026);
            CHECK(diag.error_class() == error_class::tls);
            const std::string& text = diag.client_message();
            CAPTURE(text);
            CHECK(contains(text, "(its issuer: CN=cloudmysql sandbox CA)"));
            CHECK(contains(text, "does not chain to a trusted root in ssl-ca=" + opts.ssl_ca));
            CHECK(contains(text, "pass the server's CA with ssl-ca=FILE"));
            CHECK(contains(text, "DigiCert Global Root G2"));
            CHECK(contains(text, "Microsoft RSA Root CA 2017"));
            CHECK(contains(text, "server-ca.pem"));
            // The chain is checked before any name: no word about host names.
            CHECK_FALSE(contains(text, "names no host"));
        }
    }
    // REQUIRED with a CA file checks the chain too (README: "unless ssl-ca is set"), and
    // gives the same hint; without one it checks nothing (see the matrix above).
    const auto [ec, diag] =
        try_connect(options_for(style::cloudsql, tls_mode::required, "other-ca.pem"));
    REQUIRE(ec);
    CHECK(contains(diag.client_message(), "does not chain to a trusted root"));
}

TEST_CASE("repeated verification failures fetch the certificate once, not once each") {
    // Each fetch is a session that never logs in: MySQL counts those against
    // max_connect_errors, so a pool retrying against a wrong CA must not double them.
    connection root(cloudsql_server().root_options());
    const auto connections = [&] {
        return root
            .query("SELECT CAST(VARIABLE_VALUE AS SIGNED) FROM information_schema.GLOBAL_STATUS "
                   "WHERE VARIABLE_NAME = 'CONNECTIONS'")[0]
            .get<std::int64_t>(0);
    };
    const connect_options opts = options_for(style::cloudsql, tls_mode::verify_identity, "ca.pem");
    const auto hint_of = [&] {
        const auto [ec, diag] = try_connect(opts);
        REQUIRE(ec);
        return diag.client_message();
    };
    const std::string first = hint_of(); // may fetch, if no earlier test case did
    const std::int64_t before = connections();
    for (int i = 0; i < 3; ++i)
        CHECK(hint_of() == first);      // the same hint, from the certificate kept
    CHECK(connections() - before == 3); // the three attempts, no fetch
    CHECK(contains(first, "names no host"));
}

TEST_CASE("under VERIFY_CA, a provider's connects read the certificate once, not once each") {
    // Before its first login with a token, a connect reads the server's certificate on a
    // session of its own (no login), and pins it: such a session counts in Aborted_connects,
    // and MySQL blocks a host after max_connect_errors of them.
    connection root(cloudsql_server().root_options());
    const auto status = [&](const char* name) {
        return root.query(fmt::format("SHOW GLOBAL STATUS LIKE '{}'", name))[0].get<std::string>(1);
    };
    const auto count = [&](const char* name) { return std::stoll(status(name)); };
    connect_options opts = options_for(style::cloudsql, tls_mode::verify_ca, "ca.pem");
    const std::string password = opts.password;
    opts.password.clear();
    int asked = 0;
    opts.credentials = credential_provider("cloudsql-rotating", [&] {
        ++asked;
        return password;
    });
    const std::int64_t connections_before = count("Connections");
    const std::int64_t aborted_before = count("Aborted_connects");
    constexpr int connects = 6;
    for (int i = 0; i < connects; ++i) {
        connection conn(opts);
        CHECK_FALSE(conn.tls_cipher().empty());
    }
    const std::int64_t aborted = count("Aborted_connects") - aborted_before;
    const std::int64_t sessions = count("Connections") - connections_before;
    CAPTURE(aborted);
    CAPTURE(sessions);
    CHECK(asked == connects);
    CHECK(aborted <= 1);             // the one look at the certificate, if no test made it yet
    CHECK(sessions <= connects + 1); // the logins, and that look
}

TEST_CASE("under VERIFY_CA, a renewed certificate is read again within the same connect") {
    // A forwarder first reaches the Azure-style server, then the Cloud-SQL-style one: to the
    // client, the server at that address renewed its certificate. A CA file with both CAs
    // makes VERIFY_CA accept either.
    const std::string bundle = tls_dir_of(style::cloudsql) + "/../both-cas.pem";
    {
        std::ofstream out(bundle);
        out << read_file(tls_dir_of(style::azure) + "/ca.pem")
            << read_file(tls_dir_of(style::cloudsql) + "/ca.pem");
    }
    const connect_options azure = options_for(style::azure, tls_mode::verify_ca, "ca.pem");
    const connect_options cloudsql = options_for(style::cloudsql, tls_mode::verify_ca, "ca.pem");
    tcp_forwarder relay("127.0.0.1", azure.host, azure.port, tcp_forwarder::mode::forward);
    connect_options opts = azure;
    opts.host = "127.0.0.1";
    opts.port = relay.port();
    opts.ssl_ca = bundle;
    opts.password.clear();
    std::string password = azure.password;
    int asked = 0;
    opts.credentials = credential_provider("rotating", [&] {
        ++asked;
        return password;
    });
    {
        connection conn(opts);
        CHECK(conn.query("SELECT @@port")[0].get<std::int64_t>(0) == azure.port);
    }
    CHECK(relay.accepted() == 2); // the look at the certificate, the login

    relay.set_target(cloudsql.host, cloudsql.port);
    password = cloudsql.password;
    {
        connection conn(opts);
        CHECK(conn.query("SELECT @@port")[0].get<std::int64_t>(0) == cloudsql.port);
    }
    // The session with the old pin, stopped before the login; a new look; the login.
    CHECK(relay.accepted() == 5);
    CHECK(asked == 2);
    std::filesystem::remove(bundle);
}

TEST_CASE("a CA file holding several roots, the right one not first, verifies") {
    for (style s : {style::azure, style::cloudsql}) {
        CAPTURE(name_of(s));
        const std::string dir = tls_dir_of(s);
        const auto bundle = pem_blocks(read_file(dir + "/bundle.pem"));
        const auto ca = pem_blocks(read_file(dir + "/ca.pem"));
        REQUIRE(ca.size() == 1);
        REQUIRE(bundle.size() == 3);
        CHECK(bundle[0] != ca[0]);
        CHECK(bundle[1] != ca[0]);
        CHECK(bundle[2] == ca[0]);
    }
    CHECK_FALSE(
        try_connect(options_for(style::azure, tls_mode::verify_identity, "bundle.pem")).first);
    CHECK_FALSE(try_connect(options_for(style::cloudsql, tls_mode::verify_ca, "bundle.pem")).first);
    // The bundle does not make a Cloud SQL certificate name a host.
    const auto [ec, diag] =
        try_connect(options_for(style::cloudsql, tls_mode::verify_identity, "bundle.pem"));
    check_names_no_host(ec, diag);
}

TEST_CASE("a restarted Cloud-SQL-style sandbox keeps its certificate") {
    own_sandbox& server = cloudsql_server();
    server.restart_server();
    CHECK_FALSE(try_connect(options_for(style::cloudsql, tls_mode::verify_ca, "ca.pem")).first);
    const auto [ec, diag] =
        try_connect(options_for(style::cloudsql, tls_mode::verify_identity, "ca.pem"));
    check_names_no_host(ec, diag);
}

TEST_CASE("the Cloud SQL Auth Proxy's socket path connects") {
    // The proxy serves /cloudsql/PROJECT:REGION:INSTANCE; a symlink of that shape stands in
    // for it, pointing at the server's own socket.
    const connect_options tcp = server_of(style::cloudsql).options();
    const char* sandbox_dir = std::getenv("CLOUDMYSQL_TLS_CLOUDSQL_SANDBOX_DIR");
    REQUIRE(sandbox_dir != nullptr);
    const std::string server_socket = std::string(sandbox_dir) + "/mysqld.sock";

    std::string root_template = "/tmp/cloudmysql-proxy-XXXXXX";
    REQUIRE(::mkdtemp(root_template.data()) != nullptr);
    struct remove_on_exit {
        std::filesystem::path path;
        ~remove_on_exit() {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }
    } cleanup{root_template};
    const std::filesystem::path socket_path =
        cleanup.path / "cloudsql" / "my-project:us-central1:my-instance";
    std::filesystem::create_directory(cleanup.path / "cloudsql");
    std::filesystem::create_symlink(server_socket, socket_path);

    const std::string url = fmt::format("mysql://{}:{}@/cloudmysql_test?socket={}", tcp.user,
                                        tcp.password, socket_path.string());
    const connect_options opts = connect_options::from_url(url);
    CHECK(opts.unix_socket == socket_path.string());
    CHECK(opts.host.empty());
    CHECK(opts.database == "cloudmysql_test");
    // to_url keeps the path readable (':' unencoded) and reads back to the same path.
    const std::string printed = opts.to_url();
    CHECK(contains(printed, "socket=" + socket_path.string()));
    CHECK_FALSE(contains(printed, tcp.password));
    CHECK(connect_options::from_url(printed).unix_socket == socket_path.string());

    connection conn(opts);
    // A socket login: the server sees the user coming from localhost, not 127.0.0.1, and the
    // socket it serves is the one the symlink points at.
    const auto r = conn.query("SELECT USER(), @@socket, DATABASE()");
    CHECK(r[0].get<std::string>(0) == "cloudmysql@localhost");
    CHECK(r[0].get<std::string>(1) == server_socket);
    CHECK(r[0].get<std::string>(2) == "cloudmysql_test");

    // With the proxy not running, the error names the socket and says it is unreachable.
    std::filesystem::remove(socket_path);
    connection none;
    error_code ec;
    diagnostics diag;
    none.connect(opts, ec, diag);
    REQUIRE(ec);
    CHECK(diag.error_class() == error_class::unreachable);
    CHECK(contains(diag.client_message(), socket_path.string()));
}
