// What the client does when a server asks for an authentication plugin that sends the password
// as it is (mysql_clear_password, dialog): over a unix socket or verified TLS it answers (that
// is how Azure Entra and Cloud SQL IAM tokens travel); anywhere else it refuses and sends
// nothing. The stand-in offers no TLS, which libmariadb accepts even with VERIFY_CA: so
// VERIFY_CA refuses too. The server
// here is a loopback stand-in that records what it is sent.
#include "fake_auth_server.hpp"

#include <cloudmysql/connection.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

using namespace cloudmysql;
using cloudmysql::test::fake_auth_server;
using local_stream = boost::asio::local::stream_protocol;
using tcp = boost::asio::ip::tcp;

namespace {

const std::string secret = "s3cret-that-must-stay-home";

// A request for each cleartext plugin: dialog's data is a prompt (4: "a password question").
struct cleartext_plugin {
    const char* name;
    std::string data;
};
const cleartext_plugin cleartext_plugins[] = {{"mysql_clear_password", ""},
                                              {"dialog", std::string("\x04Password: ")}};

connect_options options_for(std::uint16_t port, tls_mode mode) {
    connect_options o;
    o.host = "127.0.0.1";
    o.port = port;
    o.user = "app";
    o.password = secret;
    o.tls_mode = mode;
    return o;
}

} // namespace

TEST_CASE("over TCP without VERIFY_IDENTITY, a cleartext plugin request is refused") {
    for (const auto& plugin : cleartext_plugins) {
        for (const tls_mode mode :
             {tls_mode::disabled, tls_mode::preferred, tls_mode::required, tls_mode::verify_ca}) {
            const std::string plugin_name = plugin.name;
            CAPTURE(plugin_name);
            CAPTURE(to_string(mode));
            fake_auth_server<tcp> server({boost::asio::ip::make_address("127.0.0.1"), 0},
                                         plugin.name, plugin.data);
            connection conn;
            error_code ec;
            diagnostics diag;
            conn.connect(options_for(server.endpoint().port(), mode), ec, diag);
            REQUIRE(ec);
            CHECK(diag.error_class() == error_class::auth);
            CAPTURE(diag.client_message());
            CHECK(diag.client_message().find("the password was not sent") != std::string::npos);
            CHECK(diag.client_message().find("VERIFY_IDENTITY") != std::string::npos);
            const std::string answer = server.answer();
            CHECK(answer.find(secret) == std::string::npos);
        }
    }
}

TEST_CASE("over a unix socket the same request is answered") {
    // The control for the test above: the stand-in does see a password when one is sent.
    std::string dir_template = (std::filesystem::temp_directory_path() / "cloudmysql-auth-XXXXXX");
    REQUIRE(::mkdtemp(dir_template.data()) != nullptr);
    const std::filesystem::path dir = dir_template;
    const std::string path = (dir / "mysqld.sock").string();
    {
        fake_auth_server<local_stream> server(local_stream::endpoint(path), "mysql_clear_password",
                                              "");
        connect_options o;
        o.unix_socket = path;
        o.user = "app";
        o.password = secret;
        connection conn;
        error_code ec;
        diagnostics diag;
        conn.connect(o, ec, diag); // fails after the password: the stand-in then hangs up
        CHECK(ec);
        CHECK(server.answer().find(secret) != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}
