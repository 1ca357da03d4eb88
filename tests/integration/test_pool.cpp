// The pool against a real MariaDB: the connection cap under contention, session reset between
// leases, connections the server kills, a full server, a server that stops and comes back,
// async_acquire's completion tokens and FIFO order, close(), and server_check().
//
// A program of its own, run serially (see CMakeLists.txt): it fills the server's connection
// slots and counts the app user's sessions in PROCESSLIST, so no other test may connect
// meanwhile. No assertion depends on timing; waits are bounded loops.
#include "own_sandbox.hpp"
#include "test_server.hpp"

#include <cloudmysql/pool.hpp>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <spawn.h>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <vector>

extern char** environ;

using namespace cloudmysql;
using namespace std::chrono_literals;
using cloudmysql::test::scratch_database;

namespace {

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

/// Polls `done` up to `tries` times, `pause` apart; true once it holds.
bool eventually(const std::function<bool()>& done, int tries = 200,
                std::chrono::milliseconds pause = 25ms) {
    for (int i = 0; i < tries; ++i) {
        if (done())
            return true;
        std::this_thread::sleep_for(pause);
    }
    return done();
}

/// The sessions of `user` on the server, as root sees them.
std::int64_t sessions_of(connection& root, const std::string& user) {
    return root
        .execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", user)[0]
        .get<std::int64_t>(0);
}

std::vector<std::uint64_t> session_ids_of(connection& root, const std::string& user) {
    std::vector<std::uint64_t> ids;
    for (const auto& r :
         root.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user))
        ids.push_back(r.get<std::uint64_t>(0));
    return ids;
}

/// Pools of earlier tests close their sessions asynchronously; counts must start from zero.
void require_no_sessions(connection& root, const std::string& user) {
    const bool none = eventually([&] { return sessions_of(root, user) == 0; });
    REQUIRE_MESSAGE(none, "sessions of '", user,
                    "' left over from earlier tests: ", sessions_of(root, user));
}

std::uint64_t closed_for(const pool_metrics& m, close_reason r) {
    return m.closed[static_cast<std::size_t>(r)];
}

bool select_one(connection& conn, error_code& ec, diagnostics& diag) {
    const auto r = conn.query("SELECT 1", ec, diag);
    return !ec && r.size() == 1 && r[0].get<int>(0) == 1;
}

/// The first failure of many threads, for one assertion in the test's thread.
class failure_log {
public:
    void add(std::string what) {
        std::lock_guard lock(mutex_);
        if (count_++ == 0)
            first_ = std::move(what);
    }
    int count() const {
        std::lock_guard lock(mutex_);
        return count_;
    }
    std::string first() const {
        std::lock_guard lock(mutex_);
        return first_;
    }

private:
    mutable std::mutex mutex_;
    int count_ = 0;
    std::string first_;
};

std::string describe(std::string_view stage, const error_code& ec, const diagnostics& diag) {
    return fmt::format("{}: {} [{}] {} {}", stage, ec.message(), to_string(diag.error_class()),
                       diag.client_message(), diag.server_message());
}

/// `count` leases, each running SELECT 1; every failure goes to `failures`.
void acquire_and_select(pool& p, int count, failure_log& failures) {
    for (int i = 0; i < count; ++i) {
        error_code ec;
        diagnostics diag;
        auto conn = p.acquire(ec, diag);
        if (ec) {
            failures.add(describe("acquire", ec, diag));
            continue;
        }
        if (!select_one(*conn, ec, diag))
            failures.add(describe("SELECT 1", ec, diag));
    }
}

} // namespace

TEST_CASE("64 threads share 16 connections: no errors, and the server never sees more than 16") {
    const connect_options options = test::server_options();
    connection root(test::root_options()); // the monitor: not from the pool, another user
    require_no_sessions(root, options.user);

    constexpr int threads = 64;
    // 64 x 500 (TLS, and a COM_RESET_CONNECTION after every lease) takes 3-4 s in the debug
    // build on 2 cores, about 6 s with AddressSanitizer or ThreadSanitizer.
    constexpr int acquires_per_thread = 500;
    constexpr std::size_t max_size = 16;
    // A generous acquire_timeout: this test is about errors and the cap, not latency under a
    // sanitizer.
    pool p(options, {.max_size = max_size, .acquire_timeout = 20s});

    failure_log failures;
    std::atomic<bool> workers_done{false};
    std::int64_t max_seen = 0;
    int samples = 0;
    std::string monitor_error;
    std::thread monitor([&] {
        try {
            while (!workers_done.load()) {
                max_seen = std::max(max_seen, sessions_of(root, options.user));
                ++samples;
            }
        } catch (const std::exception& e) {
            monitor_error = e.what();
        }
    });

    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&] { acquire_and_select(p, acquires_per_thread, failures); });
    for (auto& w : workers)
        w.join();
    workers_done = true;
    monitor.join();
    const auto elapsed = std::chrono::steady_clock::now() - started;
    MESSAGE((threads * acquires_per_thread), " acquires in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), " ms; ",
            samples, " PROCESSLIST samples, at most ", max_seen, " sessions");

    CHECK_MESSAGE(failures.count() == 0, failures.count(), " failures; first: ", failures.first());
    CHECK_MESSAGE(monitor_error.empty(), monitor_error);
    REQUIRE(samples > 0);
    CHECK(max_seen >= 1); // the monitor counts the right user
    CHECK(max_seen <= static_cast<std::int64_t>(max_size));
    const pool_metrics m = p.metrics();
    CHECK(m.acquired == std::uint64_t{threads} * acquires_per_thread);
    CHECK(m.timeouts == 0);
    CHECK(m.connect_failures == 0);
    CHECK(closed_for(m, close_reason::broken) == 0); // no reset failed on a healthy server
    CHECK(m.in_use == 0);
    CHECK(m.idle + m.opening <= max_size);
}

