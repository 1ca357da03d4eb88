// The migrator against a real MariaDB: up/down round trips, runs interrupted at every step
// (injected in process, and by SIGKILL in a child process), failing and blocked statements,
// concurrent migrators, changed and unknown migrations, the SQL plan run by the mariadb
// client, irreversible and destructive migrations, baselines and a held lock.
//
// Every test compares what it cares about with a clean run of the same chain: the schema and
// data (information_schema and the rows, history table excluded) and the history rows
// (version, name, checksum, state, steps done and total, last error).
#include "migration_chain.hpp"
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/migrator.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <initializer_list>
#include <iterator>
#include <latch>
#include <map>
#include <memory>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#ifndef CLOUDMYSQL_MIGRATE_VICTIM
#error "CLOUDMYSQL_MIGRATE_VICTIM must name the cloudmysql_migrate_victim program"
#endif

extern char** environ;

using namespace cloudmysql;
using namespace std::chrono_literals;
using cloudmysql::test::chain_kind;
using cloudmysql::test::scratch_database;
using cloudmysql::test::test_chain;

namespace {

using clock = std::chrono::steady_clock;

const std::string history_table = "cloudmysql_schema_history";

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// "1 2 3": versions as doctest can print them.
std::string list(const std::vector<std::uint64_t>& versions) {
    return fmt::format("{}", fmt::join(versions, " "));
}

migration make_migration(std::uint64_t version, std::string name, std::vector<migration_step> up,
                         std::vector<migration_step> down = {}, bool destroys = false) {
    migration m;
    m.version = version;
    m.name = std::move(name);
    m.up = std::move(up);
    m.down = std::move(down);
    m.destroys_data = destroys;
    return m;
}

// The schema and data of the database, history table excluded, as sorted lines: equal text
// means the same tables, columns (position, type, nullability, default), indexes, constraints,
// foreign keys and rows.
std::string snapshot(const connect_options& target) {
    connection conn(target);
    const std::string& db = target.database;
    std::vector<std::string> lines;
    auto add = [&](std::string_view sql) {
        for (const auto& r : conn.execute(sql, db, history_table))
            lines.push_back(r.get<std::string>(0));
    };
    add("SELECT CONCAT_WS(' ', 'table', TABLE_NAME, TABLE_TYPE, IFNULL(ENGINE, '-'), "
        "IFNULL(TABLE_COLLATION, '-')) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> ?");
    add("SELECT CONCAT_WS(' ', 'column', TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, "
        "IF(IS_NULLABLE = 'YES', 'NULL', 'NOT NULL'), "
        "IFNULL(CONCAT('DEFAULT ', COLUMN_DEFAULT), 'no default'), EXTRA) "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> ?");
    add("SELECT CONCAT_WS(' ', 'index', TABLE_NAME, INDEX_NAME, "
        "IF(NON_UNIQUE = 0, 'unique', 'non-unique'), SEQ_IN_INDEX, COLUMN_NAME) "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> ?");
    add("SELECT CONCAT_WS(' ', 'constraint', TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE) "
        "FROM information_schema.TABLE_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME <> ?");
    add("SELECT CONCAT_WS(' ', 'key-column', TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION, "
        "COLUMN_NAME, 'references', IFNULL(REFERENCED_TABLE_NAME, '-'), "
        "IFNULL(REFERENCED_COLUMN_NAME, '-')) FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> ?");
    add("SELECT CONCAT_WS(' ', 'foreign-key', TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, "
        "'on update', UPDATE_RULE, 'on delete', DELETE_RULE) "
        "FROM information_schema.REFERENTIAL_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME <> ?");
    std::vector<std::string> tables;
    for (const auto& r : conn.execute("SELECT TABLE_NAME FROM information_schema.TABLES "
                                      "WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> ?",
                                      db, history_table))
        tables.push_back(r.get<std::string>(0));
    for (const auto& t : tables)
        for (const auto& r : conn.query(fmt::format("SELECT * FROM `{}`", t))) {
            std::string line = "row " + t;
            for (const auto& v : r.values())
                line.append(" ").append(to_display_string(v));
            lines.push_back(std::move(line));
        }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

// The history table's rows, read with plain SQL (not through the migrator), empty when there
// is no history table.
std::string history_rows(const connect_options& target) {
    connection conn(target);
    if (conn.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                     "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                     target.database, history_table)[0]
            .get<int>(0) == 0)
        return {};
    std::string out;
    for (const auto& r :
         conn.query(fmt::format("SELECT version, name, checksum, state, steps_done, steps_total, "
                                "IFNULL(last_error, '') FROM `{}` ORDER BY version",
                                history_table))) {
        const auto error = r.get<std::string>(6);
        out += fmt::format("{} {} {} {} {}/{}{}\n", r.get<std::uint64_t>(0), r.get<std::string>(1),
                           r.get<std::string>(2), r.get<std::string>(3), r.get<std::uint32_t>(4),
                           r.get<std::uint32_t>(5), error.empty() ? "" : " error: " + error);
    }
    return out;
}

struct db_state {
    std::string schema;
    std::string history;
};

db_state state_of(const connect_options& target) {
    return {snapshot(target), history_rows(target)};
}

struct clean_run {
    db_state state;
    std::chrono::microseconds took{};
};

// A clean `up` of the whole chain on an empty database; computed once per chain kind.
const clean_run& clean(chain_kind kind = chain_kind::data_steps) {
    static std::map<chain_kind, clean_run> cache;
    if (auto it = cache.find(kind); it != cache.end())
        return it->second;
    scratch_database db;
    migrator m(db.options(), test_chain(kind));
    const auto started = clock::now();
    const auto report = m.up();
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started);
    REQUIRE(list(report.applied) == "1 2 3");
    const clean_run run{state_of(db.options()), took};
    REQUIRE_FALSE(run.state.history.empty());
    REQUIRE_FALSE(contains(run.state.history, "error"));
    return cache.emplace(kind, run).first->second;
}

// The database is in the state a clean run of the whole chain leaves.
void check_like_clean(const connect_options& target, chain_kind kind = chain_kind::data_steps) {
    const auto now = state_of(target);
    const auto& reference = clean(kind).state;
    CHECK(now.schema == reference.schema);
    CHECK(now.history == reference.history);
}

// Runs `f`, which must throw database_error with `code`; returns what() ("" when it did not).
std::string expect_error(const std::function<void()>& f, client_errc code) {
    try {
        f();
    } catch (const database_error& e) {
        CHECK_MESSAGE(e.get_error_code() == make_error_code(code), e.what());
        return e.what();
    }
    FAIL_CHECK("no database_error was thrown");
    return {};
}

// Where each `up` step of a chain is: the migration's index and the step's 1-based number.
struct step_ref {
    std::size_t migration = 0;
    std::uint32_t step = 0;
};

std::vector<step_ref> all_steps(const std::vector<migration>& chain) {
    std::vector<step_ref> out;
    for (std::size_t i = 0; i < chain.size(); ++i)
        for (std::uint32_t k = 1; k <= chain[i].up.size(); ++k)
            out.push_back({i, k});
    return out;
}

bool is_ddl(const migration_step& st) {
    if (st.is_data_step())
        return false;
    std::istringstream in(st.sql);
    std::string word;
    in >> word;
    return word == "CREATE" || word == "ALTER" || word == "DROP";
}

// Thrown from on_progress: the run stops there without the migrator seeing a failed step, as
// if the process had died (no history update follows the event).
struct interrupted : std::runtime_error {
    interrupted() : std::runtime_error("injected interruption") {}
};

migrator_options interrupt_at(migration_event::kind what, std::size_t nth, bool down = false) {
    migrator_options o;
    auto seen = std::make_shared<std::size_t>(0);
    o.on_progress = [what, nth, down, seen](const migration_event& e) {
        if (e.what == what && e.down == down && ++*seen == nth)
            throw interrupted();
    };
    return o;
}

// Checks where an interrupted or failed run stopped: the migrations before `stopped_in`
// applied, that one in `state` after `steps_done` steps, none after it.
void check_stopped(migrator& m, std::size_t stopped_in, migration_state state,
                   std::uint32_t steps_done) {
    const auto history = m.history();
    REQUIRE(history.size() == stopped_in + 1);
    for (std::size_t i = 0; i < stopped_in; ++i)
        CHECK(history[i].state == migration_state::applied);
    CHECK(to_string(history[stopped_in].state) == to_string(state));
    CHECK(history[stopped_in].steps_done == steps_done);
    const auto problems = m.verify();
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0], fmt::format("migration {} ", history[stopped_in].version)));
}

