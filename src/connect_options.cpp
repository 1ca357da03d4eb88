// connect_options: the URL parser and printer, the TLS default rule and validation.
//
// The parser is written by hand against the one URL shape we accept; an error never quotes
// text that may be the user name or password (see url_text), because these messages end up in
// logs and crash reports.
#include <cloudmysql/connect_options.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cloudmysql {

namespace {

constexpr std::string_view url_syntax =
    "mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?PARAM=VALUE&...]";
constexpr std::string_view known_parameters =
    "ssl-mode, ssl-ca, connect-timeout, read-timeout, write-timeout, socket, keepalive, "
    "keepalive-idle, keepalive-interval, keepalive-count";
constexpr std::array<std::string_view, 10> parameter_names{
    "ssl-mode", "ssl-ca",    "connect-timeout", "read-timeout",       "write-timeout",
    "socket",   "keepalive", "keepalive-idle",  "keepalive-interval", "keepalive-count"};
constexpr std::string_view masked_password = "****";

// MySQL and MariaDB limit schema names to 64 characters.
constexpr std::size_t max_database_chars = 64;
// A DNS name is at most 253 characters; anything longer is a typo or a pasted blob.
constexpr std::size_t max_host_chars = 253;

constexpr std::chrono::seconds default_connect_timeout{3};
constexpr std::chrono::seconds max_timeout{3600};
// Linux's limits for TCP_KEEPIDLE / TCP_KEEPINTVL and TCP_KEEPCNT.
constexpr std::uint32_t max_keepalive_seconds = 32767;
constexpr std::uint32_t max_keepalive_count = 127;

[[noreturn]] void throw_url_error(std::string_view what) {
    throw std::invalid_argument(fmt::format("invalid URL: {}", what));
}

[[noreturn]] void throw_option_error(std::string_view what) {
    throw std::invalid_argument(fmt::format("connect_options: {}", what));
}

// ---------------------------------------------------------------------------------------------
// Character helpers. Locale-free on purpose: <cctype> depends on the C locale and takes int.

constexpr bool is_ascii_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

constexpr bool is_ascii_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// -1 when c is not a hex digit.
constexpr int hex_value(char c) noexcept {
    if (is_ascii_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    }
    return true;
}

// Digits only: no sign, no spaces, no hex. Values above `cap` come back as cap + 1 so that a
// long run of digits cannot overflow and still reads as "out of range".
std::optional<std::uint32_t> parse_unsigned(std::string_view text, std::uint32_t cap) noexcept {
    if (text.empty())
        return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (!is_ascii_digit(c))
            return std::nullopt;
        if (value <= cap)
            value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return static_cast<std::uint32_t>(value > cap ? std::uint64_t{cap} + 1 : value);
}

// ---------------------------------------------------------------------------------------------
// IP address parsing, shared by the URL parser (is it a valid IPv6 literal?) and is_local()
// (is it a loopback address?). Strict dotted-quad only: "127.1" or "0177.0.0.1" are accepted by
// inet_aton, but treating them as loopback would let an odd spelling relax the TLS default.

using ipv4_address = std::array<std::uint8_t, 4>;
using ipv6_address = std::array<std::uint16_t, 8>;

std::optional<ipv4_address> parse_ipv4(std::string_view text) noexcept {
    ipv4_address out{};
    for (std::size_t part = 0; part < out.size(); ++part) {
        std::size_t dot = text.find('.');
        bool last = part + 1 == out.size();
        if (last != (dot == std::string_view::npos))
            return std::nullopt;
        std::string_view digits = text.substr(0, dot);
        if (digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
            return std::nullopt;
        auto value = parse_unsigned(digits, 255);
        if (!value || *value > 255)
            return std::nullopt;
        out[part] = static_cast<std::uint8_t>(*value);
        if (!last)
            text.remove_prefix(dot + 1);
    }
    return out;
}

// Appends the colon-separated groups of `text` ("1:2:ab" or "ffff:1.2.3.4") to `groups`.
// A dotted IPv4 tail is allowed only where the address ends (allow_ipv4_tail).
bool parse_ipv6_groups(std::string_view text, bool allow_ipv4_tail, ipv6_address& groups,
                       std::size_t& count) noexcept {
    if (text.empty())
        return true;
    while (true) {
        std::size_t colon = text.find(':');
        std::string_view piece = text.substr(0, colon);
        bool last = colon == std::string_view::npos;
        if (last && allow_ipv4_tail && piece.find('.') != std::string_view::npos) {
            auto v4 = parse_ipv4(piece);
            if (!v4 || count + 2 > groups.size())
                return false;
            groups[count++] = static_cast<std::uint16_t>(((*v4)[0] << 8) | (*v4)[1]);
            groups[count++] = static_cast<std::uint16_t>(((*v4)[2] << 8) | (*v4)[3]);
            return true;
        }
        if (piece.empty() || piece.size() > 4 || count == groups.size())
            return false;
        unsigned value = 0;
        for (char c : piece) {
            int digit = hex_value(c);
            if (digit < 0)
                return false;
            value = value * 16 + static_cast<unsigned>(digit);
        }
        groups[count++] = static_cast<std::uint16_t>(value);
        if (last)
            return true;
        text.remove_prefix(colon + 1);
    }
}

// RFC 4291 section 2.2 text form, with at most one "::" and an optional dotted IPv4 tail.
// No zone index ("%eth0"): a server address never needs one.
std::optional<ipv6_address> parse_ipv6(std::string_view text) noexcept {
    std::size_t gap = text.find("::");
    ipv6_address head{};
    std::size_t head_count = 0;
    if (gap == std::string_view::npos) {
        if (!parse_ipv6_groups(text, true, head, head_count) || head_count != head.size()) {
            return std::nullopt;
        }
        return head;
    }
    std::string_view tail_text = text.substr(gap + 2);
    if (tail_text.find("::") != std::string_view::npos)
        return std::nullopt;
    ipv6_address tail{};
    std::size_t tail_count = 0;
    if (!parse_ipv6_groups(text.substr(0, gap), false, head, head_count) ||
        !parse_ipv6_groups(tail_text, true, tail, tail_count) ||
        head_count + tail_count >= head.size()) { // "::" stands for at least one zero group
        return std::nullopt;
    }
    ipv6_address out{};
    for (std::size_t i = 0; i < head_count; ++i)
        out[i] = head[i];
    for (std::size_t i = 0; i < tail_count; ++i)
        out[out.size() - tail_count + i] = tail[i];
    return out;
}

// ::1, or an IPv4-mapped loopback (::ffff:127.x.y.z), which reaches the same local server.
bool is_ipv6_loopback(const ipv6_address& a) noexcept {
    bool first_five_zero = a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 0;
    if (first_five_zero && a[5] == 0 && a[6] == 0 && a[7] == 1)
        return true;
    return first_five_zero && a[5] == 0xffff && (a[6] >> 8) == 127;
}

bool is_loopback_host(std::string_view host) noexcept {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2); // tolerate a bracketed host set in code
    }
    if (iequals(host, "localhost"))
        return true;
    if (auto v4 = parse_ipv4(host))
        return (*v4)[0] == 127;
    if (auto v6 = parse_ipv6(host))
        return is_ipv6_loopback(*v6);
    return false;
}

