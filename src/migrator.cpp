// The migrator: locking, the history journal, resuming, and the SQL plan.
#include <cloudmysql/connection.hpp>
#include <cloudmysql/migrator.hpp>
#include <cloudmysql/transaction.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <map>
#include <stdexcept>
#include <type_traits>

namespace cloudmysql {
namespace {

using clock = std::chrono::steady_clock;

std::string quote_identifier(std::string_view name) {
    std::string out = "`";
    for (char c : name) {
        if (c == '`')
            out += '`';
        out += c;
    }
    return out + "`";
}

// A string literal for the SQL plan (the migrator itself binds every value).
std::string quote_literal(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'' || c == '\\')
            out += c == '\'' ? '\'' : '\\';
        out += c;
    }
    return out + "'";
}

migration_state parse_state(std::string_view s) {
    if (s == "applied")
        return migration_state::applied;
    if (s == "applying")
        return migration_state::applying;
    if (s == "failed")
        return migration_state::failed;
    if (s == "reverting")
        return migration_state::reverting;
    return migration_state::pending;
}

std::string first_word_upper(const std::string& sql) {
    const std::string n = normalize_sql(sql);
    std::string word;
    for (char c : n) {
        if (std::isalpha(static_cast<unsigned char>(c)) == 0)
            break;
        word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return word;
}

// DDL commits implicitly: such a step cannot share a transaction with its journal entry.
bool is_ddl(const std::string& sql) {
    const std::string w = first_word_upper(sql);
    return w == "CREATE" || w == "ALTER" || w == "DROP" || w == "RENAME" || w == "TRUNCATE" ||
           w == "GRANT" || w == "REVOKE" || w == "ANALYZE" || w == "OPTIMIZE";
}

// The statement as its author wrote it, on one line, without the trailing ';'.
std::string one_line(const std::string& sql) {
    std::string out;
    for (char c : sql) {
        const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
        if (space && (out.empty() || out.back() == ' '))
            continue;
        out += space ? ' ' : c;
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == ';'))
        out.pop_back();
    return out;
}

std::string step_summary(const migration_step& step) {
    if (step.is_data_step())
        return step.description;
    std::string n = one_line(step.sql);
    if (n.size() > 80)
        n = n.substr(0, 77) + "...";
    return n;
}

std::optional<postcondition> postcondition_of(const migration_step& step) {
    if (step.done_when)
        return step.done_when;
    if (step.is_data_step())
        return std::nullopt;
    return postcondition::derive(step.sql);
}

// Server errors that say what a DDL statement makes is already there, or what it removes is
// already gone: what the step does is in the database although the history says it is not.
std::string_view already_there(const error_code& code) {
    if (code.category() != mysql_category())
        return {};
    switch (code.value()) {
    case 1007: // ER_DB_CREATE_EXISTS
        return "the database exists";
    case 1050: // ER_TABLE_EXISTS_ERROR
        return "a table of that name exists";
    case 1060: // ER_DUP_FIELDNAME
        return "a column of that name exists";
    case 1061: // ER_DUP_KEYNAME
        return "an index of that name exists";
    case 1068: // ER_MULTIPLE_PRI_KEY
        return "the table has a primary key";
    case 1304: // ER_SP_ALREADY_EXISTS
        return "a routine of that name exists";
    case 1359: // ER_TRG_ALREADY_EXISTS
        return "a trigger of that name exists";
    case 1826: // ER_FK_DUP_NAME (MySQL)
        return "a foreign key of that name exists";
    case 1008: // ER_DB_DROP_EXISTS
        return "the database does not exist";
    case 1051: // ER_BAD_TABLE_ERROR
        return "the table does not exist";
    case 1091: // ER_CANT_DROP_FIELD_OR_KEY
        return "the column, index or key does not exist";
    case 1305: // ER_SP_DOES_NOT_EXIST
        return "the routine does not exist";
    case 1360: // ER_TRG_DOES_NOT_EXIST
        return "the trigger does not exist";
    default:
        return {};
    }
}

// The statement that removes what a postcondition says exists.
std::string undo_sql(const postcondition& pc) {
    const std::string table = quote_identifier(pc.table());
    switch (pc.what()) {
    case postcondition::kind::table:
        return fmt::format("DROP TABLE {}", table);
    case postcondition::kind::column:
        return fmt::format("ALTER TABLE {} DROP COLUMN {}", table, quote_identifier(pc.name()));
    case postcondition::kind::index:
        if (pc.name() == "PRIMARY")
            return fmt::format("ALTER TABLE {} DROP PRIMARY KEY", table);
        return fmt::format("DROP INDEX {} ON {}", quote_identifier(pc.name()), table);
    case postcondition::kind::foreign_key:
        return fmt::format("ALTER TABLE {} DROP FOREIGN KEY {}", table,
                           quote_identifier(pc.name()));
    }
    return {};
}

