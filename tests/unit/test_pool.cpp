// The pool's policies, driven by a fake connector and a fake clock: no server, no sleeps.
#include "fake_pool.hpp"

#include <cloudmysql/pool.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>

using namespace cloudmysql;
using namespace std::chrono_literals;
using test::fake_clock;
using test::fake_server;
using test::pool_harness;

namespace {

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

pool_options small(std::size_t max_size) {
    pool_options o;
    o.max_size = max_size;
    o.max_connecting = std::min<std::size_t>(2, max_size);
    o.keepalive_interval = 0ms;
    o.idle_timeout = 0ms;
    o.max_lifetime = 0ms;
    o.max_lifetime_jitter = 0ms;
    return o;
}

} // namespace

TEST_CASE("options outside their limits are rejected at construction, by name") {
    auto rejects = [](auto change, std::string_view name) {
        pool_options o;
        change(o);
        CAPTURE(name);
        try {
            pool_harness h(o);
            FAIL("accepted an invalid ", name);
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).rfind("pool_options: " + std::string(name) + " is", 0) ==
                  0);
        }
    };
    rejects([](pool_options& o) { o.max_size = 0; }, "max_size");
    rejects([](pool_options& o) { o.min_idle = 21; }, "min_idle");
    rejects([](pool_options& o) { o.acquire_timeout = 0ms; }, "acquire_timeout");
    rejects([](pool_options& o) { o.connect_timeout = 0s; }, "connect_timeout");
    rejects([](pool_options& o) { o.idle_timeout = 10ms; }, "idle_timeout");
    rejects([](pool_options& o) { o.max_lifetime = 500ms; }, "max_lifetime");
    rejects([](pool_options& o) { o.max_lifetime_jitter = 20min; }, "max_lifetime_jitter");
    rejects([](pool_options& o) { o.keepalive_interval = 5ms; }, "keepalive_interval");
    rejects([](pool_options& o) { o.check_timeout = 50ms; }, "check_timeout");
    rejects([](pool_options& o) { o.max_connecting = 0; }, "max_connecting");
    pool_options one;
    one.max_size = 1; // the default max_connecting (2) acts as 1: not an error
    CHECK_NOTHROW(pool_harness{one});
    rejects([](pool_options& o) { o.backoff_initial = 0ms; }, "backoff_initial");
    rejects([](pool_options& o) { o.backoff_max = 50ms; }, "backoff_max");
    rejects([](pool_options& o) { o.breaker_threshold = 5000; }, "breaker_threshold");
    CHECK_NOTHROW(pool_harness{pool_options{}});
}

TEST_CASE("a connection is opened on demand, reset on return and reused") {
    pool_harness h(small(4));
    auto& first = h.acquire();
    CHECK_FALSE(first.done); // the connect is a job that has not run yet
    h.settle();
    REQUIRE(first.done);
    CHECK_FALSE(first.ec);
    REQUIRE(first.conn.valid());
    const int id = first.conn->id;
    CHECK(h.server->connects == 1);

    first.conn.release();
    h.settle();
    CHECK(h.server->resets == 1);
    CHECK(h.pool.metrics().idle == 1);

    auto& second = h.acquire();
    h.settle();
    REQUIRE(second.conn.valid());
    CHECK(second.conn->id == id);
    CHECK(h.server->connects == 1);
    CHECK(h.server->pings == 0); // idle for less than validate_after_idle: no check
    CHECK(h.pool.metrics().acquired == 2);
}

TEST_CASE("a connection whose session holds nothing is not reset and is available at once") {
    pool_harness h(small(2));
    auto& first = h.acquire();
    h.settle();
    REQUIRE(first.conn.valid());
    const int id = first.conn->id;
    first.conn->needs_reset = false; // the holder ran only plain SELECTs
    first.conn.release();
    // No job for a pool thread: idle on the returning thread, before any job runs.
    CHECK(h.pool.metrics().idle == 1);
    auto again = h.pool.try_acquire();
    REQUIRE(again.has_value());
    CHECK((*again)->id == id);
    CHECK(h.poll() == 0);
    CHECK(h.server->resets == 0);

    // Once it may hold something, it is reset on return and idle only after that.
    (*again)->needs_reset = true;
    again->release();
    CHECK(h.pool.metrics().idle == 0);
    h.settle();
    CHECK(h.server->resets == 1);
    CHECK(h.pool.metrics().idle == 1);
}