// ---------------------------------------------------------------------------------------------
// What an error may quote.
//
// A password with an unencoded '@' followed later by '/', '?' or ':' ("app:S3c@ss/word@db")
// makes the parser end the user info at the wrong '@', and what it then calls the host, port,
// path or a parameter is a piece of the password. Any text before the URL's last '@' may be
// user info under some reading, so an error never quotes it; only text after the last '@' is
// shown. When the text before the last '@' holds characters that a password must
// percent-encode, the message says so.

class url_text {
public:
    explicit url_text(std::string_view url) noexcept : url_(url) {
        const std::size_t last_at = url.rfind('@');
        if (last_at == std::string_view::npos)
            return;
        public_from_ = last_at + 1;
        const std::size_t scheme_end = url.substr(0, last_at).find("://");
        const std::size_t from = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
        advise_encoding_ = needs_encoding(url.substr(from, last_at - from));
    }

    /// Whether `part`, a view into the URL, lies wholly after the last '@' and may be shown.
    bool quotable(std::string_view part) const noexcept {
        const std::less_equal<const char*> not_after;
        return not_after(url_.data() + public_from_, part.data()) &&
               not_after(part.data() + part.size(), url_.data() + url_.size());
    }

    /// " 'part'" when `part` may be shown, "" otherwise: `what` + quote(part) reads well both
    /// ways ("port '99999' is out of range" or "port is out of range").
    std::string quote(std::string_view part) const {
        return quotable(part) ? fmt::format(" '{}'", part) : std::string();
    }

