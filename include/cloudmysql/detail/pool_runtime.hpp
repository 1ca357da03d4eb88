// What drives pool_core: one mutex around it, the I/O it asks for run by the pool's threads or
// on the user's executor (or by hand, in tests: manual_driver), the timer that calls on_timer()
// at next_deadline(), and the requests it settles told to their callers, in the order decided.
#pragma once

#include <cloudmysql/detail/pool_core.hpp>
#include <cloudmysql/detail/pool_messages.hpp>
#include <cloudmysql/detail/unique_function.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/pool_connector.hpp>
#include <cloudmysql/pool_metrics.hpp>
#include <cloudmysql/pool_options.hpp>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

namespace cloudmysql::detail {

/// Selects basic_pool's constructor that starts no threads: the test runs the pool's work with
/// manual_driver (manual_driver.hpp). Not for programs.
struct manual_drive_t {
    explicit manual_drive_t() = default;
};
inline constexpr manual_drive_t manual_drive{};

template <class Connector, class Clock>
class pool_runtime : public std::enable_shared_from_this<pool_runtime<Connector, Clock>> {
public:
    using connection_type = typename Connector::connection_type;
    using slot = pool_slot<connection_type, Clock>;
    using time_point = typename Clock::time_point;
    /// How an async request learns its result: on a pool thread (or the one that decided),
    /// outside the lock. `granted` is leased to it (nullptr on failure).
    using completion = unique_function<void(error_code, diagnostics, slot*)>;

    pool_runtime(pool_options options, Connector connector, bool manual)
            : core_(std::move(options)), connector_(std::move(connector)), manual_(manual) {}

    pool_runtime(const pool_runtime&) = delete;
    pool_runtime& operator=(const pool_runtime&) = delete;

    const pool_options& options() const noexcept { return core_.options(); }

    // ---- drivers ------------------------------------------------------------------------------

    /// The pool's own threads: max_connecting + 2 for the I/O (a connect storm never starves
    /// resets), and one that keeps time.
    void start_threads() {
        const std::size_t workers = std::min(options().max_connecting, options().max_size) + 2;
        for (std::size_t i = 0; i < workers; ++i)
            threads_.emplace_back([this] { worker_loop(); });
        threads_.emplace_back([this] { timer_loop(); });
    }

    /// The executor constructor: I/O is posted to `executor`, time kept by a timer on it.
    void use_executor(boost::asio::any_io_executor executor) {
        executor_.emplace(std::move(executor));
        timer_ = std::make_unique<boost::asio::steady_timer>(*executor_);
    }

    /// Closes the pool and waits for the I/O under way; connections leased now close when
    /// they come back, on the thread that returns them.
    void shut_down() {
        close();
        {
            std::unique_lock lock(mutex_);
            stopping_ = true;
            stopped_ = true;
            if (timer_) {
                timer_->cancel();
                // I/O under way (its connector may use what the program destroys next) ends
                // before the pool is gone.
                jobs_done_cv_.wait(lock, [this] { return jobs_running_ == 0; });
                timer_.reset(); // while the executor is still there
            }
        }
        jobs_cv_.notify_all();
        timer_cv_.notify_all();
        for (auto& t : threads_)
            t.join();
        threads_.clear();
        // Manual drive: nobody ran what is queued; run it now so that connections close.
        while (run_one_job()) {
        }
    }

    // ---- requests -----------------------------------------------------------------------------

    /// An idle connection that needs no check, or nullptr; never waits.
    slot* try_acquire(std::source_location where) {
        const time_point early = Clock::now(); // outside the lock: the fast path's only clock read
        actions out;
        slot* s = nullptr;
        bool to_deliver = false;
        {
            std::lock_guard lock(mutex_);
            if ((s = core_.lease_idle(early, where)) != nullptr) {
                poke_timer(core_.next_deadline(*s, false));
                return s;
            }
            const time_point now = Clock::now();
            s = core_.try_lease(now, where, fx_);
            to_deliver = apply(now, out);
        }
        run(out, to_deliver);
        return s;
    }

