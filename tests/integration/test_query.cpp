// Queries, prepared statements, typed values, transactions and reset against a real MariaDB.
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/transaction.hpp>

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

using namespace cloudmysql;
using namespace std::chrono_literals;
using cloudmysql::test::scratch_database;

namespace {

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

std::int64_t count_rows(connection& conn, std::string_view table) {
    return conn.query(fmt::format("SELECT COUNT(*) FROM {}", table))[0].get<std::int64_t>(0);
}

// A counter of this session's, from SHOW SESSION STATUS (e.g. Com_stmt_prepare).
std::int64_t session_status(connection& conn, std::string_view name) {
    const auto r = conn.query(fmt::format("SHOW SESSION STATUS LIKE '{}'", name));
    REQUIRE(r.size() == 1);
    return std::stoll(r[0].get<std::string>(1));
}

} // namespace

TEST_CASE("execute() keeps the statement prepared for the same SQL until reset") {
    connection conn(test::server_options());
    constexpr std::string_view sql = "SELECT ? + 1";
    const std::int64_t before = session_status(conn, "Com_stmt_prepare");
    for (int i = 0; i < 5; ++i)
        CHECK(conn.execute(sql, i)[0].get<int>(0) == i + 1);
    CHECK(session_status(conn, "Com_stmt_prepare") == before + 1);

    // Other SQL text is another statement; the first stays cached.
    CHECK(conn.execute("SELECT ? * 2", 4)[0].get<int>(0) == 8);
    CHECK(conn.execute(sql, 9)[0].get<int>(0) == 10);
    CHECK(session_status(conn, "Com_stmt_prepare") == before + 2);

    // A reset drops the server's statements; execute() prepares again and works.
    conn.reset();
    const std::int64_t after_reset = session_status(conn, "Com_stmt_prepare");
    CHECK(conn.execute(sql, 1)[0].get<int>(0) == 2);
    CHECK(session_status(conn, "Com_stmt_prepare") == after_reset + 1);

    // A failed execution is not trusted again: the statement is prepared afresh.
    CHECK_THROWS_AS(conn.execute(sql, 1, 2), database_error); // wrong parameter count
    CHECK(conn.execute(sql, 2)[0].get<int>(0) == 3);
    CHECK(session_status(conn, "Com_stmt_prepare") == after_reset + 2);
}

TEST_CASE("a cached statement sees a table whose columns changed") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE t (a INT)");
    conn.query("INSERT INTO t VALUES (1)");
    const auto first = conn.execute("SELECT * FROM t WHERE a = ?", 1);
    CHECK(first.columns().size() == 1);
    conn.query("ALTER TABLE t ADD COLUMN b VARCHAR(10) DEFAULT 'x'");
    const auto second = conn.execute("SELECT * FROM t WHERE a = ?", 1);
    REQUIRE(second.size() == 1);
    CHECK(second.columns().size() == 2);
    CHECK(second[0].get<std::string>(1) == "x");

    // Not a plain SELECT (the comment could hide anything): not run twice, but reported once
    // and prepared afresh for the next call.
    constexpr std::string_view commented = "SELECT * FROM t WHERE a = ? -- the lookup";
    CHECK(conn.execute(commented, 1).columns().size() == 2);
    conn.query("ALTER TABLE t DROP COLUMN b");
    error_code ec;
    diagnostics diag;
    const std::array<param, 1> one{param(1)};
    conn.execute_span(commented, one, ec, diag);
    CHECK(ec.value() == 2057);
    CHECK(contains(diag.client_message(), "columns of its result changed"));
    CHECK(conn.execute(commented, 1).columns().size() == 1);
}