TEST_CASE("a returned connection that needs no reset goes straight to the longest waiter") {
    pool_harness h(small(1));
    auto& holder = h.acquire();
    h.settle();
    auto& waiter = h.acquire();
    auto& later = h.acquire();
    h.settle();
    REQUIRE(holder.conn.valid());
    CHECK_FALSE(waiter.done);
    holder.conn->needs_reset = false;
    holder.conn.release();
    h.deliver(); // completions only: no pool job runs
    CHECK(waiter.done);
    CHECK(waiter.conn.valid());
    CHECK_FALSE(later.done);
    CHECK(h.server->resets == 0);
}

TEST_CASE("a clean session is still closed when it failed, when it is too old or when the pool "
          "closed") {
    pool_options o = small(3);
    o.max_lifetime = 10min;
    pool_harness h(o);
    for (int i = 0; i < 3; ++i)
        h.acquire();
    h.settle();
    for (auto& r : h.requests)
        r->conn->needs_reset = false;
    h.requests[0]->conn->fault = error_class::connection_lost;
    h.requests[0]->conn.release();
    h.settle();
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::discarded)] == 1);

    fake_clock::advance(11min);
    h.requests[1]->conn.release();
    h.settle();
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::max_lifetime)] == 1);

    h.pool.close();
    h.requests[2]->conn.release();
    h.settle();
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::pool_closed)] == 1);
    CHECK(h.pool.metrics().idle == 0);
    CHECK(h.server->resets == 0);
}

TEST_CASE("never more than max_size connections; waiters are served first come, first served") {
    pool_harness h(small(3));
    for (int i = 0; i < 10; ++i)
        h.acquire();
    h.settle();
    CHECK(h.server->open_count() == 3);
    CHECK(h.server->connects == 3);
    CHECK(h.pool.metrics().pending_requests == 7);
    CHECK(h.completion_order == std::vector<std::uint64_t>{0, 1, 2});

    // Each returned connection goes to the longest waiter.
    h.requests[1]->conn.release();
    h.settle();
    h.requests[0]->conn.release();
    h.settle();
    CHECK(h.completion_order == std::vector<std::uint64_t>{0, 1, 2, 3, 4});
    CHECK(h.server->connects == 3);
    CHECK(h.server->peak_open == 3);
}

TEST_CASE("try_acquire takes an idle connection or returns at once") {
    pool_harness h(small(2));
    CHECK_FALSE(h.pool.try_acquire().has_value());
    auto& r = h.acquire();
    h.settle();
    r.conn.release();
    h.settle();
    auto c = h.pool.try_acquire();
    REQUIRE(c.has_value());
    CHECK(c->valid());
    // An idle connection that needs a check is not handed out without it.
    c->release();
    h.settle();
    fake_clock::advance(2s);
    CHECK_FALSE(h.pool.try_acquire().has_value());
}

TEST_CASE("an acquire that cannot be served fails at its deadline, saying why") {
    pool_options o = small(1);
    o.acquire_timeout = 3s;
    pool_harness h(o);
    auto& holder = h.acquire();
    auto& waiter = h.acquire();
    h.settle();
    REQUIRE(holder.conn.valid());
    CHECK_FALSE(waiter.done);

    fake_clock::advance(2999ms);
    h.settle();
    CHECK_FALSE(waiter.done);
    fake_clock::advance(1ms);
    h.settle();
    REQUIRE(waiter.done);
    CHECK(waiter.ec == client_errc::pool_exhausted);
    CHECK(waiter.diag.error_class() == error_class::timeout);
    CHECK(contains(waiter.diag.client_message(), "pool exhausted: 1 of 1 connections in use"));
    CHECK(contains(waiter.diag.client_message(), "waited 3.0 s (acquire_timeout)"));
    CHECK(h.pool.metrics().timeouts == 1);
}

