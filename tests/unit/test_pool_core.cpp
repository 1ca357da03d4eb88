// The pool's state machine alone (detail::pool_core): one test per transition, no threads, no
// connector. Each test feeds the core what happened and checks the I/O it asks for and the
// requests it settles.
#include "fake_pool.hpp"

#include <cloudmysql/detail/pool_core.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace cloudmysql;
using namespace std::chrono_literals;
using detail::io_kind;
using detail::slot_state;

namespace {

using clock_type = test::fake_clock;
using core = detail::pool_core<int, clock_type, int>; // a connection is an int, a waiter too
using time_point = clock_type::time_point;
using slot = core::slot;

pool_options options(std::size_t max_size = 2) {
    pool_options o;
    o.max_size = max_size;
    o.max_connecting = max_size;
    o.keepalive_interval = 0ms;
    o.idle_timeout = 0ms;
    o.max_lifetime = 0ms;
    o.max_lifetime_jitter = 0ms;
    o.random_seed = 7;
    return o;
}

const time_point t0 = time_point(std::chrono::hours(2));
const std::source_location here = std::source_location::current();

// A connection leased to a request, made through the transitions themselves (call it while
// no connection is idle: an idle one would serve the request instead).
slot* leased_connection(core& c, time_point now, int id) {
    core::effects fx;
    c.enqueue(now, here, 100 + id, fx);
    REQUIRE(fx.io.size() == 1);
    REQUIRE(fx.io[0].what == io_kind::connect);
    core::effects done;
    c.on_connect_done(now, fx.io[0].started, id, {}, {}, done);
    REQUIRE(done.grants.size() == 1);
    slot* s = done.grants[0].granted;
    REQUIRE(s != nullptr);
    CHECK(s->conn == id);
    CHECK(s->state == slot_state::leased);
    return s;
}

// One idle connection, returned clean.
slot* idle_connection(core& c, time_point now, int id = 1) {
    slot* s = leased_connection(c, now, id);
    core::effects back;
    c.on_return(now, s, false, error_class::none, error_class::none, false, back);
    REQUIRE(s->state == slot_state::idle);
    return s;
}

} // namespace

TEST_CASE("core: try_lease takes the most recently used idle connection, never past a waiter") {
    core c(options(2));
    core::effects fx;
    CHECK(c.try_lease(t0, here, fx) == nullptr); // nothing idle: nothing to lease...
    CHECK(fx.io.empty());                        // ...and min_idle 0 asks for no connect

    slot* s = idle_connection(c, t0);
    fx = {};
    CHECK(c.try_lease(t0 + 1ms, here, fx) == s);
    CHECK(s->state == slot_state::leased);
    CHECK(c.count(slot_state::leased) == 1);
    CHECK(fx.empty());

    // Sat idle validate_after_idle: a check means waiting, not for try_lease.
    core::effects back;
    c.on_return(t0 + 2ms, s, false, error_class::none, error_class::none, false, back);
    fx = {};
    CHECK(c.try_lease(t0 + 2ms + c.options().validate_after_idle, here, fx) == nullptr);
    CHECK(s->state == slot_state::idle);
}

TEST_CASE("core: enqueue queues a request, asks for a connect, and fails at once when closed") {
    core c(options(1));
    core::effects fx;
    c.enqueue(t0, here, 1, fx);
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::connect);
    CHECK(c.opening() == 1);
    fx = {};
    c.enqueue(t0, here, 2, fx); // the cap: max_size 1 and one connect under way
    CHECK(fx.io.empty());
    CHECK(c.waiting() == 2);

    core::effects closing;
    c.close(closing);
    REQUIRE(closing.grants.size() == 2);
    CHECK(closing.grants[0].waiter == 1); // in the order they came
    CHECK(closing.grants[1].waiter == 2);
    fx = {};
    c.enqueue(t0, here, 3, fx);
    REQUIRE(fx.grants.size() == 1);
    CHECK(fx.grants[0].ec == make_error_code(client_errc::pool_closed));
}

