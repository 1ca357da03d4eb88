// connection and transaction over libmariadb.
#include "greeting.hpp"
#include "mysql_glue.hpp"
#include "peer_certificate.hpp"
#include "sql_text.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/transaction.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace cloudmysql {
namespace detail {

std::string excerpt(std::string_view sql) {
    constexpr std::size_t max_length = 60;
    std::string out;
    for (char c : sql) {
        if (out.size() >= max_length) {
            out += "...";
            break;
        }
        const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
        if (space && (out.empty() || out.back() == ' '))
            continue;
        out += space ? ' ' : c;
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

std::string_view hint_for(error_class cls) noexcept {
    switch (cls) {
    case error_class::connection_lost:
        return "the session is gone: open a new connection (a pool does this for you)";
    case error_class::read_only:
        return "the server is read-only, as after a failover: reconnect to reach the new "
               "primary";
    case error_class::server_full:
        return "the server is at its connection limit: close idle connections, shrink pools "
               "or raise max_connections";
    case error_class::auth:
        return "check the user name and password (or the credential provider)";
    case error_class::unreachable:
        return "check the host and port, that the server is running and that no firewall "
               "blocks the way";
    case error_class::timeout:
        return "the server did not answer in time: check the network path, or raise the "
               "timeout";
    default:
        return {};
    }
}

namespace {

void set_error(unsigned int number, const char* message, const char* sqlstate,
               std::string_view context, error_code& ec, diagnostics& diag) {
    ec = make_mysql_error_code(number);
    error_class cls = classify(ec);
    // 1290 names the option that stopped the statement: only --read-only and
    // --super-read-only mean the server turned into a replica.
    if (number == ER_OPTION_PREVENTS_STATEMENT && message != nullptr &&
        std::string_view(message).find("read-only") == std::string_view::npos)
        cls = error_class::other;
    const std::string_view hint = hint_for(cls);
    const bool from_server = !is_client_errno(static_cast<int>(number));
    std::string ours = std::string(context);
    if (!from_server) // libmariadb's own words are ours to repeat
        fmt::format_to(std::back_inserter(ours), ": {}", message);
    if (!hint.empty())
        fmt::format_to(std::back_inserter(ours), "; {}", hint);
    diag = diagnostics(std::move(ours), from_server ? std::string(message) : std::string(),
                       sqlstate ? std::string(sqlstate) : std::string(), cls);
}

} // namespace

void set_error_from(MYSQL* mysql, std::string_view context, error_code& ec, diagnostics& diag) {
    set_error(mysql_errno(mysql), mysql_error(mysql), mysql_sqlstate(mysql), context, ec, diag);
}

void set_error_from(MYSQL_STMT* stmt, std::string_view context, error_code& ec, diagnostics& diag) {
    set_error(mysql_stmt_errno(stmt), mysql_stmt_error(stmt), mysql_stmt_sqlstate(stmt), context,
              ec, diag);
}

void set_client_error(client_errc code, std::string message, error_code& ec, diagnostics& diag) {
    ec = code;
    diag = diagnostics(std::move(message), {}, {}, classify(ec));
}

} // namespace detail

namespace {

using detail::set_client_error;
using detail::set_error_from;

void ensure_library_initialised() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (mysql_library_init(0, nullptr, nullptr) != 0)
            throw std::runtime_error("cloudmysql: libmariadb failed to initialise");
    });
}

template <class T>
void set_option(MYSQL* mysql, mysql_option option, const T& value) {
    if (mysql_optionsv(mysql, option, &value) != 0)
        throw std::runtime_error(
            fmt::format("cloudmysql: libmariadb rejected option {}", static_cast<int>(option)));
}

void set_string_option(MYSQL* mysql, mysql_option option, const std::string& value) {
    if (mysql_optionsv(mysql, option, value.c_str()) != 0)
        throw std::runtime_error(
            fmt::format("cloudmysql: libmariadb rejected option {}", static_cast<int>(option)));
}

// Where the system keeps its trusted roots (Debian's ca-certificates). Used for the verify
// modes when no ssl-ca is given, so that libmariadb checks the chain against them.
constexpr const char* system_ca_path = "/etc/ssl/certs";

// The authentication plugins that send no password as it is over the connection: a
// challenge-response (native, ed25519, PARSEC), Kerberos, and caching_sha2 / sha256, which send
// it only inside TLS (verified or not) or RSA-encrypted. Left out: mysql_clear_password and
// dialog (PAM), which send it as typed, and everything else this list does not name.
constexpr std::string_view safe_auth_plugins =
    "mysql_native_password,client_ed25519,parsec,auth_gssapi_client,caching_sha2_password,"
    "sha256_password";

// True when a plugin that sends the password as it is may be answered: over a unix socket, or
// with VERIFY_IDENTITY, under which libmariadb refuses to log in without TLS. Not with
// VERIFY_CA: there libmariadb logs in without TLS when the greeting offers none, and someone
// on the path can strip that offer from the greeting.
bool cleartext_auth_allowed(const connect_options& opts) {
    return !opts.unix_socket.empty() || opts.effective_tls_mode() == tls_mode::verify_identity;
}

void apply_tls(MYSQL* mysql, const connect_options& opts) {
    const tls_mode mode = opts.effective_tls_mode();
    if (mode == tls_mode::disabled)
        return;
    // ENFORCE asks for TLS; libmariadb 3.3 still falls back to plaintext when the server does
    // not offer it, which is exactly "preferred". Stronger modes check the cipher afterwards.
    set_option(mysql, MYSQL_OPT_SSL_ENFORCE, my_bool{1});
    if (mode == tls_mode::preferred)
        return;
    // With a CA set, libmariadb verifies the chain (SSL_VERIFY_PEER): verify_ca's behaviour.
    if (!opts.ssl_ca.empty())
        set_string_option(mysql, MYSQL_OPT_SSL_CA, opts.ssl_ca);
    else if (mode != tls_mode::required)
        set_string_option(mysql, MYSQL_OPT_SSL_CAPATH, system_ca_path);
    if (mode == tls_mode::verify_identity)
        set_option(mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, my_bool{1});
}

