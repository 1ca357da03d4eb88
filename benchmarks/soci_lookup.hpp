// The SOCI baseline of pool_throughput: the patient lookup through soci::connection_pool, the
// pool C++ users pick today (Debian's libsoci-dev, SOCI 4.0.3, its mysql backend over
// libmariadb). Compiled only when CMake found SOCI (CLOUDMYSQL_BENCH_HAVE_SOCI); its own
// translation unit, so that SOCI's headers (which include <mysql.h>) stay out of the others.
#pragma once

#include "bench_support.hpp"

#include <cstddef>
#include <string>

namespace cloudmysql::bench::soci_baseline {

/// The lookup as SOCI users write it: named placeholders, which SOCI's mysql backend replaces
/// with the escaped value in the query text (SOCI 4.0.3 has no server-side prepared
/// statements for MySQL: every lookup is a COM_QUERY whose text is built on the client).
inline constexpr std::string_view lookup_sql =
    "SELECT id, first_name, last_name, date_of_birth, gender, contact_number FROM patients "
    "WHERE id = :id";

/// The SOCI connection string for `server`: host, port or socket, user, password, database,
/// connect timeout, and the CA file (sslca) when TLS is on. SOCI 4.0.3's mysql backend has no
/// option for libmariadb's host-name check (MYSQL_OPT_SSL_VERIFY_SERVER_CERT): with a CA file
/// libmariadb 3.3 verifies the chain only. Throws std::invalid_argument when the URL's TLS mode
/// is required or stricter and it names no CA file: SOCI turns TLS on only through one.
std::string connect_string(const connect_options& server);

/// Opens soci::connection_pool of `size` sessions to `server` (again while the server
/// answers "Too many connections") and checks that each one is encrypted when the URL's TLS
/// mode requires it. Returns an empty string, or why it failed. Not thread-safe: call from
/// the benchmark's Setup.
std::string open_pool(const connect_options& server, std::size_t size);

/// Closes the pool open_pool() opened (from the benchmark's Teardown).
void close_pool() noexcept;

/// The benchmark body: each iteration leases a session (soci::session over the pool), runs
/// lookup_sql with a random id into typed variables and gives the session back. Reports
/// failures through fail().
void lookups(benchmark::State& state, id_range ids);

} // namespace cloudmysql::bench::soci_baseline
