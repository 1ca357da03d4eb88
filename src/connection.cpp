// connection and transaction over libmariadb.
#include "greeting.hpp"
#include "mysql_glue.hpp"
#include "peer_certificate.hpp"

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
    set_option(mysql, MYSQL_OPT_CONNECT_TIMEOUT,
               static_cast<unsigned>(opts.connect_timeout.count()));
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
    return set(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(k.idle.count()), "TCP_KEEPIDLE") &&
           set(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(k.interval.count()), "TCP_KEEPINTVL") &&
           set(IPPROTO_TCP, TCP_KEEPCNT, k.count, "TCP_KEEPCNT") &&
           set(SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
}

using steady = std::chrono::steady_clock;

// The server's certificate, when a TCP connection of our own can fetch it by `deadline`
// (error path only). Kept for 5 minutes per host and port: each fetch is a session that never
// logs in, which MySQL counts against max_connect_errors, and a pool retrying against a
// misconfigured CA would otherwise double them.
std::optional<detail::peer_certificate> peer_certificate_of(const connect_options& opts,
                                                            steady::time_point deadline) {
    if (!opts.unix_socket.empty() || opts.host.empty() || deadline <= steady::now())
        return std::nullopt;
    struct fetched {
        steady::time_point at;
        std::optional<detail::peer_certificate> certificate;
    };
    static std::mutex mutex;
    static std::map<std::string, fetched> recent;
    constexpr auto keep_for = std::chrono::minutes(5);
    const std::string key = fmt::format("{}:{}", opts.host, opts.port);
    {
        const std::lock_guard lock(mutex);
        const auto it = recent.find(key);
        if (it != recent.end() && steady::now() - it->second.at < keep_for)
            return it->second.certificate;
    }
    auto certificate = detail::fetch_peer_certificate(opts, deadline);
    const std::lock_guard lock(mutex);
    if (recent.size() >= 64)
        recent.clear();
    recent.insert_or_assign(key, fetched{steady::now(), certificate});
    return certificate;
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
// certificate gets what is left of connect_timeout, so connect() stays within it.
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

// A connect error, refined by what we know of the attempt: a TLS error at this stage is a
// handshake problem (not a lost session), a refused login may be a TLS requirement, and an
// attempt that took the whole connect_timeout timed out.
void set_connect_error(MYSQL* mysql, const connect_options& opts,
                       std::chrono::steady_clock::duration elapsed, error_code& ec,
                       diagnostics& diag) {
    const std::string context = fmt::format("cannot connect to {} (ssl-mode={})", opts.describe(),
                                            to_string(opts.effective_tls_mode()));
    set_error_from(mysql, context, ec, diag);
    const unsigned number = mysql_errno(mysql);
    const std::string_view message = mysql_error(mysql);
    const bool took_whole_timeout = elapsed >= opts.connect_timeout * 9 / 10;

    std::string refined;
    error_class cls = diag.error_class();
    if (number == CR_SSL_CONNECTION_ERROR) {
        cls = error_class::tls;
        refined =
            fmt::format("{}: {}; {}", context, message,
                        tls_hint(message, opts, steady::now() + (opts.connect_timeout - elapsed)));
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

    auto next = std::make_unique<impl>();
    next->options = opts;
    next->mysql = mysql_init(nullptr);
    if (next->mysql == nullptr)
        throw std::bad_alloc();
    MYSQL* mysql = next->mysql;
    apply_options(mysql, opts);

    std::string password = opts.password;
    if (opts.credentials && opts.unix_socket.empty() &&
        opts.effective_tls_mode() != tls_mode::verify_identity &&
        detail::probe_tls_offer(opts) == detail::tls_offer::not_offered) {
        set_client_error(
            client_errc::tls_not_negotiated,
            fmt::format("cannot connect to {} (ssl-mode={}): the server offers no TLS, "
                        "so the credential provider '{}' was not asked and no token "
                        "was sent: enable TLS on the server",
                        opts.describe(), to_string(opts.effective_tls_mode()),
                        opts.credentials.name()),
            ec, diag);
        return;
    }
    if (opts.credentials) {
        std::string why;
        try {
            password = opts.credentials();
            if (password.empty())
                why = "it returned an empty password";
        } catch (const std::exception& e) {
            why = e.what();
        }
        if (!why.empty()) {
            set_client_error(client_errc::credential_provider_failed,
                             fmt::format("cannot connect to {}: the credential provider '{}' "
                                         "failed: {}",
                                         opts.describe(), opts.credentials.name(), why),
                             ec, diag);
            return;
        }
    }

    const auto started = std::chrono::steady_clock::now();
    const bool connected =
        mysql_real_connect(
            mysql, opts.unix_socket.empty() ? opts.host.c_str() : nullptr, opts.user.c_str(),
            password.c_str(), opts.database.empty() ? nullptr : opts.database.c_str(), opts.port,
            opts.unix_socket.empty() ? nullptr : opts.unix_socket.c_str(), 0) != nullptr;
    if (!connected) {
        set_connect_error(mysql, opts, std::chrono::steady_clock::now() - started, ec, diag);
        if (opts.credentials && diag.error_class() == error_class::auth) {
            opts.credentials.rejected(); // a cached token is stale: fetch a new one next time
            diag = diagnostics(fmt::format("{} (the password came from the credential provider "
                                           "'{}')",
                                           diag.client_message(), opts.credentials.name()),
                               diag.server_message(), diag.sqlstate(), diag.error_class());
        }
        return;
    }

    const tls_mode mode = opts.effective_tls_mode();
    if (mode >= tls_mode::required && mysql_get_ssl_cipher(mysql) == nullptr) {
        set_client_error(client_errc::tls_not_negotiated,
                         fmt::format("connected to {} but the session is not encrypted although "
                                     "ssl-mode={}; the connection was closed before any query: "
                                     "enable TLS on the server",
                                     opts.describe(), to_string(mode)),
                         ec, diag);
        return;
    }
    if (!apply_keepalive(mysql, opts, ec, diag) || !run_init_statements(mysql, opts, ec, diag) ||
        !enable_state_tracking(*next, ec, diag))
        return;
    impl_ = std::move(next);
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

result connection::execute_span(std::string_view sql, std::span<const param> params, error_code& ec,
                                diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!check_open(impl_.get(), "execute", ec, diag))
        return {};
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
            const bool plain = plain_select(sql);
            statement stmt = prepare_statement(*impl_, sql, ec, diag);
            if (ec) {
                impl_->dirty = true;
                return {};
            }
            if (cache.size() >= impl::statement_cache_size)
                cache.clear();
            it = cache.emplace(std::string(sql), impl::cached_statement{std::move(stmt), plain})
                     .first;
        }
        const bool plain = it->second.plain_select;
        if (!plain)
            impl_->dirty = true;
        result r = it->second.stmt.execute_span(params, ec, diag);
        if (!ec) {
            note_session_after_execute(*impl_);
            return r;
        }
        impl_->dirty = true; // the error stays readable with SHOW ERRORS
        // A statement that failed is prepared afresh next time rather than trusted again.
        cache.erase(it);
        if (ec.value() != CR_NEW_STMT_METADATA || ec.category() != mysql_category())
            return r;
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
        return r;
    }
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