TEST_CASE("nothing a lease leaves in its session reaches the next lease") {
    scratch_database db;
    {
        connection setup(db.options());
        setup.query("CREATE TABLE leak_probe (i INT) ENGINE=InnoDB");
    }
    // One connection, so that lease B is the session lease A used.
    pool p(db.options(), {.max_size = 1, .init_statements = {"SET @init = 5"}});

    std::uint64_t sequence_a = 0;
    std::uint64_t session_a = 0;
    std::string isolation_variable;
    {
        auto a = p.acquire();
        sequence_a = a.sequence();
        session_a = a->connection_id();
        isolation_variable =
            a->flavor() == server_flavor::mariadb ? "tx_isolation" : "transaction_isolation";
        CHECK(a->query("SELECT @init")[0].get<int>(0) == 5);
        a->query("SET @x = 1");
        a->query("SET @init = 6");
        a->query("CREATE TEMPORARY TABLE tmp_leak (i INT)");
        a->query("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE");
        a->query("START TRANSACTION");
        a->query("INSERT INTO leak_probe VALUES (1)");
        // All of it is real in lease A's session...
        CHECK(a->query("SELECT @x")[0].get<int>(0) == 1);
        CHECK(a->query("SELECT COUNT(*) FROM tmp_leak")[0].get<std::int64_t>(0) == 0);
        CHECK(a->query("SELECT COUNT(*) FROM leak_probe")[0].get<std::int64_t>(0) == 1);
        CHECK(a->query("SELECT @@in_transaction")[0].get<int>(0) == 1);
        CHECK(a->query(fmt::format("SELECT @@SESSION.{}", isolation_variable))[0].get<std::string>(
                  0) == "SERIALIZABLE");
    } // ...and returned with the transaction open.

    auto b = p.acquire();
    REQUIRE(b.sequence() == sequence_a);
    REQUIRE(b->connection_id() == session_a); // the same server session, reset
    CHECK(b->query("SELECT @x")[0].is_null(0));
    CHECK(b->query("SELECT @init")[0].get<int>(0) == 5); // the pool's init statement ran again
    error_code ec;
    diagnostics diag;
    b->query("SELECT COUNT(*) FROM tmp_leak", ec, diag);
    CHECK(ec.value() == 1146); // the temporary table is gone
    CHECK(b->query("SELECT @@in_transaction")[0].get<int>(0) == 0);
    CHECK(b->query("SELECT COUNT(*) FROM leak_probe")[0].get<std::int64_t>(0) == 0); // rolled back
    const auto isolation =
        b->query(fmt::format("SELECT @@SESSION.{0}, @@GLOBAL.{0}", isolation_variable))[0];
    CHECK(isolation.get<std::string>(0) == isolation.get<std::string>(1));
    CHECK(isolation.get<std::string>(0) != "SERIALIZABLE");
    b.release();

    connection other(db.options());
    CHECK(other.query("SELECT COUNT(*) FROM leak_probe")[0].get<std::int64_t>(0) == 0);
}

// One way a lease can leave something in its session through execute() (the path on which
// the pool skips the reset for sessions that ran only plain SELECTs), and how the next lease
// would see it.
struct session_leftover {
    std::string_view name;
    std::function<void(connection&)> leave;
    std::function<void(connection&)> check; // fails when the leftover reached this lease
};