void apply_options(MYSQL* mysql, const connect_options& opts) {
    const unsigned protocol = opts.unix_socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
    set_option(mysql, MYSQL_OPT_PROTOCOL, protocol);
    if (opts.read_timeout.count() > 0)
        set_option(mysql, MYSQL_OPT_READ_TIMEOUT, static_cast<unsigned>(opts.read_timeout.count()));
    if (opts.write_timeout.count() > 0)
        set_option(mysql, MYSQL_OPT_WRITE_TIMEOUT,
                   static_cast<unsigned>(opts.write_timeout.count()));
    set_string_option(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    set_option(mysql, MYSQL_OPT_LOCAL_INFILE, 0U);      // the server must not read our files
    set_option(mysql, MYSQL_OPT_RECONNECT, my_bool{0}); // a silent reconnect loses the session
    set_option(mysql, MYSQL_REPORT_DATA_TRUNCATION, my_bool{1});
    // Tokens are cleartext passwords (mysql_clear_password); validate() allows a provider only
    // over verified TLS or a unix socket.
    if (opts.credentials)
        set_option(mysql, MYSQL_ENABLE_CLEARTEXT_PLUGIN, my_bool{1});
    // libmariadb answers a server's request for any authentication plugin, including those that
    // send the password as it is (and it ignores MYSQL_ENABLE_CLEARTEXT_PLUGIN). Where that
    // could reach a third party, offer only the plugins that never reveal the password.
    if (!cleartext_auth_allowed(opts))
        set_string_option(mysql, MARIADB_OPT_RESTRICTED_AUTH, std::string(safe_auth_plugins));
    apply_tls(mysql, opts);
}

// TCP keepalive on the connected socket (libmariadb has no option for it).
bool apply_keepalive(MYSQL* mysql, const connect_options& opts, error_code& ec, diagnostics& diag) {
    if (!opts.unix_socket.empty())
        return true;
    const int fd = static_cast<int>(mysql_get_socket(mysql));
    auto set = [&](int level, int name, int setting, std::string_view what) {
        if (::setsockopt(fd, level, name, &setting, sizeof setting) == 0)
            return true;
        set_client_error(client_errc::socket_option_failed,
                         fmt::format("connected to {} but could not set {} on its socket: {}",
                                     opts.describe(), what, std::strerror(errno)),
                         ec, diag);
        return false;
    };
    const tcp_keepalive& k = opts.keepalive;
    if (!k.enabled)
        return set(SOL_SOCKET, SO_KEEPALIVE, 0, "SO_KEEPALIVE");
    // Keepalive ends a silent path while nothing is unacknowledged; TCP_USER_TIMEOUT ends it
    // while a request is, with the same limit (and takes over keepalive's count: tcp(7)).
    // In milliseconds, an int: the largest settings (32767 s x 127) would overflow it.
    const auto user_timeout = std::min<std::chrono::milliseconds::rep>(
        std::chrono::milliseconds(k.dead_path_limit()).count(), std::numeric_limits<int>::max());
    return set(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(k.idle.count()), "TCP_KEEPIDLE") &&
           set(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(k.interval.count()), "TCP_KEEPINTVL") &&
           set(IPPROTO_TCP, TCP_KEEPCNT, k.count, "TCP_KEEPCNT") &&
           set(IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(user_timeout), "TCP_USER_TIMEOUT") &&
           set(SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
}

using steady = std::chrono::steady_clock;

std::string server_key(const connect_options& opts) {
    return fmt::format("{}:{}", opts.host, opts.port);
}

// Server certificates read recently, by host and port, for error messages. Kept for 5 minutes:
// each read is a session that never logs in, which MySQL counts against max_connect_errors, and
// a pool retrying against a misconfigured CA would otherwise double them.
class recent_certificates {
public:
    static recent_certificates& instance() {
        static recent_certificates certificates;
        return certificates;
    }

    std::optional<std::optional<detail::peer_certificate>> find(const std::string& key) {
        const std::lock_guard lock(mutex_);
        const auto it = recent_.find(key);
        if (it != recent_.end() && steady::now() - it->second.at < keep_for)
            return it->second.certificate;
        return std::nullopt;
    }

    void remember(const std::string& key, std::optional<detail::peer_certificate> certificate) {
        const std::lock_guard lock(mutex_);
        if (recent_.size() >= 64)
            recent_.clear();
        recent_.insert_or_assign(key, fetched{steady::now(), std::move(certificate)});
    }

private:
    static constexpr auto keep_for = std::chrono::minutes(5);
    struct fetched {
        steady::time_point at;
        std::optional<detail::peer_certificate> certificate;
    };
    std::mutex mutex_;
    std::map<std::string, fetched> recent_;
};

// The server's certificate, when a TCP connection of our own can fetch it by `deadline`
// (error path only), or when one was read in the last 5 minutes.
std::optional<detail::peer_certificate> peer_certificate_of(const connect_options& opts,
                                                            steady::time_point deadline) {
    if (!opts.unix_socket.empty() || opts.host.empty())
        return std::nullopt;
    const std::string key = server_key(opts);
    if (auto kept = recent_certificates::instance().find(key))
        return *kept;
    if (deadline <= steady::now())
        return std::nullopt;
    auto certificate = detail::fetch_peer_certificate(opts, deadline);
    recent_certificates::instance().remember(key, certificate);
    return certificate;
}

// ---- VERIFY_CA with a credential provider: the certificate pin --------------------------------
//
// Why: libmariadb 3.3 under VERIFY_CA logs in without TLS when the server's greeting offers
// none, and someone on the path can strip that offer. The token would then go out without TLS:
// to a public key the path chose (caching_sha2_password's RSA exchange), or as a
// challenge-response that the path relays into a session of its own. Under VERIFY_IDENTITY
// libmariadb refuses instead, and it does the same under VERIFY_CA when a certificate
// fingerprint is set (MARIADB_OPT_TLS_PEER_FP): it then refuses a greeting without TLS before
// sending anything, checks the chain against ssl-ca as always, and the fingerprint on top.
//
// So the first connect to a host and port reads the server's certificate on a session of its
// own (greeting, TLS handshake, no login: probe_tls) and pins its SHA-1 fingerprint, and every
// connect with a provider sets the pin. A greeting without TLS is then refused inside the very
// session that would carry the token, which a probe on a session of its own cannot promise (a
// path may treat two sessions differently). Remembering the pin therefore weakens nothing: it
// decides no trust (the chain check does), it only makes libmariadb insist on TLS, and a server
// or path that stops offering TLS is refused before the login, pin or no pin. That is why the
// pin has no time limit: it is dropped when a connect with it fails in TLS (a renewed
// certificate no longer matches; the connect then reads the new one and tries once more within
// its deadline), and the table is emptied when it holds 64 servers. The extra session, which
// MySQL counts in Aborted_connects and against max_connect_errors, now happens once per server
// and certificate instead of once per connect.
//
// When the probe learns nothing (no greeting in time, a closed session, a failed handshake), the
// connect still goes to libmariadb for its precise error, but pinned to a fingerprint that no
// certificate has and without asking the provider: that session can fail, never log in.
class tls_pins {
public:
    static tls_pins& instance() {
        static tls_pins pins;
        return pins;
    }

    std::string find(const std::string& key) {
        const std::lock_guard lock(mutex_);
        const auto it = pins_.find(key);
        return it == pins_.end() ? std::string() : it->second;
    }

    void pin(const std::string& key, const std::string& fingerprint) {
        const std::lock_guard lock(mutex_);
        if (pins_.size() >= 64)
            pins_.clear();
        pins_.insert_or_assign(key, fingerprint);
    }

    // Only the fingerprint this connect used: another may have pinned a newer one meanwhile.
    void unpin(const std::string& key, const std::string& fingerprint) {
        const std::lock_guard lock(mutex_);
        const auto it = pins_.find(key);
        if (it != pins_.end() && it->second == fingerprint)
            pins_.erase(it);
    }

private:
    std::mutex mutex_;
    std::map<std::string, std::string> pins_;
};

constexpr std::string_view unmatchable_fingerprint = "0000000000000000000000000000000000000000";

// The pin one connect attempt uses.
struct tls_pin {
    std::string fingerprint; // empty: no pin needed (no provider, or not VERIFY_CA over TCP)
    bool fresh = false;      // read by this connect's own probe
    bool blind = false;      // the probe learnt nothing: unmatchable_fingerprint
};

bool needs_tls_pin(const connect_options& opts) {
    return opts.credentials && opts.unix_socket.empty() &&
           opts.effective_tls_mode() == tls_mode::verify_ca;
}

// libmariadb takes its connect timeout in whole seconds and applies it to each step of its own
// (the TCP connect, then each read of the handshake), not to the whole. It gets the whole
// seconds left of the connect's deadline, rounded down so as not to overshoot it, except that a
// remainder within 50 ms of the next second counts as that second: the steps before take a
// few milliseconds even when nothing waits, and libmariadb's own timing is coarser than that.
// 0: less than a second is left, too little to start.
unsigned libmariadb_connect_timeout(steady::time_point deadline) {
    constexpr auto slack = std::chrono::milliseconds(50);
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(deadline - steady::now() + slack);
    return left.count() < 1 ? 0U : static_cast<unsigned>(left.count());
}

std::string seconds_text(steady::duration d) {
    return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count());
}

// What a pinned connect's TLS failure means. libmariadb's words: it refuses a greeting without
// TLS ("SSL is required, but the server does not support it") and a certificate whose
// fingerprint differs ("Fingerprint verification of server certificate failed").
enum class pin_failure { no_tls, renewed, other };

pin_failure classify_pin_failure(std::string_view message) {
    if (message.find("SSL is required") != std::string_view::npos)
        return pin_failure::no_tls;
    if (message.find("ingerprint") != std::string_view::npos)
        return pin_failure::renewed;
    return pin_failure::other;
}

// VERIFY_IDENTITY refused the certificate's names: say what it names and which mode fits.
std::string name_mismatch_hint(const connect_options& opts, steady::time_point deadline) {
    const auto cert = peer_certificate_of(opts, deadline);
    if (!cert)
        return opts.unix_socket.empty() && !opts.host.empty()
                   ? "the server's certificate does not name the host you connected to: "
                     "connect with a name the certificate lists, or use ssl-mode=VERIFY_CA "
                     "when the certificate names no host (Cloud SQL)"
                   : "the server's certificate could not be matched to a host name: use "
                     "ssl-mode=VERIFY_CA";
    const std::vector<std::string> names = cert->host_names();
    if (names.empty())
        return fmt::format("this certificate names no host (subject {}), so no host name can "
                           "match it: Cloud SQL's server certificates are like this and need "
                           "ssl-mode=VERIFY_CA, which still checks that ssl-ca signed it",
                           cert->subject.empty() ? "empty" : cert->subject);
    return fmt::format("the server's certificate does not name the host you connected to ({}); "
                       "it names {}: use one of those as the URL's host, or ssl-mode=VERIFY_CA "
                       "to check the chain only",
                       opts.host, fmt::join(names, ", "));
}

// The chain ends in a root that ssl-ca (or the system) does not hold.
std::string unknown_ca_hint(const connect_options& opts, steady::time_point deadline) {
    const auto cert = peer_certificate_of(opts, deadline);
    const std::string roots = opts.ssl_ca.empty()
                                  ? fmt::format("the system's roots in {}", system_ca_path)
                                  : fmt::format("ssl-ca={}", opts.ssl_ca);
    const std::string issuer =
        cert && !cert->issuer.empty() ? fmt::format(" (its issuer: {})", cert->issuer) : "";
    return fmt::format(
        "the server's certificate{} does not chain to a trusted root in {}: pass the server's "
        "CA with ssl-ca=FILE. Azure: one file holding DigiCert Global Root CA, DigiCert "
        "Global Root G2 and Microsoft RSA Root CA 2017. Cloud SQL: the instance's "
        "server-ca.pem (gcloud sql instances describe INSTANCE "
        "--format='value(serverCaCert.cert)', or gcloud sql ssl server-ca-certs list)",
        issuer, roots);
}

// Why a connect attempt failed, told for the TLS cases that libmariadb words tersely. The
// texts matched are libmariadb's (name check) and OpenSSL's (chain check). A look at the
// certificate gets what is left until `deadline` (the connect's), so connect() stays within
// connect_timeout.
std::string tls_hint(std::string_view message, const connect_options& opts,
                     steady::time_point deadline) {
    const auto has = [&](std::string_view part) {
        return message.find(part) != std::string_view::npos;
    };
    if (has("Validation of SSL server certificate failed"))
        return name_mismatch_hint(opts, deadline);
    if (has("self-signed certificate") || has("self signed certificate") ||
        has("unable to get local issuer certificate") || has("unable to get issuer certificate") ||
        has("unable to verify the first certificate"))
        return unknown_ca_hint(opts, deadline);
    if (has("certificate has expired") || has("certificate is not yet valid"))
        return "the server's certificate is outside its validity period: check this machine's "
               "clock; if it is right, the server's certificate needs renewing";
    if (has("certificate"))
        return "the server's certificate failed verification: check that ssl-ca holds the CA "
               "that signed it";
    if (has("support"))
        return "the server does not offer TLS: enable TLS on the server";
    return "the TLS handshake failed: check ssl-mode and ssl-ca";
}

std::string connect_context(const connect_options& opts) {
    return fmt::format("cannot connect to {} (ssl-mode={})", opts.describe(),
                       to_string(opts.effective_tls_mode()));
}

// A connect error, refined by what we know of the attempt: a TLS error at this stage is a
// handshake problem (not a lost session), a refused login may be a TLS requirement, and an
// attempt that took the whole time libmariadb was given (`given`) timed out. A look at the
// certificate gets what is left until `deadline`.
void set_connect_error(MYSQL* mysql, const connect_options& opts, steady::duration elapsed,
                       std::chrono::seconds given, steady::time_point deadline, error_code& ec,
                       diagnostics& diag) {
    const std::string context = connect_context(opts);
    set_error_from(mysql, context, ec, diag);
    const unsigned number = mysql_errno(mysql);
    const std::string_view message = mysql_error(mysql);
    const bool took_whole_timeout = elapsed >= given * 9 / 10;

    std::string refined;
    error_class cls = diag.error_class();
    if (number == CR_SSL_CONNECTION_ERROR) {
        cls = error_class::tls;
        refined = fmt::format("{}: {}; {}", context, message, tls_hint(message, opts, deadline));
    } else if (number == CR_PLUGIN_NOT_ALLOWED) {
        // libmariadb's own message garbles the plugin's name, so it is left out.
        cls = error_class::auth;
        refined = fmt::format("{}: the server asked for an authentication plugin that is not "
                              "allowed here (mysql_clear_password or dialog send the password as "
                              "it is; allowed: {}), and the password was not sent. cloudmysql "
                              "answers such a request only over a unix socket or with "
                              "ssl-mode=VERIFY_IDENTITY; for Cloud SQL IAM, connect through the "
                              "Auth Proxy's unix socket",
                              context, safe_auth_plugins);
    } else if (number == ER_ACCESS_DENIED_ERROR &&
               opts.effective_tls_mode() == tls_mode::disabled) {
        refined = diag.client_message() +
                  "; a server with require_secure_transport=ON refuses connections without "
                  "TLS: use ssl-mode=REQUIRED or stronger";
    } else if (number == CR_CONNECTION_ERROR &&
               message.find("cannot be verified: 1040") != std::string_view::npos) {
        // Under TLS the server says "too many connections" before the handshake, and
        // libmariadb reports it as 2002 with the server's (unverifiable) words inside.
        cls = error_class::server_full;
        refined = fmt::format("{}: {}; {}", context, message, detail::hint_for(cls));
    } else if ((number == CR_CONNECTION_ERROR || number == CR_CONN_HOST_ERROR ||
                number == CR_SERVER_LOST || number == CR_SERVER_GONE_ERROR) &&
               took_whole_timeout) {
        cls = error_class::timeout;
        refined = fmt::format("{}: {}; no answer within connect-timeout={}s: check that the "
                              "host and port are right and that the network path is open",
                              context, message, opts.connect_timeout.count());
    } else if (number == CR_SERVER_LOST || number == CR_SERVER_GONE_ERROR) {
        cls = error_class::unreachable;
        refined = fmt::format("{}: {}; the server closed the connection during the handshake: "
                              "check that this port serves MySQL and that the server is "
                              "healthy",
                              context, message);
    }
    if (!refined.empty())
        diag = diagnostics(std::move(refined), diag.server_message(), diag.sqlstate(), cls);
}

// A pinned connect that libmariadb stopped in TLS before the login (nothing was sent).
void set_pin_error(const connect_options& opts, const tls_pin& pin, pin_failure failure,
                   error_code& ec, diagnostics& diag) {
    const std::string context = connect_context(opts);
    const std::string& provider = opts.credentials.name();
    if (failure == pin_failure::no_tls) {
        ec = client_errc::tls_not_negotiated;
        diag = diagnostics(
            fmt::format("{}: the server offers no TLS, so {}: enable TLS on the server", context,
                        pin.blind ? fmt::format("the credential provider '{}' was not asked and "
                                                "no token was sent",
                                                provider)
                                  : fmt::format("the token from the credential provider '{}' "
                                                "was not sent",
                                                provider)),
            {}, {}, error_class::tls);
        return;
    }
    ec = make_mysql_error_code(CR_SSL_CONNECTION_ERROR);
    diag = diagnostics(
        pin.blind
            ? fmt::format("{}: the server's certificate could not be read before the login, so "
                          "the credential provider '{}' was not asked and nothing was sent; the "
                          "next connect reads it again",
                          context, provider)
            : fmt::format("{}: the server showed one certificate when it was read before the "
                          "login and another to the login session (several servers behind one "
                          "address, or a certificate renewed just now), so the token from the "
                          "credential provider '{}' was not sent; the next connect reads it "
                          "again",
                          context, provider),
        {}, {}, error_class::tls);
}

// connect_timeout ran out before libmariadb could be given a whole second: say what took it.
void set_out_of_time_error(const connect_options& opts, steady::duration probing,
                           steady::duration waiting_for_token, error_code& ec, diagnostics& diag) {
    std::vector<std::string> parts;
    if (probing > steady::duration::zero())
        parts.push_back(
            fmt::format("reading the server's certificate took {}", seconds_text(probing)));
    if (waiting_for_token > steady::duration::zero())
        parts.push_back(fmt::format("the credential provider '{}' took {}", opts.credentials.name(),
                                    seconds_text(waiting_for_token)));
    const bool token_was_slow = waiting_for_token >= probing;
    ec = make_mysql_error_code(CR_CONNECTION_ERROR);
    diag = diagnostics(
        fmt::format("{}: connect-timeout={}s ran out before the login could start ({}); {}",
                    connect_context(opts), opts.connect_timeout.count(), fmt::join(parts, ", "),
                    token_was_slow
                        ? "a caching provider (cached_token_provider, command_token_provider) "
                          "keeps the token for the next connect; raise connect_timeout if the "
                          "provider is often this slow"
                        : "no answer in time: check that the host and port are right and that "
                          "the network path is open"),
        {}, {}, error_class::timeout);
}

// Under VERIFY_CA with a provider: the pin for this attempt, reading the server's certificate
// when none is pinned for its host and port. False (ec set) when the server offers no TLS.
bool choose_tls_pin(const connect_options& opts, const std::string& key,
                    steady::time_point deadline, tls_pin& pin, steady::duration& probing,
                    error_code& ec, diagnostics& diag) {
    pin.fingerprint = tls_pins::instance().find(key);
    if (!pin.fingerprint.empty())
        return true;
    const auto started = steady::now();
    const detail::tls_probe probe = detail::probe_tls(opts, deadline);
    probing += steady::now() - started;
    if (probe.offer == detail::tls_offer::not_offered) {
        set_client_error(client_errc::tls_not_negotiated,
                         fmt::format("{}: the server offers no TLS, so the credential provider "
                                     "'{}' was not asked and no token was sent: enable TLS on "
                                     "the server",
                                     connect_context(opts), opts.credentials.name()),
                         ec, diag);
        return false;
    }
    if (probe.certificate && !probe.certificate->sha1_fingerprint.empty()) {
        pin.fingerprint = probe.certificate->sha1_fingerprint;
        pin.fresh = true;
        tls_pins::instance().pin(key, pin.fingerprint);
        recent_certificates::instance().remember(key, probe.certificate);
    } else {
        pin.fingerprint = unmatchable_fingerprint;
        pin.blind = true;
    }
    return true;
}

// The provider's password, waited for at most until the connect's deadline. False (ec set)
// when it failed or did not come in time.
bool fetch_password(const connect_options& opts, steady::time_point deadline,
                    std::optional<std::string>& password, error_code& ec, diagnostics& diag) {
    std::string why;
    error_class cls = error_class::auth;
    try {
        password = opts.credentials(deadline);
        if (password->empty())
            why = " failed: it returned an empty password";
    } catch (const credential_timeout& e) {
        cls = error_class::timeout;
        why = fmt::format(" gave no token within connect_timeout ({} s); {}",
                          opts.connect_timeout.count(), e.what());
    } catch (const std::exception& e) {
        why = fmt::format(" failed: {}", e.what());
    }
    if (why.empty())
        return true;
    ec = client_errc::credential_provider_failed;
    diag = diagnostics(fmt::format("cannot connect to {}: the credential provider '{}'{}",
                                   opts.describe(), opts.credentials.name(), why),
                       {}, {}, cls);
    return false;
}

bool run_statement(MYSQL* mysql, std::string_view sql, std::string_view what, error_code& ec,
                   diagnostics& diag) {
    if (mysql_real_query(mysql, sql.data(), sql.size()) != 0) {
        set_error_from(mysql, fmt::format("{} '{}' failed", what, detail::excerpt(sql)), ec, diag);
        return false;
    }
    // Discard whatever it returned, so that the session is ready for the next command.
    do {
        if (MYSQL_RES* res = mysql_store_result(mysql))
            mysql_free_result(res);
        else if (mysql_field_count(mysql) != 0) {
            set_error_from(mysql, fmt::format("{} '{}' failed", what, detail::excerpt(sql)), ec,
                           diag);
            return false;
        }
    } while (mysql_next_result(mysql) == 0);
    if (mysql_errno(mysql) != 0) {
        set_error_from(mysql, fmt::format("{} '{}' failed", what, detail::excerpt(sql)), ec, diag);
        return false;
    }
    return true;
}

} // namespace