std::string server_url() {
    if (const char* url = std::getenv("CLOUDMYSQL_TEST_URL"); url && *url)
        return url;
    return test::read_first_line(test::sandbox_dir() + "/url");
}

struct child_exit {
    bool killed_by_sigkill = false;
    int exit_code = -1; ///< when it exited
};

// Runs a program, stdin and stdout/stderr redirected when the paths are not empty, and waits
// for it (at most two minutes: then it is killed and the test fails).
child_exit run_program(const std::vector<std::string>& args, const std::string& input = {},
                       const std::string& output = {}) {
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    REQUIRE(posix_spawn_file_actions_init(&actions) == 0);
    if (!input.empty())
        posix_spawn_file_actions_addopen(&actions, 0, input.c_str(), O_RDONLY, 0);
    if (!output.empty()) {
        posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0600);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
    }
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(rc == 0, "cannot start ", args[0], ": ", std::strerror(rc));
    int status = 0;
    const auto deadline = clock::now() + 120s;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            FAIL("waitpid: ", std::strerror(errno));
        if (clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            FAIL(args[0], " did not end within two minutes");
        }
        std::this_thread::sleep_for(2ms);
    }
    // The W* macros, without their old-style casts: the low 7 bits are the signal, 0 for an
    // exit whose code is in the next byte.
    const int signal = status & 0x7f;
    child_exit out;
    out.killed_by_sigkill = signal == SIGKILL;
    if (signal == 0)
        out.exit_code = (status >> 8) & 0xff;
    return out;
}

