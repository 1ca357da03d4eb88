// The connection pool's policy logic, as a template over what opens a connection and over the
// clock. cloudmysql::pool (pool.hpp) is the MariaDB instantiation; the unit tests drive this
// template with a fake connector and a fake clock.
#pragma once

#include <cloudmysql/database_error.hpp>
#include <cloudmysql/detail/unique_function.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/pool_metrics.hpp>
#include <cloudmysql/pool_options.hpp>

#include <fmt/format.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace cloudmysql {

/// What basic_pool needs to manage connections of one kind. Its member functions are called
/// from several pool threads at once, each time on a different connection.
template <class C>
concept pool_connector = std::movable<typename C::connection_type> &&
    std::default_initializable<typename C::connection_type> &&
    requires(C& c, typename C::connection_type& conn, error_code& ec, diagnostics& diag) {
    // Opens a connection (blocking, bounded by the connect timeout).
    { c.connect(ec, diag) } -> std::same_as<typename C::connection_type>;
    // Checks that the session is alive.
    c.ping(conn, ec, diag);
    // Rolls back, resets the session, re-applies the init statements.
    c.reset(conn, ec, diag);
    // Closes it; must not throw.
    { c.close(conn) }
    noexcept;
    // connection_lost or read_only when an operation on the connection failed that way since
    // it opened (the pool then closes it on return and retires older ones); none otherwise.
    { c.fault(std::as_const(conn)) }
    noexcept->std::same_as<error_class>;
};

/// Optional for a pool_connector: `bool needs_reset(const connection_type&) const noexcept`,
/// false when the connection's session holds nothing a caller left behind. The pool then
/// skips reset() and makes the returned connection available at once, on the returning
/// thread. Without it (or when it is not noexcept), every returned connection is reset.
template <class C>
concept connector_tracks_resets = requires(const C& c, const typename C::connection_type& conn) {
    { c.needs_reset(conn) }
    noexcept->std::same_as<bool>;
};

/// Optional for a pool_connector: `void interrupt(const connection_type&) noexcept`, which makes
/// an operation blocked on the connection in another thread return soon with an error (for
/// cloudmysql::connection, the socket is shut down). The pool calls it, under its own lock, on
/// a ping or reset of its own that had no answer within check_timeout; it must not block.
/// Without it, such a check is still reported, but goes on until the connection's own
/// timeouts end it.
template <class C>
concept connector_interrupts = requires(const C& c, const typename C::connection_type& conn) {
    { c.interrupt(conn) }
    noexcept;
};

/// Selects the constructor that starts no threads: the caller runs the pool's work with
/// poll(), run_one_job() and run_timers(). For tests with a fake clock.
struct manual_drive_t {
    explicit manual_drive_t() = default;
};
inline constexpr manual_drive_t manual_drive{};

/// A pool of connections: a hard cap, first-come-first-served waiting with a deadline,
/// validation of connections that sat idle, reset on return (unless the connector says the
/// session holds nothing: connector_tracks_resets), retirement by idle time and
/// lifetime, keepalive, connect backoff with a breaker, failover handling and metrics.
///
/// Thread-safe: acquire from any thread. Blocking work (connect, ping, reset, close) runs on
/// max_connecting + 2 pool threads, so a connect storm never starves resets, and one more
/// thread keeps time; or, with the executor constructor, on an executor of the program's and
/// no thread of the pool's own. Destroying the pool closes it; connections still leased close
/// when returned.
template <pool_connector Connector, class Clock = std::chrono::steady_clock>
class basic_pool {
    struct state;

public:
    using connection_type = typename Connector::connection_type;
    using clock_type = Clock;

    /// A leased connection. Move-only; returns itself to the pool on destruction (reset first
    /// when the session may hold something the holder left, so that nothing the holder set
    /// leaks to the next one). Use it from one thread at a time.
    class pooled_connection {
    public:
        pooled_connection() noexcept = default;
        pooled_connection(pooled_connection&& other) noexcept
                : state_(std::move(other.state_)), slot_(std::exchange(other.slot_, nullptr)) {}
        pooled_connection& operator=(pooled_connection&& other) noexcept {
            if (this != &other) {
                release();
                state_ = std::move(other.state_);
                slot_ = std::exchange(other.slot_, nullptr);
            }
            return *this;
        }
        pooled_connection(const pooled_connection&) = delete;
        pooled_connection& operator=(const pooled_connection&) = delete;
        ~pooled_connection() { release(); }

        bool valid() const noexcept { return slot_ != nullptr; }
        explicit operator bool() const noexcept { return valid(); }
        connection_type& get() const noexcept { return slot_->conn; }
        connection_type& operator*() const noexcept { return slot_->conn; }
        connection_type* operator->() const noexcept { return &slot_->conn; }
        /// The pool's number for this connection (creation order).
        std::uint64_t sequence() const noexcept { return slot_ ? slot_->sequence : 0; }

        /// Returns the connection now (the destructor does this too).
        void release() noexcept {
            if (slot_ != nullptr)
                std::exchange(state_, nullptr)
                    ->give_back(std::exchange(slot_, nullptr), false, error_class::none);
        }

        /// Closes the connection instead of returning it: call it after an error left the
        /// session unusable. With reason connection_lost or read_only (a failover), every
        /// connection opened before this one is retired too: they point at the old server.
        void discard(error_class reason = error_class::other) noexcept {
            if (slot_ != nullptr)
                std::exchange(state_, nullptr)
                    ->give_back(std::exchange(slot_, nullptr), true, reason);
        }

    private:
        friend struct state;
        pooled_connection(std::shared_ptr<state> st, typename state::slot* s) noexcept
                : state_(std::move(st)), slot_(s) {}
        std::shared_ptr<state> state_;
        typename state::slot* slot_ = nullptr;
    };