// In detail (sql_text.hpp), for the fuzz target tests/fuzz/fuzz_plain_select.cpp.
namespace detail {

// True when `sql` is a SELECT that reads and leaves nothing behind in the session: no user
// variable ('@'), no INTO, no sequence (NEXT VALUE, NEXTVAL, LASTVAL, SETVAL), no comment
// (which could hide executable text), and no function call but to the built-in functions and
// keywords below (a stored function could do anything; GET_LOCK and LAST_INSERT_ID(x) change
// the session without the server reporting it). Errs toward false: false only costs a reset.
bool plain_select(std::string_view sql) {
    const auto upper = [](char c) {
        return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    };
    // Bytes of multi-byte UTF-8 characters belong to words too: the server accepts them in
    // identifiers, so `éSUM(` names a function other than SUM.
    const auto word_char = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '$' || static_cast<unsigned char>(c) >= 0x80;
    };
    std::string text;
    text.reserve(sql.size());
    for (char c : sql)
        text += upper(c);
    if (text.find_first_of("@;#`\"") != std::string::npos || text.find("/*") != std::string::npos ||
        text.find("--") != std::string::npos)
        return false;
    // The keywords that may stand before '(', and the built-in functions, whose unqualified
    // calls never reach a stored function of the same name when '(' follows at once. Each
    // between spaces.
    constexpr std::string_view keywords_before_paren =
        " SELECT FROM WHERE IN EXISTS ANY ALL SOME AND OR NOT XOR ON USING AS JOIN HAVING WHEN "
        "THEN ELSE IS LIKE BY OVER UNION DISTINCT BETWEEN ";
    constexpr std::string_view builtin_functions =
        " COUNT SUM MIN MAX AVG COALESCE IFNULL NULLIF IF CONCAT CONCAT_WS LOWER UPPER LENGTH "
        "CHAR_LENGTH SUBSTRING SUBSTR TRIM ROUND FLOOR CEIL ABS CAST DATE YEAR MONTH DAY NOW "
        "CURDATE DATE_FORMAT DATEDIFF TIMESTAMPDIFF GROUP_CONCAT LEAST GREATEST JSON_EXTRACT "
        "JSON_OBJECT JSON_ARRAY JSON_ARRAYAGG ROW_NUMBER RANK DENSE_RANK ";
    const auto listed = [](std::string_view list, std::string_view word) {
        return list.find(fmt::format(" {} ", word)) != std::string_view::npos;
    };
    const auto blank = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    std::size_t pos = 0;
    std::vector<std::string_view> words;
    const std::string_view all(text);
    while (pos < all.size()) {
        if (!word_char(all[pos])) {
            if (all[pos] == '(') {
                // The word right before it (across any blanks), if any, must be a keyword, or
                // an unqualified built-in function right before the '(': with blanks between,
                // the server may take a built-in's name for a stored function (unless sql_mode
                // has IGNORE_SPACE).
                std::size_t end = pos;
                while (end > 0 && blank(all[end - 1]))
                    --end;
                std::size_t start = end;
                while (start > 0 && word_char(all[start - 1]))
                    --start;
                const std::string_view word = all.substr(start, end - start);
                const bool qualified = start > 0 && all[start - 1] == '.';
                if (!word.empty() && !listed(keywords_before_paren, word) &&
                    (qualified || end != pos || !listed(builtin_functions, word)))
                    return false;
            }
            ++pos;
            continue;
        }
        const std::size_t start = pos;
        while (pos < all.size() && word_char(all[pos]))
            ++pos;
        words.push_back(all.substr(start, pos - start));
    }
    if (words.empty() || words.front() != "SELECT")
        return false;
    for (std::string_view w : {"INTO", "VALUE", "NEXTVAL", "LASTVAL", "SETVAL", "LOCK"})
        if (std::find(words.begin(), words.end(), w) != words.end())
            return false;
    // Leading text before SELECT must be blank.
    std::size_t first = 0;
    while (first < all.size() && blank(all[first]))
        ++first;
    return all.substr(first).starts_with("SELECT");
}

} // namespace detail

