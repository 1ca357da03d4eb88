// Internal: what connection.cpp and statement.cpp share. The only place besides them that
// sees <mysql.h>; never installed.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/result.hpp>
#include <cloudmysql/statement.hpp>
#include <cloudmysql/typed_row.hpp>

#include <mysql.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cloudmysql {

/// connection::fault(): shared with the statements prepared on the session, whose errors
/// count too.
using session_fault = std::shared_ptr<error_class>;
/// Lives as long as the session that prepared statements belong to (see connection::impl).
using session_token = std::shared_ptr<const bool>;

/// A hash that finds std::string keys by std::string_view, without a copy.
struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
        return std::hash<std::string_view>{}(text);
    }
};

namespace detail {

/// Storage for the parameters of one execution, kept by the statement and reused by the next:
/// libmariadb reads it during mysql_stmt_execute().
struct param_buffers {
    std::vector<MYSQL_BIND> binds;
    std::vector<MYSQL_TIME> times;
    std::vector<unsigned long> lengths;
    std::vector<std::int64_t> integers; // int64 and uint64 bit patterns
    std::vector<double> doubles;

    /// libmariadb holds binds equal to these (mysql_stmt_bind_param() succeeded with them).
    bool bound = false;

    /// Fills the binds for these parameters (allocating only when their number changes);
    /// true when they differ from what libmariadb holds, so that they must be bound again.
    bool fill(std::span<const param> params);
};

/// What a column looked like when a statement's columns were last read: libmariadb updates a
/// statement's field types in place when the server sends new metadata for it.
struct column_signature {
    enum_field_types type;
    unsigned int flags;
    unsigned int charsetnr;
    friend bool operator==(const column_signature&, const column_signature&) = default;
};

/// Buffers for one fetched row of a binary-protocol result, kept by the statement and reused
/// by every execution while its columns stay the same.
struct result_buffers {
    std::vector<MYSQL_BIND> binds;
    std::vector<std::int64_t> integers;
    std::vector<double> doubles;
    std::vector<MYSQL_TIME> times;
    std::vector<std::string> strings; // bound text buffers, grown after a longer value
    std::vector<std::string> whole;   // a value longer than its bound buffer, fetched alone
    std::vector<unsigned long> lengths;
    std::vector<my_bool> nulls;
    std::vector<my_bool> errors;
    /// The size text() found a buffer should have; grow() applies it between executions.
    std::vector<std::size_t> wanted;
    /// libmariadb holds these binds for the statement's result (mysql_stmt_bind_result()).
    bool bound = false;

    /// Sizes the buffers for these columns and fills binds.
    void setup(const MYSQL_FIELD* fields, unsigned count);
    /// Grows the text buffers that were too short last time; binds must be bound again after.
    void grow();
    /// The whole text of text column i of the fetched row.
    std::string_view text(MYSQL_STMT* stmt, unsigned i);
    /// Field i of the fetched row as a value.
    value take(MYSQL_STMT* stmt, unsigned i);
};

/// Copies of text that stay valid until clear(): what the typed path's string_view fields in
/// query_as() view. Blocks never move, so earlier copies stay valid while it grows.
class text_arena {
public:
    std::string_view keep(std::string_view text);
    /// Makes the space reusable; keeps the largest block so that the next read allocates
    /// nothing when its text fits.
    void clear() noexcept;

private:
    struct block {
        std::unique_ptr<char[]> data;
        std::size_t size = 0;
    };
    std::vector<block> blocks_;
    std::size_t used_ = 0; // in blocks_.back()
};

} // namespace detail

struct connection::impl {
    /// The most statements execute() keeps prepared per session; when full, it closes them all
    /// and starts again. Each counts toward the server's max_prepared_stmt_count (16382 by
    /// default, for all sessions together).
    static constexpr std::size_t statement_cache_size = 64;