// Runs an SQL script with the mariadb command-line client; returns its exit code and output.
std::pair<int, std::string> run_mariadb_client(const connect_options& target,
                                               const std::string& script) {
    namespace fs = std::filesystem;
    const auto base =
        fs::temp_directory_path() / fmt::format("cloudmysql_{}_{}", ::getpid(), target.database);
    const std::string in = base.string() + ".sql";
    const std::string out = base.string() + ".out";
    {
        std::ofstream f(in);
        f << script;
        REQUIRE(f.good());
    }
    std::vector<std::string> args{"mariadb", "--no-defaults", "--batch"};
    if (!target.unix_socket.empty()) {
        args.push_back("--socket=" + target.unix_socket);
    } else {
        args.push_back("--host=" + target.host);
        args.push_back("--port=" + std::to_string(target.port));
    }
    args.push_back("--user=" + target.user);
    args.push_back("--password=" + target.password);
    switch (target.effective_tls_mode()) {
    case tls_mode::disabled:
        args.push_back("--skip-ssl");
        break;
    case tls_mode::preferred:
        break;
    case tls_mode::required:
    case tls_mode::verify_ca:
    case tls_mode::verify_identity:
        args.push_back("--ssl");
        if (!target.ssl_ca.empty())
            args.push_back("--ssl-ca=" + target.ssl_ca);
        if (target.effective_tls_mode() != tls_mode::required)
            args.push_back("--ssl-verify-server-cert");
        break;
    }
    args.push_back(target.database);
    const auto exit = run_program(args, in, out);
    std::ifstream f(out);
    std::string output((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    fs::remove(in);
    fs::remove(out);
    return {exit.exit_code, output};
}

std::string states(migrator& m) {
    std::string out;
    for (const auto& s : m.status().migrations)
        out += fmt::format("{}:{} ", s.version, to_string(s.state));
    return out;
}

// Interrupts a run at every step, in every way, each on a fresh database: an `up` of the
// whole chain from an empty database, or (`revert`) a down_to(0) from version 3. Then
// continues with up() (`then_up`), which must leave what a clean run leaves, or with
// down_to(0), which must leave an empty schema and history. The ways (see interrupt_at(); the
// engine has no hook between a DDL statement and its journal entry, so the test makes that
// state itself):
//   before:    on_progress throws at the step's step_started: it never ran;
//   after:     on_progress throws at its step_finished: it ran and is journaled;
//   committed: as `before`, then the test runs the step's DDL itself: its effect is in the
//              schema but the history does not say so (a crash between the two);
//   failed:    the step is replaced by `SELEC 1`: the run records a failure there.
// Returns the number of scenarios.
std::size_t interrupt_everywhere(bool revert, bool then_up) {
    const auto chain = test_chain();
    std::vector<step_ref> steps; // in the order the interrupted run meets them
    if (revert) {
        for (std::size_t i = chain.size(); i-- > 0;)
            for (std::uint32_t k = 1; k <= chain[i].down.size(); ++k)
                steps.push_back({i, k});
    } else {
        steps = all_steps(chain);
    }
    const std::vector<std::string> ways{"before", "after", "committed", "failed"};
    std::size_t scenarios = 0;
    for (std::size_t g = 1; g <= steps.size(); ++g) {
        const std::size_t mi = steps[g - 1].migration;
        const std::uint32_t k = steps[g - 1].step;
        const migration& mig = chain[mi];
        const migration_step& st = (revert ? mig.down : mig.up)[k - 1];
        for (const auto& how : ways) {
            if (how == "committed" && !is_ddl(st))
                continue; // a data or DML step commits together with its journal entry
            CAPTURE(g);
            CAPTURE(mig.version);
            CAPTURE(k);
            CAPTURE(how);
            ++scenarios;
            scratch_database db;
            migrator plain(db.options(), chain);
            if (revert)
                plain.up();
            auto run = [&](migrator& m) {
                if (revert)
                    m.down_to(0);
                else
                    m.up();
            };
            const auto state = revert            ? migration_state::reverting
                               : how == "failed" ? migration_state::failed
                                                 : migration_state::applying;
            if (how == "failed") {
                auto broken = chain;
                (revert ? broken[mi].down : broken[mi].up)[k - 1] = sql("SELEC 1");
                migrator m(db.options(), broken);
                const auto what = expect_error([&] { run(m); }, client_errc::migration_failed);
                CHECK(contains(what,
                               fmt::format("going {} at step {} of", revert ? "down" : "up", k)));
                check_stopped(plain, mi, state, k - 1);
            } else {
                migrator m(db.options(), chain,
                           interrupt_at(how == "after" ? migration_event::kind::step_finished
                                                       : migration_event::kind::step_started,
                                        g, revert));
                CHECK_THROWS_AS(run(m), interrupted);
                check_stopped(plain, mi, state, how == "after" ? k : k - 1);
            }
            if (how == "committed") {
                connection conn(db.options());
                conn.query(st.sql);
            }
            std::vector<std::uint64_t> expected;
            if (then_up) {
                for (std::size_t i = mi; i < chain.size(); ++i)
                    expected.push_back(chain[i].version);
                run_report r;
                CHECK_NOTHROW(r = plain.up());
                CHECK(list(r.applied) == list(expected));
                check_like_clean(db.options());
            } else {
                for (std::size_t i = mi + 1; i-- > 0;)
                    expected.push_back(chain[i].version);
                run_report r;
                CHECK_NOTHROW(r = plain.down_to(0));
                CHECK(list(r.applied) == list(expected));
                CHECK(snapshot(db.options()) == "");
                CHECK(history_rows(db.options()) == "");
            }
        }
    }
    return scenarios;
}

} // namespace

TEST_CASE("up, down and up again: each version has the same schema whichever way it was reached") {
    scratch_database db;
    const auto& target = db.options();
    migrator m(target, test_chain());
    REQUIRE(m.latest_version() == 3);

    std::vector<std::string> at(4); // the schema and data at each version, first reached going up
    at[0] = snapshot(target);
    CHECK(at[0].empty());
    CHECK(states(m) == "1:pending 2:pending 3:pending ");
    CHECK(m.status().current_version == 0);

    for (std::uint64_t v = 1; v <= 3; ++v) {
        CAPTURE(v);
        const auto r = m.up(v);
        CHECK(list(r.applied) == std::to_string(v));
        CHECK(r.version_before == v - 1);
        CHECK(r.version_after == v);
        CHECK(r.steps_skipped == 0);
        at[v] = snapshot(target);
        CHECK(at[v] != at[v - 1]);
    }
    CHECK(states(m) == "1:applied 2:applied 3:applied ");
    CHECK(m.status().up_to_date());
    CHECK(m.status().current_version == 3);
    CHECK(m.verify().empty());
    check_like_clean(target); // step by step = all at once

    for (std::uint64_t v = 3; v >= 1; --v) {
        CAPTURE(v);
        const auto r = m.down(1);
        CHECK(list(r.applied) == std::to_string(v));
        CHECK(r.version_before == v);
        CHECK(r.version_after == v - 1);
        CHECK(snapshot(target) == at[v - 1]);
        CHECK(m.status().current_version == v - 1);
    }
    CHECK(states(m) == "1:pending 2:pending 3:pending ");
    CHECK(history_rows(target).empty());

    auto r = m.up();
    CHECK(list(r.applied) == "1 2 3");
    CHECK(snapshot(target) == at[3]);
    check_like_clean(target);

    r = m.down_to(0);
    CHECK(list(r.applied) == "3 2 1");
    CHECK(r.version_after == 0);
    CHECK(snapshot(target) == at[0]);
    CHECK(history_rows(target).empty());
    CHECK(states(m) == "1:pending 2:pending 3:pending ");

    r = m.up(2);
    CHECK(list(r.applied) == "1 2");
    CHECK(snapshot(target) == at[2]);
    CHECK(states(m) == "1:applied 2:applied 3:pending ");
    CHECK_FALSE(m.status().up_to_date());

    r = m.down_to(1);
    CHECK(list(r.applied) == "2");
    CHECK(snapshot(target) == at[1]);
    CHECK(states(m) == "1:applied 2:pending 3:pending ");

    r = m.up();
    CHECK(list(r.applied) == "2 3");
    CHECK(r.version_before == 1);
    CHECK(r.version_after == 3);
    check_like_clean(target);

    r = m.up(); // nothing left to do
    CHECK(r.applied.empty());
    CHECK(r.steps_run == 0);
    CHECK(r.version_before == 3);
    CHECK(r.version_after == 3);
    check_like_clean(target);
}

TEST_CASE("a run interrupted at any step resumes to what a clean run gives (injected)") {
    CHECK(interrupt_everywhere(false, true) == 37); // 10 steps, 7 of them DDL
}

TEST_CASE("a run interrupted at any step is undone by down_to(0) (injected)") {
    CHECK(interrupt_everywhere(false, false) == 37);
}

TEST_CASE("a revert interrupted at any step finishes with down_to(0) (injected)") {
    CHECK(interrupt_everywhere(true, false) == 34); // 9 steps, 7 of them DDL
}

TEST_CASE("a revert interrupted at any step is undone by up (injected)") {
    CHECK(interrupt_everywhere(true, true) == 34);
}

TEST_CASE("a run killed by SIGKILL at any point resumes to what a clean run gives") {
    // cloudmysql_migrate_victim applies the same chain in a child process and kills itself:
    // at the N-th step_started event (the step never ran), at the N-th step_finished event (the
    // step and its journal entry are committed), or from a thread at delays spread over the
    // length of a clean run, counted from the first progress event (anywhere: inside a
    // statement, between a DDL statement and its journal entry, after the end).
    const auto chain = test_chain();
    const auto steps = all_steps(chain);
    const long took_us = static_cast<long>(clean().took.count());
    struct kill_point {
        std::string mode;
        long n;
    };
    std::vector<kill_point> points;
    for (std::size_t g = 1; g <= steps.size(); ++g) {
        points.push_back({"started", static_cast<long>(g)});
        points.push_back({"finished", static_cast<long>(g)});
    }
    constexpr long timed_kills = 16;
    for (long i = 0; i < timed_kills; ++i)
        points.push_back({"timer", took_us * i / (timed_kills - 1)});
    const std::string url = server_url();
    std::string landed; // where the timed kills stopped the run, for the log
    for (const auto& p : points) {
        CAPTURE(p.mode);
        CAPTURE(p.n);
        scratch_database db;
        const auto exit =
            run_program({CLOUDMYSQL_MIGRATE_VICTIM, url, db.name(), p.mode, std::to_string(p.n)});
        CHECK(exit.killed_by_sigkill);
        CAPTURE(exit.exit_code);
        migrator m(db.options(), chain);
        std::string where = "all applied";
        if (p.mode != "timer") {
            const auto [mi, k] = steps[static_cast<std::size_t>(p.n) - 1];
            check_stopped(m, mi, migration_state::applying, p.mode == "finished" ? k : k - 1);
        } else {
            const auto history = m.history();
            if (history.size() < chain.size())
                where = "nothing applied";
            for (const auto& e : history)
                if (e.state != migration_state::applied) {
                    where = fmt::format("{} {} {}/{}", e.version, to_string(e.state), e.steps_done,
                                        e.steps_total);
                    break;
                }
        }
        const auto r = m.up();
        CHECK(r.version_after == 3);
        check_like_clean(db.options());
        if (p.mode == "timer")
            landed += fmt::format("\n  after {} us: {}{}", p.n, where,
                                  r.steps_skipped == 0 ? ""
                                                       : fmt::format(", {} step(s) found done "
                                                                     "by their postcondition",
                                                                     r.steps_skipped));
    }
    MESSAGE(points.size(), " child runs; a clean run takes ", took_us,
            " us; the timed kills:", landed);
}

TEST_CASE("a failing statement stops the run at that step; the fixed migration resumes there") {
    scratch_database db;
    auto broken = test_chain();
    broken[1].up[1] = sql("ALTER TABEL a ADD INDEX idx_a_y (y)"); // a syntax error, as DDL
    migrator m(db.options(), broken);

    const auto what = expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK(contains(what, "migration 2 add_column"));
    CHECK(contains(what, "step 2 of 3"));
    CHECK(contains(what, "ALTER TABEL a ADD INDEX idx_a_y (y)"));
    CHECK(contains(what, "1064"));
    try {
        m.up();
    } catch (const database_error& e) {
        CHECK(contains(e.diagnostics().server_message(), "SQL syntax"));
        CHECK_FALSE(contains(e.diagnostics().client_message(), "SQL syntax"));
    }

    // The error_code form says the same without throwing.
    error_code ec;
    diagnostics diag;
    const auto r = m.up({}, ec, diag);
    CHECK(ec == make_error_code(client_errc::migration_failed));
    CHECK(contains(diag.client_message(), "migration 2 add_column"));
    CHECK(r.applied.empty());

    const auto st = m.status();
    CHECK(states(m) == "1:applied 2:failed 3:pending ");
    REQUIRE(st.migrations[1].history.has_value());
    const auto& row = *st.migrations[1].history;
    CHECK(row.steps_done == 1);
    CHECK(row.steps_total == 3);
    CHECK((contains(row.last_error, "1064") || contains(row.last_error, "SQL syntax")));
    CHECK(st.current_version == 1);
    const auto problems = m.verify();
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0], "migration 2 add_column is failed after step 1 of 3"));

    // The migration was never applied, so changing it is allowed: the fix resumes at step 2.
    migrator fixed(db.options(), test_chain());
    const auto done = fixed.up();
    CHECK(list(done.applied) == "2 3");
    CHECK(done.version_before == 1);
    check_like_clean(db.options());
}