    /// Whether the byte at `index` may be shown.
    bool public_byte(std::size_t index) const noexcept { return index >= public_from_; }

    [[noreturn]] void fail(std::string_view what) const {
        if (!advise_encoding_)
            throw_url_error(what);
        throw_url_error(fmt::format(
            "{}; if the user name or password contains '@', '/', '?', ':', '#' or '%', write "
            "them percent-encoded as %40, %2F, %3F, %3A, %23 and %25",
            what));
    }

private:
    // '@', '/', '?' and '#' in user info end it early or late; so does a '%' that starts no
    // escape, and control characters are refused. One ':' separates user and password; a
    // second one is the password's.
    static bool needs_encoding(std::string_view userinfo) noexcept {
        bool colon = false;
        for (std::size_t i = 0; i < userinfo.size(); ++i) {
            const char c = userinfo[i];
            if (c == '@' || c == '/' || c == '?' || c == '#' ||
                static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                return true;
            if (c == ':') {
                if (colon)
                    return true;
                colon = true;
            }
            if (c == '%' && (i + 2 >= userinfo.size() || hex_value(userinfo[i + 1]) < 0 ||
                             hex_value(userinfo[i + 2]) < 0))
                return true;
        }
        return false;
    }

    std::string_view url_;
    std::size_t public_from_ = 0; // index just past the last '@'; 0 when there is none
    bool advise_encoding_ = false;
};

// ---------------------------------------------------------------------------------------------
// Percent-encoding.

// Decodes %XX escapes of `text` (a view into the URL). `component` names the part for the
// error message; the offending escape is quoted only where the URL may be shown.
std::string percent_decode(const url_text& u, std::string_view text, std::string_view component) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0) {
            u.fail(fmt::format("{} has an invalid percent-escape{}; expected '%' followed by two "
                               "hex digits (write a literal '%' as %25)",
                               component, u.quote(text.substr(i, 3))));
        }
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    // The C API takes NUL-terminated strings: a NUL would silently cut the value short.
    if (out.find('\0') != std::string::npos) {
        u.fail(
            fmt::format("{} contains %00 (a NUL character), which MySQL cannot accept", component));
    }
    return out;
}

constexpr bool is_unreserved(char c) noexcept {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// Escapes every byte that is neither unreserved nor listed in `keep`, so the result parses back
// to `text` exactly.
std::string percent_encode(std::string_view text, std::string_view keep) {
    constexpr std::string_view hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (is_unreserved(c) || keep.find(c) != std::string_view::npos) {
            out += c;
            continue;
        }
        auto byte = static_cast<unsigned char>(c);
        out += '%';
        out += hex[static_cast<std::size_t>(byte >> 4)];
        out += hex[static_cast<std::size_t>(byte & 0x0f)];
    }
    return out;
}

// What may stay literal in each part: RFC 3986 sub-delims, minus what our parser splits on
// (':' and '@' in userinfo; '&', '=', '+' in query values, the last to stay clear of form
// encoding). Paths keep '/' and ':' so that socket paths stay readable.
constexpr std::string_view keep_in_user = "!$'()*,;";
constexpr std::string_view keep_in_database = "!$'()*,;:@";
constexpr std::string_view keep_in_query_value = "!$'()*,;:@/";

// ---------------------------------------------------------------------------------------------
// URL parsing, one function per part, left to right.

