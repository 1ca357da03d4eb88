// Error codes, categories and error classes.
//
// Every failing operation yields an error_code. Its category says where the number comes from:
// - mysql_category(): the errno of the MariaDB/MySQL server (1000-1999, 3000-4999) or of the
//   client library (2000-2999, 5000-5999), exactly as libmariadb reports it;
// - client_category(): errors cloudmysql raises itself (client_errc).
// The error_class groups codes by what a program should do about them; the pool acts on it.
#pragma once

#include <boost/system/error_code.hpp>

#include <string_view>

namespace cloudmysql {

/// The error code type of every cloudmysql operation (Asio's, so async handlers take it as is).
using error_code = boost::system::error_code;

/// Errors that cloudmysql itself detects.
enum class client_errc {
    tls_not_negotiated = 1,     ///< TLS was required but the session is not encrypted
    credential_provider_failed, ///< the credential callback threw or returned nothing usable
    not_connected,              ///< the operation needs an open connection
    field_is_null,              ///< a NULL was read as a non-optional type
    type_mismatch,              ///< a value was read as a type it cannot convert to
    value_out_of_range,         ///< a value does not fit the requested type
    wrong_parameter_count,      ///< a statement got more or fewer parameters than '?' marks
    unknown_column,             ///< a row has no column of that name
    statement_closed,           ///< the statement's session was reset or closed: prepare again
    pool_exhausted,             ///< no connection became free within acquire_timeout
    pool_closed,                ///< the pool was closed
    server_unavailable,         ///< the pool's breaker is open after repeated connect failures
    migration_failed,           ///< a migration step failed; the history says which
    migration_locked,           ///< another migrator held the lock past lock_timeout
    migration_refused,          ///< the database and the program disagree (see verify())
    socket_option_failed,       ///< the kernel refused a socket option (TCP keepalive)
    reset_incomplete, ///< reset() could not restore the session (a database chosen by USE)
};

/// The category of client_errc values ("cloudmysql").
const boost::system::error_category& client_category() noexcept;

/// The category of server and libmariadb errno values ("mysql").
const boost::system::error_category& mysql_category() noexcept;

inline error_code make_error_code(client_errc e) noexcept {
    return {static_cast<int>(e), client_category()};
}

/// An error_code for a server or libmariadb errno.
inline error_code make_mysql_error_code(unsigned int mysql_errno) noexcept {
    return {static_cast<int>(mysql_errno), mysql_category()};
}

/// True for libmariadb's own (client-side) errno values: 2000-2999 and 5000-5999.
constexpr bool is_client_errno(int number) noexcept {
    return (number >= 2000 && number < 3000) || (number >= 5000 && number < 6000);
}

/// What a program should do about an error.
enum class error_class {
    none,            ///< no error
    connection_lost, ///< the session is gone (2006, 2013, a TLS EOF mid-session): reconnect
    read_only,       ///< the server turned read-only, as after a failover (1290, 1792, 1836)
    server_full,     ///< max_connections or a per-user limit reached (1040, 1203)
    auth,            ///< the server refused the user or password (1045, 1698, 1251)
    timeout,         ///< a connect, read or write timeout, or a lock wait (1205, 3024)
    unreachable,     ///< nothing answers at that address (2002, 2003, 2005)
    tls,             ///< the TLS handshake or certificate verification failed
    bad_input,       ///< the request itself is wrong; retrying the same request will not help
    other,           ///< anything else
};

/// The context-free class of an error code. A connect attempt refines it (a TLS error during
/// the handshake is class tls, not connection_lost); diagnostics::error_class() carries that.
error_class classify(const error_code& ec) noexcept;

/// The enumerator's name, e.g. "connection_lost".
std::string_view to_string(error_class c) noexcept;

} // namespace cloudmysql

namespace boost::system {
template <>
struct is_error_code_enum<cloudmysql::client_errc> : std::true_type {};
} // namespace boost::system