// A name GET_LOCK accepts (at most 64 characters) that is the same for every migrator of
// this database and history table.
std::string lock_name(const std::string& database, const std::string& table) {
    std::string name = fmt::format("cloudmysql.migrate.{}.{}", database, table);
    if (name.size() <= 64)
        return name;
    std::uint64_t h = 14695981039346656037ULL; // FNV-1a: stable across programs and runs
    for (char c : name)
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    return fmt::format("cloudmysql.migrate.{:016x}", h);
}

[[noreturn]] void fail(client_errc code, std::string message, const diagnostics& cause = {}) {
    throw database_error(
        code, diagnostics(std::move(message), cause.server_message(), cause.sqlstate(),
                          cause.error_class() == error_class::none ? classify(code)
                                                                   : cause.error_class()));
}

// One run: a dedicated connection that holds the migration lock for as long as it lives.
class session {
public:
    session(const connect_options& target, const migrator_options& options, bool take_lock)
            : options_(options), database_(target.database),
              table_(quote_identifier(options.history_table)) {
        conn_.connect(target);
        conn_.query(
            fmt::format("SET SESSION lock_wait_timeout = {}", options.lock_wait_timeout.count()));
        applied_by_ = conn_.query("SELECT USER()")[0].get<std::string>(0);
        if (take_lock)
            lock();
    }
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session() {
        if (locked_) {
            error_code ec;
            diagnostics diag;
            conn_.execute_span("DO RELEASE_LOCK(?)", std::array<param, 1>{lock_}, ec, diag);
        }
    }

    connection& conn() { return conn_; }
    const std::string& table() const { return table_; }
    const std::string& database() const { return database_; }
    const std::string& applied_by() const { return applied_by_; }
    const migrator_options& options() const { return options_; }

    void ensure_history_table() {
        conn_.query(
            fmt::format("CREATE TABLE IF NOT EXISTS {} ("
                        "version BIGINT UNSIGNED NOT NULL PRIMARY KEY, "
                        "name VARCHAR(200) NOT NULL, "
                        "checksum CHAR(64) NOT NULL, "
                        "state VARCHAR(16) NOT NULL, "
                        "steps_done INT UNSIGNED NOT NULL DEFAULT 0, "
                        "steps_total INT UNSIGNED NOT NULL, "
                        "last_error TEXT NULL, "
                        "started_at DATETIME(6) NOT NULL, "
                        "applied_at DATETIME(6) NULL, "
                        "applied_by VARCHAR(200) NOT NULL, "
                        "duration_ms BIGINT UNSIGNED NULL"
                        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
                        table_));
    }

    bool history_table_exists() {
        return conn_
                   .execute("SELECT COUNT(*) FROM information_schema.TABLES "
                            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                            database_, options_.history_table)[0]
                   .get<int>(0) > 0;
    }

    std::map<std::uint64_t, history_entry> read_history() {
        std::map<std::uint64_t, history_entry> rows;
        if (!history_table_exists())
            return rows;
        const auto r = conn_.query(fmt::format(
            "SELECT version, name, checksum, state, steps_done, steps_total, last_error, "
            "started_at, applied_at, applied_by, duration_ms FROM {} ORDER BY version",
            table_));
        for (const auto& row : r) {
            history_entry e;
            e.version = row.get<std::uint64_t>(0);
            e.name = row.get<std::string>(1);
            e.checksum = row.get<std::string>(2);
            e.state = parse_state(row.get<std::string>(3));
            e.steps_done = row.get<std::uint32_t>(4);
            e.steps_total = row.get<std::uint32_t>(5);
            e.last_error = row.get<std::optional<std::string>>(6).value_or("");
            e.started_at = row.get<datetime>(7);
            e.applied_at = row.get<std::optional<datetime>>(8);
            e.applied_by = row.get<std::string>(9);
            e.duration_ms = row.get<std::optional<std::uint64_t>>(10);
            rows.emplace(e.version, std::move(e));
        }
        return rows;
    }

    // Records progress; outside a transaction it commits at once.
    void journal_steps(std::uint64_t version, std::size_t done) {
        conn_.execute(fmt::format("UPDATE {} SET steps_done = ? WHERE version = ?", table_), done,
                      version);
    }

private:
    void lock() {
        lock_ = lock_name(database_, options_.history_table);
        const auto got =
            conn_.execute("SELECT GET_LOCK(?, ?)", lock_, options_.lock_timeout.count())[0]
                .get<std::optional<int>>(0);
        if (got == 1) {
            locked_ = true;
            return;
        }
        fail(client_errc::migration_locked,
             fmt::format("another migration holds the lock '{}' on {}{}: waited {} s "
                         "(lock_timeout); let it finish, or stop it if it is stuck",
                         lock_, database_, holder(), options_.lock_timeout.count()));
    }