// Rejects control characters (naming the first one's position) and fragments. A stray newline
// from a .env file would otherwise end up inside the database name or a parameter value.
void check_characters(const url_text& u, std::string_view url) {
    for (std::size_t i = 0; i < url.size(); ++i) {
        auto byte = static_cast<unsigned char>(url[i]);
        if (byte >= 0x20 && byte != 0x7f)
            continue;
        if (!u.public_byte(i)) {
            u.fail("a control character (a newline, a tab...) comes before the last '@', in the "
                   "user name or password; percent-encode it (a newline is %0A) or remove it");
        }
        u.fail(fmt::format("control character 0x{:02X} at position {}; percent-encode it or "
                           "remove it (a trailing newline?)",
                           byte, i));
    }
    // Not quoting the text after '#': with an unencoded '#' in the password it is a secret.
    if (url.find('#') != std::string_view::npos) {
        u.fail("'#' starts a fragment, which a connection URL cannot have; write '#' in a value "
               "as %23");
    }
}

bool is_scheme_char(char c) noexcept {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '+' || c == '-' || c == '.';
}

// Returns what follows "://".
std::string_view parse_scheme(const url_text& u, std::string_view url) {
    if (url.empty())
        u.fail(fmt::format("the URL is empty; expected {}", url_syntax));
    std::size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
        u.fail(fmt::format("missing scheme (no '://'); expected it to start with mysql:// or "
                           "mariadb://, as in {}",
                           url_syntax));
    }
    std::string_view scheme = url.substr(0, sep);
    if (iequals(scheme, "mysql") || iequals(scheme, "mariadb"))
        return url.substr(sep + 3);
    // Something that is not a scheme at all might be a user:password pasted in front.
    bool quotable = !scheme.empty() && scheme.size() <= 32 &&
                    std::all_of(scheme.begin(), scheme.end(), is_scheme_char);
    u.fail(fmt::format("scheme{} is not supported; expected mysql:// or mariadb://",
                       quotable ? u.quote(scheme) : std::string()));
}

// USER[:PASSWORD]; the ':' split comes before decoding so that %3A stays in the user name.
// Never quoted: all of it comes before the last '@'.
void parse_userinfo(const url_text& u, std::string_view userinfo, connect_options& opts) {
    std::size_t colon = userinfo.find(':');
    std::string_view raw_user = userinfo.substr(0, colon);
    if (raw_user.empty()) {
        u.fail(fmt::format("user is empty; expected {}", url_syntax));
    }
    opts.user = percent_decode(u, raw_user, "user");
    if (colon != std::string_view::npos) {
        opts.password = percent_decode(u, userinfo.substr(colon + 1), "password");
    }
}

void parse_port(const url_text& u, std::string_view text, connect_options& opts) {
    if (text.empty()) {
        u.fail("port is empty after ':'; give a port (1-65535) or remove the ':'");
    }
    auto port = parse_unsigned(text, 65535);
    if (!port)
        u.fail(fmt::format("port{} is not a number; expected 1-65535", u.quote(text)));
    if (*port == 0 || *port > 65535) {
        u.fail(fmt::format("port{} is out of range (1-65535)", u.quote(text)));
    }
    opts.port = static_cast<std::uint16_t>(*port);
}

// "[v6]" or "[v6]:port".
void parse_bracketed_host(const url_text& u, std::string_view hostport, connect_options& opts) {
    std::size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
        u.fail(fmt::format("unterminated '[' in host{}; expected an IPv6 address such as [::1] "
                           "or [::1]:3306",
                           u.quote(hostport)));
    }
    std::string_view address = hostport.substr(1, close - 1);
    if (!parse_ipv6(address)) {
        u.fail(fmt::format("host{} is not a valid IPv6 address; expected hex groups separated "
                           "by ':', such as [::1] or [2001:db8::1]",
                           u.quote(hostport.substr(0, close + 1))));
    }
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
        u.fail(fmt::format("unexpected text{} after ']' in host; expected ':PORT' or nothing",
                           u.quote(after)));
    }
    opts.host = std::string(address);
    if (!after.empty())
        parse_port(u, after.substr(1), opts);
}