namespace {

bool run_init_statements(MYSQL* mysql, const connect_options& opts, error_code& ec,
                         diagnostics& diag) {
    for (const auto& sql : opts.init_statements)
        if (!run_statement(mysql, sql, "init statement", ec, diag))
            return false;
    return true;
}

// What libmariadb knows of the session, read through mariadb_get_infov(): the MYSQL struct's
// fields are libmariadb's own business, and its layout is no promise.
unsigned long connection_info_bits(MYSQL* mysql, mariadb_value what) noexcept {
    unsigned long bits = 0;
    return mariadb_get_infov(mysql, what, &bits) == 0 ? bits : 0;
}

// The server's status flags from its last response (SERVER_STATUS_IN_TRANS, ...).
unsigned server_status(MYSQL* mysql) noexcept {
    unsigned status = 0;
    return mariadb_get_infov(mysql, MARIADB_CONNECTION_SERVER_STATUS, &status) == 0 ? status : 0;
}

// The current default database as libmariadb follows it (USE, mysql_select_db, the server's
// schema tracking); empty when there is none.
std::string_view current_database(MYSQL* mysql) noexcept {
    const char* db = nullptr;
    if (mariadb_get_infov(mysql, MARIADB_CONNECTION_SCHEMA, &db) != 0 || db == nullptr)
        return {};
    return db;
}

// Asks the server to flag every response after which the session differs (user and session
// variables, current database, temporary tables, SQL PREPARE, character set), and to report the
// current database with it (libmariadb follows the database from that). A server without the
// variable (before MySQL 5.7 / MariaDB 10.2) leaves tracking off; other errors fail.
bool enable_state_tracking(connection::impl& conn, error_code& ec, diagnostics& diag) {
    conn.tracking = false;
    MYSQL* mysql = conn.mysql;
    if ((connection_info_bits(mysql, MARIADB_CONNECTION_SERVER_CAPABILITIES) &
         CLIENT_SESSION_TRACKING) == 0 ||
        (connection_info_bits(mysql, MARIADB_CONNECTION_CLIENT_CAPABILITIES) &
         CLIENT_SESSION_TRACKING) == 0)
        return true;
    if (!run_statement(mysql,
                       "SET SESSION session_track_state_change = ON, session_track_schema = ON",
                       "enabling session-state tracking", ec, diag)) {
        if (ec.value() != ER_UNKNOWN_SYSTEM_VARIABLE)
            return false;
        ec.clear();
        diag.clear();
        return true;
    }
    conn.tracking = true;
    conn.dirty = false;
    return true;
}

// After execute(): the session may hold state when the server says it changed, a transaction
// is open (BEGIN, or autocommit off), or warnings are waiting for SHOW WARNINGS.
void note_session_after_execute(connection::impl& conn) {
    MYSQL* mysql = conn.mysql;
    if ((server_status(mysql) & (SERVER_SESSION_STATE_CHANGED | SERVER_STATUS_IN_TRANS)) != 0 ||
        mysql_warning_count(mysql) != 0)
        conn.dirty = true;
}

bool check_open(const connection::impl* impl, std::string_view what, error_code& ec,
                diagnostics& diag) {
    if (impl != nullptr && impl->mysql != nullptr)
        return true;
    set_client_error(client_errc::not_connected,
                     fmt::format("{}: the connection is not open: call connect() first", what), ec,
                     diag);
    return false;
}

result buffer_text_result(MYSQL* mysql, MYSQL_RES* res) {
    const unsigned count = mysql_num_fields(res);
    auto columns = detail::columns_of(mysql_fetch_fields(res), count);
    std::vector<row> rows;
    rows.reserve(static_cast<std::size_t>(mysql_num_rows(res)));
    MYSQL_FIELD* fields = mysql_fetch_fields(res);
    while (MYSQL_ROW r = mysql_fetch_row(res)) {
        const unsigned long* lengths = mysql_fetch_lengths(res);
        std::vector<value> values;
        values.reserve(count);
        for (unsigned i = 0; i < count; ++i)
            values.push_back(r[i] == nullptr ? value{}
                                             : detail::from_text(r[i], lengths[i], fields[i]));
        rows.emplace_back(std::move(values), columns);
    }
    return result(std::move(columns), std::move(rows), mysql_num_rows(res), mysql_insert_id(mysql),
                  mysql_warning_count(mysql));
}

} // namespace

