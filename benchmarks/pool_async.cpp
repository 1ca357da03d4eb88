// pool_async: the patient lookup through async_acquire in C++20 coroutines, 64 and 256 of them
// at once, with the coroutines on 1 and on 2 I/O threads; the same way clinic_server works: a
// coroutine waits for a connection in the pool's queue without holding an I/O thread, then
// runs the blocking query on a thread pool as large as the connection pool (libmariadb 3.3
// blocks under TLS, see DESIGN.md), and returns the connection.
//
// Against `dedicated` at the same concurrency: raw libmariadb, one thread and one connection
// per concurrent request. At 256 that would need 256 connections; the server allows fewer, so
// dedicated runs min(concurrency, max_connections - 10 (spare for sessions still closing))
// threads, and the table says how many. The pool is open only during the async runs (Setup and
// Teardown), so that dedicated has the server to itself.
#include "bench_support.hpp"

#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace cloudmysql;
namespace asio = boost::asio;

bench::settings config;
bench::id_range ids;
std::unique_ptr<pool> shared_pool;
std::string setup_error; // why the pool could not be opened, for the benchmark to report
std::int64_t dedicated_cap = 0;

void open_pool(const benchmark::State&) {
    bench::open_warm_pool(shared_pool, setup_error, [] {
        return std::make_unique<pool>(*config.server, pool_options{.max_size = bench::pool_size,
                                                                   .min_idle = bench::pool_size});
    });
}

void close_pool(const benchmark::State&) {
    shared_pool.reset();
}

// Lookups each coroutine makes per benchmark iteration.
constexpr int rounds = 4;

// One batch of coroutines: counts the finished ones and keeps the first error.
struct batch {
    std::mutex m;
    std::condition_variable cv;
    int left = 0;
    std::optional<std::string> error;

    void done(std::exception_ptr e) {
        std::lock_guard lock(m);
        if (e && !error) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                error = x.what();
            }
        }
        if (--left == 0)
            cv.notify_all();
    }
    void wait() {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return left == 0; });
    }
};

asio::awaitable<void> lookups(asio::thread_pool& db_threads, std::uint64_t seed) {
    bench::id_picker pick(ids, seed);
    for (int i = 0; i < rounds; ++i) {
        auto conn = co_await shared_pool->async_acquire(asio::use_awaitable);
        const std::int64_t id = pick.next();
        const std::size_t rows = co_await asio::co_spawn(
            db_threads,
            [&]() -> asio::awaitable<std::size_t> {
                co_return conn->execute(bench::lookup_sql, id).size();
            },
            asio::use_awaitable);
        benchmark::DoNotOptimize(rows);
    }
}

void async_pooled(benchmark::State& state) {
    if (!shared_pool)
        return bench::fail(state, setup_error);
    const int concurrency = static_cast<int>(state.range(0));
    const int io_threads = static_cast<int>(state.range(1));
    asio::io_context io(io_threads);
    auto guard = asio::make_work_guard(io);
    std::vector<std::thread> runners;
    for (int i = 0; i < io_threads; ++i)
        runners.emplace_back([&] { io.run(); });
    asio::thread_pool db_threads(bench::pool_size);
    std::uint64_t seed = 1;
    for (auto _ : state) {
        batch b;
        b.left = concurrency;
        for (int c = 0; c < concurrency; ++c)
            asio::co_spawn(io, lookups(db_threads, seed++),
                           [&b](std::exception_ptr e) { b.done(e); });
        b.wait();
        if (b.error) {
            bench::fail(state, *b.error);
            break;
        }
    }
    guard.reset();
    for (auto& t : runners)
        t.join();
    db_threads.join();
    state.SetItemsProcessed(state.iterations() * concurrency * rounds);
}

void dedicated(benchmark::State& state) {
    bench::dedicated_lookups(state, *config.server, ids);
}

constexpr int concurrencies[] = {64, 256};
constexpr int io_thread_counts[] = {1, 2};

int dedicated_threads(int concurrency) {
    return static_cast<int>(std::min<std::int64_t>(concurrency, dedicated_cap));
}

std::vector<bench::table_row> summarize(const bench::figures& f) {
    auto qps = [&](const std::string& key) {
        const auto it = f.find(key);
        return it == f.end() ? 0.0 : it->second.counter("items_per_second");
    };
    std::vector<bench::table_row> rows;
    for (const int c : concurrencies) {
        const int d_threads = dedicated_threads(c);
        const double d = qps(fmt::format("dedicated/{}", d_threads));
        for (const int io : io_thread_counts) {
            // Google Benchmark names the arguments' run "async_pooled/64/1".
            const double a = qps(fmt::format("async_pooled/{}/{}/1", c, io));
            if (a == 0)
                continue;
            rows.push_back(
                {"pool_async",
                 fmt::format("{} coroutines on {} I/O thread(s): queries/s async (pool of 16) / "
                             "dedicated ({} threads)",
                             c, io, d_threads),
                 fmt::format("{} / {} = {}", bench::format_rate(a), bench::format_rate(d),
                             d > 0 ? bench::format_ratio(a / d) : "n/a"),
                 ">= 0.90"});
        }
    }
    return rows;
}

} // namespace

int main(int argc, char** argv) {
    config = bench::parse_args(argc, argv, "pool_async", true);
    try {
        ids = bench::prepare_clinic(config);
        const auto server = bench::read_server(*config.server);
        dedicated_cap = server.max_connections - 10;
        if (dedicated_cap < 1 ||
            server.max_connections < static_cast<std::int64_t>(bench::pool_size) + 2) {
            fmt::print(stderr,
                       "pool_async: the server allows {} connections; the pool needs {} and "
                       "dedicated 11 at least: raise max_connections\n",
                       server.max_connections, bench::pool_size);
            return 1;
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "pool_async: cannot set up: {}\n", e.what());
        return 1;
    }
    std::vector<int> dedicated_counts;
    for (const int c : concurrencies) {
        for (const int io : io_thread_counts)
            benchmark::RegisterBenchmark("async_pooled", async_pooled)
                ->Args({c, io})
                ->UseRealTime()
                ->Setup(open_pool)
                ->Teardown(close_pool);
        const int d = dedicated_threads(c);
        if (std::find(dedicated_counts.begin(), dedicated_counts.end(), d) ==
            dedicated_counts.end()) {
            dedicated_counts.push_back(d);
            if (d < c)
                fmt::print(stderr,
                           "dedicated for {} concurrent lookups runs {} threads: the server's "
                           "max_connections leaves no room for more\n",
                           c, d);
            benchmark::RegisterBenchmark("dedicated", dedicated)->Threads(d)->UseRealTime();
        }
    }
    return bench::run(argc, argv, config, summarize);
}
