// server_info: connect to a MySQL or MariaDB server and show what it runs with.
//
// Shows: options from a URL (argument or CLOUDMYSQL_URL), a TLS-protected connection,
// read_server_report() (cloudmysql-doctor prints all of it and checks a deployment against it),
// and an error that says what to do.
//
//   server_info 'mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   server_info --url='mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   CLOUDMYSQL_URL='mysql://app:secret@127.0.0.1:3306/clinic' server_info
//
// The password is never printed: the URL below is shown with it masked.
#include "common/command_line.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/server_report.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

// The URL from --url or the argument, or CLOUDMYSQL_URL.
cloudmysql::connect_options options_from(const cloudmysql_examples::command_line& cl,
                                         const std::string& url) {
    cl.allow_positionals(cl.given("--url") ? 0 : 1, "one URL, as --url URL or alone");
    if (cl.given("--url"))
        return cloudmysql::connect_options::from_url(url);
    if (!cl.positionals().empty())
        return cloudmysql::connect_options::from_url(cl.positionals().front());
    if (auto opts = cloudmysql::connect_options::from_env())
        return *opts;
    throw std::invalid_argument(
        "no server given: pass mysql://USER:PASSWORD@HOST:PORT/DB or set CLOUDMYSQL_URL");
}

// A number the server showed, or "?".
std::string shown(const std::optional<std::int64_t>& n) {
    return n ? std::to_string(*n) : "?";
}

} // namespace

int main(int argc, char** argv) {
    cloudmysql_examples::command_line cl("server_info", "[[--url] URL]",
                                         "server_info: connect to a server and show what it "
                                         "runs with");
    std::string url;
    cl.text("--url", url,
            "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE, also without --url; default: the "
            "CLOUDMYSQL_URL environment variable",
            "URL");
    cloudmysql::connect_options opts;
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        opts = options_from(cl, url);
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "server_info: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }

    try {
        cloudmysql::connection conn(opts);
        const bool encrypted = !conn.tls_cipher().empty();
        fmt::print("server                    {}\n", opts);
        fmt::print("version                   {} ({})\n", conn.server_version(),
                   conn.flavor() == cloudmysql::server_flavor::mariadb ? "MariaDB" : "MySQL");
        fmt::print("connection id             {}\n", conn.connection_id());
        fmt::print("tls                       {}\n",
                   encrypted ? fmt::format("{}, {} (ssl-mode={})", conn.tls_version(),
                                           conn.tls_cipher(), to_string(opts.effective_tls_mode()))
                             : std::string("not encrypted"));
        const auto r = cloudmysql::read_server_report(conn);
        fmt::print("{:<25} {}\n", "max_connections", shown(r.max_connections));
        fmt::print("{:<25} {}\n", "connect_timeout", shown(r.connect_timeout));
        fmt::print("{:<25} {}\n", "wait_timeout", shown(r.wait_timeout));
        fmt::print("{:<25} {}\n", "require_secure_transport",
                   r.require_secure_transport.empty() ? "?" : r.require_secure_transport);
        fmt::print("{:<25} {}\n", "connected now", shown(r.threads_connected));
        return 0;
    } catch (const cloudmysql::database_error& e) {
        fmt::print(stderr, "server_info: {}\n", e.what());
        fmt::print(stderr, "  error class: {}\n", to_string(e.error_class()));
        return 1;
    }
}