TEST_CASE("a connection idle past validate_after_idle is checked; a dead one never reaches "
          "the caller") {
    pool_options o = small(2);
    o.validate_after_idle = 1s;
    pool_harness h(o);
    auto& r = h.acquire();
    h.settle();
    const int dead = r.conn->id;
    r.conn.release();
    h.settle();

    h.server->kill(dead); // the server dropped it while it sat idle
    fake_clock::advance(1s);
    auto& next = h.acquire();
    h.settle();
    REQUIRE(next.conn.valid());
    CHECK(next.conn->id != dead);
    CHECK(h.server->state_of(next.conn->id) == fake_server::conn_state::open);
    CHECK(h.server->pings == 1);
    CHECK(h.server->state_of(dead) == fake_server::conn_state::closed);
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::broken)] == 1);
}

TEST_CASE("a lost connection retires every connection older than it") {
    pool_harness h(small(4));
    for (int i = 0; i < 4; ++i)
        h.acquire();
    h.settle();
    // Connections 1 and 2 go back; 3 dies while leased; 4 stays leased.
    h.requests[0]->conn.release();
    h.requests[1]->conn.release();
    h.settle();
    const int third = h.requests[2]->conn->id;
    h.server->kill(third);
    h.requests[2]->conn.release(); // its reset fails: connection lost
    h.settle();

    const auto m = h.pool.metrics();
    CHECK(m.closed[static_cast<std::size_t>(close_reason::broken)] == 1);
    CHECK(m.closed[static_cast<std::size_t>(close_reason::retired)] == 2);
    CHECK(m.idle == 0);
    CHECK(h.server->open_count() == 1); // only the newer, leased one
    // The newer one is not retired: it goes back to idle after its reset.
    h.requests[3]->conn.release();
    h.settle();
    CHECK(h.pool.metrics().idle == 1);
}

TEST_CASE("discard after a failover retires older leased connections when they return") {
    pool_harness h(small(3));
    for (int i = 0; i < 3; ++i)
        h.acquire();
    h.settle();
    h.requests[1]->conn.discard(error_class::read_only);
    h.settle();
    h.requests[0]->conn.release(); // older: closed without a reset
    h.requests[2]->conn.release(); // newer: reset and kept
    h.settle();
    const auto m = h.pool.metrics();
    CHECK(m.closed[static_cast<std::size_t>(close_reason::discarded)] == 1);
    CHECK(m.closed[static_cast<std::size_t>(close_reason::retired)] == 1);
    CHECK(m.idle == 1);
    CHECK(h.server->resets == 1);

    // A plain discard (not a failover) retires nothing else.
    auto& r = h.acquire();
    h.settle();
    r.conn.discard();
    h.settle();
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::retired)] == 1);
}

TEST_CASE("a connection whose session failed over is closed when simply released") {
    pool_harness h(small(3));
    for (int i = 0; i < 3; ++i)
        h.acquire();
    h.settle();
    // The user's write failed with "read-only" and the user just lets the lease go.
    h.requests[1]->conn->fault = error_class::read_only;
    h.requests[1]->conn.release();
    h.settle();
    h.requests[0]->conn.release(); // older: it points at the old primary too
    h.requests[2]->conn.release(); // newer: reset and kept
    h.settle();
    const auto m = h.pool.metrics();
    CHECK(m.closed[static_cast<std::size_t>(close_reason::discarded)] == 1);
    CHECK(m.closed[static_cast<std::size_t>(close_reason::retired)] == 1);
    CHECK(m.idle == 1);
    CHECK(h.server->resets == 1);

    // A lost session goes the same way.
    auto& r = h.acquire();
    h.settle();
    r.conn->fault = error_class::connection_lost;
    r.conn.release();
    h.settle();
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::discarded)] == 2);
    CHECK(h.server->resets == 1);
}