TEST_CASE("nothing a lease leaves through execute() reaches the next lease, even when the "
          "server does not report it") {
    scratch_database db;
    {
        connection setup(db.options());
        setup.query("CREATE TABLE leak_probe (i INT) ENGINE=InnoDB");
        setup.query("CREATE SEQUENCE leak_sequence");
        setup.query("CREATE FUNCTION remember(v INT) RETURNS INT DETERMINISTIC "
                    "BEGIN SET @remembered = v; RETURN v; END");
        setup.query("CREATE VIEW remembering AS SELECT remember(3) AS v");
        // A stored function whose name ends in a built-in's: the check must read it whole.
        setup.query("CREATE FUNCTION `\xc3\xa9SUM`(n VARCHAR(64)) RETURNS INT NOT DETERMINISTIC "
                    "RETURN GET_LOCK(n, 0)");
    }
    const std::string lock_name = fmt::format("{}_lock", db.name());
    const auto one_int = [](connection& c, std::string_view sql) {
        return c.query(sql)[0].get<std::int64_t>(0);
    };
    const auto is_null = [](connection& c, std::string_view sql) {
        return c.query(sql)[0].is_null(0);
    };
    const std::vector<session_leftover> leftovers = {
        {"user variable (SET)", [](connection& c) { c.execute("SET @x = ?", 1); },
         [&](connection& c) { CHECK(is_null(c, "SELECT @x")); }},
        {"user variable (:= in a SELECT, not reported by the server)",
         [](connection& c) { c.execute("SELECT @y := ?", 2); },
         [&](connection& c) { CHECK(is_null(c, "SELECT @y")); }},
        {"user variable (SELECT INTO, not reported by the server)",
         [](connection& c) { c.execute("SELECT ? INTO @z", 3); },
         [&](connection& c) { CHECK(is_null(c, "SELECT @z")); }},
        {"user variable set by a stored function behind a view (a plain SELECT by its text)",
         [](connection& c) {
             CHECK(c.execute("SELECT v FROM remembering WHERE v = ?", 3).size() == 1);
         },
         [&](connection& c) { CHECK(is_null(c, "SELECT @remembered")); }},
        {"session variable",
         [](connection& c) { c.execute("SET SESSION sql_mode = 'ANSI_QUOTES'"); },
         [&](connection& c) {
             const auto r = c.query("SELECT @@SESSION.sql_mode, @@GLOBAL.sql_mode")[0];
             CHECK(r.get<std::string>(0) == r.get<std::string>(1));
         }},
        {"autocommit off", [](connection& c) { c.execute("SET autocommit = 0"); },
         [&](connection& c) { CHECK(one_int(c, "SELECT @@autocommit") == 1); }},
        {"character set (SET NAMES)", [](connection& c) { c.execute("SET NAMES latin1"); },
         [&](connection& c) {
             CHECK(c.query("SELECT @@character_set_client")[0].get<std::string>(0) == "utf8mb4");
         }},
        {"default database (USE)", [](connection& c) { c.execute("USE mysql"); },
         [&](connection& c) {
             CHECK(c.query("SELECT DATABASE()")[0].get<std::string>(0) == db.name());
         }},
        {"temporary table",
         [](connection& c) { c.execute("CREATE TEMPORARY TABLE tmp_leak (i INT)"); },
         [&](connection& c) {
             error_code ec;
             diagnostics diag;
             c.query("SELECT COUNT(*) FROM tmp_leak", ec, diag);
             CHECK(ec.value() == 1146);
         }},
        {"SQL PREPARE", [](connection& c) { c.query("PREPARE leak_stmt FROM 'SELECT 1'"); },
         [&](connection& c) {
             error_code ec;
             diagnostics diag;
             c.query("EXECUTE leak_stmt", ec, diag);
             CHECK(ec.value() == 1243); // unknown prepared statement handler
         }},
        {"named lock behind a line break (GET_LOCK\n(...))",
         [&](connection& c) {
             CHECK(c.execute("SELECT GET_LOCK\n(?, 0)", lock_name)[0].get<int>(0) == 1);
         },
         [&](connection& c) {
             CHECK(c.execute("SELECT IS_USED_LOCK(?) IS NULL", lock_name)[0].get<int>(0) == 1);
         }},
        {"named lock in a stored function named like a built-in (\xc3\xa9SUM)",
         [&](connection& c) {
             CHECK(c.execute("SELECT \xc3\xa9SUM(?)", lock_name)[0].get<int>(0) == 1);
         },
         [&](connection& c) {
             CHECK(c.execute("SELECT IS_USED_LOCK(?) IS NULL", lock_name)[0].get<int>(0) == 1);
         }},
        {"named lock (GET_LOCK, not reported by the server)",
         [&](connection& c) {
             CHECK(c.execute("SELECT GET_LOCK(?, 0)", lock_name)[0].get<int>(0) == 1);
         },
         [&](connection& c) {
             CHECK(c.execute("SELECT IS_USED_LOCK(?) IS NULL", lock_name)[0].get<int>(0) == 1);
         }},
        {"table lock (LOCK TABLES, not reported by the server)",
         [](connection& c) { c.execute("LOCK TABLES leak_probe READ"); },
         [&](connection& c) {
             CHECK(c.query("INSERT INTO leak_probe VALUES (2)").affected_rows() == 1);
         }},
        {"open transaction",
         [](connection& c) {
             c.execute("START TRANSACTION");
             c.execute("INSERT INTO leak_probe VALUES (?)", 7);
         },
         [&](connection& c) {
             CHECK(one_int(c, "SELECT @@in_transaction") == 0);
             CHECK(one_int(c, "SELECT COUNT(*) FROM leak_probe WHERE i = 7") == 0);
         }},
        {"isolation level of the next transaction (not reported by the server)",
         [](connection& c) { c.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"); },
         [&](connection& c) {
             c.query("START TRANSACTION");
             c.query("SELECT COUNT(*) FROM leak_probe");
             const auto r = c.query("SELECT trx_isolation_level FROM information_schema.INNODB_TRX "
                                    "WHERE trx_mysql_thread_id = CONNECTION_ID()");
             REQUIRE(r.size() == 1);
             CHECK(r[0].get<std::string>(0) != "SERIALIZABLE");
             c.query("COMMIT");
         }},
        {"LAST_INSERT_ID(x) (not reported by the server)",
         [](connection& c) { c.execute("SELECT LAST_INSERT_ID(?)", 77); },
         [&](connection& c) { CHECK(one_int(c, "SELECT LAST_INSERT_ID()") == 0); }},
        {"warnings waiting for SHOW WARNINGS",
         [](connection& c) {
             CHECK(c.execute("SELECT CAST(? AS UNSIGNED)", "x").warning_count() > 0);
         },
         [&](connection& c) { CHECK(c.query("SHOW WARNINGS").empty()); }},
    };

    // One connection, so that lease B is the session lease A used.
    pool p(db.options(), {.max_size = 1});
    for (const auto& leftover : leftovers) {
        CAPTURE(leftover.name);
        std::uint64_t session_a = 0;
        {
            auto a = p.acquire();
            session_a = a->connection_id();
            leftover.leave(*a);
        }
        auto b = p.acquire();
        REQUIRE(b->connection_id() == session_a); // the same server session
        leftover.check(*b);
    }
}

TEST_CASE("a lease that ran only plain SELECTs is not reset, and keeps its prepared statements") {
    scratch_database db;
    {
        connection setup(db.options());
        setup.query("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20))");
        setup.query("INSERT INTO people VALUES (1, 'ada'), (2, 'bob')");
    }
    // The pool test runs alone (RUN_SERIAL): the server's prepare counter is ours.
    connection root(test::root_options());
    const auto prepares = [&] {
        return std::stoll(
            root.query("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'")[0].get<std::string>(1));
    };
    constexpr std::string_view lookup = "SELECT name FROM people WHERE id = ?";
    pool p(db.options(), {.max_size = 1});
    p.warm_up();
    std::uint64_t session = 0;
    const std::int64_t before = prepares();
    for (int lease = 0; lease < 5; ++lease) {
        auto c = p.acquire();
        if (lease == 0)
            session = c->connection_id();
        CHECK(c->connection_id() == session);
        CHECK(c->execute(lookup, 1 + lease % 2)[0].get<std::string>(0) ==
              (lease % 2 == 0 ? "ada" : "bob"));
        CHECK_FALSE(c->needs_reset());
    }
    // Prepared once: no lease was reset (a reset drops the server's statements).
    CHECK(prepares() - before == 1);

    // A lease that leaves something is reset: the next one prepares again and sees nothing.
    {
        auto c = p.acquire();
        c->execute(lookup, 1);
        c->execute("SET @marker = ?", 1);
        CHECK(c->needs_reset());
    }
    {
        auto c = p.acquire();
        CHECK(c->connection_id() == session);
        CHECK_FALSE(c->needs_reset());
        CHECK(c->execute(lookup, 2)[0].get<std::string>(0) == "bob");
        CHECK(c->query("SELECT @marker")[0].is_null(0));
    }
    // Two more: "SET @marker = ?" and the lookup again after the reset.
    CHECK(prepares() - before == 3);

    // A connection its holder closed needs no less than a reset: the pool replaces it.
    {
        auto c = p.acquire();
        c->close();
        CHECK(c->needs_reset());
    }
    auto c = p.acquire();
    CHECK(c->is_open());
    CHECK(c->execute(lookup, 1)[0].get<std::string>(0) == "ada");
}

TEST_CASE("connections the server killed while idle are replaced before anyone gets them") {
    const connect_options options = test::server_options();
    connection root(test::root_options());
    require_no_sessions(root, options.user);

    pool p(options, {.max_size = 8, .validate_after_idle = 100ms});
    {
        std::vector<pooled_connection> warm;
        for (int i = 0; i < 8; ++i)
            warm.push_back(p.acquire());
    }
    REQUIRE(eventually([&] { return p.metrics().idle == 8; })); // all reset and idle
    const auto ids = session_ids_of(root, options.user);
    REQUIRE(ids.size() == 8);
    for (const auto id : ids)
        root.query(fmt::format("KILL CONNECTION {}", id));
    REQUIRE(eventually([&] { return sessions_of(root, options.user) == 0; }));
    std::this_thread::sleep_for(300ms); // past validate_after_idle: acquire checks them

    failure_log failures;
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t)
        workers.emplace_back([&] { acquire_and_select(p, 250, failures); });
    for (auto& w : workers)
        w.join();

    CHECK_MESSAGE(failures.count() == 0, failures.count(), " failures; first: ", failures.first());
    const pool_metrics m = p.metrics();
    MESSAGE("created ", m.created, ", closed broken ", closed_for(m, close_reason::broken),
            ", retired ", closed_for(m, close_reason::retired));
    CHECK(m.acquired == 8 + 1000);
    // Dead sessions were found (by the check before handing out), closed and replaced.
    CHECK(closed_for(m, close_reason::broken) + closed_for(m, close_reason::retired) >= 1);
    CHECK(m.created >= 9);
    CHECK(sessions_of(root, options.user) <= 8);
}