    // Who holds the lock, as far as the server tells: ": connection 42 (app@10.0.0.5)".
    std::string holder() {
        error_code ec;
        diagnostics diag;
        const param name[] = {lock_};
        const auto r = conn_.execute_span(
            "SELECT p.ID, p.USER, p.HOST, p.TIME FROM information_schema.PROCESSLIST p "
            "WHERE p.ID = IS_USED_LOCK(?)",
            name, ec, diag);
        if (ec || r.empty())
            return {};
        return fmt::format(" (held by connection {}, {}@{}, connected for {} s)",
                           r[0].get<std::uint64_t>(0), r[0].get<std::string>(1),
                           r[0].get<std::string>(2), r[0].get<std::int64_t>(3));
    }

    connection conn_;
    const migrator_options& options_;
    std::string database_;
    std::string table_;
    std::string applied_by_;
    std::string lock_;
    bool locked_ = false;
};

std::uint64_t current_version(const std::map<std::uint64_t, history_entry>& rows) {
    std::uint64_t v = 0;
    for (const auto& [version, e] : rows)
        if (e.state == migration_state::applied)
            v = std::max(v, version);
    return v;
}

void notify(const migrator_options& o, migration_event e) {
    if (o.on_progress)
        o.on_progress(e);
}

// What sessions with open transactions there are: the usual reason an ALTER cannot get its
// metadata lock.
std::string blockers(connection& conn) {
    error_code ec;
    diagnostics diag;
    const auto r = conn.query(
        "SELECT t.trx_mysql_thread_id, p.USER, p.HOST, "
        "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) FROM information_schema.INNODB_TRX t "
        "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE t.trx_mysql_thread_id <> CONNECTION_ID()",
        ec, diag);
    if (ec || r.empty())
        return "; another session holds a metadata lock on the table (an open transaction or a "
               "long query): find it with SHOW PROCESSLIST";
    std::string out = "; sessions with open transactions, which hold their tables' metadata "
                      "locks:";
    for (const auto& row : r)
        out += fmt::format(" connection {} ({}@{}, open for {} s);", row.get<std::uint64_t>(0),
                           row.get<std::optional<std::string>>(1).value_or("?"),
                           row.get<std::optional<std::string>>(2).value_or("?"),
                           row.get<std::optional<std::int64_t>>(3).value_or(0));
    out += " commit or end them, then run the migration again";
    return out;
}

// How many of `steps` an interrupted run really finished: the journal's count, plus the next
// step when its effect is in the schema although the run died before journaling it.
// A run that recorded a failure did not do the failing step: the server refused it (a step
// that ran but could not be journaled is recorded as done along with the failure).
std::size_t finished_steps(session& s, const std::vector<migration_step>& steps,
                           std::size_t journaled, bool failure_recorded) {
    if (journaled >= steps.size())
        return steps.size();
    if (failure_recorded)
        return journaled;
    const auto pc = postcondition_of(steps[journaled]);
    return pc && pc->holds(s.conn(), s.database()) ? journaled + 1 : journaled;
}

class applier {
public:
    applier(session& s, run_report& report) : s_(s), report_(report) {}

private:
    void tell(migration_event::kind what, bool down, const migration& m, std::size_t step,
              std::size_t total, std::string summary = {},
              std::chrono::milliseconds duration = {}) {
        notify(s_.options(),
               {what, down, m.version, m.name, step, total, std::move(summary), duration});
    }

public:
    // Applies `m`. `row` is its history entry when one exists (a half-done up or down).
    void up(const migration& m, const history_entry* row) {
        if (row != nullptr && row->state == migration_state::reverting) {
            // A `down` stopped part way. If it undid nothing, the migration is simply still
            // applied; otherwise the revert is finished first, then the migration applied
            // afresh: the down steps are written to follow each other, not to be mixed with
            // the up steps.
            if (finished_steps(s_, m.down, row->steps_done, !row->last_error.empty()) == 0) {
                mark_applied(m, std::chrono::milliseconds(0));
                report_.applied.push_back(m.version);
                return;
            }
            revert(m, *row, false);
            row = nullptr;
        }
        const std::size_t total = m.up.size();
        std::size_t start = 0;
        if (row == nullptr) {
            s_.conn().execute(
                fmt::format("INSERT INTO {} (version, name, checksum, state, steps_done, "
                            "steps_total, started_at, applied_by) "
                            "VALUES (?, ?, ?, 'applying', 0, ?, UTC_TIMESTAMP(6), ?)",
                            s_.table()),
                m.version, m.name, m.checksum(), total, s_.applied_by());
        } else {
            // An interrupted or failed `up` continues where it stopped.
            start = std::min<std::size_t>(row->steps_done, total);
            s_.conn().execute(
                fmt::format("UPDATE {} SET name = ?, checksum = ?, state = 'applying', "
                            "steps_done = ?, steps_total = ?, last_error = NULL, "
                            "started_at = UTC_TIMESTAMP(6), applied_by = ? WHERE version = ?",
                            s_.table()),
                m.name, m.checksum(), start, total, s_.applied_by(), m.version);
        }
        const auto started = clock::now();
        tell(migration_event::kind::migration_started, false, m, 0, total);
        // Only a killed run (state applying) can have done a step it did not journal; after a
        // recorded failure the failing step did not run (one that ran is recorded as done with
        // the failure), so its postcondition proves nothing: the object may be another's.
        const bool killed = row != nullptr && row->state == migration_state::applying;
        for (std::size_t i = start; i < total; ++i)
            step(m, m.up[i], i, total, false, killed && i == start);
        const auto took =
            std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
        mark_applied(m, took);
        report_.applied.push_back(m.version);
        tell(migration_event::kind::migration_finished, false, m, total, total, {}, took);
    }

