// Thousands of random interleavings of acquire, release, discard, connect failures, server
// kills, clock steps, jobs and timers; the pool's invariants are checked after every step.
#include "fake_pool.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>

using namespace cloudmysql;
using namespace std::chrono_literals;
using test::fake_clock;
using test::fake_server;
using test::manual_pool;
using test::pool_harness;

namespace {

struct run_summary {
    int grants = 0;
    int failures = 0;
    int connects = 0;
};

run_summary random_run(std::uint64_t seed, int steps) {
    pool_options o;
    o.max_size = 4;
    o.min_idle = seed % 3;
    o.max_connecting = 2;
    o.acquire_timeout = 1s;
    o.validate_after_idle = 100ms;
    o.idle_timeout = 5s;
    o.max_lifetime = 20s;
    o.max_lifetime_jitter = 2s;
    o.keepalive_interval = 3s;
    o.backoff_initial = 10ms;
    o.backoff_max = 200ms;
    o.breaker_threshold = 4;
    o.random_seed = seed;

    pool_harness h(o);
    std::mt19937_64 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };

    std::vector<pool_harness::request*> held;          // granted and not yet given back
    std::set<std::uint64_t> resolved;                  // tickets completed, granted or failed
    std::vector<manual_pool::pooled_connection> taken; // by try_acquire (the fast path)
    run_summary summary;

    std::size_t first_waiting = 0; // the oldest request not yet completed
    // Checks completions the moment they are delivered.
    auto collect = [&] {
        while (first_waiting < h.requests.size() && h.requests[first_waiting]->done)
            ++first_waiting;
        for (auto& r : h.requests) {
            if (!r->done || resolved.count(r->ticket) != 0)
                continue;
            resolved.insert(r->ticket);
            if (r->ec) {
                ++summary.failures;
                CHECK_FALSE(r->conn.valid());
                continue;
            }
            ++summary.grants;
            REQUIRE(r->conn.valid());
            // First come, first served: nobody who asked earlier is still waiting.
            CHECK(r->ticket < first_waiting);
            // No dead or closed connection is ever handed out, nor one with what an earlier
            // holder left in its session.
            CHECK(h.server->state_of(r->conn->id) == fake_server::conn_state::open);
            CHECK(r->conn->session_state == 0);
            held.push_back(r.get());
        }
    };
    auto check_invariants = [&] {
        const auto m = h.pool.metrics();
        // The cap: connections the server sees, plus connects in flight.
        CHECK(static_cast<std::size_t>(h.server->open_count()) + m.opening <= o.max_size);
        CHECK(h.server->peak_open <= static_cast<int>(o.max_size));
        // No leased connection is closed under its holder, nor leased twice.
        std::set<int> leased_ids;
        for (auto* r : held) {
            CHECK(h.server->state_of(r->conn->id) != fake_server::conn_state::closed);
            CHECK(leased_ids.insert(r->conn->id).second);
        }
        for (auto& c : taken) {
            CHECK(h.server->state_of(c->id) != fake_server::conn_state::closed);
            CHECK(leased_ids.insert(c->id).second);
        }
        CHECK(m.in_use >= leased_ids.size()); // more: granted, not yet delivered
        CHECK(m.opening <= o.max_connecting);
    };

    for (int step = 0; step < steps; ++step) {
        switch (pick(12)) {
        case 0:
            h.acquire();
            break;
        case 1: // a release more often than an acquire, so that the pool is not always full
            if (!held.empty()) {
                held.front()->conn->session_state = 1;  // the holder left something...
                held.front()->conn->needs_reset = true; // ...and the connection knows
                held.front()->conn.release();
                held.erase(held.begin());
            }
            break;
        case 2:
            if (!held.empty()) {
                const auto i = static_cast<std::size_t>(pick(static_cast<int>(held.size())));
                held[i]->conn->session_state = 1;
                held[i]->conn->needs_reset = true;
                held[i]->conn.release();
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
            }
            break;
        case 3:
            if (!held.empty()) {
                const auto i = static_cast<std::size_t>(pick(static_cast<int>(held.size())));
                const error_class why[] = {error_class::other, error_class::connection_lost,
                                           error_class::read_only};
                held[i]->conn.discard(why[pick(3)]);
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
            }
            break;
        case 4:
            if (pick(10) == 0) {
                std::lock_guard lock(h.server->m);
                h.server->fail_next = 1 + pick(5);
                h.server->fail_errno = pick(2) == 0 ? 2003 : 1040;
                h.server->fail_class = h.server->fail_errno == 1040 ? error_class::server_full
                                                                    : error_class::unreachable;
            }
            break;
        case 5:
            if (pick(6) == 0) {
                // The server drops every connection nobody holds, and time passes beyond
                // validate_after_idle (as when a server kills sessions idle too long).
                h.deliver();
                collect();
                std::set<int> held_ids;
                for (auto* r : held)
                    held_ids.insert(r->conn->id);
                for (auto& c : taken)
                    held_ids.insert(c->id);
                for (int id = 1; id <= h.server->next_id; ++id)
                    if (held_ids.count(id) == 0)
                        h.server->kill(id);
                fake_clock::advance(o.validate_after_idle + 1ms);
            }
            break;
        case 6:
            fake_clock::advance(std::chrono::milliseconds(pick(400)));
            break;
        case 7:
            h.run_one_job();
            break;
        case 8:
            h.run_timers();
            break;
        case 9:
            h.deliver();
            break;
        case 10: { // the fast path: a lease at once, never past a waiting request
            const bool others_wait = h.pool.metrics().pending_requests > 0;
            if (auto c = h.pool.try_acquire()) {
                CHECK_FALSE(others_wait);
                CHECK(h.server->state_of((*c)->id) == fake_server::conn_state::open);
                CHECK((*c)->session_state == 0);
                taken.push_back(std::move(*c));
            }
            break;
        }
        case 11: // a clean return (the session holds nothing: no reset), of either kind
            if (!taken.empty() && pick(2) == 0) {
                taken.back()->needs_reset = false;
                taken.pop_back();
            } else if (!held.empty()) {
                const auto i = static_cast<std::size_t>(pick(static_cast<int>(held.size())));
                held[i]->conn->needs_reset = false;
                held[i]->conn.release();
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
            }
            break;
        }
        collect();
        check_invariants();
    }

    // Wind down: everything returns, every connection closes.
    h.settle();
    collect();
    for (auto* r : held)
        r->conn.release();
    held.clear();
    taken.clear();
    h.pool.close();
    h.settle();
    CHECK(h.server->open_count() == 0);
    summary.connects = h.server->connects;
    return summary;
}

} // namespace

TEST_CASE("random interleavings keep the cap, the order and the health of handed-out "
          "connections") {
    run_summary total;
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        CAPTURE(seed);
        const auto s = random_run(seed, 6000);
        total.grants += s.grants;
        total.failures += s.failures;
        total.connects += s.connects;
    }
    // The runs exercised both outcomes, not just one.
    CHECK(total.grants > 1000);
    CHECK(total.failures > 10);
    MESSAGE("grants: ", total.grants, ", failures: ", total.failures,
            ", connects: ", total.connects);
}