TEST_CASE("a full server: acquires fail with server_full, connects back off, the pool recovers") {
    const connect_options options = test::server_options();
    connection root(test::root_options()); // opened first: it takes one of the slots
    require_no_sessions(root, options.user);

    // Another client takes every slot left, until the server says 1040. Under TLS the server
    // says it before the handshake, so libmariadb reports 2002 ("Received error packet before
    // completion of TLS handshake ... 1040 - Too many connections"): either way it is
    // server_full to the user.
    std::vector<connection> blockers;
    {
        bool full = false;
        for (int i = 0; i < 200 && !full; ++i) {
            connection c;
            error_code ec;
            diagnostics diag;
            c.connect(options, ec, diag);
            if (ec) {
                REQUIRE_MESSAGE(contains(describe("connect", ec, diag), "1040"),
                                describe("connect", ec, diag));
                CHECK_MESSAGE(diag.error_class() == error_class::server_full,
                              describe("connect", ec, diag));
                full = true;
            } else {
                blockers.push_back(std::move(c));
            }
        }
        REQUIRE(full);
        MESSAGE("the server was full after ", blockers.size(), " more connections");
    }

    constexpr auto backoff_initial = 50ms;
    const auto check_full = [](const error_code& ec, const diagnostics& diag) {
        CHECK((ec == client_errc::pool_exhausted || ec == client_errc::server_unavailable));
        CHECK(diag.error_class() == error_class::server_full);
        CHECK_MESSAGE(contains(diag.client_message(), "connection limit"), diag.client_message());
        CHECK(contains(diag.client_message() + diag.server_message(), "Too many connections"));
    };
    // The bound on connect attempts: with full jitter a wait is on average half its ceiling,
    // which is backoff_initial at least, so over `elapsed` about elapsed / backoff_initial
    // attempts at most; without backoff it would be one per acquire or per millisecond.
    const auto attempt_bound = [&](std::chrono::steady_clock::duration elapsed) {
        return static_cast<std::uint64_t>(elapsed / backoff_initial) + 5;
    };

    // Without the breaker each acquire waits out its acquire_timeout while the pool keeps
    // trying: only the backoff limits the connects.
    pool patient(options, {.max_size = 4,
                           .acquire_timeout = 1s,
                           .backoff_initial = backoff_initial,
                           .backoff_max = 200ms,
                           .breaker_threshold = 0});
    {
        error_code ec;
        diagnostics diag;
        const auto started = std::chrono::steady_clock::now();
        int acquires = 0;
        while (std::chrono::steady_clock::now() - started < 2s) {
            auto conn = patient.acquire(ec, diag);
            ++acquires;
            CHECK_FALSE(conn.valid());
            check_full(ec, diag);
            CHECK(ec == client_errc::pool_exhausted);
        }
        const auto elapsed = std::chrono::steady_clock::now() - started;
        const auto failures = patient.metrics().connect_failures;
        MESSAGE("no breaker: ", acquires, " acquires, ", failures, " connect attempts in ",
                std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), " ms");
        // The pool keeps trying while a request waits: a wait is at most backoff_max (200 ms),
        // so each 1 s acquire sees several attempts, not just the one it started with.
        CHECK(failures >= 2 * static_cast<std::uint64_t>(acquires));
        CHECK(failures <= attempt_bound(elapsed));
        CHECK(patient.metrics().created == 0);

        // The throwing form says the same in its what().
        try {
            patient.acquire();
            FAIL("acquire() on a full server succeeded");
        } catch (const database_error& e) {
            CHECK(e.error_class() == error_class::server_full);
            CHECK_MESSAGE(contains(e.what(), "connection limit"), std::string(e.what()));
            CHECK_MESSAGE(contains(e.what(), "Too many connections"), std::string(e.what()));
            CHECK_MESSAGE(contains(e.what(), "1040"), std::string(e.what()));
            // When the server's message is quoted, the number with it is the server's (1040),
            // not the pool's own code.
            const std::string_view what = e.what();
            if (const auto at = what.find("[server error "); at != std::string_view::npos)
                CHECK_MESSAGE(what.substr(at + 14, 4) == "1040", std::string(e.what()));
        }
    }

    // A full server is up: it never opens the breaker, whose threshold is reached many times
    // over here. Each acquire waits out its acquire_timeout, the pool retrying within its
    // backoff, so that a slot another client frees serves it.
    pool hasty(options, {.max_size = 4,
                         .acquire_timeout = 1s,
                         .backoff_initial = backoff_initial,
                         .backoff_max = 200ms,
                         .breaker_threshold = 2});
    {
        const auto started = std::chrono::steady_clock::now();
        int acquires = 0;
        while (std::chrono::steady_clock::now() - started < 2s) {
            error_code ec;
            diagnostics diag;
            auto conn = hasty.acquire(ec, diag);
            ++acquires;
            CHECK_FALSE(conn.valid());
            check_full(ec, diag);
            CHECK(ec == client_errc::pool_exhausted);
        }
        const auto elapsed = std::chrono::steady_clock::now() - started;
        const pool_metrics m = hasty.metrics();
        MESSAGE("breaker threshold 2: ", acquires, " acquires, ", m.connect_failures,
                " connect attempts in ",
                std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), " ms");
        CHECK(m.connect_failures > 2);
        CHECK(m.connect_failures <= attempt_bound(elapsed));
        CHECK(m.breaker_rejections == 0);
        CHECK_FALSE(m.breaker_open);
    }

    // The other client leaves; both pools serve again.
    blockers.clear();
    REQUIRE(eventually([&] { return sessions_of(root, options.user) == 0; }));
    {
        error_code ec;
        diagnostics diag;
        // The next connect comes within backoff_max (200 ms), well inside acquire_timeout.
        auto conn = patient.acquire(ec, diag);
        REQUIRE_MESSAGE(!ec, describe("acquire after the server freed slots", ec, diag));
        CHECK(select_one(*conn, ec, diag));
    }
    {
        std::optional<pooled_connection> conn;
        for (int attempt = 0; attempt < 50 && !conn; ++attempt) {
            error_code ec;
            diagnostics diag;
            auto c = hasty.acquire(ec, diag);
            if (!ec)
                conn = std::move(c);
            else
                std::this_thread::sleep_for(100ms);
        }
        REQUIRE(conn.has_value());
        error_code ec;
        diagnostics diag;
        CHECK(select_one(**conn, ec, diag));
        CHECK_FALSE(hasty.metrics().breaker_open);
    }
}

