// The pool under real threads (a fake connector, the steady clock): what TSan checks.
#include "fake_pool.hpp"

#include <doctest/doctest.h>

#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <latch>
#include <thread>
#include <vector>

using namespace cloudmysql;
using namespace std::chrono_literals;
using test::fake_connector;
using test::fake_server;
using test::threaded_pool;

TEST_CASE("many threads share a small pool without exceeding it or losing a lease") {
    auto server = std::make_shared<fake_server>();
    pool_options o;
    o.max_size = 4;
    o.acquire_timeout = 30s;
    threaded_pool pool(o, fake_connector{server});

    constexpr int threads = 8;
    constexpr int rounds = 1500;
    std::atomic<int> errors{0};
    std::atomic<int> in_use{0};
    std::atomic<int> most_in_use{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                error_code ec;
                diagnostics diag;
                auto conn = pool.acquire(ec, diag);
                if (ec) {
                    ++errors;
                    continue;
                }
                const int now_in_use = ++in_use;
                int seen = most_in_use.load();
                while (now_in_use > seen && !most_in_use.compare_exchange_weak(seen, now_in_use)) {
                }
                // A third of the leases leave something (reset by a pool thread); the others
                // go back on this thread, to the idle stack or to a waiter.
                conn->needs_reset = (i + t) % 3 == 0;
                if ((i + t) % 97 == 0)
                    conn.discard(); // now and then a broken one
                --in_use;
            }
        });
    for (auto& w : workers)
        w.join();

    CHECK(errors == 0);
    CHECK(most_in_use <= 4);
    CHECK(server->peak_open <= 4);
    const auto m = pool.metrics();
    CHECK(m.acquired == threads * rounds);
    CHECK(m.closed[static_cast<std::size_t>(close_reason::discarded)] > 0);
    std::lock_guard lock(server->m);
    CHECK(server->resets > 0);
    CHECK(server->resets < threads * rounds / 2); // the clean returns were not reset
}

TEST_CASE("async and sync acquires from several threads all complete, within the cap") {
    auto server = std::make_shared<fake_server>();
    pool_options o;
    o.max_size = 2;
    o.acquire_timeout = 30s;
    threaded_pool pool(o, fake_connector{server});
    constexpr int async_count = 200;
    std::latch async_done(async_count);
    std::atomic<int> async_errors{0};
    for (int i = 0; i < async_count; ++i)
        pool.async_acquire([&](error_code ec, threaded_pool::pooled_connection conn) {
            if (ec || !conn.valid())
                ++async_errors;
            async_done.count_down();
        });
    for (int i = 0; i < 200; ++i)
        CHECK(pool.acquire().valid());
    async_done.wait();
    CHECK(async_errors == 0);
    CHECK(server->peak_open <= 2);
    CHECK(pool.metrics().acquired == 400);
}

TEST_CASE("a pool destroyed while a lease is out closes that connection when it comes back") {
    auto server = std::make_shared<fake_server>();
    std::optional<threaded_pool::pooled_connection> survivor;
    {
        threaded_pool pool(pool_options{}, fake_connector{server});
        survivor = pool.acquire();
    }
    CHECK(server->open_count() == 1);
    survivor.reset();
    CHECK(server->open_count() == 0);
}

TEST_CASE("failed connects are retried while a request waits") {
    auto server = std::make_shared<fake_server>();
    server->fail_next = 3;
    pool_options o;
    o.acquire_timeout = 30s;
    o.backoff_initial = 5ms;
    o.backoff_max = 20ms;
    o.breaker_threshold = 0;
    threaded_pool pool(o, fake_connector{server});
    error_code ec;
    diagnostics diag;
    auto conn = pool.acquire(ec, diag); // only the backoff timer can start the retries
    CHECK_FALSE(ec);
    CHECK(conn.valid());
    CHECK(server->connects == 4);
}

TEST_CASE("waiters get their connections in the order they asked, whichever thread decides") {
    auto server = std::make_shared<fake_server>();
    pool_options o;
    o.max_size = 4;
    o.acquire_timeout = 30s;
    boost::asio::io_context io; // outlives the pool, whose threads post to it
    threaded_pool pool(o, fake_connector{server});
    constexpr int count = 400;
    std::vector<int> granted;
    for (int i = 0; i < count; ++i)
        pool.async_acquire(boost::asio::bind_executor(
            io, [&, i](error_code ec, threaded_pool::pooled_connection conn) {
                CHECK_FALSE(ec);
                granted.push_back(i);
                conn.release(); // its reset runs on a pool thread while others are granted
            }));
    while (static_cast<int>(granted.size()) < count) {
        io.run_one_for(std::chrono::seconds(30));
    }
    CHECK(std::is_sorted(granted.begin(), granted.end()));
}

namespace {

// The threads of this process, as the kernel lists them.
std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

} // namespace

TEST_CASE("on the program's executor the pool starts no thread and its timers still run") {
    boost::asio::thread_pool blocking(3);
    auto server = std::make_shared<fake_server>();
    server->fail_next = 2; // the retries need the timer: it runs on the executor
    pool_options o;
    o.max_size = 4;
    o.acquire_timeout = 30s;
    o.backoff_initial = 5ms;
    o.backoff_max = 20ms;
    o.breaker_threshold = 0;
    o.leak_threshold = 50ms;
    std::atomic<int> leaks{0};
    o.on_leak = [&](const leak_report&) { ++leaks; };
    const std::size_t before = thread_count();
    {
        threaded_pool pool(o, fake_connector{server}, blocking.get_executor());
        CHECK(thread_count() == before);
        std::vector<std::thread> workers;
        std::atomic<int> errors{0};
        for (int t = 0; t < 6; ++t)
            workers.emplace_back([&, t] {
                for (int i = 0; i < 300; ++i) {
                    error_code ec;
                    diagnostics diag;
                    auto conn = pool.acquire(ec, diag);
                    if (ec) {
                        ++errors;
                        continue;
                    }
                    conn->needs_reset = (i + t) % 2 == 0; // resets are jobs on the executor
                }
            });
        for (auto& w : workers)
            w.join();
        CHECK(errors == 0);
        CHECK(pool.metrics().acquired == 6 * 300);
        CHECK(thread_count() == before); // the workers of this test came and went

        // The timer on the executor reports a lease held past leak_threshold.
        auto held = pool.acquire();
        for (int i = 0; i < 400 && leaks == 0; ++i)
            std::this_thread::sleep_for(5ms);
        CHECK(leaks == 1);
    }
    // Destroying the pool waited for its jobs: every connection is closed.
    CHECK(server->open_count() == 0);
    std::lock_guard lock(server->m);
    CHECK(server->connects >= 3);
    CHECK(server->resets > 0);
}