TEST_CASE("after a recorded failure, a step is run again, not assumed done by its postcondition") {
    scratch_database db;
    const auto chain = test_chain();
    migrator m(db.options(), chain);
    m.up(1);
    // Somebody made a different table b by hand: migration 3's CREATE TABLE b fails.
    connection conn(db.options());
    conn.query("CREATE TABLE b (unrelated INT)");
    expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK(states(m) == "1:applied 2:applied 3:failed ");

    // "table b exists" holds, but the server refused the statement: it proves nothing, and the
    // next up runs the statement again (and fails again) instead of recording it as done.
    const auto what = expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK(contains(what, "1050"));
    // The error says what is inconsistent, and both ways out.
    CHECK(contains(what, "table `b` exists"));
    CHECK(contains(what, "SET steps_done = 1 WHERE version = 3"));
    CHECK(contains(what, "DROP TABLE `b`"));
    CHECK(states(m) == "1:applied 2:applied 3:failed ");

    conn.query("DROP TABLE b");
    m.up();
    check_like_clean(db.options());
}

TEST_CASE("a step that ran although its journal entry failed is recorded as done") {
    scratch_database db;
    migrator m(db.options(), test_chain());
    m.up(1);
    // The history refuses to record step 2 of migration 2 (ALTER TABLE a ADD INDEX idx_a_y) as
    // done, as a lock wait or a server turned read-only would, after the index was made.
    connection conn(db.options());
    conn.query(fmt::format("CREATE TRIGGER refuse_journal BEFORE UPDATE ON `{}` FOR EACH ROW "
                           "IF NEW.version = 2 AND NEW.steps_done = 2 AND NEW.state = 'applying' "
                           "THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'journal refused'; "
                           "END IF",
                           history_table));
    const auto what = expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK(contains(what, "step 2 of 3 (ALTER TABLE a ADD INDEX idx_a_y (y)) ran, but recording "
                         "it in the history failed"));
    CHECK(contains(what, "journal refused"));
    CHECK(contains(what, "continues after step 2"));
    // The history says how far the run really got: the index is there, the step is done.
    const auto row = *m.status().migrations[1].history;
    CHECK(row.state == migration_state::failed);
    CHECK(row.steps_done == 2);

    conn.query("DROP TRIGGER refuse_journal");
    const auto r = m.up(); // does not make the index again ("Duplicate key name")
    CHECK(list(r.applied) == "2 3");
    check_like_clean(db.options());
}