connection::connection() noexcept = default;
connection::connection(const connect_options& opts) {
    connect(opts);
}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;
connection::~connection() = default;

void connection::connect(const connect_options& opts) {
    error_code ec;
    diagnostics diag;
    connect(opts, ec, diag);
    throw_on_error(ec, diag);
}

void connection::connect(const connect_options& opts, error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    opts.validate(); // bad options are a programming error: std::invalid_argument
    close();
    ensure_library_initialised();

    // One deadline for the whole connect: the look at the server's certificate, the wait for a
    // token, and libmariadb's connect, TLS handshake and login.
    const steady::time_point deadline = steady::now() + opts.connect_timeout;
    steady::duration probing{};
    steady::duration waiting_for_token{};
    const std::string key = server_key(opts);
    std::optional<std::string> password;
    if (!opts.credentials)
        password = opts.password;

    // At most two rounds: the second when a pinned certificate was renewed.
    for (int round = 0;; ++round) {
        tls_pin pin;
        if (needs_tls_pin(opts) && !choose_tls_pin(opts, key, deadline, pin, probing, ec, diag))
            return;
        if (!password && !pin.blind) {
            const auto asked = steady::now();
            const bool fetched = fetch_password(opts, deadline, password, ec, diag);
            waiting_for_token += steady::now() - asked;
            if (!fetched)
                return;
        }

        auto next = std::make_unique<impl>();
        next->options = opts;
        next->mysql = mysql_init(nullptr);
        if (next->mysql == nullptr)
            throw std::bad_alloc();
        MYSQL* mysql = next->mysql;
        apply_options(mysql, opts);
        if (!pin.fingerprint.empty())
            set_string_option(mysql, MARIADB_OPT_TLS_PEER_FP, pin.fingerprint);
        const unsigned given = libmariadb_connect_timeout(deadline);
        if (given == 0) {
            set_out_of_time_error(opts, probing, waiting_for_token, ec, diag);
            return;
        }
        set_option(mysql, MYSQL_OPT_CONNECT_TIMEOUT, given);

        const auto started = steady::now();
        const bool connected =
            mysql_real_connect(mysql, opts.unix_socket.empty() ? opts.host.c_str() : nullptr,
                               opts.user.c_str(), password ? password->c_str() : "",
                               opts.database.empty() ? nullptr : opts.database.c_str(), opts.port,
                               opts.unix_socket.empty() ? nullptr : opts.unix_socket.c_str(),
                               0) != nullptr;
        if (!connected) {
            if (!pin.fingerprint.empty() && mysql_errno(mysql) == CR_SSL_CONNECTION_ERROR) {
                if (!pin.blind)
                    tls_pins::instance().unpin(key, pin.fingerprint);
                const pin_failure failure = classify_pin_failure(mysql_error(mysql));
                if (failure == pin_failure::renewed && !pin.fresh && !pin.blind && round == 0)
                    continue; // read the new certificate and try once more
                if (failure != pin_failure::other) {
                    set_pin_error(opts, pin, failure, ec, diag);
                    return;
                }
            }
            set_connect_error(mysql, opts, steady::now() - started, std::chrono::seconds(given),
                              deadline, ec, diag);
            if (opts.credentials && diag.error_class() == error_class::auth) {
                opts.credentials.rejected(); // a cached token is stale: fetch a new one next time
                diag = diagnostics(fmt::format("{} (the password came from the credential "
                                               "provider '{}')",
                                               diag.client_message(), opts.credentials.name()),
                                   diag.server_message(), diag.sqlstate(), diag.error_class());
            }
            return;
        }

        const tls_mode mode = opts.effective_tls_mode();
        if (mode >= tls_mode::required && mysql_get_ssl_cipher(mysql) == nullptr) {
            set_client_error(client_errc::tls_not_negotiated,
                             fmt::format("connected to {} but the session is not encrypted "
                                         "although ssl-mode={}; the connection was closed before "
                                         "any query: enable TLS on the server",
                                         opts.describe(), to_string(mode)),
                             ec, diag);
            return;
        }
        if (!apply_keepalive(mysql, opts, ec, diag) ||
            !run_init_statements(mysql, opts, ec, diag) || !enable_state_tracking(*next, ec, diag))
            return;
        next->socket = static_cast<int>(mysql_get_socket(mysql));
        impl_ = std::move(next);
        return;
    }
}

