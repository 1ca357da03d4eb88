// Error categories, classification and the text of database_error.
#include <cloudmysql/database_error.hpp>
#include <cloudmysql/error.hpp>

#include <fmt/format.h>

#include <errmsg.h> // CR_* numbers
#include <mysqld_error.h>

#include <string>

namespace cloudmysql {
namespace {

class client_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "cloudmysql"; }
    std::string message(int ev) const override {
        switch (static_cast<client_errc>(ev)) {
        case client_errc::tls_not_negotiated:
            return "TLS was required but the session is not encrypted";
        case client_errc::credential_provider_failed:
            return "the credential provider failed";
        case client_errc::not_connected:
            return "the connection is not open";
        case client_errc::field_is_null:
            return "the field is NULL";
        case client_errc::type_mismatch:
            return "the field's type does not convert to the requested type";
        case client_errc::value_out_of_range:
            return "the value does not fit the requested type";
        case client_errc::wrong_parameter_count:
            return "wrong number of statement parameters";
        case client_errc::unknown_column:
            return "no column of that name";
        case client_errc::statement_closed:
            return "the prepared statement's session was reset or closed";
        case client_errc::pool_exhausted:
            return "no pooled connection became free within acquire_timeout";
        case client_errc::pool_closed:
            return "the pool is closed";
        case client_errc::server_unavailable:
            return "the server is unavailable: repeated connect attempts failed";
        case client_errc::migration_failed:
            return "a migration step failed";
        case client_errc::migration_locked:
            return "another migrator holds the migration lock";
        case client_errc::migration_refused:
            return "the database and the program's migrations disagree";
        case client_errc::socket_option_failed:
            return "a socket option could not be set";
        case client_errc::reset_incomplete:
            return "the session could not be fully reset";
        }
        return fmt::format("cloudmysql error {}", ev);
    }
};

class mysql_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "mysql"; }
    std::string message(int ev) const override {
        // libmariadb does not export its message table; diagnostics carry its words.
        if (is_client_errno(ev))
            return fmt::format("client error {}", ev);
        return fmt::format("server error {}", ev);
    }
};

error_class classify_mysql(int ev) noexcept {
    switch (ev) {
    case CR_SERVER_GONE_ERROR:    // 2006
    case CR_SERVER_LOST:          // 2013
    case CR_SSL_CONNECTION_ERROR: // 2026: under TLS, a connection cut by the network
    case ER_CONNECTION_KILLED:    // 1927 (MariaDB): the session was killed
    case ER_SERVER_SHUTDOWN:      // 1053: the server is shutting down
    case 4031:                    // MySQL 8: the client was disconnected for inactivity
        return error_class::connection_lost;
    case ER_OPTION_PREVENTS_STATEMENT: // 1290: --read-only / --super-read-only
    case 1792:                         // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    case 1836:                         // ER_READ_ONLY_MODE
        return error_class::read_only;
    case ER_CON_COUNT_ERROR:           // 1040
    case ER_TOO_MANY_USER_CONNECTIONS: // 1203
    case ER_USER_LIMIT_REACHED:        // 1226
        return error_class::server_full;
    case ER_ACCESS_DENIED_ERROR:     // 1045
    case ER_DBACCESS_DENIED_ERROR:   // 1044
    case 1698:                       // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    case ER_NOT_SUPPORTED_AUTH_MODE: // 1251
    case CR_AUTH_PLUGIN_CANNOT_LOAD: // 2059
        return error_class::auth;
    case 3159: // MySQL: insecure transport prohibited under require_secure_transport
        return error_class::tls;
    case ER_LOCK_WAIT_TIMEOUT: // 1205
    case 3024:                 // ER_QUERY_TIMEOUT (MySQL max_execution_time)
    case 1969:                 // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
        return error_class::timeout;
    case CR_CONNECTION_ERROR: // 2002
    case CR_CONN_HOST_ERROR:  // 2003
    case CR_UNKNOWN_HOST:     // 2005
        return error_class::unreachable;
    case ER_PARSE_ERROR:            // 1064
    case ER_DATA_TOO_LONG:          // 1406
    case ER_DUP_ENTRY:              // 1062
    case ER_NO_REFERENCED_ROW_2:    // 1452
    case ER_ROW_IS_REFERENCED_2:    // 1451
    case ER_BAD_NULL_ERROR:         // 1048
    case ER_TRUNCATED_WRONG_VALUE:  // 1292
    case ER_WARN_DATA_OUT_OF_RANGE: // 1264
    case ER_NO_SUCH_TABLE:          // 1146
    case ER_BAD_FIELD_ERROR:        // 1054
    case ER_BAD_DB_ERROR:           // 1049
    case CR_PARAMS_NOT_BOUND:       // 2031
    case CR_UNSUPPORTED_PARAM_TYPE: // 2036
        return error_class::bad_input;
    default:
        return error_class::other;
    }
}

} // namespace

const boost::system::error_category& client_category() noexcept {
    static const client_category_impl instance;
    return instance;
}

const boost::system::error_category& mysql_category() noexcept {
    static const mysql_category_impl instance;
    return instance;
}

error_class classify(const error_code& ec) noexcept {
    if (!ec)
        return error_class::none;
    if (ec.category() == mysql_category())
        return classify_mysql(ec.value());
    if (ec.category() == client_category()) {
        switch (static_cast<client_errc>(ec.value())) {
        case client_errc::tls_not_negotiated:
            return error_class::tls;
        case client_errc::credential_provider_failed:
            return error_class::auth;
        case client_errc::not_connected:
            return error_class::connection_lost;
        case client_errc::pool_exhausted:
            return error_class::timeout;
        case client_errc::pool_closed:
            return error_class::other;
        case client_errc::server_unavailable:
            return error_class::unreachable;
        case client_errc::migration_locked:
            return error_class::timeout;
        case client_errc::migration_failed:
        case client_errc::migration_refused:
        case client_errc::socket_option_failed:
        case client_errc::reset_incomplete:
            return error_class::other;
        case client_errc::field_is_null:
        case client_errc::type_mismatch:
        case client_errc::value_out_of_range:
        case client_errc::wrong_parameter_count:
        case client_errc::unknown_column:
        case client_errc::statement_closed:
            return error_class::bad_input;
        }
    }
    return error_class::other;
}

std::string_view to_string(error_class c) noexcept {
    switch (c) {
    case error_class::none:
        return "none";
    case error_class::connection_lost:
        return "connection_lost";
    case error_class::read_only:
        return "read_only";
    case error_class::server_full:
        return "server_full";
    case error_class::auth:
        return "auth";
    case error_class::timeout:
        return "timeout";
    case error_class::unreachable:
        return "unreachable";
    case error_class::tls:
        return "tls";
    case error_class::bad_input:
        return "bad_input";
    case error_class::other:
        return "other";
    }
    return "unknown";
}

std::string database_error::compose(const error_code& ec, const cloudmysql::diagnostics& diag) {
    std::string text = diag.client_message().empty() ? ec.message() : diag.client_message();
    if (!diag.server_message().empty()) {
        // The server's words are quoted and labelled: they are data, not ours. The number is
        // the server's only when the code is (a migration failure wraps a server error).
        const bool server_code = ec.category() == mysql_category();
        fmt::format_to(std::back_inserter(text), " [{}{}{}: {}]",
                       server_code ? fmt::format("server error {}", ec.value()) : "server says",
                       diag.sqlstate().empty() ? "" : ", SQLSTATE ", diag.sqlstate(),
                       diag.server_message());
    }
    return text;
}

} // namespace cloudmysql