    // Reverts `m`, whose history entry is `row`.
    void down(const migration& m, const history_entry& row) {
        if (row.state == migration_state::applying || row.state == migration_state::failed) {
            // An `up` stopped part way. If it changed nothing, forgetting it is the whole
            // revert; otherwise it is finished first, because the down steps undo the whole
            // migration, not a part of it.
            if (finished_steps(s_, m.up, row.steps_done, row.state == migration_state::failed) ==
                0) {
                s_.conn().execute(fmt::format("DELETE FROM {} WHERE version = ?", s_.table()),
                                  m.version);
                report_.applied.push_back(m.version);
                return;
            }
            run_report ignored;
            applier finish(s_, ignored);
            finish.up(m, &row);
            history_entry applied = row;
            applied.state = migration_state::applied;
            revert(m, applied, true);
            return;
        }
        revert(m, row, true);
    }

private:
    void mark_applied(const migration& m, std::chrono::milliseconds took) {
        s_.conn().execute(
            fmt::format("UPDATE {} SET state = 'applied', steps_done = ?, "
                        "steps_total = ?, applied_at = UTC_TIMESTAMP(6), duration_ms = ?, "
                        "last_error = NULL WHERE version = ?",
                        s_.table()),
            m.up.size(), m.up.size(), took.count(), m.version);
    }