TEST_CASE("core: on_connect_done serves the first waiter, or on failure backs off and may open "
          "the breaker") {
    auto o = options(2);
    o.breaker_threshold = 1;
    core c(o);
    core::effects fx;
    c.enqueue(t0, here, 1, fx);
    c.enqueue(t0, here, 2, fx);
    REQUIRE(fx.io.size() == 2);

    core::effects ok;
    c.on_connect_done(t0 + 1ms, fx.io[0].started, 10, {}, {}, ok);
    REQUIRE(ok.grants.size() == 1);
    CHECK(ok.grants[0].waiter == 1);
    CHECK(ok.grants[0].granted->conn == 10);
    CHECK(ok.grants[0].granted->sequence == 1);

    core::effects failed;
    c.on_connect_done(t0 + 2ms, fx.io[1].started, 0, make_mysql_error_code(2003),
                      diagnostics("cannot connect", {}, {}, error_class::unreachable), failed);
    // A connection is still leased: the waiter waits for it, breaker or not.
    CHECK(c.breaker_open());
    CHECK(failed.grants.empty());
    CHECK(c.waiting() == 1);
    CHECK(c.metrics().connect_failures == 1);
}

TEST_CASE("core: on_check_done makes a good connection serve or idle, and closes a failed one") {
    auto o = options(2);
    o.validate_after_idle = 100ms;
    core c(o);
    slot* s = idle_connection(c, t0);
    core::effects fx;
    c.enqueue(t0 + 1s, here, 1, fx); // s sat idle 1 s: pinged first
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::ping);
    CHECK(s->state == slot_state::validating);

    core::effects good;
    c.on_check_done(t0 + 1s, s, {}, {}, good);
    REQUIRE(good.grants.size() == 1);
    CHECK(good.grants[0].granted == s);
    CHECK(s->state == slot_state::leased);

    // The holder leaves state behind: reset on return; a failed reset closes it.
    core::effects back;
    c.on_return(t0 + 2s, s, false, error_class::none, error_class::none, true, back);
    REQUIRE(back.io.size() == 1);
    CHECK(back.io[0].what == io_kind::reset);
    CHECK(s->state == slot_state::resetting);
    core::effects bad;
    c.on_check_done(t0 + 2s, s, make_mysql_error_code(2013),
                    diagnostics("lost", {}, {}, error_class::connection_lost), bad);
    REQUIRE(bad.io.size() == 1);
    CHECK(bad.io[0].what == io_kind::close);
    CHECK(s->state == slot_state::closing);
    CHECK(c.metrics().closed[static_cast<std::size_t>(close_reason::broken)] == 1);
}

TEST_CASE("core: on_return goes idle, resets, closes or serves, by what the holder left") {
    core c(options(2));
    slot* s = idle_connection(c, t0);

    SUBCASE("clean: idle at once, no I/O") {
        core::effects fx;
        REQUIRE(c.try_lease(t0, here, fx) == s);
        c.on_return(t0, s, false, error_class::none, error_class::none, false, fx);
        CHECK(fx.empty());
        CHECK(s->state == slot_state::idle);
    }
    SUBCASE("clean with a waiter: straight to it") {
        core::effects fx;
        REQUIRE(c.try_lease(t0, here, fx) == s);
        c.enqueue(t0, here, 5, fx);
        fx = {};
        c.on_return(t0, s, false, error_class::none, error_class::none, false, fx);
        REQUIRE(fx.grants.size() == 1);
        CHECK(fx.grants[0].waiter == 5);
        CHECK(s->state == slot_state::leased);
    }
    SUBCASE("a fault the connector saw: closed, and older ones retired") {
        slot* older = s;
        core::effects fx;
        REQUIRE(c.try_lease(t0, here, fx) == older);
        slot* newer = leased_connection(c, t0, 2);
        c.on_return(t0, older, false, error_class::none, error_class::none, false, fx);
        fx = {};
        c.on_return(t0, newer, false, error_class::none, error_class::read_only, false, fx);
        CHECK(older->state == slot_state::closing);
        CHECK(newer->state == slot_state::closing);
        CHECK(fx.io.size() == 2);
    }
}

