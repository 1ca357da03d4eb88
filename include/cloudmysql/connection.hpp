// One session with a MySQL or MariaDB server, over MariaDB Connector/C.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/database_error.hpp>
#include <cloudmysql/param.hpp>
#include <cloudmysql/result.hpp>
#include <cloudmysql/statement.hpp>
#include <cloudmysql/typed_row.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cloudmysql {

/// Which server software answers.
enum class server_flavor { mariadb, mysql };

/// A connection: owns one libmariadb handle and closes it on destruction.
///
/// Every operation that talks to the server has two forms: one that throws database_error and
/// one that takes `error_code&` and `diagnostics&` and never throws for database errors.
/// Move-only. Not thread-safe: use one connection from one thread at a time (a pool hands
/// connections to threads). Never reconnects by itself: after a connection_lost error, close
/// it and open a new one (the pool does this).
class connection {
public:
    /// A closed connection; connect() opens it.
    connection() noexcept;
    /// Connects at once; throws database_error on failure.
    explicit connection(const connect_options& opts);
    connection(connection&&) noexcept;
    connection& operator=(connection&&) noexcept;
    ~connection();

    /// Opens the session: TCP or unix socket, TLS as opts.effective_tls_mode() says, login,
    /// then the init statements. Fails if TLS was required but the session is not encrypted.
    /// An open connection is closed first. Options that fail connect_options::validate()
    /// throw std::invalid_argument from both forms: they are a programming error, not a
    /// database error.
    void connect(const connect_options& opts);
    void connect(const connect_options& opts, error_code& ec, diagnostics& diag);

    bool is_open() const noexcept;
    /// Closes the session (COM_QUIT) and frees the handle. Idempotent.
    void close() noexcept;

    /// Runs one SQL statement through the text protocol and buffers its result. No parameters:
    /// for values, use execute(sql, params...) or prepare().
    result query(std::string_view sql);
    result query(std::string_view sql, error_code& ec, diagnostics& diag);

    /// Prepares, binds the parameters (one per '?') and executes: every value travels apart
    /// from the SQL text. The prepared statement is kept, by SQL text, until reset() or
    /// close(), so running the same SQL again costs one round trip (at most 64 statements per
    /// session: when full, all are closed and the cache starts again).
    template <class... Params>
    result execute(std::string_view sql, const Params&... params) {
        const std::array<param, sizeof...(Params)> bound{param(params)...};
        return execute_span(sql, bound);
    }
    result execute_span(std::string_view sql, std::span<const param> params);
    result execute_span(std::string_view sql, std::span<const param> params, error_code& ec,
                        diagnostics& diag);

    /// Runs a SELECT as execute() does (prepared once per session, parameters bound) and
    /// decodes its rows straight into Row, a typed_row: std::tuple<F...>, a struct with a
    /// row_mapping, or one field type for a one-column result. The result's columns are
    /// checked against Row's fields once per cached statement (again only when the server
    /// reports new metadata): a different column count, or a column type a field cannot hold,
    /// fails with client_errc::type_mismatch naming the column, what Row expected and what
    /// the server sent; a NULL read into a field that is not std::optional fails with
    /// client_errc::field_is_null, a zero date with value_out_of_range. No rows is an empty
    /// vector; a statement that returns no result set (INSERT...) fails: use execute().
    /// std::string fields own their text; std::string_view fields view storage the connection
    /// keeps until its next call (any member function, or its return to a pool): copy what
    /// must live longer. Keeps the session clean for a pool as execute() does.
    template <typed_row Row, class... Params>
    std::vector<Row> query_as(std::string_view sql, const Params&... params) {
        const std::array<param, sizeof...(Params)> bound{param(params)...};
        error_code ec;
        diagnostics diag;
        auto rows = query_as_span<Row>(sql, bound, ec, diag);
        throw_on_error(ec, diag);
        return rows;
    }
    /// query_as() with the parameters as a span, reporting errors through ec and diag.
    template <typed_row Row>
    std::vector<Row> query_as_span(std::string_view sql, std::span<const param> params,
                                   error_code& ec, diagnostics& diag) {
        std::vector<Row> rows;
        read_rows(sql, params, make_reader<Row>(true, &rows, &collect_row<Row>), ec, diag);
        if (ec)
            rows.clear();
        return rows;
    }

    /// Runs a SELECT as query_as() does and calls on_row(const Row&) for each row as it is
    /// decoded, into one Row reused from row to row: no vector, and string_view fields view
    /// the fetch buffers, valid only during that call. on_row must not use this connection;
    /// an exception from it stops the read (the rest of the result is discarded) and
    /// propagates. Returns the number of rows read.
    template <typed_row Row, row_callback<Row> OnRow, class... Params>
    std::size_t for_each_as(std::string_view sql, OnRow&& on_row, const Params&... params) {
        const std::array<param, sizeof...(Params)> bound{param(params)...};
        error_code ec;
        diagnostics diag;
        const std::size_t n = for_each_as_span<Row>(sql, bound, on_row, ec, diag);
        throw_on_error(ec, diag);
        return n;
    }
    /// for_each_as() with the parameters as a span, reporting errors through ec and diag (an
    /// exception from on_row still propagates). Rows handed to on_row before an error stay
    /// handed.
    template <typed_row Row, row_callback<Row> OnRow>
    std::size_t for_each_as_span(std::string_view sql, std::span<const param> params,
                                 OnRow&& on_row, error_code& ec, diagnostics& diag) {
        struct state {
            std::remove_reference_t<OnRow>* on_row;
            Row row{};
            std::size_t count = 0;
        } st{std::addressof(on_row)};
        read_rows(sql, params,
                  make_reader<Row>(false, &st,
                                   [](void* ctx, const detail::fetched_row& r) {
                                       auto& s = *static_cast<state*>(ctx);
                                       const auto status =
                                           detail::row_traits<Row>::read(r, s.row, false);
                                       if (status.why == detail::decode_failure::none) {
                                           (*s.on_row)(std::as_const(s.row));
                                           ++s.count;
                                       }
                                       return status;
                                   }),
                  ec, diag);
        return st.count;
    }

