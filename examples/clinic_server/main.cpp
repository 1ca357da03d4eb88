// clinic_server: a small web front end to the clinic database; many requests at once from a
// few threads and a small pool, and a service that stays up whatever its clients and its
// database do.
//
// Shows: async_acquire with boost::asio::use_awaitable (a request waits in the pool's queue
// without holding an I/O thread), the blocking queries run on a thread pool of their own, every
// value a bound parameter, the pool's metrics for Prometheus, and a service that answers 503
// with the reason while the database is down and recovers by itself when it is back.
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic'
//   clinic_load --patients 1000      # applies the clinic migrations, then loads patients
//   clinic_server --port 8080 --threads 2 --pool-size 8
//   clinic_server --connect-per-request 1   # no pool: a new session per request (benchmarks)
//   curl 'http://127.0.0.1:8080/api/patients?q=sm'
//
// Routes (GET only): / (?after=ID for the next page, ?q=PREFIX searches by last name),
// /patients/ID, /api/patients?after=ID&q=PREFIX, /api/patients/ID, /metrics, /healthz.
// With --port 0 the system picks a free port; the first line on stdout names it. The options
// (--help lists them) take `--option VALUE` or `--option=VALUE`.
//
// What it does when things go wrong:
// - The database at start: a refused login, a TLS failure (a certificate that does not verify,
//   a server without TLS) or a database that does not exist cannot pass by waiting: exit 2 with
//   the library's message. Down, unreachable, full or slow: it serves 503 with the reason and
//   recovers by itself, as it does whenever the database goes away later.
// - Clients: at most --max-connections at once (default 1000; lowered, and said, to fit the
//   descriptor limit, RLIMIT_NOFILE, which it first raises towards the hard limit); beyond, a
//   connection gets 503 with Retry-After and is closed at once. A request's header fields must
//   arrive within --header-timeout of its first byte and its body within --body-timeout; an
//   idle kept-alive connection closes after --idle-timeout; an answer not taken within
//   --write-timeout is dropped with its connection. A malformed request gets 400 with the
//   reason, header fields over 8 KiB 431, a body over --max-body 413, and the connection
//   closes.
// - Out of descriptors all the same (other programs, the system's limit): accepting waits
//   (10 ms doubling to 1 s) instead of spinning, and turns waiting clients away with 503
//   through a descriptor it keeps spare for that.
// Exit codes: 0 after SIGINT or SIGTERM, 1 when serving fails (the port is taken), 2 for a
// usage or configuration error.
#include "clinic_server/connections.hpp"
#include "clinic_server/database.hpp"
#include "common/command_line.hpp"

#include <cloudmysql/pool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct settings {
    std::uint16_t port = 8080;
    int threads = 2;
    std::size_t pool_size = 8;
    bool connect_per_request = false;
    clinic_server::connection_settings clients;
};

