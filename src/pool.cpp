// The MariaDB instantiation of the pool, and the server check.
#include <cloudmysql/pool.hpp>
#include <cloudmysql/server_report.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

namespace cloudmysql {

template class basic_pool<mariadb_connector, std::chrono::steady_clock>;

mariadb_connector::mariadb_connector(connect_options options, const pool_options& pool)
        : options_(std::move(options)) {
    pool.validate(); // before its values are used here
    // The pool's connect_timeout, when set, wins; a different one in the connect options (the
    // URL's connect-timeout=) is then unused, which the program hears once, here.
    if (pool.connect_timeout && *pool.connect_timeout != options_.connect_timeout) {
        if (options_.connect_timeout != connect_options{}.connect_timeout)
            pool.notify(
                {pool_notice::kind::settings,
                 fmt::format("pool_options::connect_timeout ({} s) replaces the connect "
                             "options' connect_timeout ({} s, e.g. the URL's "
                             "connect-timeout=) for every connection of the pool; set "
                             "one of them only",
                             pool.connect_timeout->count(), options_.connect_timeout.count())});
        options_.connect_timeout = *pool.connect_timeout;
    }
    options_.init_statements.insert(options_.init_statements.end(), pool.init_statements.begin(),
                                    pool.init_statements.end());
    options_.validate();
}

connection mariadb_connector::connect(error_code& ec, diagnostics& diag) {
    connection conn;
    conn.connect(options_, ec, diag);
    return conn;
}

void mariadb_connector::ping(connection& conn, error_code& ec, diagnostics& diag) {
    conn.ping(ec, diag);
}

void mariadb_connector::reset(connection& conn, error_code& ec, diagnostics& diag) {
    conn.reset(ec, diag);
}

void mariadb_connector::close(connection& conn) noexcept {
    conn.close();
}

pool::pool(connect_options connection, pool_options options)
        : basic_pool(options, mariadb_connector(connection, options)),
          connection_(std::move(connection)) {
}

pool::pool(connect_options connection, pool_options options, boost::asio::any_io_executor executor)
        : basic_pool(options, mariadb_connector(connection, options), std::move(executor)),
          connection_(std::move(connection)) {
}

std::vector<server_finding> server_check(pool& p) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    auto lease = p.acquire();
    connection& conn = *lease;
    const auto& o = p.options();
    // Through SHOW: MySQL 8 (Azure, Cloud SQL) has no information_schema.GLOBAL_VARIABLES.
    const server_report server = read_server_report(conn);
    const std::int64_t max_connections = server.max_connections.value_or(-1);
    const std::int64_t max_user_connections = server.max_user_connections.value_or(-1);
    const std::int64_t wait_timeout = server.wait_timeout.value_or(-1);
    const std::int64_t threads_connected = server.threads_connected.value_or(-1);
    const auto ours = static_cast<std::int64_t>(p.metrics().idle + p.metrics().in_use);
    const auto max_size = static_cast<std::int64_t>(o.max_size);

    std::vector<server_finding> findings;
    auto add = [&](server_finding::severity level, std::string message) {
        findings.push_back({level, std::move(message)});
    };
    if (max_connections > 0 && max_size > max_connections) {
        add(server_finding::severity::error,
            fmt::format("max_size is {} but the server allows only max_connections = {}: "
                        "acquires will fail with 'too many connections' once {} are open; "
                        "lower max_size or raise max_connections",
                        max_size, max_connections, max_connections));
    } else if (max_connections > 0 && threads_connected >= 0) {
        const std::int64_t others = std::max<std::int64_t>(0, threads_connected - ours);
        if (max_size + others > max_connections)
            add(server_finding::severity::warning,
                fmt::format("max_size is {} and {} other sessions are connected, but "
                            "max_connections is {}: the pool may not reach its size; lower "
                            "max_size or raise max_connections",
                            max_size, others, max_connections));
    }
    if (max_user_connections > 0 && max_size > max_user_connections)
        add(server_finding::severity::error,
            fmt::format("max_size is {} but max_user_connections is {}: lower max_size", max_size,
                        max_user_connections));
    // wait_timeout limits how long a session may sit idle, not its age: what counts is how
    // long an idle pooled connection goes without a word to the server.
    if (wait_timeout > 0) {
        const auto silence = longest_idle_silence(o.idle_timeout, o.keepalive_interval, o.min_idle);
        if (silence.count() == 0 || silence >= seconds(wait_timeout))
            add(server_finding::severity::warning,
                fmt::format("idle connections can sit longer than the server's wait_timeout "
                            "({} s) without a keepalive: set idle_timeout or "
                            "keepalive_interval below {} s",
                            wait_timeout, wait_timeout));
    }
    return findings;
}

} // namespace cloudmysql