TEST_CASE("a failed step whose effect is in the database: the error says so and how to settle it") {
    scratch_database db;
    auto broken = test_chain();
    broken[1].up[1] = sql("ALTER TABEL a ADD INDEX idx_a_y (y)"); // a syntax error, as DDL
    expect_error([&] { migrator(db.options(), broken).up(); }, client_errc::migration_failed);
    // Somebody fixes it by hand: the index is there, the history still says step 2 failed.
    connection conn(db.options());
    conn.query("ALTER TABLE a ADD INDEX idx_a_y (y)");

    migrator fixed(db.options(), test_chain());
    const auto what = expect_error([&] { fixed.up(); }, client_errc::migration_failed);
    CHECK(contains(what, "1061"));
    CHECK(contains(what, "index `idx_a_y` on `a` exists"));
    CHECK(contains(what, "the history says step 2 of 3 of migration 2 is not done"));
    CHECK(contains(what, "DROP INDEX `idx_a_y` ON `a`"));
    CHECK_FALSE(contains(what, "fix the cause and run `up` again"));
    CHECK(states(fixed) == "1:applied 2:failed 3:pending ");

    // The SQL it gives records the step as done; up then continues after it.
    const std::string before = "record the step as done: ";
    const auto from = what.find(before);
    REQUIRE(from != std::string::npos);
    const auto to = what.find("; then", from);
    REQUIRE(to != std::string::npos);
    const std::string settle = what.substr(from + before.size(), to - from - before.size());
    CHECK(settle == fmt::format("UPDATE `{}`.`{}` SET steps_done = 2 WHERE version = 2", db.name(),
                                history_table));
    conn.query(settle);
    CHECK(list(fixed.up().applied) == "2 3");
    check_like_clean(db.options());
}

