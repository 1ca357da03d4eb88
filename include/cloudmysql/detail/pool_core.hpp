// The pool's decisions, as a state machine with no locks, no threads and no I/O: each
// transition takes the time and what just happened, changes the pool's bookkeeping, and returns
// the I/O to do (connect, ping, reset, close, interrupt), the requests it settled and the leaks
// it found. pool_runtime (pool_runtime.hpp) serializes the calls and runs that I/O on threads or
// an executor; the unit tests call the transitions directly.
#pragma once

#include <cloudmysql/detail/pool_messages.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/pool_metrics.hpp>
#include <cloudmysql/pool_options.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <random>
#include <set>
#include <source_location>
#include <utility>
#include <vector>

namespace cloudmysql::detail {

/// Where one open connection of the pool is. A connect under way has no slot yet (the pool
/// counts it in opening()); a slot exists from a successful connect until its close ends.
enum class slot_state {
    idle,       ///< on the idle stack, ready to lease (after a check if it sat idle too long)
    leased,     ///< a caller holds it through a pooled_connection
    validating, ///< pinged before it serves a waiter: it sat idle validate_after_idle or longer
    keepalive,  ///< pinged while idle, so that the server and the network keep the session
    resetting,  ///< returned with a session that may hold state: being reset
    closing,    ///< being closed: leaves the pool when the close ends (on_closed)
};
inline constexpr std::size_t slot_state_count = 6;

/// The I/O one transition asks for.
enum class io_kind {
    connect,   ///< open a new connection, then on_connect_done()
    ping,      ///< ping target (validating or keepalive), then on_check_done()
    reset,     ///< reset target's session, then on_check_done()
    close,     ///< close target, then on_closed()
    interrupt, ///< make the ping or reset blocked on target return now (under the driver's lock)
};

/// One connection and what the pool knows about it.
template <class Connection, class Clock>
struct pool_slot {
    using time_point = typename Clock::time_point;

    Connection conn;
    std::uint64_t sequence = 0; ///< creation order, from 1
    slot_state state = slot_state::idle;
    time_point created_at{};
    time_point last_used{};                    ///< when it last went idle or passed a check
    time_point expires_at = time_point::max(); ///< max_lifetime, jittered
    time_point leased_at{};
    std::source_location acquired_at;
    bool leak_reported = false;
    // A ping or reset of the pool's own: since when, until when the server may take to
    // answer (check_timeout), and whether the pool gave up on it (the session is unknown).
    time_point check_started_at{};
    time_point check_deadline = time_point::max();
    bool interrupted = false;
    typename std::list<pool_slot>::iterator self;
};

template <class Connection, class Clock, class Waiter>
class pool_core {
public:
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    using slot = pool_slot<Connection, Clock>;

    struct io_request {
        io_kind what;
        slot* target = nullptr; ///< nullptr for connect
        time_point started{};   ///< connect: when it was asked for (pass to on_connect_done)
    };

    /// A request settled: a connection (granted, now leased to it) or an error.
    struct grant {
        Waiter waiter;
        slot* granted = nullptr;
        error_code ec;
        diagnostics diag;
    };

    /// What a transition asks the driver to do, in the order decided.
    struct effects {
        std::vector<io_request> io;
        std::vector<grant> grants;
        std::vector<leak_report> leaks;
        bool empty() const noexcept { return io.empty() && grants.empty() && leaks.empty(); }
    };

    /// Throws std::invalid_argument for options outside their limits.
    explicit pool_core(pool_options options) : options_(std::move(options)) {
        options_.validate();
        max_connecting_ = std::min(options_.max_connecting, options_.max_size);
        rng_.seed(options_.random_seed ? *options_.random_seed : std::random_device{}());
    }

    const pool_options& options() const noexcept { return options_; }

    // ---- transitions ------------------------------------------------------------------------

