// A versioned schema change, written as a C++ object and compiled into the program.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cloudmysql {

class connection;

/// Something that is true of the schema once a step has run, checked in information_schema of
/// the migrated database. The migrator checks it before running a step again after an
/// interruption: MySQL commits DDL at once, so a step may be done although the history does
/// not say so yet.
class postcondition {
public:
    enum class kind { table, column, index, foreign_key };

    // The factories throw std::invalid_argument when a name is empty.

    /// The table exists.
    static postcondition table_exists(std::string table);
    /// The column exists; with `column_type` (e.g. "varchar(15)", as COLUMN_TYPE reads it),
    /// it has that type.
    static postcondition column_exists(std::string table, std::string column,
                                       std::string column_type = {});
    /// An index of that name exists on the table (PRIMARY for the primary key).
    static postcondition index_exists(std::string table, std::string index);
    /// A foreign key constraint of that name exists on the table.
    static postcondition foreign_key_exists(std::string table, std::string constraint);

    /// The negation: the object does not exist.
    postcondition operator!() const;

    /// Whether it holds in `database`; throws database_error when the server cannot be asked.
    bool holds(connection& conn, const std::string& database) const;
    /// "table `patients` exists", "column `patients`.`contact_number` (varchar(15)) exists",
    /// "index `idx_name` on `patients` is absent".
    std::string describe() const;

    kind what() const noexcept { return kind_; }
    bool negated() const noexcept { return negated_; }
    const std::string& table() const noexcept { return table_; }
    /// The column, index or constraint; empty for a table.
    const std::string& name() const noexcept { return name_; }
    /// The column type to match; empty when any type will do (and for other kinds).
    const std::string& column_type() const noexcept { return type_; }

    friend bool operator==(const postcondition&, const postcondition&) = default;

    /// The postcondition of a common DDL statement (CREATE/DROP TABLE, CREATE/DROP INDEX,
    /// ALTER TABLE ... ADD/DROP COLUMN, ADD/DROP INDEX or KEY, ADD/DROP FOREIGN KEY with a
    /// name, RENAME TABLE), or nothing when the statement is not one of those.
    static std::optional<postcondition> derive(const std::string& sql);

private:
    postcondition(kind k, std::string table, std::string name, std::string type = {});

    kind kind_ = kind::table;
    bool negated_ = false;
    std::string table_;
    std::string name_;
    std::string type_;
};

/// One step of a migration: a single SQL statement, or a C++ function for a data change.
struct migration_step {
    /// The statement (exactly one; no trailing ';' needed). Empty for a data step.
    std::string sql{};
    /// A data step: runs on the migration's connection, inside a transaction that also records
    /// the step as done (so it runs once, or not at all). Empty for an SQL step.
    std::function<void(connection&)> run{};
    /// What a data step does, in words; it is part of the checksum, as its SQL is for others.
    std::string description{};
    /// Checked before the step runs again after an interruption. For SQL steps, derived from
    /// the statement when not given (see postcondition::derive()).
    std::optional<postcondition> done_when{};

    bool is_data_step() const noexcept { return static_cast<bool>(run); }
};

/// An SQL step; `done_when` defaults to postcondition::derive(statement). Throws
/// std::invalid_argument when the statement is empty.
migration_step sql(std::string statement, std::optional<postcondition> done_when = {});
/// A data step. Throws std::invalid_argument when `run` or the description is empty.
migration_step data(std::string description, std::function<void(connection&)> run);

/// A versioned change: `up` applies it, `down` undoes it. A migration with no `down` steps is
/// irreversible: the migrator refuses to go down through it.
struct migration {
    std::uint64_t version = 0; ///< unique, increasing along the list; 1 or more
    std::string name{};        ///< short, for people: "create_patients"
    std::vector<migration_step> up{};
    std::vector<migration_step> down{};
    /// Set when an `up` step destroys data on purpose (DROP TABLE, DROP COLUMN, TRUNCATE,
    /// DROP DATABASE); the migrator refuses such a step without it.
    bool destroys_data = false;

    bool reversible() const noexcept { return !down.empty(); }
    /// The checksum of the normalised `up` steps: what `verify` compares with the history.
    std::string checksum() const;
};

/// True for statements that destroy data: DROP TABLE/DATABASE/SCHEMA, TRUNCATE, ALTER TABLE
/// ... DROP COLUMN / DROP or TRUNCATE PARTITION / DISCARD TABLESPACE, and MariaDB's CREATE OR
/// REPLACE TABLE. Not DROP TEMPORARY TABLE, nor dropping an index, key or constraint.
bool destroys_data(const std::string& sql);

/// The statement with comments removed (executable comments /*! */ and /*M! */ are code and
/// stay), whitespace collapsed to one space (none after '(', before ')' or around ','),
/// trailing ';' dropped; quoted text stays exactly as written. What the checksum covers, so
/// that reformatting a migration does not change it.
std::string normalize_sql(const std::string& sql);

} // namespace cloudmysql
