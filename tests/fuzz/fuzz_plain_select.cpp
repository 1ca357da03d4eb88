// Fuzz target: detail::plain_select(), which decides whether a statement run through
// connection::execute() can leave the session as it was (no reset needed). A wrong "true"
// would hand the next borrower of a pooled connection a session with someone else's state.
// Properties, each checked with a crash:
//
// - no UB, and the same answer twice;
// - an accepted statement holds none of ';' (a second statement), '@' (user variables), '#',
//   "--" or "/*" (comments, which may hide executable text), '`' or '"', and starts with the
//   word SELECT after blanks;
// - the answer ignores letter case (the server does) and blanks around the statement;
// - appending any of the refused characters makes the answer false.
#include "sql_text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using cloudmysql::detail::plain_select;

[[noreturn]] void broken(std::string_view property, std::string_view sql) {
    std::fprintf(stderr, "property broken: %.*s\n  sql: %.*s\n", static_cast<int>(property.size()),
                 property.data(), static_cast<int>(sql.size()), sql.data());
    std::abort();
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_word_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

std::string with_case(std::string_view text, bool upper) {
    std::string out(text);
    for (char& c : out) {
        if (upper && c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view sql(reinterpret_cast<const char*>(data), size);
    const bool plain = plain_select(sql);
    if (plain_select(sql) != plain)
        broken("two answers for the same statement", sql);

    if (plain) {
        if (sql.find_first_of(";@#`\"") != std::string_view::npos ||
            sql.find("--") != std::string_view::npos || sql.find("/*") != std::string_view::npos)
            broken("accepted a statement with ';', '@', '#', '`', '\"', \"--\" or \"/*\"", sql);
        std::size_t first = 0;
        while (first < sql.size() && is_blank(sql[first]))
            ++first;
        const std::string head = with_case(sql.substr(first, 6), true);
        if (head != "SELECT" || (first + 6 < sql.size() && is_word_char(sql[first + 6])))
            broken("accepted a statement that does not start with the word SELECT", sql);
    }

    if (plain_select(with_case(sql, true)) != plain || plain_select(with_case(sql, false)) != plain)
        broken("the answer depends on letter case", sql);
    if (plain_select(" \t\n" + std::string(sql) + "\r\n ") != plain)
        broken("the answer depends on blanks around the statement", sql);
    for (std::string_view tail : {";", "@", "#", "`", "\"", "--", "/*"})
        if (plain_select(std::string(sql) + std::string(tail)))
            broken("accepted a statement followed by a refused character", sql);
    return 0;
}