    // Runs the down steps of an applied migration, or continues an interrupted revert.
    void revert(const migration& m, const history_entry& row, bool record) {
        const std::size_t total = m.down.size();
        const bool resuming = row.state == migration_state::reverting;
        const bool killed = resuming && row.last_error.empty();
        const std::size_t start = resuming ? std::min<std::size_t>(row.steps_done, total) : 0;
        s_.conn().execute(fmt::format("UPDATE {} SET state = 'reverting', steps_done = ?, "
                                      "steps_total = ?, last_error = NULL WHERE version = ?",
                                      s_.table()),
                          start, total, m.version);
        const auto started = clock::now();
        tell(migration_event::kind::migration_started, true, m, 0, total);
        for (std::size_t i = start; i < total; ++i)
            step(m, m.down[i], i, total, true, killed && i == start);
        s_.conn().execute(fmt::format("DELETE FROM {} WHERE version = ?", s_.table()), m.version);
        if (record)
            report_.applied.push_back(m.version);
        tell(migration_event::kind::migration_finished, true, m, total, total, {},
             std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started));
    }

    void step(const migration& m, const migration_step& st, std::size_t i, std::size_t total,
              bool down, bool check_first) {
        const std::string summary = step_summary(st);
        if (check_first) {
            if (auto pc = postcondition_of(st); pc && pc->holds(s_.conn(), s_.database())) {
                s_.journal_steps(m.version, i + 1);
                ++report_.steps_skipped;
                tell(migration_event::kind::step_skipped, down, m, i + 1, total, summary);
                return;
            }
        }
        tell(migration_event::kind::step_started, down, m, i + 1, total, summary);
        const auto started = clock::now();
        bool committed = false; // a DDL statement ran; only its journal entry may be missing
        try {
            if (!st.is_data_step() && is_ddl(st.sql)) {
                // Commits by itself; the journal entry follows. A crash in between is caught
                // by the postcondition check on the next run, a failed entry by failed().
                s_.conn().query(st.sql);
                committed = true;
                s_.journal_steps(m.version, i + 1);
            } else {
                transaction tx(s_.conn());
                if (st.is_data_step())
                    st.run(s_.conn());
                else
                    s_.conn().query(st.sql);
                s_.journal_steps(m.version, i + 1);
                tx.commit();
            }
        } catch (const database_error& e) {
            const bool from_server = e.get_error_code().category() == mysql_category();
            const bool lock_wait = from_server && e.get_error_code().value() == 1205;
            failed(m, st, i, total, down, summary, e, lock_wait ? blockers(s_.conn()) : "",
                   committed);
        } catch (const std::exception& e) {
            failed(m, st, i, total, down, summary,
                   database_error(client_errc::migration_failed,
                                  diagnostics(fmt::format("the data step threw: {}", e.what()), {},
                                              {}, error_class::other)),
                   "", false);
        }
        ++report_.steps_run;
        tell(migration_event::kind::step_finished, down, m, i + 1, total, summary,
             std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started));
    }

    // Records the failure in the history and throws: our words first, the server's kept
    // apart (and in full in the history's last_error, for whoever reads it later).
    // `committed`: the step's statement ran and committed, only its journal entry failed; the
    // history then records the step as done, so that the next run does not make it again.
    [[noreturn]] void failed(const migration& m, const migration_step& st, std::size_t i,
                             std::size_t total, bool down, const std::string& summary,
                             const database_error& cause, const std::string& blocked_by,
                             bool committed) {
        const auto& code = cause.get_error_code();
        const std::string ours =
            cause.diagnostics().client_message() +
            (code.category() == mysql_category() ? fmt::format(" (error {})", code.value())
                                                 : std::string()) +
            blocked_by;
        const std::string_view direction = down ? "down" : "up";
        error_code ec;
        diagnostics record_error;
        const std::string recorded = std::string(cause.what()) + blocked_by;
        const param values[] = {down ? "reverting" : "failed", recorded, committed ? i + 1 : i,
                                m.version};
        s_.conn().execute_span(
            fmt::format("UPDATE {} SET state = ?, last_error = ?, steps_done = ? WHERE version = ?",
                        s_.table()),
            values, ec, record_error);
        if (committed)
            fail(client_errc::migration_failed,
                 fmt::format("migration {} {} going {}: step {} of {} ({}) ran, but recording it "
                             "in the history failed: {}; {}",
                             m.version, m.name, direction, i + 1, total, summary, ours,
                             ec ? fmt::format("recording the failure failed too ({}): fix the "
                                              "cause and run `{}` again, which finds the step "
                                              "done by its postcondition or says how to record it",
                                              record_error.client_message(), direction)
                                : fmt::format("the history now records the step as done: fix the "
                                              "cause and run `{}` again, which continues after "
                                              "step {}",
                                              direction, i + 1)),
                 cause.diagnostics());
        const std::string where =
            fmt::format("migration {} {} failed going {} at step {} of {} ({}): {}", m.version,
                        m.name, direction, i + 1, total, summary, ours);
        if (const std::string effect = effect_in_database(st, code); !effect.empty())
            fail(client_errc::migration_failed,
                 fmt::format(
                     "{}. Yet {}, while the history says step {} of {} of migration {} is not "
                     "done. If that is this step's work (its statement run by hand, or by "
                     "a run whose history entry was not updated), record the step as "
                     "done: UPDATE {}.{} SET steps_done = {} WHERE version = {}; then run "
                     "`{}` again, which continues after step {}. If it is not, {} and run "
                     "`{}` again",
                     where, effect, i + 1, total, m.version, quote_identifier(s_.database()),
                     s_.table(), i + 1, m.version, direction, i + 1, undo_advice(st), direction),
                 cause.diagnostics());
        fail(client_errc::migration_failed,
             fmt::format("{}; the history records where it stopped: fix the cause and run `{}` "
                         "again (finished steps are not repeated)",
                         where, direction),
             cause.diagnostics());
    }

    // What shows that a step which just failed has its effect in the database anyway: its
    // postcondition holding, or a server error that says so. Empty when nothing does.
    std::string effect_in_database(const migration_step& st, const error_code& code) {
        if (const auto pc = postcondition_of(st)) {
            try {
                if (pc->holds(s_.conn(), s_.database()))
                    return fmt::format("its effect is in the database ({})", pc->describe());
            } catch (const database_error&) { // the server cannot be asked: say nothing
            }
        }
        if (const auto words = already_there(code); !words.empty())
            return fmt::format("the server's error says its effect is in the database ({})", words);
        return {};
    }

    // How to take away what a failed step found in place, when it is not the step's.
    static std::string undo_advice(const migration_step& st) {
        const auto pc = postcondition_of(st);
        if (!pc)
            return "undo it by hand";
        if (pc->negated())
            return "put back what it removes by hand";
        return fmt::format("remove it by hand ({})", undo_sql(*pc));
    }

    session& s_;
    run_report& report_;
};