TEST_CASE("idle and old connections are retired while idle, never while leased") {
    pool_options o = small(4);
    o.min_idle = 1;
    o.idle_timeout = 10s;
    o.max_lifetime = 60s;
    o.max_lifetime_jitter = 0s;
    o.validate_after_idle = 1h;
    pool_harness h(o);
    for (int i = 0; i < 3; ++i)
        h.acquire();
    h.settle();
    h.requests[0]->conn.release();
    h.requests[1]->conn.release();
    h.settle();
    // min_idle counts idle connections: with three leased, the pool opened a fourth.
    CHECK(h.server->connects == 4);
    CHECK(h.pool.metrics().idle == 3);

    fake_clock::advance(10s); // all idle past idle_timeout: shrink to min_idle
    h.settle();
    CHECK(h.pool.metrics().idle == 1);
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::idle_timeout)] == 2);

    fake_clock::advance(50s); // every connection reaches max_lifetime
    h.settle();
    const int leased = h.requests[2]->conn->id;
    CHECK(h.server->state_of(leased) == fake_server::conn_state::open); // not while leased
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::max_lifetime)] == 1);
    CHECK(h.pool.metrics().idle == 1); // min_idle refilled with a new connection

    h.requests[2]->conn.release(); // past its lifetime: closed on return, no reset
    h.settle();
    CHECK(h.server->state_of(leased) == fake_server::conn_state::closed);
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::max_lifetime)] == 2);
}

TEST_CASE("lifetimes are jittered so that connections opened together expire apart") {
    pool_options o = small(8);
    o.max_lifetime = 100s;
    o.max_lifetime_jitter = 50s;
    o.validate_after_idle = 1h;
    pool_harness h(o);
    for (int i = 0; i < 8; ++i)
        h.acquire();
    h.settle();
    for (auto& r : h.requests)
        r->conn.release();
    h.settle();
    // Step through the jitter window: the connections expire at different moments.
    std::vector<std::size_t> open_after_step;
    for (int step = 0; step <= 11; ++step) { // 0 s, then 50 s to 100 s
        h.settle();
        open_after_step.push_back(static_cast<std::size_t>(h.server->open_count()));
        fake_clock::advance(5s);
        if (step == 0)
            fake_clock::advance(45s); // jump to the start of the window (50 s)
    }
    CHECK(open_after_step.front() == 8);
    CHECK(open_after_step.back() == 0);
    const auto distinct = std::set<std::size_t>(open_after_step.begin(), open_after_step.end());
    CHECK(distinct.size() >= 4);
}

TEST_CASE("keepalive pings idle connections and keeps them") {
    pool_options o = small(2);
    o.keepalive_interval = 2min;
    o.validate_after_idle = 1h;
    pool_harness h(o);
    auto& r = h.acquire();
    h.settle();
    r.conn.release();
    h.settle();
    fake_clock::advance(119s);
    h.settle();
    CHECK(h.server->pings == 0);
    fake_clock::advance(1s);
    h.settle();
    CHECK(h.server->pings == 1);
    CHECK(h.pool.metrics().idle == 1);
    fake_clock::advance(2min);
    h.settle();
    CHECK(h.server->pings == 2);
}

TEST_CASE("connect failures back off with full jitter; the breaker fails acquires at once") {
    pool_options o = small(2);
    o.backoff_initial = 100ms;
    o.backoff_max = 400ms;
    o.breaker_threshold = 4;
    o.acquire_timeout = 1h;
    pool_harness h(o);
    h.server->fail_next = 1000;

    auto& waiter = h.acquire();
    // Walk the clock in 1 ms steps: each retry waits at most min(max, initial * 2^(n-1)).
    for (int i = 0; i < 5000 && !waiter.done; ++i) {
        h.settle();
        fake_clock::advance(1ms);
    }
    REQUIRE(waiter.done);
    CHECK(h.server->connects == 4); // the breaker opened after the 4th failure
    const auto& t = h.server->connect_times;
    for (std::size_t n = 1; n < t.size(); ++n) {
        const auto cap = std::min<std::chrono::milliseconds>(400ms, 100ms * (1 << (n - 1)));
        CHECK(t[n] - t[n - 1] <= cap + 1ms);
    }
    CHECK(waiter.ec == client_errc::server_unavailable);
    CHECK(waiter.diag.error_class() == error_class::unreachable);
    CHECK(contains(waiter.diag.client_message(), "the last 4 connect attempts failed"));
    CHECK(contains(waiter.diag.client_message(), "last connect error: cannot connect to fake"));
    CHECK(h.pool.metrics().breaker_open);

    // While the breaker is open and the backoff runs, acquires fail at once, with no connect.
    auto& rejected = h.acquire();
    h.deliver();
    REQUIRE(rejected.done);
    CHECK(rejected.ec == client_errc::server_unavailable);
    CHECK(h.server->connects == 4);

    // When the backoff has passed, one probe goes out; when it succeeds the pool serves again.
    h.server->fail_next = 0;
    fake_clock::advance(400ms);
    auto& after = h.acquire();
    h.settle();
    REQUIRE(after.done);
    CHECK_FALSE(after.ec);
    CHECK(h.server->connects == 5);
    CHECK_FALSE(h.pool.metrics().breaker_open);
}

