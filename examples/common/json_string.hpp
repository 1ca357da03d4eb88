// Shared by the example programs that print JSON (cloudmysql-migrate, cloudmysql-doctor).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace cloudmysql_examples {

/// `s` as a JSON string literal: quotes and backslashes escaped, control characters as \uXXXX
/// (RFC 8259 requires no more). Bytes from 0x80 pass through: the text is taken to be UTF-8.
inline std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\')
            out += {'\\', c};
        else if (static_cast<unsigned char>(c) < 0x20)
            out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        else
            out += c;
    }
    return out + '"';
}

} // namespace cloudmysql_examples