TEST_CASE("the server stops under 32 busy threads and comes back: the same pool serves again") {
    test::own_sandbox sandbox("CLOUDMYSQL_RESTART_SANDBOX_DIR");
    // backoff_max 1 s (default 10 s): the pool tries again within a second of the server's
    // return, which keeps the test short.
    pool p(sandbox.options(), {.max_size = 8, .acquire_timeout = 1s, .backoff_max = 1s});

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> successes{0};
    std::atomic<std::uint64_t> errors{0};
    std::mutex seen_mutex;
    std::map<std::string, int> seen; // "stage: code [class]" -> how often
    failure_log unexpected;          // acquire errors other than exhausted or unavailable
    const auto note = [&](std::string_view stage, const error_code& ec, const diagnostics& diag) {
        ++errors;
        std::lock_guard lock(seen_mutex);
        ++seen[fmt::format("{}: {} {} [{}]", stage, ec.category().name(), ec.value(),
                           to_string(diag.error_class()))];
    };

    std::vector<std::thread> workers;
    for (int t = 0; t < 32; ++t)
        workers.emplace_back([&] {
            // Bounded, though the stop flag ends it much sooner.
            for (int i = 0; i < 200000 && !stop.load(); ++i) {
                error_code ec;
                diagnostics diag;
                auto conn = p.acquire(ec, diag);
                if (ec) {
                    note("acquire", ec, diag);
                    if (!(ec == client_errc::pool_exhausted ||
                          ec == client_errc::server_unavailable) ||
                        diag.client_message().empty())
                        unexpected.add(describe("acquire", ec, diag));
                    std::this_thread::sleep_for(10ms);
                    continue;
                }
                if (!select_one(*conn, ec, diag)) {
                    note("SELECT 1", ec, diag);
                    conn.discard(diag.error_class()); // what an application does on an error
                    std::this_thread::sleep_for(10ms);
                    continue;
                }
                ++successes;
            }
        });

    const bool running = eventually([&] { return successes.load() >= 500; }, 400);
    const std::uint64_t errors_before_stop = errors.load();
    sandbox.stop_server();
    const std::uint64_t successes_at_stop = successes.load();
    // Down long enough for the waits to time out and the breaker to open.
    std::this_thread::sleep_for(1500ms);
    const std::uint64_t errors_while_down = errors.load() - errors_before_stop;
    sandbox.restart_server();
    // Give the workers a chance to get through again before they stop.
    eventually([&] { return successes.load() > successes_at_stop + 100; }, 200);
    stop = true;
    for (auto& w : workers)
        w.join(); // every acquire returned: nothing hangs

    {
        std::lock_guard lock(seen_mutex);
        for (const auto& [what, n] : seen)
            MESSAGE(n, " x ", what);
    }
    MESSAGE(successes.load(), " successes (", successes_at_stop, " before the stop), ",
            errors.load(), " errors");
    CHECK(running);
    CHECK(errors_before_stop == 0);
    CHECK(errors_while_down > 0);
    CHECK_MESSAGE(unexpected.count() == 0, unexpected.count(),
                  " unexpected acquire errors; first: ", unexpected.first());

    // The same pool object serves again.
    bool back = false;
    std::string last_error;
    for (int attempt = 0; attempt < 100 && !back; ++attempt) {
        error_code ec;
        diagnostics diag;
        auto conn = p.acquire(ec, diag);
        if (!ec && select_one(*conn, ec, diag)) {
            back = true;
            break;
        }
        last_error = describe("acquire after restart", ec, diag);
        if (conn.valid())
            conn.discard(diag.error_class());
        std::this_thread::sleep_for(100ms);
    }
    REQUIRE_MESSAGE(back, last_error);
    failure_log after;
    for (int i = 0; i < 50; ++i) {
        error_code ec;
        diagnostics diag;
        auto conn = p.acquire(ec, diag);
        if (ec)
            after.add(describe("acquire", ec, diag));
        else if (!select_one(*conn, ec, diag))
            after.add(describe("SELECT 1", ec, diag));
    }
    CHECK_MESSAGE(after.count() == 0, after.count(),
                  " failures after the restart; first: ", after.first());
    const pool_metrics m = p.metrics();
    CHECK(m.connect_failures >= 1);
    CHECK_FALSE(m.breaker_open);
}