TEST_CASE("a full server is reported as such and does not cause a connect storm") {
    pool_options o = small(4);
    o.breaker_threshold = 0; // no breaker: the backoff alone must hold the line
    o.backoff_initial = 50ms;
    o.backoff_max = 1s;
    o.acquire_timeout = 3s;
    pool_harness h(o);
    h.server->fail_next = 1000;
    h.server->fail_errno = 1040;
    h.server->fail_class = error_class::server_full;

    for (int i = 0; i < 4; ++i)
        h.acquire();
    for (int ms = 0; ms <= 3000; ++ms) {
        h.settle();
        fake_clock::advance(1ms);
    }
    h.settle();
    for (auto& r : h.requests) {
        REQUIRE(r->done);
        CHECK(r->ec == client_errc::pool_exhausted);
        CHECK(r->diag.error_class() == error_class::server_full);
        CHECK(r->diag.server_message() == "Too many connections");
        CHECK(contains(r->diag.client_message(),
                       "no connection within 3.0 s (acquire_timeout) because connecting to the "
                       "server fails; last connect error: cannot connect to fake"));
    }
    // Without backoff, 1 ms steps would allow thousands of attempts.
    CHECK(h.server->connects <= 30);
    CHECK(h.server->connects >= 4);
}

TEST_CASE("a full server never fails requests that the pool's own connections can serve") {
    // Several programs share a server with a small max_connections: this pool holds one
    // connection and cannot open more. Its waiters wait for that one, whatever the connects say.
    pool_options o = small(4);
    o.breaker_threshold = 2;
    o.backoff_initial = 5ms;
    o.backoff_max = 20ms;
    o.acquire_timeout = 10s;
    pool_harness h(o);
    auto& first = h.acquire();
    h.settle();
    REQUIRE(first.done);
    REQUIRE_FALSE(first.ec);
    h.server->fail_next = 1000000;
    h.server->fail_errno = 1040;
    h.server->fail_class = error_class::server_full;
    for (int i = 0; i < 20; ++i)
        h.acquire();
    // Each holder keeps its connection 3 ms, then returns it.
    first.conn.release();
    for (int ms = 0; ms < 2000; ++ms) {
        h.settle();
        for (auto& r : h.requests)
            if (r->done && r->conn && ms % 3 == 0)
                r->conn.release();
        fake_clock::advance(1ms);
    }
    h.settle();
    for (auto& r : h.requests) {
        REQUIRE(r->done);
        CHECK_FALSE(r->ec);
    }
    CHECK(h.server->connects > 3); // it kept trying to grow, within its backoff
    CHECK_FALSE(h.pool.metrics().breaker_open);
    CHECK(h.pool.metrics().breaker_rejections == 0);
}

TEST_CASE("the breaker fails requests at once only when the pool has nothing to give") {
    pool_options o = small(4);
    o.breaker_threshold = 2;
    o.backoff_initial = 100ms;
    o.backoff_max = 100ms;
    o.acquire_timeout = 10s;
    pool_harness h(o);
    auto& holder = h.acquire();
    h.settle();
    REQUIRE_FALSE(holder.ec);
    h.server->fail_next = 1000000; // the server goes down: connects fail (2003)

    // The breaker opens, but the pool holds a leased connection: waiters wait for it.
    auto& waiter = h.acquire();
    for (int ms = 0; ms < 500; ++ms) {
        h.settle();
        fake_clock::advance(1ms);
    }
    CHECK(h.pool.metrics().breaker_open);
    CHECK_FALSE(waiter.done);
    holder.conn.release();
    h.settle();
    REQUIRE(waiter.done);
    CHECK_FALSE(waiter.ec);
    CHECK(waiter.conn.sequence() == 1); // the connection the holder gave back

    // Once its last connection is gone, the pool has nothing to give: waiters already queued
    // and new requests fail at once, saying the server is down.
    auto& queued = h.acquire();
    h.deliver();
    CHECK_FALSE(queued.done);
    waiter.conn.discard(error_class::connection_lost);
    h.settle();
    REQUIRE(queued.done);
    CHECK(queued.ec == client_errc::server_unavailable);
    auto& late = h.acquire();
    h.deliver();
    REQUIRE(late.done);
    CHECK(late.ec == client_errc::server_unavailable);
    CHECK(contains(late.diag.client_message(), "connect attempts failed"));
}