    /// A request that must not wait: an idle connection that needs no check, leased to the
    /// caller, or nullptr (then connections may start opening for later requests).
    slot* try_lease(time_point now, std::source_location where, effects& fx) {
        if (closed_ || !waiters_.empty())
            return nullptr;
        while (!idle_.empty()) {
            slot* s = idle_.back();
            if (auto reason = retire_reason(*s, now)) {
                idle_.pop_back();
                begin_close(s, *reason, fx);
                continue;
            }
            if (needs_validation(*s, now))
                break; // a check means waiting
            idle_.pop_back();
            lease(s, now, where, now);
            return s;
        }
        dispatch(now, fx);
        return nullptr;
    }

    /// A request that may wait up to acquire_timeout: queued behind the earlier ones, settled
    /// at once when the pool is closed or the breaker is open.
    void enqueue(time_point now, std::source_location where, Waiter w, effects& fx) {
        if (closed_) {
            fx.grants.push_back({std::move(w), nullptr, make_error_code(client_errc::pool_closed),
                                 pool_messages::pool_closed()});
        } else if (breaker_blocks(now)) {
            ++metrics_.breaker_rejections;
            fx.grants.push_back({std::move(w), nullptr,
                                 make_error_code(client_errc::server_unavailable),
                                 breaker_diagnostics(now)});
        } else {
            waiters_.push_back(
                {now, now + std::chrono::duration_cast<duration>(options_.acquire_timeout), where,
                 std::move(w)});
            dispatch(now, fx);
        }
    }

    /// A connect asked for at `started` ended: a new idle connection (or one that serves the
    /// first waiter), or a failure that moves the backoff and maybe opens the breaker.
    void on_connect_done(time_point now, time_point started, Connection conn, error_code ec,
                         diagnostics diag, effects& fx) {
        --opening_;
        connects_started_.erase(connects_started_.find(started));
        if (ec) {
            connect_failed(ec, std::move(diag), now, fx);
        } else {
            consecutive_failures_ = 0;
            breaker_failures_ = 0;
            breaker_open_ = false;
            next_connect_at_ = time_point::min();
            ++metrics_.created;
            metrics_.create_time.record(now - started);
            slot& s = slots_.emplace_back();
            s.self = std::prev(slots_.end());
            s.conn = std::move(conn);
            s.sequence = ++next_sequence_;
            s.created_at = now;
            s.last_used = now;
            s.expires_at = lifetime_end(now);
            ++count_[index(slot_state::idle)]; // set_state() below counts it out again
            if (closed_)
                begin_close(&s, close_reason::pool_closed, fx);
            else
                make_idle(&s);
        }
        dispatch(now, fx);
    }

    /// A ping or reset of the pool's own ended: the connection serves a waiter or goes idle,
    /// or it closes (and if it died of a failover, the older ones go with it).
    void on_check_done(time_point now, slot* s, const error_code& ec, const diagnostics& diag,
                       effects& fx) {
        s->check_deadline = time_point::max();
        if (s->interrupted) {
            // Abandoned after check_timeout, whatever came back since: the session's state is
            // unknown. Older connections stay; each has its own deadline.
            last_unanswered_at_ = now;
            begin_close(s, close_reason::unanswered, fx);
        } else if (ec) {
            retire_older_if_failover(*s, diag.error_class(), fx);
            begin_close(s, close_reason::broken, fx);
        } else if (closed_) {
            begin_close(s, close_reason::pool_closed, fx);
        } else if (auto reason = retire_reason(*s, now)) {
            begin_close(s, *reason, fx);
        } else {
            s->last_used = now;
            serve_or_idle(s, now, fx);
        }
        dispatch(now, fx);
    }