// The command line into `s`; the exit code when the program should stop now (--help, a usage
// error).
std::optional<int> parse(int argc, char** argv, settings& s) {
    cloudmysql_examples::command_line cl(
        "clinic_server", "[OPTIONS]", "A web front end to the clinic database.",
        "The database comes from CLOUDMYSQL_URL=mysql://USER:PASSWORD@HOST[:PORT]/DATABASE\n"
        "Exit codes: 0 stopped by SIGINT/SIGTERM, 1 failed, 2 bad usage or configuration.");
    cl.number("--port", s.port, 0, 65535,
              "TCP port on 127.0.0.1, 0 for any free one (default 8080)");
    cl.number("--threads", s.threads, 1, 256, "I/O threads (default 2)");
    cl.number("--pool-size", s.pool_size, 1, 10000, "database connections (default 8)");
    int per_request = 0;
    cl.number("--connect-per-request", per_request, 0, 1,
              "1: a new session per request instead of the pool (a baseline; default 0)", "0|1");
    cl.number("--max-connections", s.clients.max_connections, 1, 1000000,
              "client connections at once; beyond, 503 (default 1000, lowered to fit ulimit -n)");
    cl.number("--max-body", s.clients.limits.body_bytes, 0, 1 << 30,
              "bytes of request body; beyond, 413 (default 8192)");
    cl.seconds("--header-timeout", s.clients.header_timeout, 3600,
               "from a request's first byte to its last header field (default 10)");
    cl.seconds("--body-timeout", s.clients.body_timeout, 3600, "for a request's body (default 10)");
    cl.seconds("--idle-timeout", s.clients.idle_timeout, 3600,
               "a kept-alive connection may idle (default 30)");
    cl.seconds("--write-timeout", s.clients.write_timeout, 3600, "to write an answer (default 10)");
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        cl.allow_positionals(0, "options only");
        s.connect_per_request = per_request == 1;
    } catch (const cloudmysql_examples::usage_error& e) {
        fmt::print(stderr, "clinic_server: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }
    return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    if (const auto stop = parse(argc, argv, s))
        return *stop;
    std::optional<cloudmysql::connect_options> url;
    try {
        url = cloudmysql::connect_options::from_env();
    } catch (const std::exception& e) {
        fmt::print(stderr, "clinic_server: CLOUDMYSQL_URL: {}\n", e.what());
        return 2;
    }
    if (!url) {
        fmt::print(stderr, "clinic_server: set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST/DB\n");
        return 2;
    }
    try {
        if (const auto why = clinic_server::check_at_start(*url))
            fmt::print(stderr,
                       "clinic_server: the database is unavailable at start; serving 503 until "
                       "it answers: {}\n",
                       *why);
    } catch (const clinic_server::configuration_error& e) {
        fmt::print(stderr, "clinic_server: {}\n", e.what());
        return 2;
    }
    try {
        // backoff_max 2 s (default 10 s): a web service wants the database back promptly.
        cloudmysql::pool pool(*url,
                              {.max_size = s.pool_size, .acquire_timeout = 2s, .backoff_max = 2s});
        // As many database threads as connections: a request holds its connection before it
        // queues here, so no query ever waits for a thread.
        asio::thread_pool db_threads(s.pool_size);
        clinic_server::database db{pool, db_threads, s.connect_per_request};

        // The cap on client connections, within the descriptor limit (the I/O objects' few
        // descriptors come out of the budget's margin).
        const auto wanted = s.clients.max_connections;
        const auto budget = clinic_server::budget_descriptors(wanted, s.pool_size);
        if (budget.fits == 0) {
            fmt::print(stderr,
                       "clinic_server: the descriptor limit (ulimit -n) is {}, and the process "
                       "and {} database connections need {} of it: raise ulimit -n or lower "
                       "--pool-size\n",
                       budget.limit, s.pool_size, budget.reserved);
            return 2;
        }
        if (wanted > budget.fits) {
            s.clients.max_connections = budget.fits;
            fmt::print(stderr,
                       "clinic_server: --max-connections lowered from {} to {}: the descriptor "
                       "limit (ulimit -n) is {} and the process and the pool keep {}\n",
                       wanted, budget.fits, budget.limit, budget.reserved);
        }
        // Before the io_context: connections still open when it goes count themselves out.
        clinic_server::server server{db, s.clients};
        asio::io_context io(s.threads);
        tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), s.port});
        auto control = asio::make_strand(io); // the acceptor's and the signal's
        asio::signal_set signals(control, SIGINT, SIGTERM);

        asio::co_spawn(control, clinic_server::accept_loop(server, acceptor), asio::detached);
        asio::co_spawn(control, clinic_server::stop_on_signal(server, signals, acceptor, io),
                       asio::detached);
        fmt::print("listening on http://127.0.0.1:{}/\n", acceptor.local_endpoint().port());
        std::fflush(stdout);

        std::vector<std::thread> threads;
        for (int i = 0; i < s.threads; ++i)
            threads.emplace_back([&io] { io.run(); });
        for (auto& t : threads)
            t.join();
        pool.close();      // fails any acquire still waiting, before its io_context goes
        db_threads.join(); // queries still running finish before their requests are destroyed
        fmt::print(stderr, "clinic_server: stopped\n");
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "clinic_server: {}\n", e.what());
        return 1;
    }
}