TEST_CASE("a check the server does not answer is abandoned after check_timeout, and said so") {
    pool_options o = small(2);
    o.check_timeout = 2s;
    o.acquire_timeout = 1500ms;
    pool_harness h(o);
    auto& first = h.acquire();
    h.settle();
    REQUIRE_FALSE(first.ec);

    // The server stops answering; the returned connection's reset blocks, on a thread of its
    // own as it would on a pool thread.
    h.server->silent = true;
    first.conn.release();
    REQUIRE(h.queued_jobs() == 1);
    std::thread pool_thread([&] { h.run_one_job(); });
    auto& waiter = h.acquire();
    h.deliver();

    // The waiter's deadline comes first: it hears that the server does not answer, not that
    // the pool is exhausted or leaking.
    fake_clock::advance(1500ms);
    h.run_timers();
    h.deliver();
    REQUIRE(waiter.done);
    CHECK(waiter.ec == client_errc::pool_exhausted);
    CHECK(waiter.diag.error_class() == error_class::timeout);
    CHECK(contains(waiter.diag.client_message(),
                   "the server has not answered the pool's checks for 1.5 s"));
    CHECK(contains(waiter.diag.client_message(), "1 being checked"));
    CHECK_FALSE(contains(waiter.diag.client_message(), "leak"));

    // At check_timeout the pool interrupts the reset; the connection is closed, not reused.
    fake_clock::advance(500ms);
    h.run_timers();
    pool_thread.join();
    CHECK(h.server->interrupted.count(1) == 1);
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::unanswered)] == 1);
    h.settle();
    CHECK(h.server->open_count() == 0);

    // The server answers again: new connections serve.
    h.server->silent = false;
    auto& after = h.acquire();
    h.settle();
    REQUIRE(after.done);
    CHECK_FALSE(after.ec);
    CHECK(after.conn.sequence() == 2);
}

TEST_CASE("a leak report without on_leak reaches on_notice") {
    pool_options o = small(2);
    o.leak_threshold = 5s;
    std::vector<pool_notice> notices;
    o.on_notice = [&](const pool_notice& n) { notices.push_back(n); };
    pool_harness h(o);
    auto& r = h.acquire();
    h.settle();
    fake_clock::advance(5s);
    h.settle();
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].what == pool_notice::kind::leak);
    REQUIRE(notices[0].leak);
    CHECK(notices[0].leak->held_for == 5s);
    CHECK(contains(notices[0].message, "held for 5000 ms (leak_threshold), acquired at"));
    CHECK(contains(notices[0].message, "test_pool.cpp"));
    r.conn.release();
}

TEST_CASE("two connect timeouts: the pool's wins, and the program hears it once") {
    std::vector<pool_notice> notices;
    const auto url = "mysql://app:Secret-9f3a@db.example.com/clinic?connect-timeout=10";
    pool_options o;
    o.connect_timeout = 5s;
    o.on_notice = [&](const pool_notice& n) { notices.push_back(n); };
    {
        cloudmysql::pool p(connect_options::from_url(url), o); // opens nothing yet
    }
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].what == pool_notice::kind::settings);
    CHECK(contains(notices[0].message, "pool_options::connect_timeout (5 s) replaces"));
    CHECK(contains(notices[0].message, "connect_timeout (10 s"));
    CHECK_FALSE(contains(notices[0].message, "Secret"));

    // One place only: nothing to say.
    notices.clear();
    { cloudmysql::pool p(connect_options::from_url(url), {.on_notice = o.on_notice}); }
    { cloudmysql::pool p(connect_options::from_url("mysql://app@db.example.com/clinic"), o); }
    CHECK(notices.empty());
    o.connect_timeout = 0s;
    CHECK_THROWS_AS(cloudmysql::pool(connect_options::from_url(url), o), std::invalid_argument);
}

