// What a server runs with, read over one connection, and whether a deployment of pools fits it.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/pool_options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql {

/// How the server's certificate was checked on a session.
enum class tls_verification {
    not_encrypted, ///< plaintext: nothing was checked
    unverified,    ///< encrypted, but any certificate was accepted (ssl-mode PREFERRED/REQUIRED)
    ca,            ///< the chain was checked against the trusted roots; the host name was not
    ca_and_host,   ///< the chain and the host name were checked (ssl-mode=VERIFY_IDENTITY)
};

/// "not-encrypted", "encrypted-unverified", "ca-verified" or "ca-and-host-verified".
std::string_view to_string(tls_verification v) noexcept;

/// How a session opened with `opts` had its certificate checked, given whether it ended up
/// encrypted. REQUIRED with an ssl-ca file counts as ca: libmariadb checks the chain whenever
/// it is given a CA.
tls_verification tls_verification_of(const connect_options& opts, bool encrypted) noexcept;

/// What read_server_report() found. A value the server did not show (an older version, a
/// missing privilege) is nullopt or empty: nothing is guessed.
struct server_report {
    std::string version;         ///< e.g. "10.11.6-MariaDB-0+deb12u1"
    server_flavor flavor{};      ///< MariaDB or MySQL, from the version string
    std::string version_comment; ///< @@version_comment, e.g. "Debian 12"
    /// Where the server seems to run: "Azure Database for MySQL", "Google Cloud SQL", or
    /// "unknown" when it shows no sign of either.
    std::string cloud = "unknown";
    /// What the cloud guess rests on, e.g. "variable aad_auth_only"; empty for "unknown".
    std::string cloud_evidence;

    std::string tls_version; ///< "TLSv1.3"; empty when not encrypted
    std::string tls_cipher;  ///< "TLS_AES_256_GCM_SHA384"; empty when not encrypted
    tls_mode ssl_mode{};     ///< the options' effective ssl-mode
    tls_verification verification{};
    std::string ssl_ca; ///< the roots the chain was checked against; empty: the system's

    // Variables as this session sees them (SHOW VARIABLES): for max_user_connections that is
    // the account's own limit when it has one. Timeouts in seconds.
    std::optional<std::int64_t> max_connections;
    std::optional<std::int64_t> max_user_connections; ///< 0: no per-user limit
    std::optional<std::int64_t> connect_timeout;
    std::optional<std::int64_t> wait_timeout;
    std::optional<std::int64_t> interactive_timeout;
    std::optional<std::int64_t> lock_wait_timeout;
    std::string require_secure_transport; ///< "ON" or "OFF"; empty when the server has none

    // Status (SHOW GLOBAL STATUS), including the session that read it.
    std::optional<std::int64_t> threads_connected;    ///< sessions open now
    std::optional<std::int64_t> max_used_connections; ///< the most open at once since start
    /// Sessions of this user name open now (information_schema.PROCESSLIST); nullopt when the
    /// server would not say.
    std::optional<std::int64_t> user_connections;
};

/// Reads the server's version, flavour, cloud hints, TLS state, connection limits, timeouts
/// and connection counts over `conn` (open). Three short queries; changes nothing on the
/// server. Throws database_error when the variables cannot be read or the session is lost; the
/// counts are left unknown when the server refuses only them.
server_report read_server_report(connection& conn);

/// A planned deployment: `instances` copies of a program, each with a pool of `pool_size`.
/// Durations as in pool_options, whose defaults they take.
struct deployment {
    std::size_t instances = 1;
    std::size_t pool_size = pool_options{}.max_size;
    /// Shown, not checked: wait_timeout limits how long a session sits idle, not its age.
    std::chrono::milliseconds max_lifetime = pool_options{}.max_lifetime; ///< 0: no limit
    std::chrono::milliseconds idle_timeout = pool_options{}.idle_timeout; ///< 0: kept forever
    std::chrono::milliseconds keepalive_interval = pool_options{}.keepalive_interval; ///< 0: off
    std::size_t min_idle = pool_options{}.min_idle; ///< kept open whatever idle_timeout says
    /// Connections left over for others: admin sessions and a migration run.
    std::size_t reserve = 3;
};

/// The longest a pooled connection sits idle without a word to the server: the pool pings it
/// after `keepalive_interval` and closes it after `idle_timeout`, whichever comes first; a 0
/// (off, kept forever) takes no part. idle_timeout never closes the `min_idle` connections the
/// pool keeps, so with min_idle above 0 only the keepalive bounds their silence. 0: without
/// bound. The server's wait_timeout must be longer, or it drops idle sessions the pool still
/// holds.
std::chrono::milliseconds longest_idle_silence(std::chrono::milliseconds idle_timeout,
                                               std::chrono::milliseconds keepalive_interval,
                                               std::size_t min_idle = 0) noexcept;

/// One check of check_deployment().
struct deployment_check {
    enum class outcome { pass, fail, unknown };
    std::string name; ///< the server setting checked: "max_connections", "wait_timeout", ...
    outcome result{};
    /// One line with the numbers, and on failure what to do, e.g. "3 × 8 + 3 reserved = 27 >
    /// max_connections 20: lower pool_size to 5 or raise max_connections to 27". Settings are
    /// named as in deployment (pool_size, idle_timeout, keepalive_interval) and as the server
    /// names its variables; a program with flags of its own translates.
    std::string reason;
};

/// "pass", "fail" or "unknown" (the server did not show what the check needs).
std::string_view to_string(deployment_check::outcome o) noexcept;

struct deployment_verdict {
    std::vector<deployment_check> checks;
    /// True unless a check failed (an unknown does not fail the verdict).
    bool passed() const noexcept;
};

/// Checks `d` against the server: instances × pool_size + reserve must fit max_connections
/// (and max_user_connections when it is not 0), and longest_idle_silence(idle_timeout,
/// keepalive_interval, min_idle) must be below wait_timeout (check "wait_timeout"), so that the
/// pool pings or closes an idle connection before the server drops it. Pure: no I/O.
deployment_verdict check_deployment(const server_report& report, const deployment& d);

} // namespace cloudmysql
