// cloudmysql::pool: the connection pool over MariaDB Connector/C.
#pragma once

#include <cloudmysql/basic_pool.hpp>
#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/pool_options.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace cloudmysql {

/// Opens, checks, resets and closes cloudmysql::connection objects for basic_pool. The pool's
/// init_statements are added to the connect options' own, and its connect_timeout, when set,
/// replaces theirs (said once through pool_options::on_notice when they differ).
class mariadb_connector {
public:
    using connection_type = connection;

    mariadb_connector(connect_options options, const pool_options& pool);

    connection connect(error_code& ec, diagnostics& diag);
    /// COM_PING.
    void ping(connection& conn, error_code& ec, diagnostics& diag);
    /// connection::reset(): COM_RESET_CONNECTION (rolls back, drops temporary tables, user
    /// variables and prepared statements, restores session variables), the connection's
    /// database again, then the init statements.
    void reset(connection& conn, error_code& ec, diagnostics& diag);
    void close(connection& conn) noexcept;
    /// connection::needs_reset(): a returned session that ran only plain SELECTs through
    /// execute() goes back to the pool as it is, its cached statements kept.
    bool needs_reset(const connection& conn) const noexcept { return conn.needs_reset(); }
    /// connection::fault().
    error_class fault(const connection& conn) const noexcept { return conn.fault(); }
    /// connection::interrupt(): a ping or reset without an answer within check_timeout.
    void interrupt(const connection& conn) const noexcept { conn.interrupt(); }

    const connect_options& options() const noexcept { return options_; }

private:
    connect_options options_;
};

extern template class basic_pool<mariadb_connector, std::chrono::steady_clock>;

/// The connection pool for MySQL and MariaDB. See basic_pool for the behaviour and
/// pool_options for the settings:
///
///     cloudmysql::pool pool(cloudmysql::connect_options::from_url(url), {.max_size = 16});
///     auto conn = pool.acquire();              // waits up to acquire_timeout
///     conn->execute("UPDATE t SET x = ? WHERE id = ?", 1, 2);
///                                              // returned (and reset if it needs
///                                              // it: connection::needs_reset()) at scope end
class pool : public basic_pool<mariadb_connector, std::chrono::steady_clock> {
public:
    /// Throws std::invalid_argument for invalid options.
    explicit pool(connect_options connection, pool_options options = {});
    /// The pool's blocking work (connect, ping, reset, close) runs on `executor` instead of
    /// threads of the pool's own; see basic_pool's executor constructor for what it must be.
    pool(connect_options connection, pool_options options, boost::asio::any_io_executor executor);

    /// The connect options every connection uses (password included; print it with fmt,
    /// which masks it).
    const connect_options& connection_options() const noexcept { return connection_; }

private:
    connect_options connection_;
};

using pooled_connection = pool::pooled_connection;

/// A finding of server_check(): something that makes the pool's settings unworkable on this
/// server, with what to do about it.
struct server_finding {
    enum class severity { warning, error };
    severity level;
    std::string message;
};

/// Reads max_connections, max_user_connections, wait_timeout and Threads_connected (with
/// read_server_report()) through a pooled connection and says where the pool's settings cannot
/// work: a pool larger than the server allows, idle connections left silent (idle_timeout and
/// keepalive_interval: longest_idle_silence()) for wait_timeout or longer. Empty when all is
/// well. Throws
/// database_error when it cannot ask.
std::vector<server_finding> server_check(pool& p);

} // namespace cloudmysql