TEST_CASE("close() fails the waiters, closes idle connections and leased ones on return") {
    pool_harness h(small(1));
    auto& holder = h.acquire();
    auto& waiter = h.acquire();
    h.settle();
    h.pool.close();
    h.settle();
    REQUIRE(waiter.done);
    CHECK(waiter.ec == client_errc::pool_closed);
    CHECK(h.server->open_count() == 1); // still leased
    holder.conn.release();
    h.settle();
    CHECK(h.server->open_count() == 0);
    CHECK(h.pool.metrics().closed[static_cast<std::size_t>(close_reason::pool_closed)] == 1);
    auto& late = h.acquire();
    h.deliver();
    CHECK(late.ec == client_errc::pool_closed);
}

TEST_CASE("a lease held past leak_threshold is reported once, with where it was acquired") {
    pool_options o = small(2);
    o.leak_threshold = 5s;
    std::vector<leak_report> reports;
    o.on_leak = [&](const leak_report& r) { reports.push_back(r); };
    pool_harness h(o);
    const auto line = std::source_location::current().line() + 1;
    auto& r = h.acquire();
    h.settle();
    fake_clock::advance(5s);
    h.settle();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].acquired_at.line() == line);
    CHECK(contains(reports[0].acquired_at.file_name(), "test_pool.cpp"));
    CHECK(reports[0].held_for == 5s);
    fake_clock::advance(1h);
    h.settle();
    CHECK(reports.size() == 1);
    CHECK(h.pool.metrics().leaks_reported == 1);
    r.conn.release();
}

TEST_CASE("warm_up opens min_idle connections, max_connecting at a time") {
    pool_options o = small(8);
    o.min_idle = 5;
    o.max_connecting = 2;
    pool_harness h(o);
    h.run_timers(); // the pool starts filling on its own
    CHECK(h.pool.metrics().opening == 2);
    CHECK(h.queued_jobs() == 2);
    std::size_t most_opening = 0;
    while (h.run_one_job())
        most_opening = std::max(most_opening, h.pool.metrics().opening);
    CHECK(most_opening <= 2);
    CHECK(h.pool.metrics().idle == 5);
    CHECK_NOTHROW(h.pool.warm_up());

    pool_harness failing(o);
    failing.server->fail_next = 1;
    CHECK_THROWS_WITH_AS(failing.pool.warm_up(), doctest::Contains("injected failure"),
                         database_error);
}

TEST_CASE("a synchronous acquire works on a manually driven pool when it can complete") {
    pool_harness h(small(1));
    auto c = h.pool.acquire();
    CHECK(c.valid());
    error_code ec;
    diagnostics diag;
    CHECK_THROWS_AS(h.pool.acquire(ec, diag), std::logic_error); // nothing could free one
}

TEST_CASE("the metrics read as Prometheus text with OpenTelemetry names") {
    pool_harness h(small(3));
    h.acquire();
    h.settle();
    const std::string text = h.pool.prometheus_text("orders");
    CHECK(contains(text, "db_client_connection_count{pool_name=\"orders\",state=\"used\"} 1\n"));
    CHECK(contains(text, "db_client_connection_count{pool_name=\"orders\",state=\"idle\"} 0\n"));
    CHECK(contains(text, "db_client_connection_max{pool_name=\"orders\"} 3\n"));
    CHECK(contains(text, "# TYPE db_client_connection_wait_time_seconds histogram\n"));
    CHECK(contains(text, "db_client_connection_wait_time_seconds_count{pool_name=\"orders\"} 1\n"));
    CHECK(contains(text,
                   "db_client_connection_closed_total{pool_name=\"orders\",reason=\"broken\"} 0"));
    CHECK(contains(prometheus_text(pool_metrics{}, "a\"b"), "pool_name=\"a\\\"b\""));
}
