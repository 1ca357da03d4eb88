// Internal: what the server's TLS certificate says, read on a session of our own that never
// logs in: for error messages, and for the fingerprint that makes libmariadb insist on TLS.
#pragma once

#include "greeting.hpp"

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
    /// SHA-1 of the certificate (DER), 40 upper-case hex digits: the form libmariadb's
    /// MARIADB_OPT_TLS_PEER_FP compares.
    std::string sha1_fingerprint;

    /// The names a host-name check (VERIFY_IDENTITY) matches against: the DNS and IP
    /// subject alternative names, or the CN when there are none and it looks like a host.
    std::vector<std::string> host_names() const;
};

/// True when `name` could be a host name or an IP address (a leading "*." allowed): Cloud SQL's
/// "project:instance" is not.
bool looks_like_host_name(std::string_view name);

/// What a look at the server's TLS found: whether its greeting offers TLS, and when it does
/// and the handshake went through, the certificate it showed (not verified).
struct tls_probe {
    tls_offer offer = tls_offer::unknown;
    std::optional<peer_certificate> certificate;
};

/// Opens a TCP connection of its own to `opts.host`:`opts.port`, reads the greeting and, when it
/// offers TLS, asks for TLS as a MySQL client does (an SSL request packet) and reads the
/// server's certificate without verifying it; nothing else is sent, no login. Gives up at
/// `deadline`. The server counts the session as an aborted connect.
tls_probe probe_tls(const connect_options& opts, std::chrono::steady_clock::time_point deadline);

/// probe_tls()'s certificate: empty when there is none (a unix socket, no TLS offered, a failed
/// handshake, no time left).
std::optional<peer_certificate>
fetch_peer_certificate(const connect_options& opts, std::chrono::steady_clock::time_point deadline);

} // namespace cloudmysql::detail
