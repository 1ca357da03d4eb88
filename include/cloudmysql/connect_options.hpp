// How to reach a server: address, credentials, TLS, timeouts and session set-up.
#pragma once

#include <cloudmysql/credentials.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql {

/// How the connection is protected.
enum class tls_mode {
    disabled,        ///< plaintext; only for a trusted local network or a unix socket
    preferred,       ///< TLS when the server offers it, no verification, plaintext otherwise
    required,        ///< TLS or fail; the certificate is not verified (unless ssl_ca is set)
    verify_ca,       ///< TLS, certificate chain checked; host name not (Cloud SQL certificates)
    verify_identity, ///< TLS, chain and host name checked (Azure, any public name)
};

/// "DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA" or "VERIFY_IDENTITY" (the URL spelling).
std::string_view to_string(tls_mode mode) noexcept;

/// TCP keepalive: after `idle` without traffic the kernel sends a probe every `interval`, and
/// gives the connection up after `count` unanswered probes. It keeps idle connections alive
/// through load balancers and NAT (Azure's drops flows idle for 4 minutes) and ends those whose
/// path died silently, also while a query waits for its answer: a live server's kernel answers
/// the probes however long the query runs, a dead path does not. The same bound applies to
/// what was sent and never acknowledged (TCP_USER_TIMEOUT, dead_path_limit()), which keepalive
/// alone leaves to the kernel's retransmissions (about 15 minutes on Linux). With the
/// defaults, a dead network path fails an operation within 45 s. Unused over unix sockets.
struct tcp_keepalive {
    bool enabled = true;
    std::chrono::seconds idle{30};    ///< 1 s to 32767 s
    std::chrono::seconds interval{5}; ///< 1 s to 32767 s
    int count = 3;                    ///< 1 to 127

    /// How long the peer may stay silent before the connection is given up: idle + interval
    /// x count. Also the socket's TCP_USER_TIMEOUT when keepalive is enabled.
    std::chrono::seconds dead_path_limit() const noexcept { return idle + interval * count; }

    bool operator==(const tcp_keepalive&) const = default;
};

/// Everything needed to open a connection. Build it in code or with from_url().
///
/// Printing it (fmt, std::ostream, to_url()) always masks the password.
struct connect_options {
    /// The default port of MySQL and MariaDB.
    static constexpr std::uint16_t default_port = 3306;

    std::string host{}; ///< name, IPv4 or IPv6 address; empty with unix_socket
    std::uint16_t port = default_port;
    std::string unix_socket{}; ///< path of a unix socket; when set, host/port are unused
    std::string user{};
    std::string password{}; ///< ignored when credentials is set
    std::string database{}; ///< default schema; empty for none

    /// TLS mode; when unset, effective_tls_mode() picks verify_identity for remote hosts (and
    /// for loopback TCP when credentials is set) and preferred for other loopback addresses and
    /// for unix sockets.
    std::optional<cloudmysql::tls_mode> tls_mode{};
    /// PEM file of trusted roots (may hold several). Empty: the system's trust store.
    std::string ssl_ca{};

    /// Time allowed to open the TCP connection and finish the handshake. 1 s to 1 h.
    std::chrono::seconds connect_timeout{3};
    /// Time a single read may wait for the server; 0 means no limit. At most 1 h.
    std::chrono::seconds read_timeout{0};
    /// Time a single write may wait for the server; 0 means no limit. At most 1 h.
    std::chrono::seconds write_timeout{0};

    /// Statements run after every connect and every reset (e.g. "SET time_zone = '+00:00'").
    std::vector<std::string> init_statements{};

    /// TCP keepalive on the connection's socket; on by default (see tcp_keepalive).
    tcp_keepalive keepalive{};

    /// Supplies the password per connection (tokens that expire); overrides `password`. Needs
    /// a unix socket or ssl-mode VERIFY_CA / VERIFY_IDENTITY: validate() refuses other modes.
    credential_provider credentials{};

    /// The TLS mode this connection will use: tls_mode when set, else the default rule.
    cloudmysql::tls_mode effective_tls_mode() const noexcept;

    /// True when host is a loopback address (127.0.0.0/8, ::1, "localhost") or a socket is used.
    bool is_local() const noexcept;

    /// Checks the values against their limits; throws std::invalid_argument naming the option.
    void validate() const;

    /// Parses `mysql://` or `mariadb://` URLs:
    ///   mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?PARAM=VALUE&...]
    ///   mysql://USER@/DATABASE?socket=/cloudsql/PROJECT:REGION:INSTANCE
    /// USER, PASSWORD and DATABASE are percent-decoded; an IPv6 host goes in brackets
    /// ([::1]:3306). Parameters: ssl-mode (DISABLED, PREFERRED, REQUIRED, VERIFY_CA,
    /// VERIFY_IDENTITY), ssl-ca, connect-timeout, read-timeout, write-timeout (seconds), socket,
    /// keepalive (on/off), keepalive-idle, keepalive-interval (seconds), keepalive-count.
    ///
    /// Throws std::invalid_argument naming the part that is wrong. The message never quotes
    /// any text that comes before the URL's last '@': all of it may be the user name or
    /// password (with an unencoded '@' in the password, the user meant a later '@' than the
    /// parser took), so "port '99999' is out of range" becomes "port is out of range" there.
    /// When that text holds '@', '/', '?', '#', a second ':' or a '%' that starts no escape,
    /// the message says to percent-encode them (%40, %2F, %3F, %3A, %23, %25).
    static connect_options from_url(std::string_view url);

    /// Reads a URL from the environment variable `name`. Returns nullopt when it is unset or
    /// empty; throws std::invalid_argument (naming the variable, then from_url()'s message,
    /// under the same rule) when it does not parse.
    static std::optional<connect_options> from_env(const char* name = "CLOUDMYSQL_URL");

    /// The options as a URL with the password replaced by "****" (safe to log).
    std::string to_url() const;

    /// "user@host:port/db" or "user@unix:/path/db": a short label for messages.
    std::string describe() const;
};

std::ostream& operator<<(std::ostream& os, const connect_options& opts);

} // namespace cloudmysql

/// Formats as to_url(): the password is always masked.
template <>
struct fmt::formatter<cloudmysql::connect_options> : fmt::formatter<std::string_view> {
    auto format(const cloudmysql::connect_options& opts, fmt::format_context& ctx) const
        -> decltype(ctx.out()) {
        return fmt::formatter<std::string_view>::format(opts.to_url(), ctx);
    }
};
