// pool_threads: many threads share one small pool; the server's own count of our sessions
// shows that the pool never opens more than max_size.
//
// Shows: cloudmysql::pool with pool_options, acquire() from many threads, errors that say
// what happened, metrics as Prometheus text, and server_check().
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic'
//   pool_threads --threads 64 --acquires 500 --size 16
//
// Stop the server while it runs: every acquire fails within acquire_timeout with a message,
// and the pool recovers by itself when the server is back.
#include "common/command_line.hpp"

#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct settings {
    int threads = 64;
    int acquires = 500;
    std::size_t size = 16;
};

void declare(cloudmysql_examples::command_line& cl, settings& s) {
    cl.number("--threads", s.threads, 1, 10000, "threads that acquire (default 64)");
    cl.number("--acquires", s.acquires, 1, 1'000'000, "acquires per thread (default 500)");
    cl.number("--size", s.size, 1, 10000, "the pool's max_size (default 16)");
}

// Our user's sessions as the server counts them, through a connection outside the pool;
// nothing when the server cannot be asked (it may be down: that is part of the show).
std::optional<int> server_sessions(cloudmysql::connection& monitor, const std::string& user) {
    cloudmysql::error_code ec;
    cloudmysql::diagnostics diag;
    const cloudmysql::param p[] = {user};
    const auto r = monitor.execute_span(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", p, ec, diag);
    if (ec)
        return std::nullopt;
    return r[0].get<int>(0) - 1; // less the monitor itself
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    cloudmysql_examples::command_line cl(
        "pool_threads", "[--threads N] [--acquires N] [--size N]",
        "pool_threads: many threads share one small pool",
        "The server comes from CLOUDMYSQL_URL=mysql://USER:PASSWORD@HOST[:PORT]/DATABASE");
    declare(cl, s);
    std::optional<cloudmysql::connect_options> url;
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        cl.allow_positionals(0, "options only");
        url = cloudmysql::connect_options::from_env();
        if (!url)
            throw std::invalid_argument("set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST/DB");
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "pool_threads: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }

    try {
        cloudmysql::pool pool(*url, {.max_size = s.size});
        cloudmysql::connection monitor(*url);
        for (const auto& finding : cloudmysql::server_check(pool))
            fmt::print("server_check: {}\n", finding.message);

        std::atomic<int> done{0};
        std::atomic<int> failed{0};
        std::mutex errors_mutex;
        std::map<std::string, int> errors; // message -> how often
        const auto started = std::chrono::steady_clock::now();
        std::vector<std::thread> workers;
        for (int t = 0; t < s.threads; ++t)
            workers.emplace_back([&] {
                for (int i = 0; i < s.acquires; ++i) {
                    try {
                        auto conn = pool.acquire();
                        conn->query("DO 0");
                    } catch (const cloudmysql::database_error& e) {
                        ++failed;
                        std::lock_guard lock(errors_mutex);
                        ++errors[e.what()];
                    }
                    ++done;
                }
            });

        int most_sessions = 0;
        bool monitor_lost = false;
        const int total = s.threads * s.acquires;
        while (done < total) {
            if (!monitor_lost) {
                const auto sessions = server_sessions(monitor, url->user);
                monitor_lost = !sessions;
                most_sessions = std::max(most_sessions, sessions.value_or(0));
                if (monitor_lost)
                    fmt::print("the monitor lost the server: session counts stop here\n");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        for (auto& w : workers)
            w.join();
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

        const auto m = pool.metrics();
        fmt::print("{} threads x {} acquires on a pool of {}: {:.0f} acquires/s, {} failed\n",
                   s.threads, s.acquires, s.size, total / seconds, failed.load());
        fmt::print("most sessions the server saw from the pool: {} (max_size {})\n", most_sessions,
                   s.size);
        fmt::print("connections created {}, connect failures {}, acquire timeouts {}\n", m.created,
                   m.connect_failures, m.timeouts);
        for (const auto& [message, count] : errors)
            fmt::print(stderr, "{} x {}\n", count, message);
        return failed == 0 && most_sessions <= static_cast<int>(s.size) ? 0 : 1;
    } catch (const cloudmysql::database_error& e) {
        fmt::print(stderr, "pool_threads: {}\n", e.what());
        return 1;
    }
}