TEST_CASE("core: on_closed frees the place, and a waiter gets a new connection") {
    core c(options(1));
    slot* s = idle_connection(c, t0);
    core::effects fx;
    REQUIRE(c.try_lease(t0, here, fx) == s);
    c.enqueue(t0, here, 1, fx);
    CHECK(fx.io.empty()); // the cap: the one place is taken
    c.on_return(t0, s, true, error_class::other, error_class::none, false, fx);
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::close);
    fx = {};
    c.on_closed(t0, s, fx);
    CHECK(c.open_slots() == 0);
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::connect);
}

TEST_CASE("core: on_timer expires waiters, retires idle ones, keeps alive, reports leaks and "
          "interrupts silent checks") {
    auto o = options(3);
    o.idle_timeout = 10s;
    o.keepalive_interval = 5s;
    o.leak_threshold = 2s;
    o.check_timeout = 1s;
    core c(o);
    slot* a = leased_connection(c, t0, 1);
    slot* leased = leased_connection(c, t0, 2);
    core::effects fx;
    c.on_return(t0, a, false, error_class::none, error_class::none, false, fx);

    fx = {};
    c.on_timer(t0 + 3s, fx);
    REQUIRE(fx.leaks.size() == 1);
    CHECK(fx.leaks[0].connection_sequence == leased->sequence);

    fx = {};
    c.on_timer(t0 + 5s, fx); // keepalive_interval for `a`
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::ping);
    CHECK(a->state == slot_state::keepalive);

    fx = {};
    c.on_timer(t0 + 6s, fx); // the ping had check_timeout to answer
    REQUIRE(fx.io.size() == 1);
    CHECK(fx.io[0].what == io_kind::interrupt);
    CHECK(fx.io[0].target == a);
    fx = {};
    c.on_check_done(t0 + 6s, a, {}, {}, fx); // whatever it says now: closed
    CHECK(a->state == slot_state::closing);
    CHECK(c.metrics().closed[static_cast<std::size_t>(close_reason::unanswered)] == 1);

    // A waiter past acquire_timeout fails with the figures.
    fx = {};
    c.enqueue(t0 + 7s, here, 9, fx);
    fx = {};
    c.on_timer(t0 + 7s + o.acquire_timeout, fx);
    REQUIRE(fx.grants.size() == 1);
    CHECK(fx.grants[0].ec == make_error_code(client_errc::pool_exhausted));
    CHECK(fx.grants[0].diag.client_message().find("acquire_timeout") != std::string::npos);
}

TEST_CASE("core: fill opens up to min_idle, max_connecting at a time") {
    auto o = options(4);
    o.min_idle = 3;
    o.max_connecting = 2;
    core c(o);
    core::effects fx;
    c.fill(t0, fx);
    CHECK(fx.io.size() == 2);
    CHECK(c.opening() == 2);
}

TEST_CASE("core: close fails waiters and closes idle connections; leased ones close on return") {
    core c(options(2));
    slot* held = leased_connection(c, t0, 1);
    slot* idle = idle_connection(c, t0, 2);
    core::effects fx;
    c.close(fx);
    CHECK(idle->state == slot_state::closing);
    CHECK(held->state == slot_state::leased);
    fx = {};
    c.on_return(t0, held, false, error_class::none, error_class::none, false, fx);
    CHECK(held->state == slot_state::closing);
    CHECK(c.metrics().closed[static_cast<std::size_t>(close_reason::pool_closed)] == 2);
}

TEST_CASE("core: next_deadline is the earliest thing on_timer() would act on") {
    auto o = options(2);
    o.idle_timeout = 10s;
    o.keepalive_interval = 4s;
    o.leak_threshold = 3s;
    o.acquire_timeout = 10s;
    core c(o);
    CHECK(c.next_deadline(t0) == time_point::max()); // nothing to do, ever
    slot* s = idle_connection(c, t0);
    // Idle, min_idle 0: keepalive first (idle_timeout later).
    CHECK(c.next_deadline(t0) == t0 + 4s);
    core::effects fx;
    REQUIRE(c.try_lease(t0 + 1ms, here, fx) == s);
    CHECK(c.next_deadline(t0 + 1ms) == t0 + 1ms + 3s); // the leak threshold
    c.enqueue(t0 + 1ms, here, 1, fx);
    CHECK(c.next_deadline(t0 + 1ms) == t0 + 1ms + 3s); // before the waiter's acquire_timeout
}