TEST_CASE("pools that share a full server serve every request from the connections they hold") {
    // Three programs' pools of 10 on a server with max_connections = 20: together they want
    // more than the server has. Each holds some connections; none may fail a request that the
    // connections it holds can serve, however often "Too many connections" answers its tries
    // to grow.
    const connect_options options = test::server_options();
    connection root(test::root_options());
    require_no_sessions(root, options.user);
    const auto max_connections = root.execute("SELECT @@max_connections")[0].get<std::int64_t>(0);
    REQUIRE(max_connections == 20);

    std::vector<std::unique_ptr<pool>> pools;
    for (const std::size_t held : {std::size_t{8}, std::size_t{8},
                                   std::size_t{2}}) { // 18 of the app user's slots, and root's
        pools.push_back(std::make_unique<pool>(
            options, pool_options{.max_size = 10, .min_idle = held, .breaker_threshold = 2}));
        pools.back()->warm_up();
    }
    std::vector<failure_log> failures(pools.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < pools.size(); ++i)
        for (int t = 0; t < 16; ++t)
            threads.emplace_back([&, i] { acquire_and_select(*pools[i], 300, failures[i]); });
    for (auto& t : threads)
        t.join();

    std::uint64_t refused = 0;
    for (std::size_t i = 0; i < pools.size(); ++i) {
        const pool_metrics m = pools[i]->metrics();
        refused += m.connect_failures;
        MESSAGE("pool ", i, ": ", m.acquired, " acquired, ", m.created, " opened, ",
                m.connect_failures, " connects refused, ", failures[i].count(), " failures");
        CHECK_MESSAGE(failures[i].count() == 0, "pool ", i, ": ", failures[i].count(),
                      " failures; first: ", failures[i].first());
        CHECK(m.breaker_rejections == 0);
    }
    // The server was full: the pools did try to grow and were refused.
    CHECK(refused > 0);
}