// Runs `body`, turning exceptions into ec/diag for the error_code forms.
template <class F>
auto guarded(error_code& ec, diagnostics& diag, F&& body) -> decltype(body()) {
    ec.clear();
    diag.clear();
    try {
        return body();
    } catch (const database_error& e) {
        ec = e.get_error_code();
        diag = e.diagnostics();
        if (diag.client_message().empty())
            diag =
                diagnostics(e.what(), diag.server_message(), diag.sqlstate(), diag.error_class());
    }
    if constexpr (!std::is_void_v<decltype(body())>)
        return {};
}

} // namespace

std::string_view to_string(migration_state s) noexcept {
    switch (s) {
    case migration_state::pending:
        return "pending";
    case migration_state::applied:
        return "applied";
    case migration_state::applying:
        return "applying";
    case migration_state::failed:
        return "failed";
    case migration_state::reverting:
        return "reverting";
    }
    return "unknown";
}

bool status_report::up_to_date() const noexcept {
    if (!unknown.empty())
        return false;
    return std::all_of(migrations.begin(), migrations.end(), [](const migration_status& m) {
        return m.state == migration_state::applied && !m.checksum_changed;
    });
}

migrator::migrator(connect_options target, std::vector<migration> migrations,
                   migrator_options options)
        : target_(std::move(target)), migrations_(std::move(migrations)),
          options_(std::move(options)) {
    auto reject = [](std::string what) { throw std::invalid_argument("migrator: " + what); };
    if (target_.database.empty())
        reject("the connect options name no database: the migrations need one to apply to");
    target_.validate();
    if (options_.history_table.empty() || options_.history_table.size() > 64)
        reject("history_table must be 1 to 64 characters");
    if (options_.lock_timeout.count() < 0 || options_.lock_timeout > std::chrono::hours(1))
        reject("lock_timeout must be 0 s to 1 h");
    if (options_.lock_wait_timeout.count() < 1 ||
        options_.lock_wait_timeout > std::chrono::hours(1))
        reject("lock_wait_timeout must be 1 s to 1 h");
    std::uint64_t previous = 0;
    for (const auto& m : migrations_) {
        if (m.version == 0)
            reject(fmt::format("migration '{}' has version 0; versions start at 1", m.name));
        if (m.version <= previous)
            reject(fmt::format("migration {} '{}' comes after version {}: versions must be "
                               "unique and increasing",
                               m.version, m.name, previous));
        previous = m.version;
        if (m.name.empty() || m.name.size() > 200)
            reject(fmt::format("migration {} needs a name of 1 to 200 characters", m.version));
        if (m.up.empty())
            reject(fmt::format("migration {} '{}' has no up steps", m.version, m.name));
        for (const auto* steps : {&m.up, &m.down})
            for (const auto& st : *steps) {
                if (st.is_data_step() == !st.sql.empty())
                    reject(fmt::format("migration {} '{}' has a step with {}: give either one "
                                       "SQL statement or a function",
                                       m.version, m.name,
                                       st.is_data_step() ? "both SQL and a function"
                                                         : "neither SQL nor a function"));
            }
        for (const auto& st : m.up)
            if (!st.is_data_step() && destroys_data(st.sql) && !m.destroys_data)
                reject(fmt::format("migration {} '{}' has a step that destroys data ({}): set "
                                   "destroys_data = true on the migration to confirm it",
                                   m.version, m.name, step_summary(st)));
    }
}

std::uint64_t migrator::latest_version() const noexcept {
    return migrations_.empty() ? 0 : migrations_.back().version;
}

status_report migrator::status() {
    session s(target_, options_, false);
    const auto rows = s.read_history();
    status_report report;
    for (const auto& m : migrations_) {
        migration_status st;
        st.version = m.version;
        st.name = m.name;
        if (auto it = rows.find(m.version); it != rows.end()) {
            st.state = it->second.state;
            st.checksum_changed =
                it->second.state == migration_state::applied && it->second.checksum != m.checksum();
            st.history = it->second;
        }
        report.migrations.push_back(std::move(st));
    }
    for (const auto& [version, e] : rows)
        if (std::none_of(migrations_.begin(), migrations_.end(),
                         [&](const migration& m) { return m.version == version; }))
            report.unknown.push_back(e);
    report.current_version = current_version(rows);
    return report;
}

status_report migrator::status(error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return status(); });
}

std::vector<history_entry> migrator::history() {
    session s(target_, options_, false);
    std::vector<history_entry> out;
    for (auto& [version, e] : s.read_history())
        out.push_back(std::move(e));
    return out;
}

std::vector<history_entry> migrator::history(error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return history(); });
}