    MYSQL* mysql = nullptr;
    /// The session's socket, kept from the connect: interrupt() shuts it down from another
    /// thread without reading the MYSQL structure another thread is using.
    int socket = -1;
    connect_options options;
    session_fault fault = std::make_shared<error_class>(error_class::none);
    /// A statement execute() prepared, and whether its SQL is a plain SELECT (plain_select()).
    struct cached_statement {
        statement stmt;
        bool plain_select = false;
    };
    /// The statements execute() prepared, by SQL text. They belong to the session: reset()
    /// and close() drop them.
    std::unordered_map<std::string, cached_statement, text_hash, std::equal_to<>> statements;
    /// The default database when the cache was filled: the server resolves unqualified table
    /// names when it prepares, so a statement prepared under another database is not reused.
    std::string statements_database;
    /// The server reports session-state changes (session_track_state_change = ON took, and
    /// both sides speak CLIENT_SESSION_TRACKING). Without it, needs_reset() is always true.
    bool tracking = false;
    /// Something ran since connect or reset that may have left state in the session.
    bool dirty = false;
    /// The session the prepared statements belong to: a successful reset() (after which
    /// libmariadb detaches them) replaces it, close() ends it. Statements hold it weakly, so
    /// they know they were detached without reading MYSQL_STMT's fields.
    session_token session = std::make_shared<const bool>(true);
    /// The text query_as() returned as string_view fields, until the next read.
    detail::text_arena arena;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() { close(); }

    void close() noexcept {
        if (mysql != nullptr) {
            mysql_close(mysql); // detaches the statements: they are freed without a round trip
            mysql = nullptr;
        }
        statements.clear();
        statements_database.clear();
        session.reset();
    }
};

struct statement::impl {
    MYSQL_STMT* stmt = nullptr;
    std::string sql_excerpt;
    session_fault fault;
    /// Expired once the session was reset or closed: libmariadb has then detached the statement.
    std::weak_ptr<const bool> session;
    /// Reused by every execution: the parameters' storage, and the fetch buffers.
    detail::param_buffers params;
    detail::result_buffers results;
    /// The result's columns, read once after the first execution and again only when the
    /// server sends metadata that differs (signature): every result shares them.
    std::shared_ptr<const std::vector<column>> columns;
    std::vector<detail::column_signature> signature;
    /// Counts the times the columns were read, so that a typed read knows its check holds.
    std::uint64_t columns_version = 0;
    /// The row type (detail::row_type_id) the columns were last checked against, and when.
    const void* checked_row_type = nullptr;
    std::uint64_t checked_version = 0;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() {
        if (stmt != nullptr)
            mysql_stmt_close(stmt);
    }
};

namespace detail {

/// The SQL shortened for a message: one line, at most ~60 characters.
std::string excerpt(std::string_view sql);

/// Fills ec and diag from the handle's last error. `context` says what was being done
/// ("query 'SELECT ...' failed"); the hint for the user is added from the error class.
void set_error_from(MYSQL* mysql, std::string_view context, error_code& ec, diagnostics& diag);
void set_error_from(MYSQL_STMT* stmt, std::string_view context, error_code& ec, diagnostics& diag);
/// Fills ec and diag with one of our own errors.
void set_client_error(client_errc code, std::string message, error_code& ec, diagnostics& diag);

/// Marks the session faulty when `diag` says it was lost or turned read-only.
inline void note_fault(const session_fault& fault, const diagnostics& diag) noexcept {
    const error_class cls = diag.error_class();
    if (fault && (cls == error_class::connection_lost || cls == error_class::read_only) &&
        *fault == error_class::none)
        *fault = cls;
}

/// Calls note_fault() when it goes out of scope: put one at the top of an operation, and every
/// way out of it is covered.
class fault_watch {
public:
    fault_watch(session_fault fault, const diagnostics& diag) noexcept
            : fault_(std::move(fault)), diag_(diag) {}
    fault_watch(const fault_watch&) = delete;
    fault_watch& operator=(const fault_watch&) = delete;
    ~fault_watch() { note_fault(fault_, diag_); }

private:
    session_fault fault_;
    const diagnostics& diag_;
};

/// What the user should do about an error of this class ("" when nothing useful applies).
std::string_view hint_for(error_class cls) noexcept;

/// Binds the parameters and executes the statement; false with ec and diag set on failure
/// (the statement detached by a reset, a wrong parameter count, a server error).
bool execute_prepared(statement::impl& s, std::span<const param> params, error_code& ec,
                      diagnostics& diag);
/// After execute_prepared(): buffers the result into a `result`.
result buffer_result(statement::impl& s, error_code& ec, diagnostics& diag);
/// After execute_prepared(): checks the columns against reader.fields (unless already done
/// for this row type and these columns) and hands every row to reader.on_row.
void read_typed(statement::impl& s, const row_reader& reader, text_arena& arena, error_code& ec,
                diagnostics& diag);

/// The columns of a result's metadata.
std::shared_ptr<const std::vector<column>> columns_of(MYSQL_FIELD* fields, unsigned count);

/// A text-protocol field converted to the value type its column declares.
value from_text(const char* data, unsigned long length, const MYSQL_FIELD& field);

} // namespace detail
} // namespace cloudmysql