bool is_host_char(char c) noexcept {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '.' || c == '_';
}

void parse_host(const url_text& u, std::string_view hostport, connect_options& opts) {
    if (!hostport.empty() && hostport.front() == '[') {
        parse_bracketed_host(u, hostport, opts);
        return;
    }
    std::size_t colon = hostport.find(':');
    bool several_colons =
        colon != std::string_view::npos && hostport.find(':', colon + 1) != std::string_view::npos;
    if (several_colons) {
        u.fail(fmt::format("host{} has several ':'; write an IPv6 address in brackets, such as "
                           "[::1]:3306",
                           u.quote(hostport)));
    }
    std::string_view host = hostport.substr(0, colon);
    auto bad = std::find_if_not(host.begin(), host.end(), is_host_char);
    if (bad != host.end()) {
        // A byte of a multi-byte character or a '%' escape is named by its value.
        auto byte = static_cast<unsigned char>(*bad);
        std::string what = byte >= 0x20 && byte < 0x7f ? fmt::format("'{}'", *bad)
                                                       : fmt::format("byte 0x{:02X}", byte);
        u.fail(fmt::format("host{} contains {}; expected a DNS name or IPv4 address (letters, "
                           "digits, '-', '.', '_') or an IPv6 address in brackets",
                           u.quote(host),
                           u.quotable(host) ? what : "a character a host name cannot have"));
    }
    if (host.size() > max_host_chars) {
        u.fail(fmt::format("host is {} characters long; a DNS name has at most {}", host.size(),
                           max_host_chars));
    }
    opts.host = std::string(host);
    if (colon != std::string_view::npos)
        parse_port(u, hostport.substr(colon + 1), opts);
}

// Counts UTF-8 code points (bytes that do not continue a sequence): MySQL's 64-character limit
// is in characters, and "é" is two bytes.
std::size_t utf8_length(std::string_view text) noexcept {
    std::size_t n = 0;
    for (char c : text) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80)
            ++n;
    }
    return n;
}

// The path after the authority, with its leading '/'.
void parse_database(const url_text& u, std::string_view path, connect_options& opts) {
    std::string_view raw = path.substr(1);
    if (raw.find('/') != std::string_view::npos) {
        u.fail(fmt::format("path{} has more than one segment; expected at most one /DATABASE",
                           u.quote(path)));
    }
    std::string database = percent_decode(u, raw, "database");
    if (database.find('/') != std::string::npos) {
        u.fail(fmt::format("database{} contains '/', which a database name cannot",
                           u.quotable(raw) ? fmt::format(" '{}'", database) : std::string()));
    }
    if (utf8_length(database) > max_database_chars) {
        u.fail(fmt::format("database name is {} characters long; MySQL allows at most {}",
                           utf8_length(database), max_database_chars));
    }
    opts.database = std::move(database);
}

std::optional<tls_mode> tls_mode_from_string(std::string_view text) noexcept {
    for (auto mode : {tls_mode::disabled, tls_mode::preferred, tls_mode::required,
                      tls_mode::verify_ca, tls_mode::verify_identity}) {
        if (iequals(text, to_string(mode)))
            return mode;
    }
    return std::nullopt;
}

// One KEY=VALUE of the query, as written (views into the URL) and with its value decoded.
struct parameter {
    std::string_view key;
    std::string_view raw_value;
    std::string value;
};

// Names the parameter and quotes its value in a message, or neither: a key before the last '@'
// may be a piece of the password ("?x=1@host"), and so may its value.
std::string subject(const url_text& u, const parameter& p) {
    return u.quotable(p.key) ? fmt::format("{} '{}'", p.key, p.raw_value)
                             : std::string("a parameter's value");
}

