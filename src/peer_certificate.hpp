// Internal: what the server's TLS certificate says, fetched for error messages only.
#pragma once

#include <cloudmysql/connect_options.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql::detail {

/// The parts of a server certificate that decide which ssl-mode can verify it.
struct peer_certificate {
    std::string subject;                   ///< RFC 2253, e.g. "CN=p:i,O=Google\, Inc,C=US"
    std::string issuer;                    ///< RFC 2253
    std::string common_name;               ///< the subject's CN, empty when it has none
    std::vector<std::string> dns_names;    ///< DNS subject alternative names that read as hosts
    std::vector<std::string> ip_addresses; ///< subject alternative names of type IP

    /// The names a host-name check (VERIFY_IDENTITY) matches against: the DNS and IP
    /// subject alternative names, or the CN when there are none and it looks like a host.
    std::vector<std::string> host_names() const;
};

/// True when `name` could be a host name or an IP address (a leading "*." allowed): Cloud SQL's
/// "project:instance" is not.
bool looks_like_host_name(std::string_view name);

/// Opens a TCP connection of its own to `opts.host`:`opts.port`, asks for TLS as a MySQL client
/// does (greeting, then an SSL request packet) and returns the server's certificate without
/// verifying it; nothing else is sent, no login. Gives up at `deadline`. Empty when it could
/// not: a unix socket, no TLS offered, a failed handshake, no time left. Meant for the error
/// path only: it explains a failed verification, it never decides one.
std::optional<peer_certificate>
fetch_peer_certificate(const connect_options& opts, std::chrono::steady_clock::time_point deadline);

} // namespace cloudmysql::detail
