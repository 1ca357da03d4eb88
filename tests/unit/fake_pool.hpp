// A fake server, connector and clock for driving basic_pool without a network or sleeps.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <cloudmysql/basic_pool.hpp>
#include <cloudmysql/detail/manual_driver.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace cloudmysql::test {

/// Time that moves only when a test says so (atomic: a job a test runs on a thread of its own
/// reads it while the test moves it).
struct fake_clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<fake_clock>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept { return time_point(duration(current.load())); }
    static void advance(duration d) noexcept { current += d.count(); }
    static inline std::atomic<rep> current{duration(std::chrono::hours(1)).count()};
};

/// The server's side: which connections exist, and what the next connects do.
struct fake_server {
    enum class conn_state { open, dead, closed };

    mutable std::mutex m;
    std::condition_variable interrupted_cv;
    std::map<int, conn_state> conns;
    int next_id = 0;
    int connects = 0;
    int pings = 0;
    int resets = 0;
    int closes = 0;
    int peak_open = 0;
    int fail_next = 0; ///< this many connects fail
    unsigned fail_errno = 2003;
    error_class fail_class = error_class::unreachable;
    /// Pings and resets get no answer: they block until the pool interrupts their connection,
    /// as against a server that stopped answering (SIGSTOP, a path that drops everything).
    bool silent = false;
    std::set<int> interrupted; ///< connections the pool interrupted
    std::vector<fake_clock::time_point> connect_times;

    int open_count() const { // not closed yet: the server still counts it
        std::lock_guard lock(m);
        int n = 0;
        for (const auto& [id, st] : conns)
            n += st != conn_state::closed ? 1 : 0;
        return n;
    }
    conn_state state_of(int id) const {
        std::lock_guard lock(m);
        return conns.at(id);
    }
    void kill(int id) {
        std::lock_guard lock(m);
        if (conns.at(id) == conn_state::open)
            conns[id] = conn_state::dead;
    }
};

struct fake_connection {
    int id = 0;
    /// What connection::fault() would say: a test sets it as if a statement had failed so.
    error_class fault = error_class::none;
    /// What connection::needs_reset() would say: a test clears it as if the holder had run
    /// only plain SELECTs; reset() leaves it as it is.
    bool needs_reset = true;
    /// Something a holder left in the session (a test sets it); reset() clears it, and the
    /// pool must never hand it to the next holder.
    int session_state = 0;
};

struct fake_connector {
    using connection_type = fake_connection;
    std::shared_ptr<fake_server> server;

    fake_connection connect(error_code& ec, diagnostics& diag) {
        std::lock_guard lock(server->m);
        ++server->connects;
        server->connect_times.push_back(fake_clock::now());
        if (server->fail_next > 0) {
            --server->fail_next;
            ec = make_mysql_error_code(server->fail_errno);
            diag = diagnostics("cannot connect to fake:3306: injected failure",
                               server->fail_errno < 2000 ? "Too many connections" : "", "08004",
                               server->fail_class);
            return {};
        }
        const int id = ++server->next_id;
        server->conns[id] = fake_server::conn_state::open;
        int open = 0;
        for (const auto& [i, st] : server->conns)
            open += st != fake_server::conn_state::closed ? 1 : 0;
        server->peak_open = std::max(server->peak_open, open);
        return {id};
    }
    void ping(fake_connection& c, error_code& ec, diagnostics& diag) {
        std::unique_lock lock(server->m);
        ++server->pings;
        wait_while_silent(lock, c);
        check(c, ec, diag);
    }
    void reset(fake_connection& c, error_code& ec, diagnostics& diag) {
        std::unique_lock lock(server->m);
        ++server->resets;
        wait_while_silent(lock, c);
        check(c, ec, diag);
        if (!ec)
            c.session_state = 0;
    }
    /// What connection::interrupt() does: the blocked ping or reset returns, the session lost.
    void interrupt(const fake_connection& c) const noexcept {
        std::lock_guard lock(server->m);
        server->interrupted.insert(c.id);
        if (server->conns.count(c.id) != 0 && server->conns[c.id] == fake_server::conn_state::open)
            server->conns[c.id] = fake_server::conn_state::dead;
        server->interrupted_cv.notify_all();
    }
    void close(fake_connection& c) noexcept {
        std::lock_guard lock(server->m);
        ++server->closes;
        if (c.id != 0)
            server->conns[c.id] = fake_server::conn_state::closed;
    }

    error_class fault(const fake_connection& c) const noexcept { return c.fault; }
    bool needs_reset(const fake_connection& c) const noexcept { return c.needs_reset; }

private:
    void wait_while_silent(std::unique_lock<std::mutex>& lock, const fake_connection& c) const {
        server->interrupted_cv.wait(
            lock, [&] { return !server->silent || server->interrupted.count(c.id) != 0; });
    }
    void check(const fake_connection& c, error_code& ec, diagnostics& diag) const {
        if (server->conns.at(c.id) != fake_server::conn_state::open) {
            ec = make_mysql_error_code(2013);
            diag = diagnostics("lost connection", {}, "HY000", error_class::connection_lost);
        }
    }
};

using manual_pool = basic_pool<fake_connector, fake_clock>;
using threaded_pool = basic_pool<fake_connector, std::chrono::steady_clock>;

/// A manually driven pool, and acquires whose completions the test collects in order.
struct pool_harness {
    struct request {
        std::uint64_t ticket = 0;
        bool done = false;
        error_code ec;
        diagnostics diag;
        manual_pool::pooled_connection conn;
    };

    explicit pool_harness(pool_options options)
            : server(std::make_shared<fake_server>()),
              pool(with_seed(std::move(options)), fake_connector{server}, detail::manual_drive) {}

    static pool_options with_seed(pool_options o) {
        if (!o.random_seed)
            o.random_seed = 42;
        return o;
    }

    /// Starts an async_acquire; its result arrives at settle().
    request& acquire(std::source_location where = std::source_location::current()) {
        auto r = std::make_unique<request>();
        r->ticket = requests.size();
        request& ref = *r;
        requests.push_back(std::move(r));
        pool.async_acquire(ref.diag,
                           boost::asio::bind_executor(
                               io,
                               [this, &ref](error_code ec, manual_pool::pooled_connection c) {
                                   ref.ec = ec;
                                   ref.conn = std::move(c);
                                   ref.done = true;
                                   completion_order.push_back(ref.ticket);
                               }),
                           where);
        return ref;
    }

    /// The pool's work, run by hand (detail::manual_driver).
    std::size_t poll() { return detail::manual_driver(pool).poll(); }
    bool run_one_job() { return detail::manual_driver(pool).run_one_job(); }
    void run_timers() { detail::manual_driver(pool).run_timers(); }
    std::size_t queued_jobs() { return detail::manual_driver(pool).queued_jobs(); }

    /// Runs jobs, timers and completions until nothing is left to do at this moment.
    void settle() {
        for (;;) {
            const std::size_t jobs = poll();
            io.restart();
            const std::size_t handlers = io.poll();
            if (jobs == 0 && handlers == 0)
                return;
        }
    }

    /// Delivers completions already posted, without running pool jobs.
    void deliver() {
        io.restart();
        io.poll();
    }

    // Declared so that the pool goes first: closing it completes the requests' operations.
    std::shared_ptr<fake_server> server;
    boost::asio::io_context io;
    std::vector<std::unique_ptr<request>> requests;
    std::vector<std::uint64_t> completion_order;
    manual_pool pool;
};

} // namespace cloudmysql::test