TEST_CASE("a server that stops answering: the pool says so, frees its threads, and recovers") {
    test::own_sandbox sandbox("CLOUDMYSQL_RESTART_SANDBOX_DIR");
    // Fewer workers than connections, each pausing between leases: connections go back to
    // idle, and each lease is checked first (validate_after_idle 0). When the server freezes,
    // those pings get no answer; check_timeout (1 s) abandons them.
    pool p(sandbox.options(), {.max_size = 16,
                               .acquire_timeout = 2s,
                               .validate_after_idle = 0ms,
                               .check_timeout = 1s,
                               .backoff_max = 500ms});
    for (int i = 0; i < 20; ++i)
        p.acquire(); // open and warm

    std::atomic<bool> stop{false};
    failure_log wrong; // errors that blame the pool's users, or are not acquire timeouts
    std::atomic<int> unanswered_said{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 8; ++t)
        workers.emplace_back([&] {
            for (int i = 0; i < 100000 && !stop.load(); ++i) {
                error_code ec;
                diagnostics diag;
                auto conn = p.acquire(ec, diag);
                if (ec) {
                    ++errors;
                    const std::string text = diag.client_message();
                    if (contains(text, "has not answered the pool's checks"))
                        ++unanswered_said;
                    if (!(ec == client_errc::pool_exhausted ||
                          ec == client_errc::server_unavailable) ||
                        contains(text, "leak") || contains(text, "raise max_size"))
                        wrong.add(describe("acquire", ec, diag));
                }
                conn.release();
                std::this_thread::sleep_for(5ms);
            }
        });
    std::this_thread::sleep_for(200ms);
    sandbox.freeze_server();
    // While the server stays frozen, the checks it does not answer are abandoned: their pool
    // threads come back, and their connections are closed.
    const bool abandoned =
        eventually([&] { return closed_for(p.metrics(), close_reason::unanswered) > 0; }, 400);
    const bool explained = eventually([&] { return unanswered_said.load() > 0; }, 400);
    const int errors_while_frozen = errors.load();
    sandbox.thaw_server();
    // Served again: half a second without an error, within 20 s.
    const bool quiet = eventually(
        [&] {
            const int before = errors.load();
            std::this_thread::sleep_for(500ms);
            return errors.load() == before;
        },
        40, 0ms);
    stop = true;
    for (auto& w : workers)
        w.join();

    MESSAGE(errors_while_frozen, " acquire errors while frozen, ", errors.load(),
            " in all; checks abandoned: ", closed_for(p.metrics(), close_reason::unanswered));
    CHECK(abandoned);
    CHECK(explained);
    CHECK_MESSAGE(wrong.count() == 0, wrong.count(), " misleading errors; first: ", wrong.first());
    CHECK(quiet);
    error_code ec;
    diagnostics diag;
    auto conn = p.acquire(ec, diag);
    REQUIRE_MESSAGE(!ec, describe("acquire after the thaw", ec, diag));
    CHECK(select_one(*conn, ec, diag));
}

TEST_CASE("async_acquire with use_awaitable serves 200 coroutines in order of arrival") {
    namespace asio = boost::asio;
    asio::io_context io; // outlives the pool, whose threads post completions to it
    pool p(test::server_options(), {.max_size = 8, .acquire_timeout = 30s});

    constexpr int coroutines = 200;
    int arrivals = 0;
    int arrivals_at_first_grant = -1;
    std::vector<int> grants; // arrival numbers, in the order the connections came
    int completed = 0;
    std::vector<std::string> errors;
    for (int i = 0; i < coroutines; ++i)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                const int arrival = arrivals++;
                diagnostics diag;
                try {
                    auto conn = co_await p.async_acquire(diag, asio::use_awaitable);
                    if (grants.empty())
                        arrivals_at_first_grant = arrivals;
                    grants.push_back(arrival);
                    if (conn->query("SELECT 1")[0].get<int>(0) != 1)
                        errors.push_back("SELECT 1 did not return 1");
                    // Hold it a little, so that the others genuinely queue.
                    asio::steady_timer hold(co_await asio::this_coro::executor, 2ms);
                    co_await hold.async_wait(asio::use_awaitable);
                    ++completed;
                } catch (const std::exception& e) {
                    errors.push_back(fmt::format("{} ({})", e.what(), diag.client_message()));
                }
            },
            asio::detached);
    io.run();

    CHECK_MESSAGE(errors.empty(), errors.size(),
                  " errors; first: ", errors.empty() ? "" : errors.front());
    CHECK(completed == coroutines);
    REQUIRE(grants.size() == static_cast<std::size_t>(coroutines));
    // Every coroutine asked before the first one was served: they all queued.
    CHECK(arrivals_at_first_grant == coroutines);
    const auto out_of_order = std::is_sorted_until(grants.begin(), grants.end());
    if (out_of_order != grants.end()) {
        const auto at = out_of_order - grants.begin();
        std::string around;
        for (auto i = std::max<std::ptrdiff_t>(0, at - 5);
             i < std::min<std::ptrdiff_t>(coroutines, at + 5); ++i)
            around +=
                fmt::format("{}{}", i == at ? " >" : " ", grants[static_cast<std::size_t>(i)]);
        FAIL_CHECK("grant ", at, " went to coroutine ", *out_of_order, ", which came after ",
                   *std::prev(out_of_order), " (arrival numbers in grant order:", around, ")");
    }
    CHECK(p.metrics().acquired == static_cast<std::uint64_t>(coroutines));
}

