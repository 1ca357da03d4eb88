// The connection pool, as a template over what opens a connection (pool_connector.hpp) and over
// the clock. cloudmysql::pool (pool.hpp) is the MariaDB instantiation; the unit tests use a fake
// connector and a fake clock. The decisions live in detail/pool_core.hpp (a state machine with
// no locks or threads), what drives them in detail/pool_runtime.hpp.
#pragma once

#include <cloudmysql/database_error.hpp>
#include <cloudmysql/detail/pool_runtime.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/pool_connector.hpp>
#include <cloudmysql/pool_metrics.hpp>
#include <cloudmysql/pool_options.hpp>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>

namespace cloudmysql {

namespace detail {
template <class Pool>
class manual_driver;
}

/// A pool of connections. What it promises:
/// - **The cap**: never more than max_size connections open or opening at once.
/// - **Order**: a request that finds an idle connection that needs no check takes it at once;
///   a request that has to wait is served after every request that started waiting before it
///   (first come, first served), whether it came through acquire() or async_acquire(). No
///   request jumps the queue: while requests wait, no connection stays idle.
/// - **Deadlines**: a waiting request fails within acquire_timeout (pool_exhausted), at once
///   while the breaker is open (server_unavailable) or the pool is closed (pool_closed), with
///   what the pool saw and what to do in the diagnostics.
/// - **Clean hand-overs**: a returned connection whose session may hold something the holder
///   left is reset before anyone else gets it (unless the connector says it holds nothing:
///   connector_tracks_resets); one that sat idle validate_after_idle is pinged first; one
///   whose holder saw it fail as lost or read-only is closed, and older ones retired.
/// - **Upkeep**: idle connections retire by idle_timeout (down to min_idle) and max_lifetime,
///   and are kept alive (keepalive_interval); connects back off after failures, and a breaker
///   fails requests at once while the server is known to be down; leases held past
///   leak_threshold are reported with where they were acquired.
///
/// Thread-safe: acquire from any thread. Blocking work (connect, ping, reset, close) runs on
/// max_connecting + 2 pool threads, so that a connect storm never starves resets, and one more
/// thread keeps time; or, with the executor constructor, on an executor of the program's and no
/// thread of the pool's own. Destroying the pool closes it; connections still leased close when
/// returned.
template <pool_connector Connector, class Clock = std::chrono::steady_clock>
class basic_pool {
    using runtime = detail::pool_runtime<Connector, Clock>;
    using slot = typename runtime::slot;

public:
    using connection_type = typename Connector::connection_type;
    using clock_type = Clock;

    /// A leased connection. Move-only; returns itself to the pool on destruction (reset first
    /// when the session may hold something the holder left, so that nothing the holder set
    /// leaks to the next one). Use it from one thread at a time. It may outlive the pool: it
    /// then closes on return.
    class pooled_connection {
    public:
        pooled_connection() noexcept = default;
        pooled_connection(pooled_connection&& other) noexcept
                : pool_(std::move(other.pool_)), slot_(std::exchange(other.slot_, nullptr)) {}
        pooled_connection& operator=(pooled_connection&& other) noexcept {
            if (this != &other) {
                release();
                pool_ = std::move(other.pool_);
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
        /// The pool's number for this connection (creation order, from 1; 0 when empty).
        std::uint64_t sequence() const noexcept { return slot_ ? slot_->sequence : 0; }

        /// Returns the connection now (the destructor does this too).
        void release() noexcept {
            if (slot_ != nullptr)
                std::exchange(pool_, nullptr)
                    ->give_back(std::exchange(slot_, nullptr), false, error_class::none);
        }

        /// Closes the connection instead of returning it: call it after an error left the
        /// session unusable. With reason connection_lost or read_only (a failover), every
        /// connection opened before this one is retired too: they point at the old server.
        void discard(error_class reason = error_class::other) noexcept {
            if (slot_ != nullptr)
                std::exchange(pool_, nullptr)
                    ->give_back(std::exchange(slot_, nullptr), true, reason);
        }

    private:
        friend class basic_pool;
        pooled_connection(std::shared_ptr<runtime> pool, slot* s) noexcept
                : pool_(std::move(pool)), slot_(s) {}
        std::shared_ptr<runtime> pool_;
        slot* slot_ = nullptr;
    };

    /// Starts the pool's threads. Opens nothing yet (see warm_up()). Throws
    /// std::invalid_argument for options outside their limits.
    basic_pool(pool_options options, Connector connector)
            : pool_(std::make_shared<runtime>(std::move(options), std::move(connector), false)) {
        pool_->start_threads();
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
            : pool_(std::make_shared<runtime>(std::move(options), std::move(connector), false)) {
        pool_->use_executor(std::move(executor));
    }
    /// For tests: a pool whose work detail::manual_driver runs by hand. Not for programs.
    basic_pool(pool_options options, Connector connector, detail::manual_drive_t)
            : pool_(std::make_shared<runtime>(std::move(options), std::move(connector), true)) {}

    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;
    /// Closes the pool and joins its threads.
    ~basic_pool() { pool_->shut_down(); }

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
        return lease(pool_->acquire(ec, diag, where));
    }

    /// An idle connection that needs no check, or nothing; never waits.
    std::optional<pooled_connection>
    try_acquire(std::source_location where = std::source_location::current()) {
        if (slot* s = pool_->try_acquire(where))
            return lease(s);
        return std::nullopt;
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
    void warm_up(error_code& ec, diagnostics& diag) { pool_->warm_up(ec, diag); }

    /// Drains the pool: waiters fail with pool_closed, idle connections close, leased ones
    /// close when returned. Idempotent.
    void close() { pool_->close(); }

    pool_metrics metrics() const { return pool_->metrics(); }
    std::string prometheus_text(std::string_view pool_name = "default") const {
        return cloudmysql::prometheus_text(metrics(), pool_name);
    }
    const pool_options& options() const noexcept { return pool_->options(); }

private:
    template <class>
    friend class detail::manual_driver;

    pooled_connection lease(slot* s) const noexcept {
        return s != nullptr ? pooled_connection(pool_, s) : pooled_connection();
    }

    template <class CompletionToken>
    auto async_acquire_impl(diagnostics* diag, CompletionToken&& token,
                            std::source_location where) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, pooled_connection)>(
            [pool = pool_, diag, where](auto handler) {
                auto work = boost::asio::make_work_guard(handler);
                pool->async_acquire(where, [pool, handler = std::move(handler),
                                            work = std::move(work),
                                            diag](error_code ec, diagnostics d, slot* s) mutable {
                    // A lease at once: if the handler is never run, it still comes back.
                    pooled_connection conn =
                        s != nullptr ? pooled_connection(pool, s) : pooled_connection();
                    if (diag != nullptr)
                        *diag = std::move(d);
                    // The work guard travels with the handler and ends on the handler's
                    // executor: after post() the pool's thread must not touch an io_context
                    // that may be gone once the handler ran.
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

    std::shared_ptr<runtime> pool_;
};

} // namespace cloudmysql