    /// Prepares a statement for repeated execution.
    statement prepare(std::string_view sql);
    statement prepare(std::string_view sql, error_code& ec, diagnostics& diag);

    /// A round trip to the server (COM_PING). Fails when the session is gone.
    void ping();
    void ping(error_code& ec, diagnostics& diag);

    /// Returns the session to a fresh state (COM_RESET_CONNECTION: rolls back, drops temporary
    /// tables, user variables and prepared statements, execute()'s included, releases named
    /// and table locks, restores session variables), selects the connection's database again
    /// (the reset keeps the one USE chose) and runs the init statements again. Fails with
    /// client_errc::reset_incomplete when the connection was opened without a database and
    /// a USE chose one since: no command returns a session to "no database".
    /// reset() needs an open connection; after a failure, close it.
    void reset();
    void reset(error_code& ec, diagnostics& diag);

    /// True when the session may hold state that something run on it left behind, so that
    /// reset() is needed before another caller uses it; false right after connect() and
    /// reset(). Only execute() of a plain SELECT (no user variables, INTO, comments, locks,
    /// sequences, or calls to other than common built-in functions) keeps a session clean,
    /// and only while the server reports no session-state change, no open transaction and no
    /// warnings for it (session_track_state_change, which connect() and reset() turn on).
    /// query(), prepare() and everything else make it true; so does a server without
    /// session-state tracking, always. A pool resets only connections for which it is true.
    bool needs_reset() const noexcept;

    /// The server's version string, e.g. "10.11.6-MariaDB-0+deb12u1". Empty when closed.
    std::string server_version() const;
    server_flavor flavor() const noexcept;
    /// The server's id for this session (what SHOW PROCESSLIST and KILL use).
    std::uint64_t connection_id() const noexcept;
    /// The TLS protocol ("TLSv1.3") and cipher of the session; empty when not encrypted.
    std::string tls_version() const;
    std::string tls_cipher() const;
    /// connection_lost or read_only once an operation on this session has failed that way (the
    /// server went away, or turned read-only in a failover); none otherwise. Such a session
    /// should not be reused: a pool closes it when it comes back, and retires the connections
    /// opened before it.
    error_class fault() const noexcept;
    /// Makes an operation blocked on this session in another thread (a query waiting for an
    /// answer that does not come) return soon with a connection_lost error, by shutting the
    /// session's socket down; the session is unusable afterwards: close it. Safe to call from
    /// any thread while another uses the connection, as long as the connection object is
    /// neither closed nor moved meanwhile. A pool does this to its own checks (ping, reset)
    /// that get no answer within check_timeout. Does nothing on a closed connection.
    void interrupt() const noexcept;
    /// The keepalive settings the kernel applies to this session's TCP socket, read back from
    /// the socket; nullopt when closed or over a unix socket.
    std::optional<tcp_keepalive> keepalive_in_effect() const;
    /// The options this connection was opened with (password included: do not print as is;
    /// its formatter masks it).
    const connect_options& options() const noexcept;

    struct impl;

private:
    template <class Row>
    static detail::row_reader
    make_reader(bool keep_text, void* context,
                detail::decode_status (*on_row)(void*, const detail::fetched_row&)) {
        detail::row_reader r;
        r.fields = detail::row_traits<Row>::fields;
        r.row_type = &detail::row_type_id<Row>;
        r.keep_text = keep_text;
        r.context = context;
        r.on_start = [](void*, std::uint64_t) {};
        r.on_row = on_row;
        if (keep_text) // query_as: the context is the vector
            r.on_start = [](void* ctx, std::uint64_t n) {
                static_cast<std::vector<Row>*>(ctx)->reserve(static_cast<std::size_t>(n));
            };
        return r;
    }
    template <class Row>
    static detail::decode_status collect_row(void* ctx, const detail::fetched_row& r) {
        auto& rows = *static_cast<std::vector<Row>*>(ctx);
        rows.emplace_back();
        const auto status = detail::row_traits<Row>::read(r, rows.back(), true);
        if (status.why != detail::decode_failure::none)
            rows.pop_back();
        return status;
    }
    /// The typed path's compiled core (src/connection.cpp): runs sql through the statement
    /// cache, checks the columns against reader.fields and hands each row to reader.on_row.
    void read_rows(std::string_view sql, std::span<const param> params,
                   const detail::row_reader& reader, error_code& ec, diagnostics& diag);
    template <class Consume>
    void run_cached(std::string_view sql, std::span<const param> params, error_code& ec,
                    diagnostics& diag, Consume&& consume);

    static statement prepare_statement(impl& conn, std::string_view sql, error_code& ec,
                                       diagnostics& diag);
    std::unique_ptr<impl> impl_;
};

} // namespace cloudmysql