TEST_CASE("a syntax error carries the server's errno, SQLSTATE and message apart from ours") {
    connection conn(test::server_options());
    error_code ec;
    diagnostics diag;
    const auto r = conn.query("SELEC 1", ec, diag);
    CHECK(r.empty());
    CHECK(ec.value() == 1064);
    CHECK(ec.category() == mysql_category());
    CHECK(diag.sqlstate() == "42000");
    CHECK(diag.error_class() == error_class::bad_input);
    CHECK(contains(diag.server_message(), "SQL syntax"));
    CHECK(contains(diag.client_message(), "query 'SELEC 1' failed"));
    CHECK_FALSE(contains(diag.client_message(), "SQL syntax")); // the server's words stay apart

    // The session is still usable after a statement error.
    CHECK(conn.query("SELECT 1")[0].get<int>(0) == 1);

    CHECK_THROWS_WITH_AS(conn.query("SELEC 1"), doctest::Contains("1064"), database_error);
    CHECK_THROWS_AS(conn.prepare("SELEC ?"), database_error);
}

TEST_CASE("error 1290 is a read-only fault only when the option it names is read-only") {
    // 1290 is "the server is running with the --X option so it cannot execute this statement".
    // The sandbox runs with --secure-file-priv: a file outside it is refused with 1290, and that
    // says nothing about the server's role, so the pool must not retire its connections.
    connection conn(test::server_options());
    error_code ec;
    diagnostics diag;
    conn.query("SELECT 1 INTO OUTFILE '/tmp/cloudmysql-outside-secure-file-priv'", ec, diag);
    CHECK(ec.value() == 1290);
    CHECK(contains(diag.server_message(), "secure-file-priv"));
    CHECK(diag.error_class() == error_class::other);
    CHECK(conn.fault() == error_class::none);

    // --read-only itself: a user without READ ONLY ADMIN writing to a read-only server.
    connection root(test::root_options());
    scratch_database db;
    root.query("CREATE USER IF NOT EXISTS 'cloudmysql_ro'@'%' IDENTIFIED BY 'ro-password-1'");
    root.query(fmt::format("GRANT ALL ON `{}`.* TO 'cloudmysql_ro'@'%'", db.name()));
    connect_options ro_opts = db.options();
    ro_opts.user = "cloudmysql_ro";
    ro_opts.password = "ro-password-1";
    connection ro(ro_opts);
    ro.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
    root.query("SET GLOBAL read_only = ON");
    ro.query("INSERT INTO t VALUES (1)", ec, diag);
    root.query("SET GLOBAL read_only = OFF");
    root.query("DROP USER 'cloudmysql_ro'@'%'");
    CHECK(ec.value() == 1290);
    CHECK(diag.error_class() == error_class::read_only);
    CHECK(ro.fault() == error_class::read_only);
}

TEST_CASE("a value too long for its column is an error and nothing is written") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE patients (id INT AUTO_INCREMENT PRIMARY KEY, "
               "first_name VARCHAR(50) NOT NULL) ENGINE=InnoDB");
    const std::string fifty(50, 'a');
    const std::string fifty_one(51, 'a');
    CHECK(conn.execute("INSERT INTO patients (first_name) VALUES (?)", fifty).affected_rows() == 1);

    error_code ec;
    diagnostics diag;
    const param too_long[] = {fifty_one};
    conn.execute_span("INSERT INTO patients (first_name) VALUES (?)", too_long, ec, diag);
    CHECK(ec.value() == 1406);
    CHECK(diag.sqlstate() == "22001");
    CHECK(diag.error_class() == error_class::bad_input);
    CHECK(contains(diag.server_message(), "first_name"));
    CHECK(count_rows(conn, "patients") == 1);

    // 50 characters is the limit, not 50 bytes: 50 emoji (200 bytes) fit.
    std::string emoji;
    for (int i = 0; i < 50; ++i)
        emoji += "\xF0\x9F\x98\x80";
    CHECK(conn.execute("INSERT INTO patients (first_name) VALUES (?)", emoji).affected_rows() == 1);
    CHECK(count_rows(conn, "patients") == 2);
}