TEST_CASE("async_acquire with a plain callback and with use_future") {
    pool p(test::server_options(), {.max_size = 2, .acquire_timeout = 30s});

    SUBCASE("callback") {
        // The handler runs on Asio's system executor; the connection is used back here, since
        // a query on that pool's threads would leave OpenSSL thread state that LeakSanitizer
        // reports at exit.
        std::promise<std::pair<error_code, pooled_connection>> outcome;
        p.async_acquire([&](error_code ec, pooled_connection conn) {
            outcome.set_value({ec, std::move(conn)});
        });
        auto done = outcome.get_future();
        REQUIRE(done.wait_for(60s) == std::future_status::ready); // guards against a hang
        auto [ec, conn] = done.get();
        REQUIRE_MESSAGE(!ec, ec.message());
        REQUIRE(conn.valid());
        CHECK(conn->query("SELECT 1")[0].get<int>(0) == 1);
    }
    SUBCASE("use_future") {
        std::future<pooled_connection> f = p.async_acquire(boost::asio::use_future);
        REQUIRE(f.wait_for(60s) == std::future_status::ready); // guards against a hang
        pooled_connection conn = f.get();
        REQUIRE(conn.valid());
        CHECK(conn->query("SELECT 1")[0].get<int>(0) == 1);
        conn.release();

        // Errors arrive as the future's exception.
        p.close();
        auto failed = p.async_acquire(boost::asio::use_future);
        REQUIRE(failed.wait_for(60s) == std::future_status::ready);
        try {
            failed.get();
            FAIL("async_acquire on a closed pool succeeded");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == client_errc::pool_closed);
        }
    }
}

TEST_CASE("close() fails a waiting acquire and closes leased connections when they return") {
    const connect_options options = test::server_options();
    connection root(test::root_options());
    require_no_sessions(root, options.user);

    SUBCASE("a waiter and two leases") {
        pool p(options, {.max_size = 2, .acquire_timeout = 60s});
        auto a = p.acquire();
        auto b = p.acquire();

        error_code waiter_ec;
        diagnostics waiter_diag;
        bool waiter_got_connection = true;
        std::thread waiter([&] {
            auto conn = p.acquire(waiter_ec, waiter_diag);
            waiter_got_connection = conn.valid();
        });
        const bool waiting = eventually([&] { return p.metrics().pending_requests == 1; });
        p.close();
        waiter.join(); // close() ended its wait: it does not sit out the 60 s
        REQUIRE(waiting);
        CHECK(waiter_ec == client_errc::pool_closed);
        CHECK_FALSE(waiter_got_connection);
        CHECK(contains(waiter_diag.client_message(), "closed"));

        // The leases stay usable until returned; then they are closed, not kept.
        CHECK(closed_for(p.metrics(), close_reason::pool_closed) == 0);
        CHECK(a->query("SELECT 1")[0].get<int>(0) == 1);
        a.release();
        CHECK(closed_for(p.metrics(), close_reason::pool_closed) == 1);
        b.release();
        CHECK(closed_for(p.metrics(), close_reason::pool_closed) == 2);
        CHECK(p.metrics().idle == 0);
        CHECK(eventually([&] { return sessions_of(root, options.user) == 0; }));

        // Later acquires fail at once, in both forms.
        error_code ec;
        diagnostics diag;
        CHECK_FALSE(p.acquire(ec, diag).valid());
        CHECK(ec == client_errc::pool_closed);
        CHECK_THROWS_AS(p.acquire(), database_error);
        CHECK_FALSE(p.try_acquire().has_value());
    }
    SUBCASE("an idle connection") {
        pool p(options, {.max_size = 1});
        p.acquire().release();
        REQUIRE(eventually([&] { return p.metrics().idle == 1; }));
        p.close();
        CHECK(closed_for(p.metrics(), close_reason::pool_closed) == 1);
        CHECK(eventually([&] { return sessions_of(root, options.user) == 0; }));
    }
}

TEST_CASE("server_check names the pool settings this server cannot honour") {
    const connect_options options = test::server_options();
    connection admin(options);
    const auto globals = admin.query("SELECT @@GLOBAL.max_connections, @@GLOBAL.wait_timeout")[0];
    const auto max_connections = globals.get<std::size_t>(0);
    const auto wait_timeout = std::chrono::seconds(globals.get<std::int64_t>(1));
    admin.close();

    const auto report = [](const std::vector<server_finding>& findings) {
        for (const auto& f : findings)
            MESSAGE(
                std::string(f.level == server_finding::severity::error ? "error: " : "warning: "),
                f.message);
    };
    const auto has = [](const std::vector<server_finding>& findings,
                        std::optional<server_finding::severity> level, std::string_view word) {
        return std::any_of(findings.begin(), findings.end(), [&](const server_finding& f) {
            return (!level || f.level == *level) && contains(f.message, word);
        });
    };
    using severity = server_finding::severity;

    {
        pool p(options, {.max_size = max_connections + 5});
        const auto findings = server_check(p);
        report(findings);
        CHECK(has(findings, severity::error, "max_connections"));
    }
    {
        // wait_timeout is 8 h by default: idle connections neither closed nor pinged for 9 h
        // outlive it.
        const auto silence = std::max<std::chrono::milliseconds>(9h, wait_timeout + 1h);
        pool p(options, {.max_size = 8, .idle_timeout = silence, .keepalive_interval = silence});
        const auto findings = server_check(p);
        report(findings);
        CHECK(has(findings, std::nullopt, "wait_timeout"));
        CHECK_FALSE(has(findings, std::nullopt, "max_connections"));
    }
    {
        // wait_timeout counts idle time, not age: a long lifetime with the default keepalive
        // is fine.
        const auto lifetime = std::max<std::chrono::milliseconds>(9h, wait_timeout + 1h);
        pool p(options, {.max_size = 8, .max_lifetime = lifetime});
        const auto findings = server_check(p);
        report(findings);
        CHECK_FALSE(has(findings, std::nullopt, "wait_timeout"));
    }
    {
        pool p(options, {.max_size = 8});
        const auto findings = server_check(p);
        report(findings);
        CHECK_FALSE(has(findings, severity::error, ""));
        CHECK_FALSE(has(findings, std::nullopt, "wait_timeout"));
    }
}