bool connection::is_open() const noexcept {
    return impl_ && impl_->mysql != nullptr;
}

void connection::close() noexcept {
    impl_.reset();
}

result connection::query(std::string_view sql) {
    error_code ec;
    diagnostics diag;
    auto r = query(sql, ec, diag);
    throw_on_error(ec, diag);
    return r;
}

result connection::query(std::string_view sql, error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "query", ec, diag))
        return {};
    const detail::fault_watch watch(impl_->fault, diag);
    impl_->dirty = true; // text SQL can change the session in ways the server does not report
    MYSQL* mysql = impl_->mysql;
    const auto context = [&] { return fmt::format("query '{}' failed", detail::excerpt(sql)); };
    if (mysql_real_query(mysql, sql.data(), sql.size()) != 0) {
        set_error_from(mysql, context(), ec, diag);
        return {};
    }
    result first;
    bool have_first = false;
    do {
        MYSQL_RES* res = mysql_store_result(mysql);
        if (res == nullptr && mysql_field_count(mysql) != 0) {
            set_error_from(mysql, context(), ec, diag);
            return {};
        }
        if (!have_first) {
            first = res ? buffer_text_result(mysql, res)
                        : result(nullptr, {}, mysql_affected_rows(mysql), mysql_insert_id(mysql),
                                 mysql_warning_count(mysql));
            have_first = true;
        }
        if (res != nullptr)
            mysql_free_result(res);
    } while (mysql_next_result(mysql) == 0);
    if (mysql_errno(mysql) != 0) {
        set_error_from(mysql, context(), ec, diag);
        return {};
    }
    return first;
}