    /// A lease ended. `discard` and `reason` come from the holder (pooled_connection::discard);
    /// `fault` is what the connector saw fail on it, `needs_reset` whether its session may hold
    /// something the holder left.
    void on_return(time_point now, slot* s, bool discard, error_class reason, error_class fault,
                   bool needs_reset, effects& fx) {
        metrics_.use_time.record(now - s->leased_at);
        // A session that was lost or turned read-only goes, also when the user simply returns
        // it: it points at a server that no longer serves writes.
        if (!discard && reason == error_class::none) {
            reason = fault;
            discard = reason != error_class::none;
        }
        if (closed_) {
            begin_close(s, close_reason::pool_closed, fx);
        } else if (discard) {
            retire_older_if_failover(*s, reason, fx);
            begin_close(s, close_reason::discarded, fx);
        } else if (auto why = retire_reason(*s, now)) {
            begin_close(s, *why, fx);
        } else if (!needs_reset) {
            // Nothing to undo: available now, without I/O.
            s->last_used = now;
            serve_or_idle(s, now, fx);
        } else {
            begin_check(s, slot_state::resetting, now, fx);
        }
        dispatch(now, fx);
    }

    /// A close asked for by begin_close() ended: the slot leaves the pool, and its place may
    /// serve a waiter.
    void on_closed(time_point now, slot* s, effects& fx) {
        --count_[index(slot_state::closing)];
        slots_.erase(s->self);
        dispatch(now, fx);
    }

    /// Time passed (call it at next_deadline(), or any time): waiters past their deadline
    /// fail, idle connections are retired, shrunk to min_idle and kept alive, leaks are
    /// reported, checks past check_timeout are interrupted, and connects start when due.
    void on_timer(time_point now, effects& fx) {
        for (auto it = waiters_.begin(); it != waiters_.end();) {
            if (it->deadline > now) {
                ++it;
                continue;
            }
            waiter w = std::move(*it);
            it = waiters_.erase(it);
            ++metrics_.timeouts;
            auto diag = exhausted_diagnostics(w, now);
            fx.grants.push_back({std::move(w.notify), nullptr,
                                 make_error_code(client_errc::pool_exhausted), std::move(diag)});
        }
        if (!closed_) {
            std::vector<slot*> keep;
            std::size_t idle_count = idle_.size();
            // Oldest-used first (the bottom of the LIFO stack), so that the busiest stay.
            for (slot* s : idle_) {
                const auto idle_for = now - s->last_used;
                if (auto reason = retire_reason(*s, now)) {
                    begin_close(s, *reason, fx);
                    --idle_count;
                } else if (options_.idle_timeout.count() > 0 && idle_for >= options_.idle_timeout &&
                           idle_count > options_.min_idle) {
                    begin_close(s, close_reason::idle_timeout, fx);
                    --idle_count;
                } else if (options_.keepalive_interval.count() > 0 &&
                           idle_for >= options_.keepalive_interval) {
                    begin_check(s, slot_state::keepalive, now, fx);
                } else {
                    keep.push_back(s);
                }
            }
            idle_ = std::move(keep);
            report_leaks(now, fx);
        }
        interrupt_overdue_checks(now, fx);
        dispatch(now, fx);
    }

    // ---- fast paths, beside the transitions ----------------------------------------------
    // The two steps of a cycle that finds nothing to decide: a lease of a connection idle and
    // fresh, a clean return. Each does what its transition would do in that case, without I/O
    // and without dispatch() (nothing it changes can start a connect or fail a request), and
    // declines (nullptr, false) whenever anything else could happen: the caller then takes
    // the transition.

    /// try_lease() when the top of the idle stack is fresh and nobody waits; else nullptr.
    slot* lease_idle(time_point now, std::source_location where) noexcept {
        if (closed_ || !waiters_.empty() || idle_.empty())
            return nullptr;
        slot* s = idle_.back();
        if (retire_reason(*s, now) || needs_validation(*s, now))
            return nullptr;
        idle_.pop_back();
        lease(s, now, where, now);
        return s;
    }

    /// on_return() for a session that needs no reset and saw no fault: idle, or straight to
    /// the first waiter (a grant in `fx`). False when on_return() must decide (the pool is
    /// closed, the connection is due to retire).
    bool return_clean(time_point now, slot* s, effects& fx) {
        if (closed_ || retire_reason(*s, now))
            return false;
        metrics_.use_time.record(now - s->leased_at);
        s->last_used = now;
        serve_or_idle(s, now, fx);
        return true;
    }

