// Fuzz target: connect_options::from_url() on the input as it is, and on a URL built from it
// as SCHEME + USER + ':' + PASSWORD + '@' + REST. Properties, each checked with a crash:
//
// - from_url throws nothing but std::invalid_argument (and validate() nothing else either);
// - its message quotes nothing before the URL's last '@' (user info under some reading): the
//   message stays the same when the bytes there change to others the parser cannot tell apart
//   (see disguise()), so no byte of them can be in it;
// - a URL that parses prints without its password: to_url(), describe() and fmt are the same
//   whatever the password, and to_url() masks it;
// - round trip: from_url(to_url(o)) gives every field of o back (the password as "****"), and
//   prints the same URL again.
#include <cloudmysql/connect_options.hpp>

#include <fmt/format.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using cloudmysql::connect_options;

[[noreturn]] void broken(std::string_view property, std::string_view url,
                         std::string_view detail = {}) {
    std::fprintf(stderr, "property broken: %.*s\n  url: %.*s\n  %.*s\n",
                 static_cast<int>(property.size()), property.data(), static_cast<int>(url.size()),
                 url.data(), static_cast<int>(detail.size()), detail.data());
    std::abort();
}

struct outcome {
    std::optional<connect_options> options; // when it parses
    std::string message;                    // when it does not
};

outcome parse(std::string_view url) {
    try {
        return {connect_options::from_url(url), {}};
    } catch (const std::invalid_argument& e) {
        return {std::nullopt, e.what()};
    }
    // Any other exception escapes LLVMFuzzerTestOneInput: libFuzzer reports it as a crash.
}

// The URL with every byte before its last '@' that the parser treats only by its class
// swapped for another of the same class: g/j/x/z and G/J/X/Z (letters, not hex digits, in no
// keyword the parser knows) rotate among themselves, and bytes from 0x80 flip their lowest bit
// (which keeps UTF-8 lead and continuation bytes apart). The parser cannot tell the two URLs
// apart, so their messages differ only where one quotes those bytes.
std::string disguise(std::string_view url) {
    std::string out(url);
    const std::size_t last_at = url.rfind('@');
    if (last_at == std::string_view::npos)
        return out;
    constexpr std::string_view lower = "gjxz";
    constexpr std::string_view upper = "GJXZ";
    for (std::size_t i = 0; i < last_at; ++i) {
        char& c = out[i];
        if (auto p = lower.find(c); p != std::string_view::npos)
            c = lower[(p + 1) % lower.size()];
        else if (auto q = upper.find(c); q != std::string_view::npos)
            c = upper[(q + 1) % upper.size()];
        else if (static_cast<unsigned char>(c) >= 0x80)
            c = static_cast<char>(static_cast<unsigned char>(c) ^ 0x01U);
    }
    return out;
}

void check_same_fields(const connect_options& a, const connect_options& b, std::string_view url) {
    if (a.host != b.host || a.port != b.port || a.unix_socket != b.unix_socket ||
        a.user != b.user || a.database != b.database || a.tls_mode != b.tls_mode ||
        a.ssl_ca != b.ssl_ca || a.connect_timeout != b.connect_timeout ||
        a.read_timeout != b.read_timeout || a.write_timeout != b.write_timeout ||
        !(a.keepalive == b.keepalive) || a.init_statements != b.init_statements)
        broken("from_url(to_url(o)) differs from o", url, b.to_url());
}

void check(std::string_view url) {
    const outcome first = parse(url);
    const std::string twin = disguise(url);
    const outcome second = parse(twin);
    if (first.options.has_value() != second.options.has_value() || first.message != second.message)
        broken("the message quotes text from before the last '@'", url,
               fmt::format("{}\n  and for {}: {}", first.message, twin, second.message));
    if (!first.options)
        return;

    const connect_options& o = *first.options;
    try {
        o.validate();
    } catch (const std::invalid_argument&) {
        // A URL may hold values that validate() refuses; only the exception type matters here.
    }

    // The printed forms do not depend on the password.
    connect_options other = o;
    other.password = o.password.empty() ? std::string() : o.password + "-other";
    const std::string printed = o.to_url();
    if (printed != other.to_url() || o.describe() != other.describe() ||
        fmt::format("{}", o) != printed)
        broken("a printed form depends on the password", url, printed);
    if (!o.password.empty() && printed.find(":****@") == std::string::npos)
        broken("to_url() does not mask the password", url, printed);

    const outcome again = parse(printed);
    if (!again.options)
        broken("to_url() printed a URL that does not parse", url,
               fmt::format("{}\n  {}", printed, again.message));
    check_same_fields(o, *again.options, url);
    if (again.options->password != (o.password.empty() ? "" : "****"))
        broken("the reparsed password is not the mask", url, printed);
    if (again.options->to_url() != printed)
        broken("to_url() is not a fixed point", url, printed);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    check(raw);

    // The same bytes as the parts of a URL with user info, so that most inputs reach the host,
    // path and parameter parsers with a password in front of them.
    FuzzedDataProvider provider(data, size);
    constexpr std::array<std::string_view, 6> schemes = {"mysql://",    "mariadb://", "MySQL://",
                                                         "postgres://", "mysql:/",    ""};
    std::string url(schemes[provider.ConsumeIntegralInRange<std::size_t>(0, schemes.size() - 1)]);
    url += provider.ConsumeRandomLengthString(32);
    url += ':';
    url += provider.ConsumeRandomLengthString(64);
    url += '@';
    url += provider.ConsumeRemainingBytesAsString();
    check(url);
    return 0;
}
