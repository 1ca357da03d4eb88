// Applies versioned migrations to a database, and stays correct although MySQL DDL is not
// transactional.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/database_error.hpp>
#include <cloudmysql/migration.hpp>
#include <cloudmysql/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cloudmysql {

/// Where a migration stands in the database.
enum class migration_state {
    pending,   ///< not applied
    applied,   ///< applied completely
    applying,  ///< an `up` was interrupted after steps_done steps (the process died)
    failed,    ///< an `up` failed at step steps_done + 1; last_error says why
    reverting, ///< a `down` was interrupted or failed after steps_done steps
};
std::string_view to_string(migration_state s) noexcept;

/// One row of the history table.
struct history_entry {
    std::uint64_t version = 0;
    std::string name{};
    std::string checksum{};
    migration_state state = migration_state::pending;
    std::uint32_t steps_done = 0; ///< of `up` steps, or of `down` steps while reverting
    std::uint32_t steps_total = 0;
    std::string last_error{}; ///< empty unless state is failed (or a revert failed)
    datetime started_at{};
    std::optional<datetime> applied_at{};
    std::string applied_by{}; ///< "user@host" of the session that applied it
    std::optional<std::uint64_t> duration_ms{};
};

/// A migration as status() sees it.
struct migration_status {
    std::uint64_t version = 0;
    std::string name{};
    migration_state state = migration_state::pending;
    bool checksum_changed = false; ///< applied, but the code's `up` steps differ now
    std::optional<history_entry> history{};
};

struct status_report {
    std::vector<migration_status> migrations{}; ///< every migration the program knows
    std::vector<history_entry> unknown{};       ///< versions in the database the program lacks
    std::uint64_t current_version = 0;          ///< highest applied version, 0 for none

    /// True when every known migration is applied, none is half-done or changed, and the
    /// database has no unknown versions.
    bool up_to_date() const noexcept;
};

/// What the migrator is doing, for programs that show progress.
struct migration_event {
    enum class kind {
        migration_started,
        step_started,
        step_finished,
        step_skipped,
        migration_finished
    };
    kind what = kind::step_started;
    bool down = false;
    std::uint64_t version = 0;
    std::string name{};
    std::size_t step = 0; ///< 1-based
    std::size_t steps = 0;
    std::string summary{}; ///< the statement, shortened, or the data step's description
    std::chrono::milliseconds duration{0}; ///< for *_finished
};

struct migrator_options {
    /// The history table, in the target database.
    std::string history_table = "cloudmysql_schema_history";
    /// How long to wait for another migrator's lock before giving up. 0 s to 1 h.
    std::chrono::seconds lock_timeout{60};
    /// The session's lock_wait_timeout for DDL: a blocked ALTER fails after this long instead
    /// of stalling every query on the table behind it. 1 s to 1 h.
    std::chrono::seconds lock_wait_timeout{5};
    /// Run although the database has versions this program does not know.
    bool allow_unknown_versions = false;
    /// Run although an applied migration's `up` steps changed since.
    bool allow_changed_checksums = false;
    /// Called for every migration and step, on the migrating thread.
    std::function<void(const migration_event&)> on_progress{};
};

/// What up() or down() did.
struct run_report {
    std::vector<std::uint64_t> applied{}; ///< versions applied (up) or reverted (down), in order
    std::size_t steps_run = 0;
    std::size_t steps_skipped = 0; ///< found done by their postcondition
    std::uint64_t version_before = 0;
    std::uint64_t version_after = 0;
};

/// Applies and reverts migrations on the database named by the connect options.
///
/// Every run opens its own connection, takes a named lock (GET_LOCK) on it for the whole run so
/// that concurrent migrators apply each version exactly once, and journals every step in the
/// history table. MySQL commits DDL at once, so each statement is its own step: a run that
/// fails or is killed after any step resumes there on the next run, and a step whose effect is
/// already in the schema (its postcondition holds) is recorded as done instead of run again.
/// Data steps and other non-DDL statements run in one transaction with their journal entry.
///
/// When the requested direction differs from the interrupted one, the migrator first works out
/// how far the interrupted run got: if it changed nothing, its history entry is settled as it
/// stands; otherwise it is finished first (the down steps undo a whole migration, not part of
/// one), then the requested change is made.
class migrator {
public:
    /// Throws std::invalid_argument when the list is wrong: versions not unique and increasing,
    /// a migration without `up` steps or without a name, a destructive step not acknowledged
    /// with destroys_data, a step with both SQL and a function, no database in the options.
    migrator(connect_options target, std::vector<migration> migrations,
             migrator_options options = {});

    status_report status();
    status_report status(error_code& ec, diagnostics& diag);

    /// The history table's rows, oldest version first.
    std::vector<history_entry> history();
    std::vector<history_entry> history(error_code& ec, diagnostics& diag);

    /// Applies pending migrations up to `target` (all when unset), resuming a half-done one.
    run_report up(std::optional<std::uint64_t> target = {});
    run_report up(std::optional<std::uint64_t> target, error_code& ec, diagnostics& diag);

    /// Reverts the last `steps` applied migrations, newest first.
    run_report down(std::size_t steps = 1);
    run_report down(std::size_t steps, error_code& ec, diagnostics& diag);

    /// Reverts every migration above `target` (0: all).
    run_report down_to(std::uint64_t target);
    run_report down_to(std::uint64_t target, error_code& ec, diagnostics& diag);

    /// Records every migration up to `version` as applied without running it: for a database
    /// whose schema was made before the program used migrations. Refused when any history
    /// exists.
    void baseline(std::uint64_t version);
    void baseline(std::uint64_t version, error_code& ec, diagnostics& diag);

    /// Problems between code and database: changed checksums, unknown versions, half-done
    /// migrations. Empty when all is well.
    std::vector<std::string> verify();
    std::vector<std::string> verify(error_code& ec, diagnostics& diag);

    /// The SQL script that takes the database from version `from` to `to` (up when to > from,
    /// down otherwise), history statements included, for a DBA to review or run by hand.
    /// Throws std::invalid_argument when a data step is in the way (it has no SQL) or a
    /// version is unknown.
    std::string plan(std::uint64_t from, std::uint64_t to) const;

    const std::vector<migration>& migrations() const noexcept { return migrations_; }
    const migrator_options& options() const noexcept { return options_; }
    /// The latest version the program knows, 0 for none.
    std::uint64_t latest_version() const noexcept;

private:
    connect_options target_;
    std::vector<migration> migrations_;
    migrator_options options_;
};

} // namespace cloudmysql