std::chrono::seconds parse_timeout(const url_text& u, const parameter& p,
                                   std::uint32_t min_seconds) {
    constexpr auto max_seconds = static_cast<std::uint32_t>(max_timeout.count());
    auto seconds = parse_unsigned(p.value, max_seconds);
    if (!seconds) {
        u.fail(fmt::format("{} is not a whole number of seconds; expected {}-{}", subject(u, p),
                           min_seconds, max_seconds));
    }
    if (*seconds < min_seconds || *seconds > max_seconds) {
        u.fail(fmt::format("{} is out of range ({}-{} seconds)", subject(u, p), min_seconds,
                           max_seconds));
    }
    return std::chrono::seconds{*seconds};
}

// Applies one decoded parameter; its key is already known to be valid.
void apply_parameter(const url_text& u, parameter p, connect_options& opts) {
    const std::string_view key = p.key;
    if (key == "ssl-mode") {
        auto mode = tls_mode_from_string(p.value);
        if (!mode) {
            u.fail(fmt::format("{} is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, "
                               "VERIFY_IDENTITY",
                               subject(u, p)));
        }
        opts.tls_mode = *mode;
    } else if (key == "ssl-ca") {
        opts.ssl_ca = std::move(p.value);
    } else if (key == "connect-timeout") {
        opts.connect_timeout = parse_timeout(u, p, 1);
    } else if (key == "read-timeout") {
        opts.read_timeout = parse_timeout(u, p, 0);
    } else if (key == "write-timeout") {
        opts.write_timeout = parse_timeout(u, p, 0);
    } else if (key == "keepalive") {
        if (iequals(p.value, "on") || p.value == "1" || iequals(p.value, "true"))
            opts.keepalive.enabled = true;
        else if (iequals(p.value, "off") || p.value == "0" || iequals(p.value, "false"))
            opts.keepalive.enabled = false;
        else
            u.fail(fmt::format("{} is not on or off", subject(u, p)));
    } else if (key == "keepalive-idle" || key == "keepalive-interval") {
        auto seconds = parse_unsigned(p.value, max_keepalive_seconds);
        if (!seconds || *seconds == 0 || *seconds > max_keepalive_seconds) {
            u.fail(fmt::format("{} is not a number of seconds from 1 to {}", subject(u, p),
                               max_keepalive_seconds));
        }
        (key == "keepalive-idle" ? opts.keepalive.idle : opts.keepalive.interval) =
            std::chrono::seconds{*seconds};
    } else if (key == "keepalive-count") {
        auto count = parse_unsigned(p.value, max_keepalive_count);
        if (!count || *count == 0 || *count > max_keepalive_count) {
            u.fail(
                fmt::format("{} is not a number from 1 to {}", subject(u, p), max_keepalive_count));
        }
        opts.keepalive.count = static_cast<int>(*count);
    } else {
        opts.unix_socket = std::move(p.value);
    }
}

bool is_known_parameter(std::string_view key) noexcept {
    return std::find(parameter_names.begin(), parameter_names.end(), key) != parameter_names.end();
}

// KEY=VALUE pairs separated by '&'. Keys are matched exactly; a value of an unknown key is never
// quoted, because it might be a password someone tried to pass as "?password=...".
void parse_query(const url_text& u, std::string_view query, connect_options& opts) {
    if (query.empty())
        return; // a bare trailing '?'
    std::array<std::string_view, parameter_names.size()> seen{};
    std::size_t seen_count = 0;
    while (true) {
        std::size_t amp = query.find('&');
        std::string_view param = query.substr(0, amp);
        std::size_t eq = param.find('=');
        if (param.empty()) {
            u.fail("empty parameter (a stray '&' or '?'); expected KEY=VALUE pairs separated by "
                   "'&'");
        }
        std::string_view key = param.substr(0, eq);
        if (key.empty())
            u.fail("parameter without a name ('=' at its start)");
        if (!is_known_parameter(key)) {
            u.fail(fmt::format("unknown parameter{}; known parameters: {}", u.quote(key),
                               known_parameters));
        }
        if (std::find(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(seen_count), key) !=
            seen.begin() + static_cast<std::ptrdiff_t>(seen_count)) {
            u.fail(fmt::format("parameter{} is given twice; give it once", u.quote(key)));
        }
        seen[seen_count++] = key;
        if (eq == std::string_view::npos || eq + 1 == param.size()) {
            u.fail(u.quotable(key)
                       ? fmt::format("parameter '{0}' has no value; expected {0}=VALUE", key)
                       : std::string("a parameter has no value; expected KEY=VALUE"));
        }
        parameter p{key, param.substr(eq + 1), {}};
        p.value =
            percent_decode(u, p.raw_value, u.quotable(key) ? key : std::string_view("a parameter"));
        apply_parameter(u, std::move(p), opts);
        if (amp == std::string_view::npos)
            return;
        query.remove_prefix(amp + 1);
    }
}

} // namespace