TEST_CASE("going down, a step whose effect is already there says so and how to settle it") {
    scratch_database db;
    migrator m(db.options(), test_chain());
    m.up();
    connection conn(db.options());
    conn.query("ALTER TABLE a DROP INDEX idx_a_y"); // by hand: migration 2's second down step

    const auto what = expect_error([&] { m.down_to(1); }, client_errc::migration_failed);
    CHECK(contains(what, "1091"));
    CHECK(contains(what, "index `idx_a_y` on `a` is absent"));
    CHECK(contains(what, fmt::format("SET steps_done = 2 WHERE version = 2; then run `down` "
                                     "again, which continues after step 2")));
    CHECK(contains(what, "put back what it removes by hand"));
    CHECK(states(m) == "1:applied 2:reverting 3:pending ");

    conn.query(fmt::format("UPDATE `{}` SET steps_done = 2 WHERE version = 2", history_table));
    CHECK(list(m.down_to(1).applied) == "2");
    CHECK(states(m) == "1:applied 2:pending 3:pending ");
    CHECK(list(m.up().applied) == "2 3");
    check_like_clean(db.options());
}

TEST_CASE("a step without a postcondition: the server's 'already exists' names the effect") {
    scratch_database db;
    migration view;
    view.version = 1;
    view.name = "create_view";
    view.up = {sql("CREATE VIEW v AS SELECT 1 AS one")};
    view.down = {sql("DROP VIEW v")};
    REQUIRE_FALSE(postcondition::derive(view.up[0].sql).has_value());
    connection conn(db.options());
    conn.query("CREATE VIEW v AS SELECT 2 AS two"); // somebody's, or this step's run by hand
    migrator m(db.options(), {view});
    const auto what = expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK(contains(what, "1050"));
    CHECK(contains(what, "the server's error says its effect is in the database (a table of that "
                         "name exists)"));
    CHECK(contains(what, "SET steps_done = 1 WHERE version = 1"));
    CHECK(contains(what, "If it is not, undo it by hand and run `up` again"));
}

TEST_CASE("six migrators at once: each version is applied exactly once") {
    scratch_database db;
    constexpr std::size_t n = 6;
    std::latch start(n);
    std::vector<run_report> reports(n);
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            try {
                migrator m(db.options(), test_chain());
                reports[i] = m.up();
            } catch (const std::exception& e) {
                errors[i] = e.what();
            }
        });
    for (auto& t : threads)
        t.join();

    std::vector<std::uint64_t> applied;
    std::size_t appliers = 0;
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        CHECK(errors[i] == "");
        applied.insert(applied.end(), reports[i].applied.begin(), reports[i].applied.end());
        if (!reports[i].applied.empty())
            ++appliers;
        CHECK(reports[i].version_after == 3);
    }
    std::sort(applied.begin(), applied.end());
    CHECK(list(applied) == "1 2 3");
    CHECK(appliers == 1); // the lock is held for the whole run

    // Every migration wrote its row in step_log once (the data steps included).
    connection conn(db.options());
    std::string counts;
    for (const auto& r :
         conn.query("SELECT version, COUNT(*) FROM step_log GROUP BY version ORDER BY version"))
        counts += fmt::format("{}:{} ", r.get<int>(0), r.get<int>(1));
    CHECK(counts == "1:1 2:1 3:1 ");
    check_like_clean(db.options());
}

TEST_CASE("a changed migration is refused; reformatting it is not a change") {
    scratch_database db;
    migrator(db.options(), test_chain()).up(2);
    const auto before = state_of(db.options());

    auto reformatted = test_chain();
    reformatted[1].up[0] = sql("ALTER  TABLE a\n    ADD COLUMN y VARCHAR( 20 ) /* a label */ NULL;"
                               "  -- nullable: old rows have none\n");
    CHECK(reformatted[1].checksum() == test_chain()[1].checksum());
    migrator same(db.options(), reformatted);
    CHECK(same.verify().empty());
    CHECK_FALSE(same.status().migrations[1].checksum_changed);

    auto changed = test_chain();
    changed[1].up[0] = sql("ALTER TABLE a ADD COLUMN y VARCHAR(30) NULL");
    migrator refused(db.options(), changed);
    const auto problems = refused.verify();
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0], "migration 2 add_column was changed"));
    CHECK(refused.status().migrations[1].checksum_changed);
    CHECK_FALSE(refused.status().up_to_date());
    auto what = expect_error([&] { refused.up(); }, client_errc::migration_refused);
    CHECK(contains(what, "migration 2 add_column was changed"));
    what = expect_error([&] { refused.down(); }, client_errc::migration_refused);
    CHECK(contains(what, "migration 2 add_column was changed"));
    CHECK(state_of(db.options()).schema == before.schema);
    CHECK(state_of(db.options()).history == before.history);

    // The reformatted chain goes on; so does the changed one when told to.
    migrator_options o;
    o.allow_changed_checksums = true;
    migrator forced(db.options(), changed, o);
    CHECK(list(forced.up().applied) == "3");
    CHECK(same.status().up_to_date());
}