TEST_CASE("every bound type round-trips, NULL included") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE v (id INT PRIMARY KEY, i BIGINT NULL, u BIGINT UNSIGNED NULL, "
               "d DOUBLE NULL, s VARCHAR(200) NULL, dt DATE NULL, ts DATETIME(6) NULL, "
               "b VARBINARY(16) NULL) CHARACTER SET utf8mb4");

    const std::int64_t i = std::numeric_limits<std::int64_t>::min();
    const std::uint64_t u = std::numeric_limits<std::uint64_t>::max();
    const double d = -1234.5e-7;
    const std::string s = "emoji \xF0\x9F\x98\x80 quotes ' \" back\\slash ; -- %_ "
                          "'); DROP TABLE v; --";
    const std::chrono::year_month_day dt = 1987y / 2 / 28;
    const datetime ts = std::chrono::sys_days(2024y / 12 / 31) + 23h + 59min + 58s + 123456us;
    const std::string bytes("\x00\x01\xFF'\"\\", 6);

    conn.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?)", 1, i, u, d, s, dt, ts, bytes);
    conn.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?)", 2, std::nullopt,
                 std::optional<std::uint64_t>{}, std::optional<double>{},
                 std::optional<std::string>{}, std::optional<std::chrono::year_month_day>{},
                 std::optional<datetime>{}, nullptr);

    // Read back through both protocols: they must agree.
    const auto binary = conn.execute("SELECT i, u, d, s, dt, ts, b FROM v ORDER BY id");
    const auto text = conn.query("SELECT i, u, d, s, dt, ts, b FROM v ORDER BY id");
    for (const result* r : {&binary, &text}) {
        REQUIRE(r->size() == 2);
        const row& full = (*r)[0];
        CHECK(full.get<std::int64_t>("i") == i);
        CHECK(full.get<std::uint64_t>("u") == u);
        CHECK(full.get<double>("d") == d);
        CHECK(full.get<std::string>("s") == s);
        CHECK(full.get<std::chrono::year_month_day>("dt") == dt);
        CHECK(full.get<datetime>("ts") == ts);
        CHECK(full.get<std::string>("b") == bytes);

        const row& nulls = (*r)[1];
        for (std::size_t c = 0; c < nulls.size(); ++c)
            CHECK(nulls.is_null(c));
        CHECK_FALSE(nulls.get<std::optional<std::int64_t>>("i").has_value());
        CHECK_FALSE(nulls.get<std::optional<std::string>>("s").has_value());
        CHECK_FALSE(nulls.get<std::optional<std::chrono::year_month_day>>("dt").has_value());
    }
    CHECK(binary.columns()[1].is_unsigned);
    CHECK(binary.columns()[4].type_name == "DATE");

    // The metacharacters were data: the table is still there, and a bound value matches itself.
    CHECK(conn.execute("SELECT COUNT(*) FROM v WHERE s = ?", s)[0].get<int>(0) == 1);
}

TEST_CASE("typed access says clearly when a field is NULL or of another type") {
    connection conn(test::server_options());
    const auto r = conn.query("SELECT NULL AS missing, 'text' AS word, 300 AS big");
    const row& x = r[0];
    CHECK_THROWS_WITH_AS(x.get<int>("missing"), doctest::Contains("column 'missing' (index 0"),
                         database_error);
    CHECK_THROWS_WITH_AS(x.get<int>("missing"), doctest::Contains("std::optional"), database_error);
    CHECK_THROWS_WITH_AS(x.get<int>("word"), doctest::Contains("cannot be read as"),
                         database_error);
    CHECK_THROWS_WITH_AS(x.get<std::int8_t>("big"), doctest::Contains("does not fit"),
                         database_error);
    CHECK_THROWS_WITH_AS(x.get<int>("nope"), doctest::Contains("no column named 'nope'"),
                         database_error);
    CHECK(x.get<int>("big") == 300);
}

TEST_CASE("prepared statements are reusable and check their parameter count") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))");
    statement insert = conn.prepare("INSERT INTO t (name) VALUES (?)");
    CHECK(insert.param_count() == 1);
    std::uint64_t last = 0;
    for (const char* name : {"a", "b", "c"}) {
        const auto r = insert.execute(name);
        CHECK(r.affected_rows() == 1);
        CHECK(r.last_insert_id() > last);
        last = r.last_insert_id();
    }
    error_code ec;
    diagnostics diag;
    const param two[] = {1, 2};
    insert.execute_span(two, ec, diag);
    CHECK(ec == client_errc::wrong_parameter_count);
    CHECK(contains(diag.client_message(), "1 '?' placeholder(s) but 2 parameter(s)"));
    CHECK(conn.execute("SELECT COUNT(*) FROM t")[0].get<int>(0) == 3);
}