std::string_view to_string(tls_mode mode) noexcept {
    switch (mode) {
    case tls_mode::disabled:
        return "DISABLED";
    case tls_mode::preferred:
        return "PREFERRED";
    case tls_mode::required:
        return "REQUIRED";
    case tls_mode::verify_ca:
        return "VERIFY_CA";
    case tls_mode::verify_identity:
        return "VERIFY_IDENTITY";
    }
    return "UNKNOWN"; // only reachable with a value cast from an out-of-range integer
}

tls_mode connect_options::effective_tls_mode() const noexcept {
    if (tls_mode)
        return *tls_mode;
    // Loopback traffic never leaves the machine, and local test servers rarely have a
    // certificate for "localhost"; anything else gets full verification by default. A token
    // goes over TCP only to a verified server, loopback included (see validate()).
    if (!unix_socket.empty() || (is_local() && !credentials))
        return tls_mode::preferred;
    return tls_mode::verify_identity;
}

bool connect_options::is_local() const noexcept {
    return !unix_socket.empty() || is_loopback_host(host);
}

void connect_options::validate() const {
    if (host.empty() && unix_socket.empty()) {
        throw_option_error("host is empty and no unix_socket is set");
    }
    if (user.empty())
        throw_option_error("user is empty; set the account name to log in as");
    if (port == 0)
        throw_option_error("port is 0; expected 1-65535");
    if (connect_timeout < std::chrono::seconds{1} || connect_timeout > max_timeout) {
        throw_option_error(fmt::format("connect_timeout is {} s; expected 1 s to {} s",
                                       connect_timeout.count(), max_timeout.count()));
    }
    auto check_io_timeout = [](std::string_view name, std::chrono::seconds value) {
        if (value < std::chrono::seconds{0} || value > max_timeout) {
            throw_option_error(fmt::format("{} is {} s; expected 0 (no limit) to {} s", name,
                                           value.count(), max_timeout.count()));
        }
    };
    check_io_timeout("read_timeout", read_timeout);
    check_io_timeout("write_timeout", write_timeout);
    auto check_keepalive_seconds = [](std::string_view name, std::chrono::seconds value) {
        if (value < std::chrono::seconds{1} || value > std::chrono::seconds{max_keepalive_seconds})
            throw_option_error(fmt::format("keepalive.{} is {} s; expected 1 s to {} s", name,
                                           value.count(), max_keepalive_seconds));
    };
    check_keepalive_seconds("idle", keepalive.idle);
    check_keepalive_seconds("interval", keepalive.interval);
    if (keepalive.count < 1 || keepalive.count > static_cast<int>(max_keepalive_count)) {
        throw_option_error(fmt::format("keepalive.count is {}; expected 1 to {}", keepalive.count,
                                       max_keepalive_count));
    }
    // A credential provider hands out tokens that the server may ask for in cleartext
    // (mysql_clear_password): they go only where nobody can read or intercept them.
    if (credentials && unix_socket.empty() && effective_tls_mode() < tls_mode::verify_ca) {
        throw_option_error(fmt::format(
            "the credential provider '{}' would send its token with ssl-mode={}, where it can be "
            "read or intercepted; use ssl-mode=VERIFY_CA or VERIFY_IDENTITY (with ssl-ca naming "
            "the server's CA), or a unix socket",
            credentials.name(), to_string(effective_tls_mode())));
    }
}