std::vector<std::string> migrator::verify() {
    const auto report = status();
    std::vector<std::string> problems;
    for (const auto& m : report.migrations) {
        if (m.checksum_changed)
            problems.push_back(fmt::format(
                "migration {} {} was changed after it was applied "
                "(checksum {} in the database, {} in the program)",
                m.version, m.name, m.history->checksum,
                std::find_if(migrations_.begin(), migrations_.end(), [&](const migration& x) {
                    return x.version == m.version;
                })->checksum()));
        if (m.state == migration_state::applying || m.state == migration_state::failed ||
            m.state == migration_state::reverting)
            problems.push_back(
                fmt::format("migration {} {} is {} after step {} of {}{}", m.version, m.name,
                            to_string(m.state), m.history->steps_done, m.history->steps_total,
                            m.history->last_error.empty() ? "" : ": " + m.history->last_error));
    }
    for (const auto& e : report.unknown)
        problems.push_back(fmt::format("version {} {} is in the database but not in this "
                                       "program: it was applied by a newer program",
                                       e.version, e.name));
    return problems;
}

std::vector<std::string> migrator::verify(error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return verify(); });
}

namespace {

// Refuses to work on a database the program does not understand.
void check_agreement(const std::vector<migration>& migrations,
                     const std::map<std::uint64_t, history_entry>& rows,
                     const migrator_options& o) {
    for (const auto& [version, e] : rows) {
        const auto it = std::find_if(migrations.begin(), migrations.end(),
                                     [&](const migration& m) { return m.version == version; });
        if (it == migrations.end()) {
            if (!o.allow_unknown_versions)
                fail(client_errc::migration_refused,
                     fmt::format("the database has version {} {} which this program does not "
                                 "know: it is ahead of the program; deploy the newer program, or "
                                 "set allow_unknown_versions if you are sure",
                                 version, e.name));
            continue;
        }
        if (e.state == migration_state::applied && e.checksum != it->checksum() &&
            !o.allow_changed_checksums)
            fail(client_errc::migration_refused,
                 fmt::format("migration {} {} was changed after it was applied (checksum {} in "
                             "the database, {} in the program): restore it and put the change "
                             "in a new migration, or set allow_changed_checksums if the change "
                             "is cosmetic",
                             version, e.name, e.checksum, it->checksum()));
    }
}

} // namespace

run_report migrator::up(std::optional<std::uint64_t> target) {
    if (target && *target != 0 &&
        std::none_of(migrations_.begin(), migrations_.end(),
                     [&](const migration& m) { return m.version == *target; }))
        throw std::invalid_argument(
            fmt::format("migrator: up to version {}: no migration has that version", *target));
    session s(target_, options_, true);
    s.ensure_history_table();
    const auto rows = s.read_history();
    check_agreement(migrations_, rows, options_);
    run_report report;
    report.version_before = current_version(rows);
    applier apply(s, report);
    for (const auto& m : migrations_) {
        if (target && m.version > *target)
            break;
        const auto it = rows.find(m.version);
        if (it != rows.end() && it->second.state == migration_state::applied)
            continue;
        apply.up(m, it == rows.end() ? nullptr : &it->second);
    }
    report.version_after = current_version(s.read_history());
    return report;
}

run_report migrator::up(std::optional<std::uint64_t> target, error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return up(target); });
}

namespace {

run_report revert(session& s, const std::vector<migration>& migrations,
                  const migrator_options& options,
                  const std::function<bool(std::uint64_t, std::size_t)>& wanted) {
    s.ensure_history_table();
    const auto rows = s.read_history();
    check_agreement(migrations, rows, options);
    run_report report;
    report.version_before = current_version(rows);
    // Newest first; everything recorded (applied or half-done) is a candidate.
    std::vector<std::pair<const migration*, const history_entry*>> chosen;
    for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
        if (!wanted(it->first, chosen.size()))
            break;
        const auto m = std::find_if(migrations.begin(), migrations.end(),
                                    [&](const migration& x) { return x.version == it->first; });
        if (m == migrations.end())
            fail(client_errc::migration_refused,
                 fmt::format("cannot revert version {} {}: this program does not know it",
                             it->first, it->second.name));
        if (!m->reversible())
            fail(client_errc::migration_refused,
                 fmt::format("migration {} {} is irreversible (it has no down steps): nothing "
                             "was reverted; write a new migration that undoes it instead",
                             m->version, m->name));
        chosen.emplace_back(&*m, &it->second);
    }
    applier apply(s, report);
    for (const auto& [m, row] : chosen)
        apply.down(*m, *row);
    report.version_after = current_version(s.read_history());
    return report;
}

} // namespace

run_report migrator::down(std::size_t steps) {
    session s(target_, options_, true);
    return revert(s, migrations_, options_,
                  [steps](std::uint64_t, std::size_t taken) { return taken < steps; });
}

run_report migrator::down(std::size_t steps, error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return down(steps); });
}