    /// Starts what min_idle asks for (warm_up()).
    void fill(time_point now, effects& fx) { dispatch(now, fx); }

    /// Waiters fail with pool_closed, idle connections close, leased and busy ones close when
    /// they come back. Idempotent.
    void close(effects& fx) {
        if (closed_)
            return;
        closed_ = true;
        while (!waiters_.empty()) {
            waiter w = std::move(waiters_.front());
            waiters_.pop_front();
            fx.grants.push_back({std::move(w.notify), nullptr,
                                 make_error_code(client_errc::pool_closed),
                                 pool_messages::pool_closed()});
        }
        for (slot* s : idle_)
            begin_close(s, close_reason::pool_closed, fx);
        idle_.clear();
    }

    // ---- time ---------------------------------------------------------------------------------

    /// The next moment on_timer() has something to do about `s`, or time_point::max().
    /// `may_shrink`: more than min_idle connections are idle, so idle_timeout applies.
    time_point next_deadline(const slot& s, bool may_shrink) const {
        time_point next = time_point::max();
        switch (s.state) {
        case slot_state::idle:
            next = s.expires_at;
            if (options_.idle_timeout.count() > 0 && may_shrink)
                next = std::min(next, s.last_used + as_duration(options_.idle_timeout));
            if (options_.keepalive_interval.count() > 0)
                next = std::min(next, s.last_used + as_duration(options_.keepalive_interval));
            break;
        case slot_state::leased:
            if (options_.leak_threshold.count() > 0 && !s.leak_reported)
                next = s.leased_at + as_duration(options_.leak_threshold);
            break;
        case slot_state::validating:
        case slot_state::keepalive:
        case slot_state::resetting:
            if (!s.interrupted)
                next = s.check_deadline;
            break;
        case slot_state::closing:
            break;
        }
        return next;
    }

    /// The next moment on_timer() has something to do, or time_point::max(). Only deadlines it
    /// can act on count: one it cannot (a backoff that ended while the pool is full) would
    /// make a timer spin. Every timer path (threads, executor, tests) waits for this.
    time_point next_deadline(time_point now) const {
        time_point next = time_point::max();
        // acquire_timeout is the same for every request: the first one expires first.
        if (!waiters_.empty())
            next = waiters_.front().deadline;
        if ((breaker_open_ || connections_wanted() > 0) && next_connect_at_ > now)
            next = std::min(next, next_connect_at_);
        const bool may_shrink = idle_.size() > options_.min_idle;
        for (const slot& s : slots_)
            next = std::min(next, next_deadline(s, may_shrink));
        return next;
    }

    // ---- what the pool looks like -------------------------------------------------------------

    pool_metrics metrics() const {
        pool_metrics m = metrics_;
        m.idle = idle_.size();
        m.in_use = count(slot_state::leased);
        m.opening = opening_;
        m.pending_requests = waiters_.size();
        m.max = options_.max_size;
        m.idle_min = options_.min_idle;
        m.breaker_open = breaker_open_;
        return m;
    }
    std::size_t count(slot_state st) const noexcept { return count_[index(st)]; }
    std::size_t opening() const noexcept { return opening_; }
    std::size_t idle_count() const noexcept { return idle_.size(); }
    std::size_t waiting() const noexcept { return waiters_.size(); }
    std::size_t open_slots() const noexcept { return slots_.size(); }
    bool closed() const noexcept { return closed_; }
    bool breaker_open() const noexcept { return breaker_open_; }
    std::uint64_t connect_failures() const noexcept { return metrics_.connect_failures; }
    const error_code& last_error() const noexcept { return last_error_; }
    const diagnostics& last_error_diagnostics() const noexcept { return last_error_diag_; }
    /// Each slot, for checks (tests) and for the driver's shutdown.
    template <class F>
    void for_each_slot(F&& f) const {
        for (const slot& s : slots_)
            f(s);
    }

private:
    struct waiter {
        time_point enqueued_at{};
        time_point deadline{};
        std::source_location location;
        Waiter notify;
    };