TEST_CASE("a database ahead of the program is refused unless allow_unknown_versions") {
    scratch_database db;
    const std::vector<migration> newer{test::chain_create_a(),
                                       make_migration(3, "create_c",
                                                      {sql("CREATE TABLE c (id INT PRIMARY KEY)")},
                                                      {sql("DROP TABLE c")})};
    migrator(db.options(), newer).up();
    const auto before = state_of(db.options());

    const std::vector<migration> older{test::chain_create_a(),
                                       test::chain_add_column(chain_kind::data_steps)};
    migrator m(db.options(), older);
    auto what = expect_error([&] { m.up(); }, client_errc::migration_refused);
    CHECK(contains(what, "version 3 create_c"));
    CHECK(contains(what, "ahead"));
    what = expect_error([&] { m.down(); }, client_errc::migration_refused);
    CHECK(contains(what, "ahead"));
    what = expect_error([&] { m.down_to(0); }, client_errc::migration_refused);
    CHECK(contains(what, "ahead"));
    CHECK(state_of(db.options()).schema == before.schema);
    CHECK(state_of(db.options()).history == before.history);

    const auto st = m.status();
    REQUIRE(st.unknown.size() == 1);
    CHECK(st.unknown[0].version == 3);
    CHECK_FALSE(st.up_to_date());
    const auto problems = m.verify();
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0], "version 3 create_c"));

    migrator_options o;
    o.allow_unknown_versions = true;
    migrator tolerant(db.options(), older, o);
    const auto r = tolerant.up();
    CHECK(list(r.applied) == "2");
    CHECK(r.version_after == 3); // the highest applied version, known or not
    CHECK(states(tolerant) == "1:applied 2:applied ");
}

TEST_CASE("plan() run by the mariadb client gives the schema and history up() gives") {
    scratch_database db;
    migrator m(db.options(), test_chain(chain_kind::sql_only));
    const std::string up_script = m.plan(0, 3);
    CHECK(contains(up_script, "CREATE INDEX idx_a_x ON a (x);"));
    int code = 0;
    std::string output;
    std::tie(code, output) = run_mariadb_client(db.options(), up_script);
    INFO(up_script);
    INFO(output);
    REQUIRE(code == 0);
    check_like_clean(db.options(), chain_kind::sql_only);
    CHECK(m.status().up_to_date());
    CHECK(m.verify().empty());
    CHECK(m.up().applied.empty()); // the migrator agrees there is nothing left to do

    const std::string down_script = m.plan(3, 0);
    std::tie(code, output) = run_mariadb_client(db.options(), down_script);
    INFO(down_script);
    REQUIRE(code == 0);
    CHECK(snapshot(db.options()) == "");
    CHECK(history_rows(db.options()) == "");
    CHECK(states(m) == "1:pending 2:pending 3:pending ");

    // Part of the way, then the rest.
    std::tie(code, output) = run_mariadb_client(db.options(), m.plan(0, 1));
    REQUIRE(code == 0);
    CHECK(states(m) == "1:applied 2:pending 3:pending ");
    std::tie(code, output) = run_mariadb_client(db.options(), m.plan(1, 3));
    REQUIRE(code == 0);
    check_like_clean(db.options(), chain_kind::sql_only);
}