    /// Waits for a connection (first come, first served) until acquire_timeout.
    slot* acquire(error_code& ec, diagnostics& diag, std::source_location where) {
        ec.clear();
        diag.clear();
        if (manual_)
            return acquire_manual(ec, diag, where);
        const time_point early = Clock::now();
        std::optional<sync_wait> wait; // only when it has to wait
        actions out;
        bool to_deliver = false;
        slot* got = nullptr;
        {
            // One critical section: a lease at once, or a place in the queue.
            std::lock_guard lock(mutex_);
            if ((got = core_.lease_idle(early, where)) != nullptr) {
                poke_timer(core_.next_deadline(*got, false));
                return got;
            }
            const time_point now = Clock::now();
            got = core_.try_lease(now, where, fx_);
            if (got == nullptr)
                core_.enqueue(now, where, waiter{{}, &wait.emplace(), nullptr}, fx_);
            to_deliver = apply(now, out);
        }
        run(out, to_deliver);
        if (got != nullptr)
            return got;
        if (wait->wait()) {
            // It slept: the thread that settled it woke it under the lock, and may still be
            // inside notify_one(); once the lock is free, `wait` is no longer used.
            std::lock_guard lock(mutex_);
        }
        ec = wait->ec;
        diag = std::move(wait->diag);
        return wait->granted;
    }

    // Manual drive: the caller's thread runs the pool's work until its request is settled.
    slot* acquire_manual(error_code& ec, diagnostics& diag, std::source_location where) {
        if (slot* s = try_acquire(where))
            return s;
        // Kept alive by the queue too: a manual acquire that cannot complete throws and leaves
        // its request queued (until the pool closes).
        auto shared = std::make_shared<sync_wait>();
        submit(where, waiter{{}, shared.get(), shared});
        while (!shared->settled()) {
            run_timers();
            if (!run_one_job() && !shared->settled())
                throw std::logic_error(pool_messages::manual_acquire_stuck);
        }
        ec = shared->ec;
        diag = std::move(shared->diag);
        return shared->granted;
    }

    /// Queues an async request; `complete` runs outside the lock, in the order decided.
    void async_acquire(std::source_location where, completion complete) {
        const time_point early = Clock::now();
        slot* got = nullptr;
        {
            std::lock_guard lock(mutex_);
            // A lease at once, told on this thread without the delivery queue; unless results
            // decided earlier still wait there (they are told first).
            if (deliveries_.empty() && !delivering_ &&
                (got = core_.lease_idle(early, where)) != nullptr)
                poke_timer(core_.next_deadline(*got, false));
        }
        if (got != nullptr)
            complete({}, {}, got);
        else
            submit(where, waiter{std::move(complete), nullptr, nullptr});
    }

    /// A lease ends (pooled_connection).
    void give_back(slot* s, bool discard, error_class reason) noexcept {
        // The returning thread still owns the connection: ask the connector outside the lock.
        const error_class fault = connector_.fault(std::as_const(s->conn));
        const bool reset = needs_reset(s->conn);
        const bool clean =
            !discard && reason == error_class::none && fault == error_class::none && !reset;
        const time_point early = Clock::now();
        actions out;
        bool to_deliver = false;
        {
            std::lock_guard lock(mutex_);
            if (clean && core_.return_clean(early, s, fx_)) {
                // Idle, or leased to the first waiter: no I/O, no dispatch, one lock.
                to_deliver = settle_grants();
                poke_timer(core_.next_deadline(*s, core_.idle_count() > options().min_idle));
            } else {
                const time_point now = Clock::now();
                core_.on_return(now, s, discard, reason, fault, reset, fx_);
                to_deliver = apply(now, out);
            }
        }
        run(out, to_deliver);
    }