    static constexpr std::size_t index(slot_state st) noexcept {
        return static_cast<std::size_t>(st);
    }
    template <class Rep, class Period>
    static duration as_duration(std::chrono::duration<Rep, Period> d) {
        return std::chrono::duration_cast<duration>(d);
    }

    // Every state change goes through here, so that the counts by state stay exact.
    void set_state(slot* s, slot_state to) noexcept {
        --count_[index(s->state)];
        ++count_[index(to)];
        s->state = to;
    }

    // ---- matching requests with connections ------------------------------------------------

    void dispatch(time_point now, effects& fx) {
        if (closed_)
            return;
        if (breaker_blocks(now))
            fail_waiters_breaker(now, fx); // the last connection that could serve them is gone
        while (!waiters_.empty() && !idle_.empty()) {
            slot* s = idle_.back();
            idle_.pop_back();
            if (auto reason = retire_reason(*s, now)) {
                begin_close(s, *reason, fx);
                continue;
            }
            if (needs_validation(*s, now)) {
                begin_check(s, slot_state::validating, now, fx);
                continue;
            }
            hand_out(s, now, fx);
        }
        for (std::size_t to_open = connections_wanted(); to_open > 0 && can_open(now); --to_open)
            start_connect(now, fx);
    }

    // Connects to start: one per waiter not covered by a check or connect under way, plus
    // min_idle; while the breaker is open, only a probe once the backoff has passed (can_open).
    std::size_t connections_wanted() const noexcept {
        if (breaker_open_)
            return opening_ == 0 ? 1 : 0;
        const std::size_t coming =
            opening_ + count(slot_state::validating) + count(slot_state::resetting) + idle_.size();
        const std::size_t wanted = waiters_.size() + options_.min_idle;
        return wanted > coming ? wanted - coming : 0;
    }

    // Connections the pool holds that can serve a waiter now or soon: idle, leased, or busy
    // with a check. While there is one, a waiter waits for it whatever the connect errors: a
    // server that refuses new sessions may still be serving these.
    std::size_t live() const noexcept {
        return idle_.size() + count(slot_state::leased) + count(slot_state::validating) +
               count(slot_state::resetting) + count(slot_state::keepalive);
    }

    // The breaker fails requests at once: the server is known to be down, the backoff has not
    // passed, and nothing the pool holds could serve them.
    bool breaker_blocks(time_point now) const noexcept {
        return breaker_open_ && opening_ == 0 && now < next_connect_at_ && live() == 0;
    }

    bool can_open(time_point now) const noexcept {
        return slots_.size() + opening_ < options_.max_size && opening_ < max_connecting_ &&
               now >= next_connect_at_;
    }

    void serve_or_idle(slot* s, time_point now, effects& fx) {
        if (!waiters_.empty())
            hand_out(s, now, fx);
        else
            make_idle(s);
    }

    void hand_out(slot* s, time_point now, effects& fx) {
        waiter w = std::move(waiters_.front());
        waiters_.pop_front();
        lease(s, now, w.location, w.enqueued_at);
        fx.grants.push_back({std::move(w.notify), s, {}, {}});
    }

    void lease(slot* s, time_point now, std::source_location where, time_point requested_at) {
        set_state(s, slot_state::leased);
        s->leased_at = now;
        s->acquired_at = where;
        s->leak_reported = false;
        ++metrics_.acquired;
        metrics_.wait_time.record(now - requested_at);
    }

    void make_idle(slot* s) {
        set_state(s, slot_state::idle);
        idle_.push_back(s);
    }

    std::optional<close_reason> retire_reason(const slot& s, time_point now) const noexcept {
        if (s.sequence <= retired_through_)
            return close_reason::retired;
        if (now >= s.expires_at)
            return close_reason::max_lifetime;
        return std::nullopt;
    }

    bool needs_validation(const slot& s, time_point now) const noexcept {
        return now - s.last_used >= options_.validate_after_idle;
    }

    // ---- I/O asked for --------------------------------------------------------------------

