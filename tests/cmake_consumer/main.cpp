// Connects with the certificate verified (ssl-mode=VERIFY_IDENTITY) to the URL in argv[1] and
// prints what it reached. Exits non-zero when it cannot, or when the session is not encrypted.
#include <cloudmysql/connection.hpp>

#include <fmt/format.h>

#include <exception>

int main(int argc, char** argv) {
    if (argc != 2) {
        fmt::print(stderr, "usage: consumer mysql://USER:PASSWORD@HOST:PORT/DB?ssl-ca=CA.pem\n");
        return 2;
    }
    try {
        auto opts = cloudmysql::connect_options::from_url(argv[1]);
        opts.tls_mode = cloudmysql::tls_mode::verify_identity;
        cloudmysql::connection conn(opts);
        const auto r = conn.query("SELECT VERSION()");
        fmt::print("consumer connected to {}: {} over {} ({})\n", opts, r[0].get<std::string>(0),
                   conn.tls_version(), conn.tls_cipher());
        return conn.tls_cipher().empty() ? 1 : 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "consumer: {}\n", e.what());
        return 1;
    }
}