run_report migrator::down_to(std::uint64_t target) {
    if (target != 0 && std::none_of(migrations_.begin(), migrations_.end(),
                                    [&](const migration& m) { return m.version == target; }))
        throw std::invalid_argument(fmt::format(
            "migrator: down to version {}: no migration has that version (0 reverts all)", target));
    session s(target_, options_, true);
    return revert(s, migrations_, options_,
                  [target](std::uint64_t version, std::size_t) { return version > target; });
}

run_report migrator::down_to(std::uint64_t target, error_code& ec, diagnostics& diag) {
    return guarded(ec, diag, [&] { return down_to(target); });
}

void migrator::baseline(std::uint64_t version) {
    if (std::none_of(migrations_.begin(), migrations_.end(),
                     [&](const migration& m) { return m.version == version; }))
        throw std::invalid_argument(
            fmt::format("migrator: baseline {}: no migration has that version", version));
    session s(target_, options_, true);
    s.ensure_history_table();
    if (!s.read_history().empty())
        fail(client_errc::migration_refused,
             "baseline refused: the history table already has entries; a baseline is only for "
             "a database that has never been migrated");
    transaction tx(s.conn());
    for (const auto& m : migrations_) {
        if (m.version > version)
            break;
        s.conn().execute(
            fmt::format("INSERT INTO {} (version, name, checksum, state, "
                        "steps_done, steps_total, started_at, applied_at, "
                        "applied_by) VALUES (?, ?, ?, 'applied', ?, ?, UTC_TIMESTAMP(6), "
                        "UTC_TIMESTAMP(6), ?)",
                        s.table()),
            m.version, m.name, m.checksum(), m.up.size(), m.up.size(), s.applied_by());
    }
    tx.commit();
}

void migrator::baseline(std::uint64_t version, error_code& ec, diagnostics& diag) {
    guarded(ec, diag, [&] { baseline(version); });
}

std::string migrator::plan(std::uint64_t from, std::uint64_t to) const {
    auto known = [&](std::uint64_t v) {
        return v == 0 || std::any_of(migrations_.begin(), migrations_.end(),
                                     [&](const migration& m) { return m.version == v; });
    };
    for (auto v : {from, to})
        if (!known(v))
            throw std::invalid_argument(
                fmt::format("migrator: plan: no migration has version {}", v));
    const std::string table = quote_identifier(options_.history_table);
    std::string out = fmt::format("-- cloudmysql migration plan for `{}`: version {} to {}\n"
                                  "-- Each statement commits by itself (MySQL DDL); run them in "
                                  "order and stop at the first error.\n",
                                  target_.database, from, to);
    auto statement = [&](const migration& m, const migration_step& st, std::size_t i) {
        if (st.is_data_step())
            throw std::invalid_argument(fmt::format(
                "migrator: plan: migration {} {} step {} is a C++ data step ({}): it has no "
                "SQL; apply this range with up/down instead",
                m.version, m.name, i + 1, st.description));
        out += one_line(st.sql) + ";\n";
    };
    if (to >= from) {
        out += fmt::format(
            "CREATE TABLE IF NOT EXISTS {} (version BIGINT UNSIGNED NOT NULL PRIMARY KEY, name "
            "VARCHAR(200) NOT NULL, checksum CHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, "
            "steps_done INT UNSIGNED NOT NULL DEFAULT 0, steps_total INT UNSIGNED NOT NULL, "
            "last_error TEXT NULL, started_at DATETIME(6) NOT NULL, applied_at DATETIME(6) "
            "NULL, applied_by VARCHAR(200) NOT NULL, duration_ms BIGINT UNSIGNED NULL) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n",
            table);
        for (const auto& m : migrations_) {
            if (m.version <= from || m.version > to)
                continue;
            out += fmt::format("\n-- {} {}\n", m.version, m.name);
            for (std::size_t i = 0; i < m.up.size(); ++i)
                statement(m, m.up[i], i);
            out += fmt::format(
                "INSERT INTO {} (version, name, checksum, state, steps_done, "
                "steps_total, started_at, applied_at, applied_by) VALUES ({}, "
                "{}, {}, 'applied', {}, {}, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), USER());\n",
                table, m.version, quote_literal(m.name), quote_literal(m.checksum()), m.up.size(),
                m.up.size());
        }
    } else {
        for (auto it = migrations_.rbegin(); it != migrations_.rend(); ++it) {
            const migration& m = *it;
            if (m.version > from || m.version <= to)
                continue;
            if (!m.reversible())
                throw std::invalid_argument(fmt::format(
                    "migrator: plan: migration {} {} is irreversible", m.version, m.name));
            out += fmt::format("\n-- revert {} {}\n", m.version, m.name);
            for (std::size_t i = 0; i < m.down.size(); ++i)
                statement(m, m.down[i], i);
            out += fmt::format("DELETE FROM {} WHERE version = {};\n", table, m.version);
        }
    }
    return out;
}

} // namespace cloudmysql