    void start_connect(time_point now, effects& fx) {
        ++opening_;
        connects_started_.insert(now);
        fx.io.push_back({io_kind::connect, nullptr, now});
    }

    // A ping or reset of the pool's own, which the server has check_timeout to answer
    // (on_timer() interrupts it after that).
    void begin_check(slot* s, slot_state why, time_point now, effects& fx) {
        set_state(s, why);
        s->check_started_at = now;
        s->check_deadline = now + as_duration(options_.check_timeout);
        s->interrupted = false;
        fx.io.push_back({why == slot_state::resetting ? io_kind::reset : io_kind::ping, s, now});
    }

    void begin_close(slot* s, close_reason reason, effects& fx) {
        set_state(s, slot_state::closing);
        ++metrics_.closed[static_cast<std::size_t>(reason)];
        fx.io.push_back({io_kind::close, s, {}});
    }

    // ---- failures ---------------------------------------------------------------------------

    void connect_failed(const error_code& ec, diagnostics diag, time_point now, effects& fx) {
        ++metrics_.connect_failures;
        ++consecutive_failures_;
        // A full server (too many connections) is up and serving: it slows the pool's growth
        // (backoff) but never opens the breaker.
        if (diag.error_class() != error_class::server_full)
            ++breaker_failures_;
        last_error_ = ec;
        last_error_diag_ = std::move(diag);
        last_error_at_ = now;
        next_connect_at_ = now + backoff_delay();
        if (options_.breaker_threshold > 0 && breaker_failures_ >= options_.breaker_threshold)
            breaker_open_ = true;
        // Nobody should wait for a server that is known to be down, unless the pool holds a
        // connection that can still serve them.
        if (breaker_open_ && live() == 0)
            fail_waiters_breaker(now, fx);
    }

    void fail_waiters_breaker(time_point now, effects& fx) {
        while (!waiters_.empty()) {
            waiter w = std::move(waiters_.front());
            waiters_.pop_front();
            ++metrics_.breaker_rejections;
            fx.grants.push_back({std::move(w.notify), nullptr,
                                 make_error_code(client_errc::server_unavailable),
                                 breaker_diagnostics(now)});
        }
    }

    void retire_older_if_failover(const slot& s, error_class cls, effects& fx) {
        if (cls != error_class::connection_lost && cls != error_class::read_only)
            return;
        retired_through_ = std::max(retired_through_, s.sequence);
        // Idle ones now; leased and busy ones when they come back (retire_reason()).
        std::erase_if(idle_, [&](slot* other) {
            if (other->sequence > retired_through_)
                return false;
            begin_close(other, close_reason::retired, fx);
            return true;
        });
    }

    // Full jitter: uniform in [0, min(max, initial * 2^(failures-1))].
    duration backoff_delay() {
        const auto shift = std::min<std::size_t>(consecutive_failures_ - 1, 30);
        const auto ceiling =
            std::min<std::int64_t>(options_.backoff_max.count(),
                                   options_.backoff_initial.count() * (std::int64_t{1} << shift));
        std::uniform_int_distribution<std::int64_t> pick(0, ceiling);
        return as_duration(std::chrono::milliseconds(pick(rng_)));
    }

    time_point lifetime_end(time_point now) {
        if (options_.max_lifetime.count() == 0)
            return time_point::max();
        std::uniform_int_distribution<std::int64_t> pick(0, options_.max_lifetime_jitter.count());
        return now + as_duration(options_.max_lifetime - std::chrono::milliseconds(pick(rng_)));
    }

    // ---- time ---------------------------------------------------------------------------------

    // A ping or reset the server has not answered within check_timeout: make it return
    // (on_check_done() then closes the connection), so that a silent server never holds the
    // pool's threads.
    void interrupt_overdue_checks(time_point now, effects& fx) {
        for (slot& s : slots_) {
            const bool checking = s.state == slot_state::validating ||
                                  s.state == slot_state::keepalive ||
                                  s.state == slot_state::resetting;
            if (!checking || s.interrupted || now < s.check_deadline)
                continue;
            s.interrupted = true;
            fx.io.push_back({io_kind::interrupt, &s, now});
        }
    }