    /// Starts the pool's threads. Opens nothing yet (see warm_up()). Throws
    /// std::invalid_argument for options outside their limits.
    basic_pool(pool_options options, Connector connector)
            : state_(std::make_shared<state>(std::move(options), std::move(connector), false)) {
        state_->start_threads();
    }
    /// Runs the pool's blocking work (connect, ping, reset, close) on `executor` and keeps time
    /// with a timer on it: the pool starts no thread of its own. A job blocks the thread that
    /// runs it for up to connect_timeout or check_timeout, so give the pool an executor meant
    /// for blocking work (a boost::asio::thread_pool, sized to max_connecting plus the resets
    /// you expect at once), never the one that runs an event loop. The executor must outlive
    /// the pool, and the pool must be destroyed outside the executor's threads: destruction
    /// waits for the jobs under way.
    basic_pool(pool_options options, Connector connector,
               boost::asio::any_io_executor executor) requires
        std::same_as<Clock, std::chrono::steady_clock>
            : state_(std::make_shared<state>(std::move(options), std::move(connector), false)) {
        state_->use_executor(std::move(executor));
    }
    /// A pool whose work the caller runs by hand (poll()); for tests.
    basic_pool(pool_options options, Connector connector, manual_drive_t)
            : state_(std::make_shared<state>(std::move(options), std::move(connector), true)) {}

    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;
    /// Closes the pool and joins its threads.
    ~basic_pool() { state_->shut_down(); }

    /// Waits up to acquire_timeout for a connection; throws database_error (pool_exhausted,
    /// server_unavailable, pool_closed) with the counts and the last connect error.
    pooled_connection acquire(std::source_location where = std::source_location::current()) {
        error_code ec;
        diagnostics diag;
        auto conn = acquire(ec, diag, where);
        throw_on_error(ec, diag);
        return conn;
    }
    pooled_connection acquire(error_code& ec, diagnostics& diag,
                              std::source_location where = std::source_location::current()) {
        return state_->acquire_blocking(ec, diag, where);
    }

    /// An idle connection that needs no check, or nothing; never waits.
    std::optional<pooled_connection>
    try_acquire(std::source_location where = std::source_location::current()) {
        return state_->try_acquire(where);
    }

    /// Asio's completion-token form: `void(error_code, pooled_connection)`. Works with a
    /// callback, boost::asio::use_future and boost::asio::use_awaitable. Shares the
    /// first-come-first-served queue with acquire(). The handler runs on its associated
    /// executor (a coroutine's io_context for use_awaitable), which must outlive the pool.
    template <class CompletionToken>
    auto async_acquire(CompletionToken&& token,
                       std::source_location where = std::source_location::current()) {
        return async_acquire_impl(nullptr, std::forward<CompletionToken>(token), where);
    }
    /// As above; on failure, `diag` (which must outlive the operation) says why.
    template <class CompletionToken>
    auto async_acquire(diagnostics& diag, CompletionToken&& token,
                       std::source_location where = std::source_location::current()) {
        return async_acquire_impl(&diag, std::forward<CompletionToken>(token), where);
    }

    /// Opens connections until min_idle are idle, max_connecting at a time, and returns when
    /// they are open; throws database_error with the connect error when one fails.
    void warm_up() {
        error_code ec;
        diagnostics diag;
        warm_up(ec, diag);
        throw_on_error(ec, diag);
    }
    void warm_up(error_code& ec, diagnostics& diag) { state_->warm_up(ec, diag); }

    /// Drains the pool: waiters fail with pool_closed, idle connections close, leased ones
    /// close when returned. Idempotent.
    void close() { state_->close(); }

    pool_metrics metrics() const { return state_->metrics(); }
    std::string prometheus_text(std::string_view pool_name = "default") const {
        return cloudmysql::prometheus_text(metrics(), pool_name);
    }
    const pool_options& options() const noexcept { return state_->options_; }