    void warm_up(error_code& ec, diagnostics& diag) {
        ec.clear();
        diag.clear();
        std::uint64_t failures_before = 0;
        {
            actions out;
            {
                std::lock_guard lock(mutex_);
                failures_before = core_.connect_failures();
                const time_point now = Clock::now();
                core_.fill(now, fx_); // starts the min_idle connects
                apply(now, out);
            }
            run(out);
        }
        auto ready = [&] {
            return core_.closed() ||
                   core_.idle_count() + core_.count(slot_state::leased) >= options().min_idle ||
                   core_.connect_failures() != failures_before;
        };
        const auto finish = [&] {
            if (core_.connect_failures() != failures_before) {
                ec = core_.last_error();
                diag = core_.last_error_diagnostics();
            } else if (core_.closed()) {
                ec = client_errc::pool_closed;
                diag = pool_messages::pool_closed();
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
                throw std::logic_error(pool_messages::manual_warm_up_stuck);
        }
    }

    void close() {
        actions out;
        {
            std::lock_guard lock(mutex_);
            core_.close(fx_);
            apply(Clock::now(), out);
        }
        progress_cv_.notify_all();
        run(out);
    }

    pool_metrics metrics() const {
        std::lock_guard lock(mutex_);
        return core_.metrics();
    }

    // ---- manual drive (manual_driver) -------------------------------------------------------

    /// Runs one queued I/O job; false if none.
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

    /// on_timer() as of Clock::now().
    void run_timers() {
        actions out;
        {
            std::lock_guard lock(mutex_);
            const time_point now = Clock::now();
            core_.on_timer(now, fx_);
            apply(now, out);
        }
        run(out);
    }

    std::size_t queued_jobs() const {
        std::lock_guard lock(mutex_);
        return jobs_.size();
    }

private:
    using action = unique_function<void()>;
    // Work to do once the lock is released: I/O of a stopped pool, user callbacks.
    using actions = std::vector<action>;

    // A blocking acquire() waiting on its own thread, settled under the lock by whichever
    // thread decides, and woken alone (no thundering herd, no hand-off through a pool thread).
    // It spins briefly before it sleeps: with more threads than connections, a connection
    // comes back within microseconds, much sooner than a sleep and a wake-up take.
    struct sync_wait {
        static constexpr std::uint32_t awake = 0, asleep = 1, done = 2;
        static constexpr unsigned spin_yields = 100;
        static constexpr std::chrono::microseconds spin_for{50};
        std::atomic<std::uint32_t> state{awake};
        slot* granted = nullptr;
        error_code ec;
        diagnostics diag;

        bool settled() const noexcept { return state.load(std::memory_order_acquire) == done; }

        // Under the pool's lock, after the results are written.
        void settle() noexcept {
            if (state.exchange(done, std::memory_order_acq_rel) == asleep)
                state.notify_one();
        }

        // Returns once settled; true when it slept (settle() then woke it under the lock).
        bool wait() noexcept {
            // At most spin_yields yields and spin_for: on an idle machine a yield returns at
            // once (the spin costs a few microseconds of CPU), on a busy one it lets the
            // holders run, and the time bound keeps a long wait from staying runnable.
            const auto spin_end = std::chrono::steady_clock::now() + spin_for;
            for (unsigned i = 1; i <= spin_yields; ++i) {
                if (settled())
                    return false;
                std::this_thread::yield();
                if (i % 8 == 0 && std::chrono::steady_clock::now() >= spin_end)
                    break;
            }
            std::uint32_t expected = awake;
            if (!state.compare_exchange_strong(expected, asleep, std::memory_order_acq_rel))
                return false; // settled meanwhile
            while (!settled())
                state.wait(asleep, std::memory_order_acquire);
            return true;
        }
    };

    // What the core keeps for a request that waits: a completion (async) or a sync_wait.
    struct waiter {
        completion async;
        sync_wait* sync = nullptr;
        std::shared_ptr<sync_wait> owner; // manual drive only
    };

    using core_type = pool_core<connection_type, Clock, waiter>;
    using effects = typename core_type::effects;

    void submit(std::source_location where, waiter w) {
        actions out;
        {
            std::lock_guard lock(mutex_);
            const time_point now = Clock::now();
            core_.enqueue(now, where, std::move(w), fx_);
            apply(now, out);
        }
        run(out);
    }

    bool needs_reset(const connection_type& conn) const noexcept {
        if constexpr (connector_tracks_resets<Connector>)
            return connector_.needs_reset(conn);
        else
            return true;
    }

    // Under the lock, after a transition: start the I/O it asked for, settle the requests it
    // decided (in that order), and move the timer to next_deadline(). True when async
    // completions wait for deliver().
    bool apply(time_point now, actions& out) {
        for (auto& io : fx_.io) {
            switch (io.what) {
            case io_kind::connect:
                push_job([this, started = io.started] {
                    error_code ec;
                    diagnostics diag;
                    connection_type conn = connector_.connect(ec, diag);
                    after_io([&](time_point t) {
                        core_.on_connect_done(t, started, std::move(conn), ec, std::move(diag),
                                              fx_);
                    });
                    progress_cv_.notify_all();
                });
                break;
            case io_kind::ping:
            case io_kind::reset:
                push_job([this, s = io.target, reset = io.what == io_kind::reset] {
                    error_code ec;
                    diagnostics diag;
                    if (reset)
                        connector_.reset(s->conn, ec, diag);
                    else
                        connector_.ping(s->conn, ec, diag);
                    after_io([&](time_point t) { core_.on_check_done(t, s, ec, diag, fx_); });
                });
                break;
            case io_kind::close:
                if (stopped_) // no threads left: on the caller's thread
                    out.push_back(
                        [self = this->shared_from_this(), s = io.target] { self->close_job(s); });
                else
                    push_job([this, s = io.target] { close_job(s); });
                break;
            case io_kind::interrupt:
                // Under the lock: the slot cannot be closed meanwhile.
                if constexpr (connector_interrupts<Connector>)
                    connector_.interrupt(std::as_const(io.target->conn));
                break;
            }
        }
        fx_.io.clear();
        const bool to_deliver = settle_grants();
        for (auto& report : fx_.leaks)
            out.push_back([self = this->shared_from_this(), report] {
                if (self->options().on_leak)
                    self->options().on_leak(report);
                else
                    self->options().notify(pool_messages::leak_notice(report));
            });
        fx_.leaks.clear();
        poke_timer(core_.next_deadline(now));
        return to_deliver;
    }

    void close_job(slot* s) {
        connector_.close(s->conn);
        after_io([&](time_point t) { core_.on_closed(t, s, fx_); });
    }

    // An I/O job ended: the transition `f` under the lock, then what it asks for.
    template <class F>
    void after_io(F&& f) {
        actions out;
        bool to_deliver = false;
        {
            std::lock_guard lock(mutex_);
            const time_point now = Clock::now();
            f(now);
            to_deliver = apply(now, out);
        }
        run(out, to_deliver);
    }

    // Under the lock: tells the requests the last transition settled, in the order decided.
    // True when async completions wait in deliveries_ (deliver() them after the lock).
    bool settle_grants() {
        for (auto& g : fx_.grants) {
            if (sync_wait* w = g.waiter.sync) {
                w->granted = g.granted;
                w->ec = g.ec;
                w->diag = std::move(g.diag);
                w->settle();
                continue;
            }
            deliveries_.push_back([c = std::move(g.waiter.async), ec = g.ec, d = std::move(g.diag),
                                   s = g.granted]() mutable { c(ec, std::move(d), s); });
        }
        fx_.grants.clear();
        return !deliveries_.empty();
    }

    // Runs what was decided under the lock. Completions go through one queue, drained by one
    // thread at a time, so that async requests learn their results in the order the pool
    // decided them, whichever threads made the decisions.
    void run(actions& out, bool to_deliver = true) {
        for (auto& a : out)
            a();
        out.clear();
        if (to_deliver)
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

    void push_job(action job) {
        if (executor_) {
            ++jobs_running_;
            boost::asio::post(*executor_,
                              [self = this->shared_from_this(), job = std::move(job)]() mutable {
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
            const time_point next = core_.next_deadline(Clock::now());
            timer_target_ = next;
            if (next == time_point::max())
                timer_cv_.wait(lock);
            else
                timer_cv_.wait_until(lock, next);
            if (stopping_)
                break;
            timer_target_ = time_point::max();
            // on_timer() on every wake-up: it is cheap, and the deadline that woke us (a
            // backoff that ended) may no longer count in next_deadline().
            actions out;
            const time_point now = Clock::now();
            core_.on_timer(now, fx_);
            apply(now, out);
            lock.unlock();
            run(out);
            lock.lock();
        }
    }

    // Wakes the timer (thread, or timer on the executor) when something is due before what it
    // waits for.
    void poke_timer(time_point when) {
        if (manual_ || stopping_ || when >= timer_target_)
            return;
        timer_target_ = when;
        if (timer_)
            arm_timer(when);
        else
            timer_cv_.notify_one();
    }

    void arm_timer(time_point when) {
        if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
            timer_->expires_at(when);
            timer_->async_wait(
                [self = this->shared_from_this()](const boost::system::error_code& ec) {
                    if (!ec)
                        self->on_executor_timer();
                });
        }
    }

    void on_executor_timer() {
        actions out;
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                return;
            timer_target_ = time_point::max();
            const time_point now = Clock::now();
            core_.on_timer(now, fx_);
            apply(now, out);
        }
        run(out);
    }

    // ---- data -------------------------------------------------------------------------------

    mutable std::mutex mutex_; // guards everything below but connector_
    core_type core_;
    effects fx_; // what the transition under way asks for; emptied by apply()
    Connector connector_;
    const bool manual_;

    bool stopping_ = false;         // the threads end once what is queued has run
    bool stopped_ = false;          // no threads left: closes run on the caller's thread
    std::deque<action> deliveries_; // async completions, in the order decided
    bool delivering_ = false;
    std::deque<action> jobs_;
    std::condition_variable jobs_cv_;
    std::condition_variable timer_cv_;
    std::condition_variable progress_cv_; // a connect ended (warm_up waits for it)
    time_point timer_target_ = time_point::max();
    std::vector<std::thread> threads_;
    // Executor mode: I/O posted there, time kept by a timer on it, and shut_down() waits for
    // the jobs under way.
    std::optional<boost::asio::any_io_executor> executor_;
    std::unique_ptr<boost::asio::steady_timer> timer_;
    std::size_t jobs_running_ = 0;
    std::condition_variable jobs_done_cv_;
};

} // namespace cloudmysql::detail