    void report_leaks(time_point now, effects& fx) {
        if (options_.leak_threshold.count() == 0)
            return;
        for (slot& s : slots_) {
            if (s.state != slot_state::leased || s.leak_reported ||
                now - s.leased_at < options_.leak_threshold)
                continue;
            s.leak_reported = true;
            ++metrics_.leaks_reported;
            fx.leaks.push_back(
                {s.sequence,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - s.leased_at),
                 s.acquired_at});
        }
    }

    // ---- why a request failed -------------------------------------------------------------

    diagnostics exhausted_diagnostics(const waiter& w, time_point now) const {
        using seconds_f = std::chrono::duration<double>;
        pool_messages::wait_report r;
        r.waited_s = seconds_f(now - w.enqueued_at).count();
        r.leased = count(slot_state::leased);
        r.max_size = options_.max_size;
        r.checking = count(slot_state::validating) + count(slot_state::resetting) +
                     count(slot_state::keepalive);
        r.opening = opening_;
        r.waiting = waiters_.size();
        r.last_error = &last_error_;
        r.last_error_diag = &last_error_diag_;
        r.connect_failed_during_wait = last_error_ && last_error_at_ >= w.enqueued_at;
        // Long for a ping, a reset or a connect to take: 1 s, or the whole wait if shorter.
        const duration long_for = std::min<duration>(std::chrono::seconds(1), now - w.enqueued_at);
        std::optional<duration> silent;
        for (const slot& s : slots_) {
            const bool checking = s.state == slot_state::validating ||
                                  s.state == slot_state::keepalive ||
                                  s.state == slot_state::resetting;
            if (checking && now - s.check_started_at >= long_for)
                silent = std::max(silent.value_or(duration::zero()), now - s.check_started_at);
        }
        if (silent)
            r.check_silent_for_s = seconds_f(*silent).count();
        r.check_abandoned_during_wait = last_unanswered_at_ >= w.enqueued_at;
        r.check_timeout_ms = options_.check_timeout.count();
        if (!connects_started_.empty() && now - *connects_started_.begin() >= long_for)
            r.connect_pending_for_s = seconds_f(now - *connects_started_.begin()).count();
        r.consecutive_failures = consecutive_failures_;
        r.backoff_max_ms = options_.backoff_max.count();
        return pool_messages::exhausted(r);
    }

    diagnostics breaker_diagnostics(time_point now) const {
        const auto retry_in =
            std::chrono::duration<double>(next_connect_at_ > now ? next_connect_at_ - now
                                                                 : duration::zero())
                .count();
        return pool_messages::breaker_open(consecutive_failures_, retry_in, last_error_,
                                           last_error_diag_);
    }

    // ---- data ---------------------------------------------------------------------------------

    pool_options options_;
    std::size_t max_connecting_ = 1; // options_.max_connecting, at most max_size

    std::list<slot> slots_;                             // every connection open or closing
    std::array<std::size_t, slot_state_count> count_{}; // slots by state
    std::vector<slot*> idle_;                           // a stack: the most recently used on top
    std::deque<waiter> waiters_;                        // first come, first served
    std::size_t opening_ = 0;                           // connects asked for and not ended
    std::multiset<time_point> connects_started_;        // when each of them was asked for
    std::uint64_t next_sequence_ = 0;
    std::uint64_t retired_through_ = 0; // sequences up to this are retired (failover)
    time_point last_unanswered_at_ = time_point::min(); // a check abandoned (check_timeout)

    std::size_t consecutive_failures_ = 0; // connect failures in a row: the backoff
    std::size_t breaker_failures_ = 0;     // those of them that say the server is down
    time_point next_connect_at_ = time_point::min();
    bool breaker_open_ = false;
    error_code last_error_;
    diagnostics last_error_diag_;
    time_point last_error_at_{};

    bool closed_ = false;
    pool_metrics metrics_;
    std::mt19937_64 rng_;
};

} // namespace cloudmysql::detail