connect_options connect_options::from_url(std::string_view url) {
    const url_text u(url);
    check_characters(u, url);
    std::string_view rest = parse_scheme(u, url);

    // The authority ends at the first '/' or '?'. A password must percent-encode those, and
    // '@' too, but we split at the last '@' so that an unencoded '@' in the password still works.
    std::size_t authority_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, authority_end);
    std::string_view after =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
    std::size_t at = authority.rfind('@');
    if (at == std::string_view::npos)
        u.fail("missing user: write mysql://USER[:PASSWORD]@HOST...");

    connect_options opts;
    parse_userinfo(u, authority.substr(0, at), opts);
    parse_host(u, authority.substr(at + 1), opts);

    std::size_t question = after.find('?');
    std::string_view path = after.substr(0, question);
    if (!path.empty())
        parse_database(u, path, opts);
    if (question != std::string_view::npos)
        parse_query(u, after.substr(question + 1), opts);

    if (!opts.unix_socket.empty()) {
        // The socket is the address: a host or port in front of it is unused, and dropping them
        // keeps to_url() and describe() from showing an address that is not used.
        opts.host.clear();
        opts.port = default_port;
    } else if (opts.host.empty()) {
        u.fail(fmt::format("missing host; expected {} or mysql://USER@/DATABASE?socket=/PATH",
                           url_syntax));
    }
    return opts;
}

std::optional<connect_options> connect_options::from_env(const char* name) {
    if (name == nullptr)
        throw std::invalid_argument("from_env: the variable name is null");
    // std::getenv is not synchronised with setenv; read the environment at start-up.
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0')
        return std::nullopt;
    try {
        return from_url(value);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("{}: {}", name, e.what()));
    }
}

std::string connect_options::to_url() const {
    std::string url = "mysql://";
    url += percent_encode(user, keep_in_user);
    if (!password.empty() || credentials) {
        url += ':';
        url += masked_password;
    }
    url += '@';
    if (unix_socket.empty()) {
        bool ipv6 = host.find(':') != std::string::npos;
        url += ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
    }
    if (!database.empty() || !unix_socket.empty()) {
        url += '/';
        url += percent_encode(database, keep_in_database);
    }

    char separator = '?';
    auto add_parameter = [&](std::string_view key, std::string_view value) {
        url += separator;
        url += key;
        url += '=';
        url += percent_encode(value, keep_in_query_value);
        separator = '&';
    };
    if (!unix_socket.empty())
        add_parameter("socket", unix_socket);
    if (tls_mode)
        add_parameter("ssl-mode", to_string(*tls_mode));
    if (!ssl_ca.empty())
        add_parameter("ssl-ca", ssl_ca);
    if (connect_timeout != default_connect_timeout) {
        add_parameter("connect-timeout", std::to_string(connect_timeout.count()));
    }
    if (read_timeout.count() != 0) {
        add_parameter("read-timeout", std::to_string(read_timeout.count()));
    }
    if (write_timeout.count() != 0) {
        add_parameter("write-timeout", std::to_string(write_timeout.count()));
    }
    const tcp_keepalive default_keepalive;
    if (!keepalive.enabled)
        add_parameter("keepalive", "off");
    if (keepalive.idle != default_keepalive.idle)
        add_parameter("keepalive-idle", std::to_string(keepalive.idle.count()));
    if (keepalive.interval != default_keepalive.interval)
        add_parameter("keepalive-interval", std::to_string(keepalive.interval.count()));
    if (keepalive.count != default_keepalive.count)
        add_parameter("keepalive-count", std::to_string(keepalive.count));
    return url;
}

std::string connect_options::describe() const {
    std::string label = user + '@';
    if (!unix_socket.empty()) {
        label += "unix:";
        label += unix_socket;
    } else if (host.find(':') != std::string::npos) {
        label += fmt::format("[{}]:{}", host, port);
    } else {
        label += fmt::format("{}:{}", host, port);
    }
    if (!database.empty()) {
        label += '/';
        label += database;
    }
    return label;
}

std::ostream& operator<<(std::ostream& os, const connect_options& opts) {
    return os << opts.to_url();
}

} // namespace cloudmysql