    /// Manual drive only: runs one queued job (connect, ping, reset or close); false if none.
    bool run_one_job() { return state_->run_one_job(); }
    /// Manual drive only: expires waiters, retires and pings idle connections, reports leaks,
    /// as of Clock::now().
    void run_timers() { state_->run_timers(); }
    /// Manual drive only: runs timers and jobs until nothing is left to do; returns the jobs run.
    std::size_t poll() {
        std::size_t jobs = 0;
        run_timers();
        while (run_one_job()) {
            ++jobs;
            run_timers();
        }
        return jobs;
    }
    /// Jobs queued and not yet run (manual drive).
    std::size_t queued_jobs() const { return state_->queued_jobs(); }

private:
    template <class CompletionToken>
    auto async_acquire_impl(diagnostics* diag, CompletionToken&& token,
                            std::source_location where) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, pooled_connection)>(
            [st = state_, diag, where](auto handler) {
                auto work = boost::asio::make_work_guard(handler);
                st->enqueue(where, [handler = std::move(handler), work = std::move(work),
                                    diag](error_code ec, diagnostics d,
                                          pooled_connection conn) mutable {
                    if (diag != nullptr)
                        *diag = std::move(d);
                    // The work guard travels with the handler and ends on the
                    // handler's executor: after post() the pool's thread must not
                    // touch an io_context that may be gone once the handler ran.
                    auto ex = work.get_executor();
                    boost::asio::post(ex, [handler = std::move(handler), ec, conn = std::move(conn),
                                           work = std::move(work)]() mutable {
                        work.reset();
                        handler(ec, std::move(conn));
                    });
                });
            },
            token);
    }

    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;
    using completion = detail::unique_function<void(error_code, diagnostics, pooled_connection)>;
    using action = detail::unique_function<void()>;

    // Everything lives here, shared with the leases, so that a connection returned after the
    // pool object is gone still finds its way (it is closed on the spot).
    struct state : std::enable_shared_from_this<state> {
        enum class where_now { idle, leased, busy, closing };

        struct slot {
            connection_type conn;
            std::uint64_t sequence = 0;
            time_point created_at{};
            time_point last_used{};
            time_point expires_at = time_point::max();
            time_point leased_at{};
            std::source_location acquired_at;
            bool leak_reported = false;
            where_now where = where_now::idle;
            // While busy with a ping or reset of the pool's own: since when, until when the
            // server may take to answer (check_timeout), and whether the pool gave up on it.
            time_point check_started_at{};
            time_point check_deadline = time_point::max();
            bool interrupted = false;
            typename std::list<slot>::iterator self;
        };

        struct waiter {
            time_point enqueued_at{};
            time_point deadline{};
            std::source_location location;
            completion complete;
        };

        // Work to do once the mutex is released: completions and user callbacks never run
        // under it.
        using actions = std::vector<action>;

        state(pool_options options, Connector connector, bool manual)
                : options_(std::move(options)), connector_(std::move(connector)), manual_(manual) {
            options_.validate();
            max_connecting_ = std::min(options_.max_connecting, options_.max_size);
            rng_.seed(options_.random_seed ? *options_.random_seed : std::random_device{}());
        }

        // ---- what the pool tells the program ------------------------------------------------

        // Runs outside the mutex, like every user callback.
        void notify(const pool_notice& notice) const { options_.notify(notice); }

        // ---- threads ----------------------------------------------------------------------

        void start_threads() {
            const std::size_t workers = max_connecting_ + 2;
            for (std::size_t i = 0; i < workers; ++i)
                threads_.emplace_back([this] { worker_loop(); });
            threads_.emplace_back([this] { timer_loop(); });
        }

        // The executor constructor: jobs go to `executor`, time is kept by a timer on it.
        void use_executor(boost::asio::any_io_executor executor) {
            executor_.emplace(std::move(executor));
            timer_ = std::make_unique<boost::asio::steady_timer>(*executor_);
        }

        void shut_down() {
            close();
            {
                std::unique_lock lock(mutex_);
                stopping_ = true;
                // From here on, a connection that comes back is closed by whoever returns
                // it: the workers only drain what is already queued.
                stopped_ = true;
                if (timer_) {
                    timer_->cancel();
                    // Jobs under way (their connectors may use what the program destroys
                    // next) finish before the pool is gone.
                    jobs_done_cv_.wait(lock, [this] { return jobs_running_ == 0; });
                    timer_.reset(); // while the executor is still there
                }
            }
            jobs_cv_.notify_all();
            timer_cv_.notify_all();
            for (auto& t : threads_)
                t.join();
            threads_.clear();
            // Manual drive: nobody ran what is queued; run it now so connections close.
            while (run_one_job()) {
            }
        }

        void worker_loop() {
            std::unique_lock lock(mutex_);
            for (;;) {
                jobs_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
                if (jobs_.empty())
                    return; // stopping, and everything queued has run
                action job = std::move(jobs_.front());
                jobs_.pop_front();
                lock.unlock();
                job();
                lock.lock();
            }
        }

        void timer_loop() {
            std::unique_lock lock(mutex_);
            while (!stopping_) {
                const time_point next = next_wakeup();
                timer_target_ = next;
                if (next == time_point::max())
                    timer_cv_.wait(lock);
                else
                    timer_cv_.wait_until(lock, next);
                if (stopping_)
                    break;
                timer_target_ = time_point::max();
                // Run maintenance on every wake-up: it is cheap, and the deadline that woke
                // us (a backoff that ended) may no longer count in next_wakeup().
                actions out;
                maintenance(Clock::now(), out);
                lock.unlock();
                run(out);
                lock.lock();
            }
        }

        // Wakes the timer (thread, or timer on the executor) when something is due before what
        // it waits for.
        void poke_timer(time_point when) {
            if (manual_ || stopping_ || when >= timer_target_)
                return;
            timer_target_ = when;
            if (timer_)
                arm_timer(when);
            else
                timer_cv_.notify_one();
        }

        // Executor mode, under the mutex: the timer fires at `when` (a wait for a later moment
        // is cancelled).
        void arm_timer(time_point when) {
            if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
                timer_->expires_at(when);
                timer_->async_wait(
                    [self = this->shared_from_this()](const boost::system::error_code& ec) {
                        if (!ec)
                            self->on_timer();
                    });
            }
        }

        // Executor mode: what timer_loop() does on each wake-up.
        void on_timer() {
            actions out;
            {
                std::lock_guard lock(mutex_);
                if (stopping_)
                    return;
                timer_target_ = time_point::max();
                maintenance(Clock::now(), out);
                poke_timer(next_wakeup());
            }
            run(out);
        }

        void push_job(action job) {
            if (executor_) {
                ++jobs_running_;
                boost::asio::post(
                    *executor_, [self = this->shared_from_this(), job = std::move(job)]() mutable {
                        job();
                        std::lock_guard lock(self->mutex_);
                        if (--self->jobs_running_ == 0)
                            self->jobs_done_cv_.notify_all();
                    });
                return;
            }
            jobs_.push_back(std::move(job));
            if (!manual_)
                jobs_cv_.notify_one();
        }

        bool run_one_job() {
            std::unique_lock lock(mutex_);
            if (jobs_.empty())
                return false;
            action job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            return true;
        }

        void run_timers() {
            actions out;
            {
                std::lock_guard lock(mutex_);
                maintenance(Clock::now(), out);
            }
            run(out);
        }

        std::size_t queued_jobs() const {
            std::lock_guard lock(mutex_);
            return jobs_.size();
        }

        // Runs what was decided under the mutex. Completions go through one queue, drained by
        // one thread at a time, so waiters learn their results in the order the pool decided
        // them (first come, first served), whichever threads made the decisions.
        void run(actions& out) {
            for (auto& a : out)
                a();
            out.clear();
            deliver();
        }

        void deliver() {
            std::unique_lock lock(mutex_);
            if (delivering_)
                return; // the thread delivering now will take ours too
            delivering_ = true;
            while (!deliveries_.empty()) {
                action next = std::move(deliveries_.front());
                deliveries_.pop_front();
                lock.unlock();
                next();
                lock.lock();
            }
            delivering_ = false;
        }

        // ---- acquiring --------------------------------------------------------------------

        pooled_connection acquire_blocking(error_code& ec, diagnostics& diag,
                                           std::source_location where) {
            ec.clear();
            diag.clear();
            // Fast path: an idle connection that needs no check, and nobody waiting before us.
            if (auto conn = try_acquire(where))
                return std::move(*conn);

            struct result_box {
                std::mutex m;
                std::condition_variable cv;
                bool done = false;
                error_code ec;
                diagnostics diag;
                pooled_connection conn;
            };
            auto box = std::make_shared<result_box>();
            enqueue(where, [box](error_code e, diagnostics d, pooled_connection c) {
                std::lock_guard lock(box->m);
                box->ec = e;
                box->diag = std::move(d);
                box->conn = std::move(c);
                box->done = true;
                box->cv.notify_one();
            });
            if (manual_) {
                for (;;) {
                    {
                        std::lock_guard lock(box->m);
                        if (box->done)
                            break;
                    }
                    run_timers();
                    if (!run_one_job()) {
                        std::lock_guard lock(box->m);
                        if (!box->done)
                            throw std::logic_error(
                                "cloudmysql: acquire() on a manually driven pool cannot "
                                "complete: nothing is left to run; advance the clock or use "
                                "async_acquire()");
                    }
                }
            }
            std::unique_lock lock(box->m);
            box->cv.wait(lock, [&] { return box->done; });
            ec = box->ec;
            diag = std::move(box->diag);
            return std::move(box->conn);
        }

        std::optional<pooled_connection> try_acquire(std::source_location where) {
            actions out;
            std::optional<pooled_connection> result;
            {
                std::lock_guard lock(mutex_);
                if (closed_ || !waiters_.empty())
                    return std::nullopt;
                const time_point now = Clock::now();
                while (!idle_.empty()) {
                    slot* s = idle_.back();
                    if (auto reason = retire_reason(*s, now)) {
                        idle_.pop_back();
                        begin_close(s, *reason, out);
                        continue;
                    }
                    if (needs_validation(*s, now))
                        break; // a check means waiting: not for try_acquire
                    idle_.pop_back();
                    mark_leased(s, now, where, now);
                    result.emplace(pooled_connection(this->shared_from_this(), s));
                    break;
                }
                if (!result)
                    dispatch(now, out);
            }
            run(out);
            return result;
        }

        void enqueue(std::source_location where, completion complete) {
            actions out;
            {
                std::lock_guard lock(mutex_);
                const time_point now = Clock::now();
                if (closed_) {
                    deliveries_.push_back(fail_action(std::move(complete), client_errc::pool_closed,
                                                      pool_closed_diagnostics()));
                } else if (breaker_open_ && opening_ == 0 && now < next_connect_at_ &&
                           live() == 0) {
                    ++metrics_.breaker_rejections;
                    deliveries_.push_back(fail_action(std::move(complete),
                                                      client_errc::server_unavailable,
                                                      breaker_diagnostics(now)));
                } else {
                    auto w = std::make_unique<waiter>();
                    w->enqueued_at = now;
                    w->deadline =
                        now + std::chrono::duration_cast<duration>(options_.acquire_timeout);
                    w->location = where;
                    w->complete = std::move(complete);
                    poke_timer(w->deadline);
                    waiters_.push_back(std::move(w));
                    dispatch(now, out);
                }
            }
            run(out);
        }

        // ---- the heart: match waiters with connections, open what is missing -------------

        void dispatch(time_point now, actions& out) {
            if (closed_)
                return;
            if (breaker_open_ && live() == 0 && opening_ == 0 && now < next_connect_at_)
                fail_waiters_breaker(now); // the last connection that could serve them is gone
            while (!waiters_.empty() && !idle_.empty()) {
                slot* s = idle_.back();
                idle_.pop_back();
                if (auto reason = retire_reason(*s, now)) {
                    begin_close(s, *reason, out);
                    continue;
                }
                if (needs_validation(*s, now)) {
                    start_ping(s, now, true);
                    continue;
                }
                hand_out(s, now);
            }

            // Connections needed: one per waiter not covered by a check or connect under way,
            // plus min_idle.
            const std::size_t coming = opening_ + validating_ + resetting_ + idle_.size();
            const std::size_t wanted = waiters_.size() + options_.min_idle;
            std::size_t to_open = wanted > coming ? wanted - coming : 0;
            if (breaker_open_) // only a probe, once the backoff has passed
                to_open = opening_ == 0 && now >= next_connect_at_ ? 1 : 0;
            while (to_open > 0 && can_open(now)) {
                start_connect(now);
                --to_open;
            }
            if (to_open > 0 && now < next_connect_at_)
                poke_timer(next_connect_at_);
        }

        // Connections the pool holds that can serve a waiter now or soon: idle, leased, or busy
        // with a check. While there is one, a waiter waits for it whatever the connect errors:
        // a server that refuses new sessions may still be serving these.
        std::size_t live() const noexcept {
            return idle_.size() + leased_ + validating_ + resetting_ + keepalive_pings_;
        }

        bool can_open(time_point now) const {
            return slots_.size() + opening_ < options_.max_size && opening_ < max_connecting_ &&
                   now >= next_connect_at_;
        }

        void hand_out(slot* s, time_point now) {
            std::unique_ptr<waiter> w = std::move(waiters_.front());
            waiters_.pop_front();
            mark_leased(s, now, w->location, w->enqueued_at);
            pooled_connection conn(this->shared_from_this(), s);
            deliveries_.push_back([c = std::move(w->complete), conn = std::move(conn)]() mutable {
                c(error_code{}, diagnostics{}, std::move(conn));
            });
        }

        void mark_leased(slot* s, time_point now, std::source_location where,
                         time_point requested_at) {
            s->where = where_now::leased;
            s->leased_at = now;
            s->acquired_at = where;
            s->leak_reported = false;
            ++leased_;
            ++metrics_.acquired;
            metrics_.wait_time.record(now - requested_at);
            if (options_.leak_threshold.count() > 0)
                poke_timer(now + std::chrono::duration_cast<duration>(options_.leak_threshold));
        }

        std::optional<close_reason> retire_reason(const slot& s, time_point now) const {
            if (s.sequence <= retired_through_)
                return close_reason::retired;
            if (now >= s.expires_at)
                return close_reason::max_lifetime;
            return std::nullopt;
        }

        bool needs_validation(const slot& s, time_point now) const {
            return now - s.last_used >= options_.validate_after_idle;
        }

        // ---- jobs and their results -------------------------------------------------------

        void start_connect(time_point now) {
            ++opening_;
            connects_started_.insert(now);
            push_job([this, started = now] {
                error_code ec;
                diagnostics diag;
                connection_type conn = connector_.connect(ec, diag);
                connect_done(std::move(conn), ec, std::move(diag), started);
            });
        }

        void connect_done(connection_type conn, error_code ec, diagnostics diag,
                          time_point started) {
            actions out;
            {
                std::lock_guard lock(mutex_);
                const time_point now = Clock::now();
                --opening_;
                connects_started_.erase(connects_started_.find(started));
                if (ec) {
                    connect_failed(ec, std::move(diag), now);
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
                    if (closed_) {
                        begin_close(&s, close_reason::pool_closed, out);
                    } else {
                        make_idle(&s);
                    }
                }
                dispatch(now, out);
            }
            progress_cv_.notify_all();
            run(out);
        }

        void connect_failed(const error_code& ec, diagnostics diag, time_point now) {
            ++metrics_.connect_failures;
            ++consecutive_failures_;
            // A full server (too many connections) is up and serving: it slows the pool's
            // growth (backoff) but never opens the breaker.
            if (diag.error_class() != error_class::server_full)
                ++breaker_failures_;
            last_error_ = ec;
            last_error_diag_ = std::move(diag);
            last_error_at_ = now;
            next_connect_at_ = now + backoff_delay();
            poke_timer(next_connect_at_);
            if (options_.breaker_threshold > 0 && breaker_failures_ >= options_.breaker_threshold)
                breaker_open_ = true;
            // Nobody should wait for a server that is known to be down, unless the pool holds
            // a connection that can still serve them.
            if (breaker_open_ && live() == 0)
                fail_waiters_breaker(now);
        }

        void fail_waiters_breaker(time_point now) {
            while (!waiters_.empty()) {
                auto w = std::move(waiters_.front());
                waiters_.pop_front();
                ++metrics_.breaker_rejections;
                deliveries_.push_back(fail_action(std::move(w->complete),
                                                  client_errc::server_unavailable,
                                                  breaker_diagnostics(now)));
            }
        }

        // Full jitter: uniform in [0, min(max, initial * 2^(failures-1))].
        duration backoff_delay() {
            using ms = std::chrono::milliseconds;
            const auto shift = std::min<std::size_t>(consecutive_failures_ - 1, 30);
            const auto ceiling = std::min<std::int64_t>(options_.backoff_max.count(),
                                                        options_.backoff_initial.count() *
                                                            (std::int64_t{1} << shift));
            std::uniform_int_distribution<std::int64_t> pick(0, ceiling);
            return std::chrono::duration_cast<duration>(ms(pick(rng_)));
        }

        time_point lifetime_end(time_point now) {
            if (options_.max_lifetime.count() == 0)
                return time_point::max();
            std::uniform_int_distribution<std::int64_t> pick(0,
                                                             options_.max_lifetime_jitter.count());
            const auto life = options_.max_lifetime - std::chrono::milliseconds(pick(rng_));
            return now + std::chrono::duration_cast<duration>(life);
        }

        void make_idle(slot* s) {
            s->where = where_now::idle;
            idle_.push_back(s);
            time_point next = s->expires_at;
            if (options_.idle_timeout.count() > 0)
                next = std::min(next, s->last_used + std::chrono::duration_cast<duration>(
                                                         options_.idle_timeout));
            if (options_.keepalive_interval.count() > 0)
                next = std::min(next, s->last_used + std::chrono::duration_cast<duration>(
                                                         options_.keepalive_interval));
            poke_timer(next);
        }

        // The connection is busy with a ping or reset of the pool's own, which the server has
        // check_timeout to answer (maintenance() interrupts it after that).
        void begin_check(slot* s, time_point now, std::size_t& counter) {
            s->where = where_now::busy;
            s->check_started_at = now;
            s->check_deadline = now + std::chrono::duration_cast<duration>(options_.check_timeout);
            s->interrupted = false;
            ++counter;
            poke_timer(s->check_deadline);
        }

        // A ping: to validate before handing out, or to keep an idle connection alive.
        void start_ping(slot* s, time_point now, bool validating) {
            std::size_t& counter = validating ? validating_ : keepalive_pings_;
            begin_check(s, now, counter);
            push_job([this, s, &counter] {
                error_code ec;
                diagnostics diag;
                connector_.ping(s->conn, ec, diag);
                check_done(s, ec, diag, counter);
            });
        }

        // The end of a ping or a reset: the connection is good (serve a waiter or go idle),
        // or it is closed, and if it died of a failover the older ones go with it.
        // `in_flight` is the counter this check was counted in.
        void check_done(slot* s, const error_code& ec, const diagnostics& diag,
                        std::size_t& in_flight) {
            actions out;
            {
                std::lock_guard lock(mutex_);
                const time_point now = Clock::now();
                --in_flight;
                s->check_deadline = time_point::max();
                if (s->interrupted) {
                    // Abandoned after check_timeout, whatever came back since: the session's
                    // state is unknown. Older connections stay; each has its own deadline.
                    last_unanswered_at_ = now;
                    begin_close(s, close_reason::unanswered, out);
                } else if (ec) {
                    retire_older_if_failover(*s, diag.error_class(), out);
                    begin_close(s, close_reason::broken, out);
                } else if (closed_) {
                    begin_close(s, close_reason::pool_closed, out);
                } else if (auto reason = retire_reason(*s, now)) {
                    begin_close(s, *reason, out);
                } else {
                    s->last_used = now;
                    if (!waiters_.empty())
                        hand_out(s, now);
                    else
                        make_idle(s);
                }
                dispatch(now, out);
            }
            run(out);
        }

        bool needs_reset(const connection_type& conn) const noexcept {
            if constexpr (connector_tracks_resets<Connector>)
                return connector_.needs_reset(conn);
            else
                return true;
        }

        void retire_older_if_failover(const slot& s, error_class cls, actions& out) {
            if (cls != error_class::connection_lost && cls != error_class::read_only)
                return;
            retired_through_ = std::max(retired_through_, s.sequence);
            // Idle ones now; leased and busy ones when they come back (retire_reason()).
            std::erase_if(idle_, [&](slot* other) {
                if (other->sequence > retired_through_)
                    return false;
                begin_close(other, close_reason::retired, out);
                return true;
            });
        }

        void begin_close(slot* s, close_reason reason, actions& out) {
            s->where = where_now::closing;
            ++metrics_.closed[static_cast<std::size_t>(reason)];
            if (stopped_) {
                // No threads left: close on the caller's thread, outside the mutex.
                auto conn = std::make_shared<connection_type>(std::move(s->conn));
                slots_.erase(s->self);
                out.push_back([this_state = this->shared_from_this(), conn] {
                    this_state->connector_.close(*conn);
                });
                return;
            }
            push_job([this, s] {
                connector_.close(s->conn);
                actions later;
                {
                    std::lock_guard lock(mutex_);
                    slots_.erase(s->self);
                    dispatch(Clock::now(), later); // the freed place may serve a waiter
                }
                run(later);
            });
        }

        // ---- returning ----------------------------------------------------------------------

        void give_back(slot* s, bool discard, error_class reason) noexcept {
            actions out;
            {
                std::lock_guard lock(mutex_);
                const time_point now = Clock::now();
                --leased_;
                metrics_.use_time.record(now - s->leased_at);
                // A session that was lost or turned read-only goes, also when the user simply
                // returns it: it points at a server that no longer serves writes.
                if (!discard && reason == error_class::none) {
                    reason = connector_.fault(std::as_const(s->conn));
                    discard = reason != error_class::none;
                }
                if (closed_) {
                    begin_close(s, close_reason::pool_closed, out);
                } else if (discard) {
                    retire_older_if_failover(*s, reason, out);
                    begin_close(s, close_reason::discarded, out);
                } else if (auto why = retire_reason(*s, now)) {
                    begin_close(s, *why, out);
                } else if (!needs_reset(s->conn)) {
                    // Nothing to undo: available now, without a job for a pool thread.
                    s->last_used = now;
                    if (!waiters_.empty())
                        hand_out(s, now);
                    else
                        make_idle(s);
                } else {
                    begin_check(s, now, resetting_);
                    push_job([this, s] {
                        error_code ec;
                        diagnostics diag;
                        connector_.reset(s->conn, ec, diag);
                        check_done(s, ec, diag, resetting_);
                    });
                }
                dispatch(now, out);
            }
            run(out);
        }

        // ---- time -----------------------------------------------------------------------------

        void maintenance(time_point now, actions& out) {
            // Waiters past their deadline.
            for (auto it = waiters_.begin(); it != waiters_.end();) {
                if ((*it)->deadline > now) {
                    ++it;
                    continue;
                }
                auto w = std::move(*it);
                it = waiters_.erase(it);
                ++metrics_.timeouts;
                deliveries_.push_back(fail_action(std::move(w->complete),
                                                  client_errc::pool_exhausted,
                                                  exhausted_diagnostics(*w, now)));
            }
            if (!closed_) {
                // Idle connections: retire, shrink to min_idle, keep alive.
                std::vector<slot*> keep;
                std::size_t idle_count = idle_.size();
                // Oldest-used first (the front of the LIFO stack), so the busiest stay.
                for (slot* s : idle_) {
                    const auto idle_for = now - s->last_used;
                    if (auto reason = retire_reason(*s, now)) {
                        begin_close(s, *reason, out);
                        --idle_count;
                    } else if (options_.idle_timeout.count() > 0 &&
                               idle_for >= options_.idle_timeout &&
                               idle_count > options_.min_idle) {
                        begin_close(s, close_reason::idle_timeout, out);
                        --idle_count;
                    } else if (options_.keepalive_interval.count() > 0 &&
                               idle_for >= options_.keepalive_interval) {
                        start_ping(s, now, false);
                    } else {
                        keep.push_back(s);
                    }
                }
                idle_ = std::move(keep);
                report_leaks(now, out);
            }
            interrupt_overdue_checks(now);
            dispatch(now, out);
        }

        // A ping or reset the server has not answered within check_timeout: make it return
        // (check_done() then closes the connection), so that a silent server never holds the
        // pool's threads.
        void interrupt_overdue_checks(time_point now) {
            for (slot& s : slots_) {
                if (s.where != where_now::busy || s.interrupted || now < s.check_deadline)
                    continue;
                s.interrupted = true;
                if constexpr (connector_interrupts<Connector>)
                    connector_.interrupt(std::as_const(s.conn));
            }
        }

        void report_leaks(time_point now, actions& out) {
            if (options_.leak_threshold.count() == 0)
                return;
            for (slot& s : slots_) {
                if (s.where != where_now::leased || s.leak_reported ||
                    now - s.leased_at < options_.leak_threshold)
                    continue;
                s.leak_reported = true;
                ++metrics_.leaks_reported;
                leak_report report{
                    s.sequence,
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - s.leased_at),
                    s.acquired_at};
                out.push_back([self = this->shared_from_this(), report] {
                    if (self->options_.on_leak) {
                        self->options_.on_leak(report);
                        return;
                    }
                    self->notify(
                        {pool_notice::kind::leak,
                         fmt::format("connection #{} held for {} ms (leak_threshold), acquired at "
                                     "{}:{} in {}",
                                     report.connection_sequence, report.held_for.count(),
                                     report.acquired_at.file_name(), report.acquired_at.line(),
                                     report.acquired_at.function_name()),
                         report});
                });
            }
        }

        // The next moment maintenance() has something to do. Only deadlines it can act on
        // count: one it cannot (a backoff that ended while the pool is full) would make the
        // timer thread spin.
        time_point next_wakeup() const {
            time_point next = time_point::max();
            for (const auto& w : waiters_)
                next = std::min(next, w->deadline);
            if ((!waiters_.empty() || breaker_open_ ||
                 slots_.size() + opening_ < options_.min_idle) &&
                next_connect_at_ > Clock::now())
                next = std::min(next, next_connect_at_);
            const bool may_shrink = idle_.size() > options_.min_idle;
            for (const slot* s : idle_) {
                next = std::min(next, s->expires_at);
                if (options_.idle_timeout.count() > 0 && may_shrink)
                    next = std::min(next, s->last_used + std::chrono::duration_cast<duration>(
                                                             options_.idle_timeout));
                if (options_.keepalive_interval.count() > 0)
                    next = std::min(next, s->last_used + std::chrono::duration_cast<duration>(
                                                             options_.keepalive_interval));
            }
            for (const slot& s : slots_) {
                if (s.where == where_now::busy && !s.interrupted)
                    next = std::min(next, s.check_deadline);
                if (options_.leak_threshold.count() > 0 && s.where == where_now::leased &&
                    !s.leak_reported)
                    next = std::min(next, s.leased_at + std::chrono::duration_cast<duration>(
                                                            options_.leak_threshold));
            }
            return next;
        }

        // ---- warm-up and close --------------------------------------------------------------

        void warm_up(error_code& ec, diagnostics& diag) {
            ec.clear();
            diag.clear();
            const std::uint64_t failures_before = [&] {
                std::lock_guard lock(mutex_);
                return metrics_.connect_failures;
            }();
            auto ready = [&] {
                return closed_ || idle_.size() + leased_ >= options_.min_idle ||
                       metrics_.connect_failures != failures_before;
            };
            {
                actions out;
                {
                    std::lock_guard lock(mutex_);
                    dispatch(Clock::now(), out); // starts the min_idle connects
                }
                run(out);
            }
            const auto finish = [&] {
                if (metrics_.connect_failures != failures_before) {
                    ec = last_error_;
                    diag = last_error_diag_;
                } else if (closed_) {
                    ec = client_errc::pool_closed;
                    diag = pool_closed_diagnostics();
                }
            };
            if (!manual_) {
                std::unique_lock lock(mutex_);
                progress_cv_.wait(lock, ready);
                finish();
                return;
            }
            for (;;) {
                {
                    std::lock_guard lock(mutex_);
                    if (ready()) {
                        finish();
                        return;
                    }
                }
                run_timers();
                if (!run_one_job())
                    throw std::logic_error(
                        "cloudmysql: warm_up() on a manually driven pool has nothing left to run");
            }
        }

        void close() {
            actions out;
            {
                std::lock_guard lock(mutex_);
                if (closed_)
                    return;
                closed_ = true;
                while (!waiters_.empty()) {
                    auto w = std::move(waiters_.front());
                    waiters_.pop_front();
                    deliveries_.push_back(fail_action(std::move(w->complete),
                                                      client_errc::pool_closed,
                                                      pool_closed_diagnostics()));
                }
                for (slot* s : idle_)
                    begin_close(s, close_reason::pool_closed, out);
                idle_.clear();
            }
            progress_cv_.notify_all();
            run(out);
        }

        // ---- errors that say what happened and what to do ---------------------------------

        static action fail_action(completion complete, client_errc code, diagnostics diag) {
            return [c = std::move(complete), code, d = std::move(diag)]() mutable {
                c(make_error_code(code), std::move(d), pooled_connection{});
            };
        }

        static diagnostics pool_closed_diagnostics() {
            return diagnostics("acquire failed: the pool is closed", {}, {}, error_class::other);
        }

        std::string last_error_text() const {
            if (!last_error_)
                return {};
            return fmt::format("; last connect error: {}", last_error_diag_.client_message().empty()
                                                               ? last_error_.message()
                                                               : last_error_diag_.client_message());
        }

        // Why a waiter got nothing by its deadline: what the pool saw during the wait, the most
        // telling first.
        diagnostics exhausted_diagnostics(const waiter& w, time_point now) const {
            using seconds_f = std::chrono::duration<double>;
            const auto waited = seconds_f(now - w.enqueued_at).count();
            const std::size_t checking = validating_ + resetting_ + keepalive_pings_;
            const std::string counts = fmt::format(
                "{} of {} connections in use, {} being checked, {} opening, {} more requests "
                "waiting",
                leased_, options_.max_size, checking, opening_, waiters_.size());
            // Long for a ping, a reset or a connect to take: 1 s, or the whole wait if shorter.
            const duration long_for =
                std::min<duration>(std::chrono::seconds(1), now - w.enqueued_at);
            const auto timeout = [](std::string text) {
                return diagnostics(std::move(text), {}, {}, error_class::timeout);
            };

            // A connect that failed during the wait is the cause.
            if (last_error_ && last_error_at_ >= w.enqueued_at)
                return diagnostics(
                    fmt::format("no connection within {:.1f} s (acquire_timeout) because "
                                "connecting to the server fails{} ({})",
                                waited, last_error_text(), counts),
                    last_error_diag_.server_message(), last_error_diag_.sqlstate(),
                    last_error_diag_.error_class());
            // Connections held up in the pool's own checks: the server stopped answering.
            const auto silent_for = longest_check(now, long_for);
            if (silent_for || last_unanswered_at_ >= w.enqueued_at)
                return timeout(fmt::format(
                    "no connection within {:.1f} s (acquire_timeout): the server has not "
                    "answered the pool's checks {}({}); it may be frozen or overloaded, or the "
                    "network path to it down: a ping or reset without an answer within "
                    "check_timeout ({} ms) is abandoned and its connection replaced",
                    waited,
                    silent_for ? fmt::format("for {:.1f} s ", seconds_f(*silent_for).count())
                               : std::string("within check_timeout "),
                    counts, options_.check_timeout.count()));
            // A connect that neither succeeds nor fails.
            if (!connects_started_.empty() && now - *connects_started_.begin() >= long_for)
                return timeout(fmt::format(
                    "no connection within {:.1f} s (acquire_timeout): the pool's connect to the "
                    "server has gone {:.1f} s without an answer ({}); the server may be slow to "
                    "accept sessions, frozen, or unreachable: a connect fails after its "
                    "connect_timeout{}",
                    waited, seconds_f(now - *connects_started_.begin()).count(), counts,
                    last_error_text()));
            // Earlier connects failed, and the next waits for its backoff.
            if (consecutive_failures_ > 0 && leased_ + checking + opening_ < options_.max_size)
                return timeout(fmt::format(
                    "no connection within {:.1f} s (acquire_timeout): the last {} connects to "
                    "the server failed, and the next waits for its backoff (up to backoff_max, "
                    "{} ms){} ({})",
                    waited, consecutive_failures_, options_.backoff_max.count(), last_error_text(),
                    counts));
            return timeout(fmt::format(
                "pool exhausted: {}; waited {:.1f} s (acquire_timeout){}; return connections "
                "sooner, raise max_size if the server allows more, or look for leaks with "
                "leak_threshold",
                counts, waited, last_error_text()));
        }

        // How long the oldest check still under way has gone without an answer, when that is
        // at least `long_for`.
        std::optional<duration> longest_check(time_point now, duration long_for) const {
            std::optional<duration> longest;
            for (const slot& s : slots_)
                if (s.where == where_now::busy && now - s.check_started_at >= long_for)
                    longest =
                        std::max(longest.value_or(duration::zero()), now - s.check_started_at);
            return longest;
        }

        diagnostics breaker_diagnostics(time_point now) const {
            const auto retry_in =
                std::chrono::duration<double>(next_connect_at_ > now ? next_connect_at_ - now
                                                                     : duration::zero())
                    .count();
            return diagnostics(
                fmt::format("server unavailable: the last {} connect attempts failed, so the "
                            "pool fails acquires at once until a probe connect succeeds (next "
                            "in {:.1f} s){}",
                            consecutive_failures_, retry_in, last_error_text()),
                last_error_diag_.server_message(), last_error_diag_.sqlstate(),
                last_error_diag_.error_class());
        }

        pool_metrics metrics() const {
            std::lock_guard lock(mutex_);
            pool_metrics m = metrics_;
            m.idle = idle_.size();
            m.in_use = leased_;
            m.opening = opening_;
            m.pending_requests = waiters_.size();
            m.max = options_.max_size;
            m.idle_min = options_.min_idle;
            m.breaker_open = breaker_open_;
            return m;
        }

        // ---- data -----------------------------------------------------------------------------

        pool_options options_;
        std::size_t max_connecting_ = 1; // options_.max_connecting, at most max_size
        Connector connector_;
        const bool manual_;

        mutable std::mutex mutex_;
        std::list<slot> slots_;                       // every connection open or closing
        std::vector<slot*> idle_;                     // a stack: the most recently used on top
        std::deque<std::unique_ptr<waiter>> waiters_; // first come, first served
        std::size_t leased_ = 0;
        std::size_t opening_ = 0;                    // connects queued or running
        std::multiset<time_point> connects_started_; // when each of them started
        std::size_t validating_ = 0;                 // pings that will serve a waiter
        std::size_t keepalive_pings_ = 0; // pings of idle connections (keepalive_interval)
        std::size_t resetting_ = 0;       // returned connections being reset
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
        bool stopping_ = false;
        bool stopped_ = false;
        pool_metrics metrics_;
        std::mt19937_64 rng_;

        std::deque<action> deliveries_; // completions, in the order they were decided
        bool delivering_ = false;
        std::deque<action> jobs_;
        std::condition_variable jobs_cv_;
        std::condition_variable timer_cv_;
        std::condition_variable progress_cv_; // a connect finished (warm_up waits for it)
        time_point timer_target_ = time_point::max();
        std::vector<std::thread> threads_;
        // Executor mode (the executor constructor): jobs are posted there, time is kept by a
        // timer on it, and shut_down() waits for the jobs under way.
        std::optional<boost::asio::any_io_executor> executor_;
        std::unique_ptr<boost::asio::steady_timer> timer_;
        std::size_t jobs_running_ = 0;
        std::condition_variable jobs_done_cv_;
    };

    std::shared_ptr<state> state_;
};

} // namespace cloudmysql