result connection::execute_span(std::string_view sql, std::span<const param> params) {
    error_code ec;
    diagnostics diag;
    auto r = execute_span(sql, params, ec, diag);
    throw_on_error(ec, diag);
    return r;
}

// Runs sql with params through the session's statement cache (prepared on first use), then
// consume(statement::impl&, ec, diag) reads the result. Keeps the cache and the session's
// "needs reset" judgement right on every way out, a throwing consume included.
template <class Consume>
void connection::run_cached(std::string_view sql, std::span<const param> params, error_code& ec,
                            diagnostics& diag, Consume&& consume) {
    auto& cache = impl_->statements;
    // libmariadb follows the default database (USE, mysql_select_db, the server's schema
    // tracking, which connect() turns on).
    const std::string_view database = current_database(impl_->mysql);
    if (database != impl_->statements_database) {
        cache.clear();
        impl_->statements_database = database;
    }
    // A second attempt only for a plain SELECT whose cached statement's columns changed.
    for (int attempt = 0;; ++attempt) {
        auto it = cache.find(sql);
        if (it == cache.end()) {
            const bool plain = detail::plain_select(sql);
            statement stmt = prepare_statement(*impl_, sql, ec, diag);
            if (ec) {
                impl_->dirty = true;
                return;
            }
            if (cache.size() >= impl::statement_cache_size)
                cache.clear();
            it = cache.emplace(std::string(sql), impl::cached_statement{std::move(stmt), plain})
                     .first;
        }
        const bool plain = it->second.plain_select;
        if (!plain)
            impl_->dirty = true;
        statement::impl& s = *it->second.stmt.impl_;
        const detail::fault_watch watch(impl_->fault, diag);
        if (detail::execute_prepared(s, params, ec, diag)) {
            try {
                consume(s, ec, diag);
            } catch (...) {
                impl_->dirty = true; // what the statement left is unknown: reset to be sure
                throw;
            }
            note_session_after_execute(*impl_);
            if (!ec || ec.category() == client_category())
                return; // the statement ran; our own reading error leaves it reusable
        }
        impl_->dirty = true; // the error stays readable with SHOW ERRORS
        // A statement that failed is prepared afresh next time rather than trusted again.
        cache.erase(it);
        if (ec.value() != CR_NEW_STMT_METADATA || ec.category() != mysql_category())
            return;
        // The result's columns changed since the statement was prepared (ALTER TABLE under a
        // SELECT *). libmariadb refuses the result after the server ran the statement, so
        // only a statement that changes nothing may simply run again.
        if (plain && attempt == 0) {
            ec.clear();
            diag.clear();
            continue;
        }
        diag = diagnostics(fmt::format("execute '{}' failed: the columns of its result changed "
                                       "since it was prepared (a table was altered); the "
                                       "statement ran on the server but its result was lost, "
                                       "and it will be prepared afresh: check whether it took "
                                       "effect before running it again",
                                       detail::excerpt(sql)),
                           {}, {}, diag.error_class());
        return;
    }
}

result connection::execute_span(std::string_view sql, std::span<const param> params, error_code& ec,
                                diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "execute", ec, diag))
        return {};
    result r;
    run_cached(sql, params, ec, diag, [&](statement::impl& s, error_code& e, diagnostics& d) {
        r = detail::buffer_result(s, e, d);
    });
    if (ec)
        return {};
    return r;
}

void connection::read_rows(std::string_view sql, std::span<const param> params,
                           const detail::row_reader& reader, error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), reader.keep_text ? "query_as" : "for_each_as", ec, diag))
        return;
    if (reader.keep_text) // the views the previous query_as() returned end here, as documented
        impl_->arena.clear();
    run_cached(sql, params, ec, diag, [&](statement::impl& s, error_code& e, diagnostics& d) {
        detail::read_typed(s, reader, impl_->arena, e, d);
    });
}

statement connection::prepare(std::string_view sql) {
    error_code ec;
    diagnostics diag;
    auto s = prepare(sql, ec, diag);
    throw_on_error(ec, diag);
    return s;
}

statement connection::prepare_statement(impl& conn, std::string_view sql, error_code& ec,
                                        diagnostics& diag) {
    const detail::fault_watch watch(conn.fault, diag);
    auto p = std::make_unique<statement::impl>();
    p->sql_excerpt = detail::excerpt(sql);
    p->fault = conn.fault;
    p->session = conn.session;
    p->stmt = mysql_stmt_init(conn.mysql);
    if (p->stmt == nullptr) {
        set_error_from(conn.mysql, "prepare failed", ec, diag);
        return {};
    }
    if (mysql_stmt_prepare(p->stmt, sql.data(), sql.size()) != 0) {
        set_error_from(p->stmt, fmt::format("prepare '{}' failed", p->sql_excerpt), ec, diag);
        return {};
    }
    return statement(std::move(p));
}

