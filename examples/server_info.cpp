// server_info: connect to a MySQL or MariaDB server and show what it runs with.
//
// Shows: options from a URL (argument or CLOUDMYSQL_URL), a TLS-protected connection,
// the typed results of a query, and an error that says what to do.
//
//   server_info 'mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   CLOUDMYSQL_URL='mysql://app:secret@127.0.0.1:3306/clinic' server_info
//
// The password is never printed: the URL below is shown with it masked.
#include <cloudmysql/connection.hpp>

#include <fmt/format.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

cloudmysql::connect_options options_from(int argc, char** argv) {
    if (argc > 2)
        throw std::invalid_argument("usage: server_info [URL]  (or set CLOUDMYSQL_URL)");
    if (argc == 2)
        return cloudmysql::connect_options::from_url(argv[1]);
    if (auto opts = cloudmysql::connect_options::from_env())
        return *opts;
    throw std::invalid_argument(
        "no server given: pass mysql://USER:PASSWORD@HOST:PORT/DB or set CLOUDMYSQL_URL");
}

// One server variable, or "?" when the server does not have it.
std::string variable(cloudmysql::connection& conn, const char* name) {
    const auto r = conn.execute("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES "
                                "WHERE VARIABLE_NAME = ?",
                                name);
    return r.empty() ? "?" : r[0].get<std::string>(0);
}

} // namespace

int main(int argc, char** argv) {
    cloudmysql::connect_options opts;
    try {
        opts = options_from(argc, argv);
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "server_info: {}\n", e.what());
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
        for (const char* name :
             {"max_connections", "connect_timeout", "wait_timeout", "require_secure_transport"})
            fmt::print("{:<25} {}\n", name, variable(conn, name));

        const auto status = conn.query("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
        if (!status.empty())
            fmt::print("{:<25} {}\n", "connected now", status[0].get<std::string>(1));
        return 0;
    } catch (const cloudmysql::database_error& e) {
        fmt::print(stderr, "server_info: {}\n", e.what());
        fmt::print(stderr, "  error class: {}\n", to_string(e.error_class()));
        return 1;
    }
}