TEST_CASE("plan() refuses a range with a data step in it, and unknown versions") {
    auto target = test::server_options();
    target.database = "plan_only"; // plan() never connects
    migrator m(target, test_chain(chain_kind::data_steps));
    CHECK_NOTHROW(m.plan(0, 1)); // migration 1 is SQL only
    CHECK_NOTHROW(m.plan(1, 0));
    CHECK_THROWS_WITH_AS(m.plan(0, 2), doctest::Contains("data step"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.plan(1, 3), doctest::Contains("data step"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.plan(3, 2), doctest::Contains("data step"), std::invalid_argument);
    CHECK_THROWS_AS(m.plan(0, 4), std::invalid_argument);
}

TEST_CASE("a blocked ALTER fails after lock_wait_timeout, naming the blocking connection") {
    scratch_database db;
    const std::vector<migration> chain{
        test::chain_create_a(), make_migration(2, "add_z", {sql("ALTER TABLE a ADD COLUMN z INT")},
                                               {sql("ALTER TABLE a DROP COLUMN z")})};
    migrator_options o;
    o.lock_wait_timeout = 1s;
    migrator m(db.options(), chain, o);
    m.up(1);

    connection blocker(db.options());
    blocker.query("START TRANSACTION");
    blocker.execute("INSERT INTO a (id, x) VALUES (?, ?)", 100, 1);

    const auto what = expect_error([&] { m.up(); }, client_errc::migration_failed);
    CHECK((contains(what, "1205") || contains(what, "Lock wait timeout")));
    CHECK(contains(what, fmt::format("connection {} ", blocker.connection_id())));
    CHECK(contains(what, "migration 2 add_z"));
    const auto history = m.history();
    REQUIRE(history.size() == 2);
    CHECK(history[1].state == migration_state::failed);
    CHECK(history[1].steps_done == 0);
    CHECK(contains(history[1].last_error, fmt::format("connection {} ", blocker.connection_id())));

    blocker.query("COMMIT");
    CHECK(list(m.up().applied) == "2");
    connection conn(db.options());
    CHECK(conn.query("SELECT COUNT(*) FROM a WHERE id = 100 AND z IS NULL")[0].get<int>(0) == 1);
    CHECK(m.status().up_to_date());
}

TEST_CASE("down through an irreversible migration is refused and reverts nothing") {
    scratch_database db;
    const std::vector<migration> chain{
        test::chain_create_a(),
        make_migration(2, "create_c", {sql("CREATE TABLE c (id INT PRIMARY KEY)")}),
        make_migration(3, "create_d", {sql("CREATE TABLE d (id INT PRIMARY KEY)")},
                       {sql("DROP TABLE d")})};
    REQUIRE_FALSE(chain[1].reversible());
    migrator m(db.options(), chain);
    m.up();
    const auto before = state_of(db.options());

    // Version 3 could be reverted, but the run would stop half way: nothing is reverted.
    auto what = expect_error([&] { m.down_to(0); }, client_errc::migration_refused);
    CHECK(contains(what, "irreversible"));
    CHECK(contains(what, "migration 2 create_c"));
    CHECK(state_of(db.options()).schema == before.schema);
    CHECK(state_of(db.options()).history == before.history);
    what = expect_error([&] { m.down(2); }, client_errc::migration_refused);
    CHECK(contains(what, "irreversible"));
    CHECK(state_of(db.options()).schema == before.schema);

    CHECK(list(m.down(1).applied) == "3");
    const auto at_2 = state_of(db.options());
    what = expect_error([&] { m.down(1); }, client_errc::migration_refused);
    CHECK(contains(what, "irreversible"));
    CHECK(state_of(db.options()).schema == at_2.schema);
    CHECK(state_of(db.options()).history == at_2.history);
    CHECK(states(m) == "1:applied 2:applied 3:pending ");
}

TEST_CASE("an up step that destroys data needs destroys_data; a down step does not") {
    scratch_database db;
    auto drop_table = make_migration(2, "drop_step_log", {sql("DROP TABLE step_log")});
    auto drop_column = make_migration(3, "drop_x", {sql("ALTER TABLE a DROP COLUMN x")});
    const std::vector<migration> unconfirmed_table{test::chain_create_a(), drop_table};
    const std::vector<migration> unconfirmed_column{test::chain_create_a(),
                                                    make_migration(2, "drop_x", drop_column.up)};
    CHECK_THROWS_WITH_AS(migrator(db.options(), unconfirmed_table),
                         doctest::Contains("destroys_data"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(migrator(db.options(), unconfirmed_column),
                         doctest::Contains("destroys_data"), std::invalid_argument);
    // The test chain's down steps drop tables and columns, without the flag.
    CHECK_NOTHROW(migrator(db.options(), test_chain()));

    drop_table.destroys_data = true;
    drop_column.destroys_data = true;
    migrator m(db.options(), {test::chain_create_a(), drop_table, drop_column});
    CHECK(list(m.up().applied) == "1 2 3");
    connection conn(db.options());
    CHECK(conn.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'step_log'",
                       db.name())[0]
              .get<int>(0) == 0);
    CHECK(conn.execute("SELECT COUNT(*) FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'a' AND COLUMN_NAME = 'x'",
                       db.name())[0]
              .get<int>(0) == 0);
}

TEST_CASE("baseline records an existing schema as applied; up then applies only the rest") {
    scratch_database db;
    const auto chain = test_chain(chain_kind::sql_only);
    {
        // The schema of versions 1 and 2, made by hand before the program used migrations.
        connection conn(db.options());
        for (std::size_t i = 0; i < 2; ++i)
            for (const auto& st : chain[i].up)
                conn.query(st.sql);
    }
    migrator m(db.options(), chain);
    m.baseline(2);
    CHECK(states(m) == "1:applied 2:applied 3:pending ");
    CHECK(m.status().current_version == 2);
    const auto r = m.up();
    CHECK(list(r.applied) == "3");
    CHECK(r.version_before == 2);
    check_like_clean(db.options(), chain_kind::sql_only);

    const auto before = state_of(db.options());
    auto what = expect_error([&] { m.baseline(1); }, client_errc::migration_refused);
    CHECK(contains(what, "baseline"));
    CHECK(state_of(db.options()).history == before.history);

    // Also with only part of the history.
    scratch_database partly;
    migrator p(partly.options(), chain);
    p.up(1);
    what = expect_error([&] { p.baseline(2); }, client_errc::migration_refused);
    CHECK(contains(what, "baseline"));
    CHECK(states(p) == "1:applied 2:pending 3:pending ");
}

TEST_CASE("a migrator that cannot get the lock within lock_timeout fails naming the holder") {
    scratch_database db;
    std::promise<std::uint64_t> holder_id;
    auto holder_known = holder_id.get_future();
    std::promise<void> release;
    const std::shared_future<void> released = release.get_future().share();
    auto chain = test_chain();
    chain.push_back(make_migration(4, "wait_for_the_test",
                                   {data("hold the lock until the test says", [&](connection& c) {
                                       holder_id.set_value(c.connection_id());
                                       released.wait();
                                   })}));

    std::string holder_error;
    std::thread holder([&] {
        try {
            migrator(db.options(), chain).up();
        } catch (const std::exception& e) {
            holder_error = e.what();
        }
    });
    // Lets the holder finish and joins it, also when a check below throws.
    struct finish {
        std::promise<void>& release;
        std::thread& holder;
        bool released = false;
        void now() {
            if (!released)
                release.set_value();
            released = true;
            if (holder.joinable())
                holder.join();
        }
        ~finish() { now(); }
    } finally{release, holder};

    REQUIRE(holder_known.wait_for(60s) == std::future_status::ready);
    const auto id = holder_known.get();

    migrator_options o;
    o.lock_timeout = 1s;
    migrator waiting(db.options(), chain, o);
    const auto what = expect_error([&] { waiting.up(); }, client_errc::migration_locked);
    CHECK(contains(what, fmt::format("connection {},", id)));
    CHECK(contains(what, "lock_timeout"));
    CHECK(contains(what, db.name()));

    finally.now();
    CHECK(holder_error == "");
    CHECK(waiting.up().applied.empty());
    CHECK(waiting.status().up_to_date());
}