statement connection::prepare(std::string_view sql, error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "prepare", ec, diag))
        return {};
    // What the statement will do, and when, is out of sight: the session needs a reset.
    impl_->dirty = true;
    return prepare_statement(*impl_, sql, ec, diag);
}

void connection::ping() {
    error_code ec;
    diagnostics diag;
    ping(ec, diag);
    throw_on_error(ec, diag);
}

void connection::ping(error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "ping", ec, diag))
        return;
    const detail::fault_watch watch(impl_->fault, diag);
    if (mysql_ping(impl_->mysql) != 0)
        set_error_from(impl_->mysql, "ping failed", ec, diag);
}

void connection::reset() {
    error_code ec;
    diagnostics diag;
    reset(ec, diag);
    throw_on_error(ec, diag);
}

void connection::reset(error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "reset", ec, diag))
        return;
    const detail::fault_watch watch(impl_->fault, diag);
    impl_->dirty = true; // until the reset has finished
    const bool reset_done = mysql_reset_connection(impl_->mysql) == 0;
    // The reset dropped them on the server and libmariadb detached them: freed here without
    // a COM_STMT_CLOSE each.
    impl_->statements.clear();
    if (reset_done)
        impl_->session = std::make_shared<const bool>(true);
    if (!reset_done) {
        set_error_from(impl_->mysql, "reset failed", ec, diag);
        return;
    }
    // COM_RESET_CONNECTION keeps the current database: restore the one connect() chose.
    // libmariadb follows the database from USE and from the server's schema tracking.
    MYSQL* mysql = impl_->mysql;
    const std::string& database = impl_->options.database;
    const std::string_view current = current_database(mysql);
    // libmariadb follows a USE sent as text only through the server's schema tracking: without
    // it, select the database whatever libmariadb says.
    if (current != database || (!impl_->tracking && !database.empty())) {
        if (database.empty()) {
            set_client_error(client_errc::reset_incomplete,
                             fmt::format("reset: the session changed its database to '{}' and "
                                         "the connection was opened without one, which a reset "
                                         "cannot restore: open a new connection (a pool does "
                                         "this), or name a database in the URL",
                                         current),
                             ec, diag);
            return;
        }
        if (mysql_select_db(mysql, database.c_str()) != 0) {
            set_error_from(mysql,
                           fmt::format("reset: restoring the database '{}' failed", database), ec,
                           diag);
            return;
        }
    }
    if (run_init_statements(mysql, impl_->options, ec, diag))
        enable_state_tracking(*impl_, ec, diag);
}

bool connection::needs_reset() const noexcept {
    // A closed connection too: its reset fails, so that a pool replaces it.
    return !is_open() || !impl_->tracking || impl_->dirty;
}

std::string connection::server_version() const {
    if (!is_open())
        return {};
    const char* v = mysql_get_server_info(impl_->mysql);
    return v ? v : "";
}

server_flavor connection::flavor() const noexcept {
    if (!is_open())
        return server_flavor::mysql;
    const char* v = mysql_get_server_info(impl_->mysql);
    return v != nullptr && std::string_view(v).find("MariaDB") != std::string_view::npos
               ? server_flavor::mariadb
               : server_flavor::mysql;
}

std::uint64_t connection::connection_id() const noexcept {
    return is_open() ? mysql_thread_id(impl_->mysql) : 0;
}

std::string connection::tls_version() const {
    if (!is_open() || mysql_get_ssl_cipher(impl_->mysql) == nullptr)
        return {};
    const char* version = nullptr;
    if (mariadb_get_infov(impl_->mysql, MARIADB_CONNECTION_TLS_VERSION, &version) != 0 ||
        version == nullptr)
        return {};
    return version;
}

std::string connection::tls_cipher() const {
    if (!is_open())
        return {};
    const char* cipher = mysql_get_ssl_cipher(impl_->mysql);
    return cipher ? cipher : "";
}

error_class connection::fault() const noexcept {
    return impl_ ? *impl_->fault : error_class::none;
}

void connection::interrupt() const noexcept {
    if (impl_ && impl_->socket >= 0)
        ::shutdown(impl_->socket, SHUT_RDWR); // a blocked read returns at once: end of stream
}

std::optional<tcp_keepalive> connection::keepalive_in_effect() const {
    if (!is_open() || !impl_->options.unix_socket.empty())
        return std::nullopt;
    const int fd = static_cast<int>(mysql_get_socket(impl_->mysql));
    auto read = [fd](int level, int name) {
        int setting = 0;
        socklen_t size = sizeof setting;
        if (::getsockopt(fd, level, name, &setting, &size) != 0)
            throw std::system_error(errno, std::generic_category(),
                                    "cloudmysql: cannot read the socket's keepalive settings");
        return setting;
    };
    return tcp_keepalive{
        read(SOL_SOCKET, SO_KEEPALIVE) != 0, std::chrono::seconds(read(IPPROTO_TCP, TCP_KEEPIDLE)),
        std::chrono::seconds(read(IPPROTO_TCP, TCP_KEEPINTVL)), read(IPPROTO_TCP, TCP_KEEPCNT)};
}

const connect_options& connection::options() const noexcept {
    static const connect_options none;
    return impl_ ? impl_->options : none;
}

// ---- transaction -------------------------------------------------------------------------

transaction::transaction(connection& conn) : conn_(conn) {
    conn_.query("START TRANSACTION");
    active_ = true;
}

transaction::transaction(connection& conn, error_code& ec, diagnostics& diag) : conn_(conn) {
    conn_.query("START TRANSACTION", ec, diag);
    active_ = !ec;
}

transaction::~transaction() {
    if (!active_)
        return;
    error_code ec;
    diagnostics diag;
    conn_.query("ROLLBACK", ec, diag); // a lost session rolls back on the server anyway
}

void transaction::commit() {
    error_code ec;
    diagnostics diag;
    commit(ec, diag);
    throw_on_error(ec, diag);
}

// After COMMIT or ROLLBACK: the guard is done when the statement succeeded, or when the
// session is gone (the server rolls back the open transaction of a session that ends; a COMMIT
// lost on the way may have committed or not). A statement that failed on a live session
// leaves the transaction open there, so the guard stays active and its destructor tries
// ROLLBACK again.
void transaction::note_end(const error_code& ec) noexcept {
    if (!ec || !conn_.is_open() || conn_.fault() == error_class::connection_lost)
        active_ = false;
}

void transaction::commit(error_code& ec, diagnostics& diag) {
    conn_.query("COMMIT", ec, diag);
    note_end(ec);
}

void transaction::rollback() {
    error_code ec;
    diagnostics diag;
    rollback(ec, diag);
    throw_on_error(ec, diag);
}

void transaction::rollback(error_code& ec, diagnostics& diag) {
    conn_.query("ROLLBACK", ec, diag);
    note_end(ec);
}

} // namespace cloudmysql