TEST_CASE("a transaction guard rolls back unless committed") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
    {
        transaction tx(conn);
        conn.execute("INSERT INTO t VALUES (?)", 1);
        CHECK(count_rows(conn, "t") == 1); // visible inside
    }                                      // no commit
    CHECK(count_rows(conn, "t") == 0);

    try {
        transaction tx(conn);
        conn.execute("INSERT INTO t VALUES (?)", 2);
        conn.execute("INSERT INTO t VALUES (?)", 2); // duplicate key: throws
        tx.commit();
    } catch (const database_error& e) {
        CHECK(e.get_error_code().value() == 1062);
    }
    CHECK(count_rows(conn, "t") == 0); // the first insert went with the failure

    {
        transaction tx(conn);
        conn.execute("INSERT INTO t VALUES (?)", 3);
        tx.commit();
        CHECK_FALSE(tx.active());
    }
    CHECK(count_rows(conn, "t") == 1);
}

TEST_CASE("a rollback that fails with the session lost ends the guard: the server rolled back") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
    connection other(db.options());
    {
        transaction tx(conn);
        conn.execute("INSERT INTO t VALUES (?)", 1);
        other.query(fmt::format("KILL CONNECTION {}", conn.connection_id()));

        error_code ec;
        diagnostics diag;
        tx.rollback(ec, diag);
        REQUIRE(ec);
        CHECK(diag.error_class() == error_class::connection_lost);
        CHECK(conn.fault() == error_class::connection_lost);
        // The server ended the session, and with it the transaction: nothing is left to roll
        // back, and the destructor does not try.
        CHECK_FALSE(tx.active());
    }
    // Rolled back, not committed and not still open: the same key goes in from another
    // session (an open transaction would hold its lock until innodb_lock_wait_timeout).
    other.query("SET SESSION innodb_lock_wait_timeout = 10");
    other.execute("INSERT INTO t VALUES (?)", 1);
    CHECK(count_rows(other, "t") == 1);
}

TEST_CASE("a rollback that fails on a live session leaves the guard active, to be tried again") {
    // An XA transaction started inside the guard (after a COMMIT) makes ROLLBACK fail with
    // 1399 XAER_RMFAIL while the session, and the XA transaction's insert, are still there.
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
    transaction tx(conn);
    conn.query("COMMIT");
    conn.query("XA START 'cloudmysql_test'");
    conn.execute("INSERT INTO t VALUES (?)", 1);

    error_code ec;
    diagnostics diag;
    tx.rollback(ec, diag);
    CHECK(ec.value() == 1399);
    CHECK(conn.fault() == error_class::none);
    CHECK(tx.active()); // still open on the session: the guard must not claim otherwise
    CHECK_THROWS_AS(tx.rollback(), database_error);
    CHECK(tx.active());

    conn.query("XA END 'cloudmysql_test'");
    conn.query("XA ROLLBACK 'cloudmysql_test'");
    tx.rollback(); // now it can
    CHECK_FALSE(tx.active());
    CHECK(count_rows(conn, "t") == 0);
}

