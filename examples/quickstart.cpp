// quickstart: the smallest complete cloudmysql program (the README shows it verbatim).
#include <cloudmysql/connection.hpp>

#include <fmt/format.h>

int main() try {
    // e.g. mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY
    auto opts = cloudmysql::connect_options::from_env("CLOUDMYSQL_URL");
    if (!opts) {
        fmt::print(stderr, "set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST:PORT/DATABASE\n");
        return 2;
    }
    cloudmysql::connection conn(*opts);
    // Values travel as bound parameters, never inside the SQL text.
    auto result = conn.execute("SELECT ? + 1 AS answer, VERSION() AS version", 41);
    fmt::print("{} from {} over {}\n", result[0].get<int>("answer"),
               result[0].get<std::string>("version"), conn.tls_version());
} catch (const std::exception& e) { // database_error says what happened and what to do
    fmt::print(stderr, "quickstart: {}\n", e.what());
    return 1;
}