TEST_CASE("reset clears the session and re-applies the init statements") {
    scratch_database db;
    connect_options opts = db.options();
    opts.init_statements = {"SET @init_marker = 42", "SET SESSION sql_mode = 'STRICT_ALL_TABLES'"};
    connection conn(opts);
    CHECK(conn.query("SELECT @init_marker")[0].get<int>(0) == 42);

    conn.query("SET @mine = 7");
    conn.query("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    conn.query("SET @init_marker = 0");
    conn.query("CREATE TEMPORARY TABLE scratch (x INT)");
    statement stmt = conn.prepare("SELECT 1");

    conn.reset();

    const auto r = conn.query("SELECT @mine, @init_marker, @@session.tx_isolation, "
                              "@@session.sql_mode");
    CHECK(r[0].is_null(0));
    CHECK(r[0].get<int>(1) == 42);
    CHECK(r[0].get<std::string>(2) ==
          conn.query("SELECT @@global.tx_isolation")[0].get<std::string>(0));
    CHECK(r[0].get<std::string>(3) == "STRICT_ALL_TABLES");
    CHECK_THROWS_WITH_AS(conn.query("SELECT * FROM scratch"), doctest::Contains("1146"),
                         database_error);
    // utf8mb4 survives the reset.
    CHECK(conn.execute("SELECT ?", "\xF0\x9F\x98\x80")[0].get<std::string>(0) ==
          "\xF0\x9F\x98\x80");
    // A statement from before the reset is gone on the server; it says so.
    error_code ec;
    diagnostics diag;
    stmt.execute_span({}, ec, diag);
    CHECK(ec == client_errc::statement_closed);
    CHECK(contains(diag.client_message(), "prepare it again"));
    conn.ping(); // and the session itself is fine
}

TEST_CASE("the session state libmariadb reports drives needs_reset and the statement cache") {
    scratch_database db;
    scratch_database other;
    for (const auto* d : {&db, &other}) {
        connection c(d->options());
        c.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
    }
    connection(other.options()).query("INSERT INTO t VALUES (1), (2)");

    // The server offers session tracking and connect() asked for it: clean, and a plain SELECT
    // keeps it clean.
    connection conn(db.options());
    CHECK_FALSE(conn.needs_reset());
    CHECK(conn.execute("SELECT COUNT(*) FROM t")[0].get<int>(0) == 0);
    CHECK_FALSE(conn.needs_reset());

    // The statement cache follows the database the server reports (schema tracking): the same
    // SQL after a USE reads the other database's table.
    conn.query(fmt::format("USE `{}`", other.name()));
    CHECK(conn.execute("SELECT COUNT(*) FROM t")[0].get<int>(0) == 2);

    // With autocommit off, reading an InnoDB table opens a transaction: only the server's
    // status flags say so, and the session then needs a reset.
    connect_options no_autocommit = db.options();
    no_autocommit.init_statements = {"SET autocommit = 0"};
    connection in_transaction(no_autocommit);
    CHECK_FALSE(in_transaction.needs_reset());
    CHECK(in_transaction.execute("SELECT COUNT(*) FROM t")[0].get<int>(0) == 0);
    CHECK(in_transaction.needs_reset());
    CHECK(in_transaction.query("SELECT @@in_transaction")[0].get<int>(0) == 1);

    // A prepared statement's warnings are its execution's; after close() it says it is gone.
    CHECK(conn.execute("SELECT CAST(? AS UNSIGNED)", "x").warning_count() == 1);
    CHECK(conn.execute("SELECT ? + 1", 1).warning_count() == 0);
    statement stmt = conn.prepare("SELECT 1");
    conn.close();
    error_code ec;
    diagnostics diag;
    stmt.execute_span({}, ec, diag);
    CHECK(ec == client_errc::statement_closed);
}

TEST_CASE("reset() restores the database the connection was opened with") {
    scratch_database db;
    connection conn(db.options());
    conn.query("USE mysql");
    conn.reset();
    CHECK(conn.query("SELECT DATABASE()")[0].get<std::string>(0) == db.name());

    // Opened without a database, a session that chose one cannot be put back: reset() fails
    // (a pool then closes the connection) instead of handing the database on.
    connect_options no_database = db.options();
    no_database.database.clear();
    connection bare(no_database);
    bare.reset(); // nothing chosen: fine
    bare.query(fmt::format("USE `{}`", db.name()));
    error_code ec;
    diagnostics diag;
    bare.reset(ec, diag);
    CHECK(ec == client_errc::reset_incomplete);
    CHECK(contains(diag.client_message(), "open a new connection"));
}

TEST_CASE("a failing init statement fails the connect and names the statement") {
    connect_options opts = test::server_options();
    opts.init_statements = {"SET @ok = 1", "SET SESSION no_such_variable = 1"};
    connection conn;
    error_code ec;
    diagnostics diag;
    conn.connect(opts, ec, diag);
    CHECK(ec.value() == 1193);
    CHECK_FALSE(conn.is_open());
    CHECK(contains(diag.client_message(), "init statement 'SET SESSION no_such_variable = 1'"));
}
