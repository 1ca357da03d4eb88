// Migrations as values: SQL normalisation and checksums, the destructive-statement rule, and
// postconditions checked in information_schema.
#include "sql_text.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/migration.hpp>

#include <fmt/format.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string_view>

namespace cloudmysql {
namespace {

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// What an unquoted identifier or keyword is made of (bytes of UTF-8 sequences included).
bool is_word_char(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || is_digit(c) || u == '_' ||
           u == '$' || u >= 0x80;
}

char to_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower(x) == to_lower(y);
           });
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

bool starts_with_at(std::string_view s, std::size_t pos, std::string_view prefix) noexcept {
    return s.substr(pos, prefix.size()) == prefix;
}

// MySQL's executable comments, /*! ... */ and MariaDB's /*M! ... */: the server runs their
// content, so they are code, not comments.
std::size_t executable_comment_prefix(std::string_view s, std::size_t pos) noexcept {
    if (starts_with_at(s, pos, "/*!"))
        return 3;
    if (starts_with_at(s, pos, "/*M!"))
        return 4;
    return 0;
}

// "-- " starts a comment only when a space or control character follows the dashes (MySQL's
// rule): "1--1" is arithmetic.
bool is_dash_comment(std::string_view s, std::size_t pos) noexcept {
    if (!starts_with_at(s, pos, "--"))
        return false;
    return pos + 2 == s.size() || static_cast<unsigned char>(s[pos + 2]) <= ' ';
}

// The index just past the quoted string or identifier that starts at `pos` (which holds the
// quote). Doubled quotes stand for one; in '...' and "..." a backslash escapes the next byte.
// An unterminated quote runs to the end.
std::size_t skip_quoted(std::string_view s, std::size_t pos) noexcept {
    const char quote = s[pos];
    std::size_t i = pos + 1;
    while (i < s.size()) {
        const char c = s[i];
        if (c == '\\' && quote != '`') {
            i += 2;
        } else if (c == quote) {
            if (i + 1 < s.size() && s[i + 1] == quote)
                i += 2;
            else
                return i + 1;
        } else {
            ++i;
        }
    }
    return s.size();
}

std::string unquote_backticks(std::string_view quoted) {
    std::string_view body = quoted.substr(1);
    if (!body.empty() && body.back() == '`')
        body.remove_suffix(1);
    std::string out;
    out.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) {
        out += body[i];
        if (body[i] == '`' && i + 1 < body.size() && body[i + 1] == '`')
            ++i;
    }
    return out;
}

std::string quote_identifier(std::string_view name) {
    std::string out = "`";
    for (char c : name) {
        out += c;
        if (c == '`')
            out += '`';
    }
    out += '`';
    return out;
}

} // namespace

// ---- Tokens of a normalised statement (detail: sql_text.hpp, for the fuzz targets) ---------

namespace detail {

std::vector<sql_token> tokenize(std::string_view s) {
    using token = sql_token;
    std::vector<token> out;
    bool in_executable_comment = false;
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (is_space(c)) {
            ++i;
        } else if (const std::size_t prefix = executable_comment_prefix(s, i); prefix != 0) {
            i += prefix;
            for (int digits = 0; digits < 6 && i < s.size() && is_digit(s[i]); ++digits)
                ++i; // the server version the code needs
            in_executable_comment = true;
        } else if (in_executable_comment && starts_with_at(s, i, "*/")) {
            i += 2;
            in_executable_comment = false;
        } else if (!in_executable_comment && starts_with_at(s, i, "/*")) {
            // A comment left in a normal form ("5--/**/1"): it separates, like a blank.
            const std::size_t close = s.find("*/", i + 2);
            i = close == std::string_view::npos ? s.size() : close + 2;
        } else if (c == '\'' || c == '"' || c == '`') {
            const std::size_t end = skip_quoted(s, i);
            const std::string_view quoted = s.substr(i, end - i);
            if (c == '`')
                out.push_back({token::type::identifier, unquote_backticks(quoted)});
            else
                out.push_back({token::type::string, std::string(quoted)});
            i = end;
        } else if (is_word_char(c)) {
            std::size_t end = i;
            while (end < s.size() && is_word_char(s[end]))
                ++end;
            out.push_back({token::type::word, std::string(s.substr(i, end - i))});
            i = end;
        } else {
            out.push_back({token::type::symbol, std::string(1, c)});
            ++i;
        }
    }
    return out;
}

} // namespace detail

namespace {

using detail::tokenize;
using token = detail::sql_token;

// The top-level comma-separated parts of a token range (commas inside parentheses belong to
// their part).
std::vector<std::span<const token>> split_top_level(std::span<const token> tokens) {
    std::vector<std::span<const token>> parts;
    std::size_t depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const token& t = tokens[i];
        if (t.what != token::type::symbol)
            continue;
        if (t.text == "(") {
            ++depth;
        } else if (t.text == ")") {
            if (depth > 0)
                --depth;
        } else if (t.text == "," && depth == 0) {
            parts.push_back(tokens.subspan(start, i - start));
            start = i + 1;
        }
    }
    parts.push_back(tokens.subspan(start));
    return parts;
}

// A cursor over tokens with the few grammar pieces DDL statements share.
class token_reader {
public:
    explicit token_reader(std::span<const token> tokens) : tokens_(tokens) {}

    bool at_end() const noexcept { return pos_ >= tokens_.size(); }
    std::span<const token> rest() const noexcept { return tokens_.subspan(pos_); }

    /// Whether the token `ahead` places on is the unquoted keyword `kw` (any case).
    bool peek(std::string_view kw, std::size_t ahead = 0) const noexcept {
        const std::size_t i = pos_ + ahead;
        return i < tokens_.size() && tokens_[i].what == token::type::word &&
               iequals(tokens_[i].text, kw);
    }
    bool peek_symbol(std::string_view sym) const noexcept {
        return !at_end() && tokens_[pos_].what == token::type::symbol && tokens_[pos_].text == sym;
    }
    template <class... Keywords>
    bool peek_any(Keywords... kws) const noexcept {
        return (peek(kws) || ...);
    }

    bool accept(std::string_view kw) noexcept {
        if (!peek(kw))
            return false;
        ++pos_;
        return true;
    }
    bool accept_symbol(std::string_view sym) noexcept {
        if (!peek_symbol(sym))
            return false;
        ++pos_;
        return true;
    }
    void skip() noexcept {
        if (!at_end())
            ++pos_;
    }

    /// IF EXISTS
    void accept_if_exists() noexcept {
        if (peek("IF") && peek("EXISTS", 1))
            pos_ += 2;
    }
    /// IF NOT EXISTS
    void accept_if_not_exists() noexcept {
        if (peek("IF") && peek("NOT", 1) && peek("EXISTS", 2))
            pos_ += 3;
    }
    /// MariaDB's lock-wait options: WAIT n | NOWAIT
    void accept_wait() noexcept {
        if (accept("WAIT"))
            skip();
        else
            accept("NOWAIT");
    }

    /// A name: a bare word or a `quoted` identifier. Not a blank one ("` `"): no server takes
    /// it, and a postcondition cannot name it.
    std::optional<std::string> identifier() {
        if (at_end())
            return std::nullopt;
        const token& t = tokens_[pos_];
        if ((t.what != token::type::word && t.what != token::type::identifier) ||
            trim(t.text).empty())
            return std::nullopt;
        ++pos_;
        return t.text;
    }

    /// A table name, possibly qualified with its database: the table part.
    std::optional<std::string> table_name() {
        auto name = identifier();
        if (name && accept_symbol("."))
            name = identifier();
        return name;
    }

private:
    std::span<const token> tokens_;
    std::size_t pos_ = 0;
};

// ALGORITHM [=] x and LOCK [=] x: how the server runs an ALTER, not what it changes.
bool is_alter_option(std::span<const token> clause) {
    token_reader r(clause);
    if (!r.accept("ALGORITHM") && !r.accept("LOCK"))
        return false;
    r.accept_symbol("=");
    return r.identifier().has_value() && r.at_end();
}

// Reads ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] t [WAIT n | NOWAIT] (after ALTER) and
// returns the table, leaving the reader at the first clause.
std::optional<std::string> read_alter_table_head(token_reader& r) {
    r.accept("ONLINE");
    r.accept("IGNORE");
    if (!r.accept("TABLE"))
        return std::nullopt;
    r.accept_if_exists();
    auto table = r.table_name();
    if (table)
        r.accept_wait();
    return table;
}

bool alter_clause_destroys_data(std::span<const token> clause) {
    token_reader r(clause);
    if (r.accept("DROP"))
        // DROP [COLUMN] c, DROP PARTITION p, DROP SYSTEM VERSIONING (the history rows) destroy
        // rows or values; indexes, keys and constraints hold no data of their own.
        return !r.peek_any("INDEX", "KEY", "FOREIGN", "PRIMARY", "CONSTRAINT", "CHECK", "PERIOD");
    // TRUNCATE PARTITION p; DISCARD [PARTITION p] TABLESPACE deletes the data file.
    return r.peek("TRUNCATE") || r.peek("DISCARD");
}

// ---- derive() ------------------------------------------------------------------------------

std::optional<postcondition> derive_create(token_reader& r) {
    if (r.peek("OR") || r.peek("TEMPORARY"))
        return std::nullopt; // OR REPLACE holds before as after; temporary tables are not seen
    if (r.accept("TABLE")) {
        r.accept_if_not_exists();
        auto table = r.table_name();
        if (!table)
            return std::nullopt;
        return postcondition::table_exists(std::move(*table));
    }
    if (!r.accept("UNIQUE") && !r.accept("FULLTEXT"))
        r.accept("SPATIAL");
    if (!r.accept("INDEX"))
        return std::nullopt;
    r.accept_if_not_exists();
    auto index = r.identifier();
    if (!index || (r.accept("USING") && !r.identifier()) || !r.accept("ON"))
        return std::nullopt;
    auto table = r.table_name();
    if (!table)
        return std::nullopt;
    return postcondition::index_exists(std::move(*table), std::move(*index));
}

std::optional<postcondition> derive_drop(token_reader& r) {
    if (r.accept("TABLE") || r.accept("TABLES")) {
        r.accept_if_exists();
        auto table = r.table_name();
        if (!table || split_top_level(r.rest()).size() > 1)
            return std::nullopt; // a list of tables: no single postcondition
        return !postcondition::table_exists(std::move(*table));
    }
    if (r.accept("INDEX")) {
        r.accept_if_exists();
        auto index = r.identifier();
        if (!index || !r.accept("ON"))
            return std::nullopt;
        auto table = r.table_name();
        if (!table)
            return std::nullopt;
        return !postcondition::index_exists(std::move(*table), std::move(*index));
    }
    return std::nullopt;
}

std::optional<postcondition> derive_rename(token_reader& r) {
    if (!r.accept("TABLE") && !r.accept("TABLES"))
        return std::nullopt;
    r.accept_if_exists();
    if (!r.table_name())
        return std::nullopt;
    r.accept_wait();
    if (!r.accept("TO"))
        return std::nullopt;
    auto to = r.table_name();
    if (!to || !r.at_end())
        return std::nullopt; // several renames
    return postcondition::table_exists(std::move(*to));
}

// [INDEX|KEY] [IF NOT EXISTS] [name] [USING ...] (...): the index's name, or `fallback` (the
// CONSTRAINT symbol) when it has none.
std::optional<postcondition> derive_add_index(token_reader& r, const std::string& table,
                                              std::optional<std::string> fallback) {
    if (!r.accept("INDEX"))
        r.accept("KEY");
    r.accept_if_not_exists();
    std::optional<std::string> name;
    if (!r.peek("USING"))
        name = r.identifier();
    if (!name)
        name = std::move(fallback);
    if (!name)
        return std::nullopt; // unnamed: the server picks the name
    return postcondition::index_exists(table, std::move(*name));
}

std::optional<postcondition> derive_add_column(token_reader& r, const std::string& table) {
    r.accept_if_not_exists();
    if (r.peek_symbol("("))
        return std::nullopt; // ADD (a INT, b INT): several columns
    auto column = r.identifier();
    if (!column || r.at_end())
        return std::nullopt; // no type: not a column definition
    return postcondition::column_exists(table, std::move(*column));
}

std::optional<postcondition> derive_drop_column(token_reader& r, const std::string& table) {
    r.accept_if_exists();
    auto column = r.identifier();
    if (!r.accept("RESTRICT"))
        r.accept("CASCADE");
    if (!column || !r.at_end())
        return std::nullopt;
    return !postcondition::column_exists(table, std::move(*column));
}

// The name that ends a DROP INDEX/FOREIGN KEY/CONSTRAINT clause.
std::optional<std::string> read_last_name(token_reader& r) {
    r.accept_if_exists();
    auto name = r.identifier();
    if (!name || !r.at_end())
        return std::nullopt;
    return name;
}

std::optional<postcondition> derive_alter_clause(const std::string& table,
                                                 std::span<const token> clause) {
    token_reader r(clause);
    if (r.accept("ADD")) {
        if (r.accept("COLUMN"))
            return derive_add_column(r, table);
        if (r.accept("PRIMARY"))
            return r.accept("KEY") ? std::optional(postcondition::index_exists(table, "PRIMARY"))
                                   : std::nullopt;
        if (r.accept("CONSTRAINT")) {
            r.accept_if_not_exists();
            std::optional<std::string> symbol;
            if (!r.peek_any("FOREIGN", "PRIMARY", "UNIQUE", "CHECK"))
                symbol = r.identifier();
            if (r.accept("FOREIGN")) {
                if (!r.accept("KEY") || !symbol)
                    return std::nullopt;
                return postcondition::foreign_key_exists(table, std::move(*symbol));
            }
            if (r.accept("PRIMARY"))
                return r.accept("KEY")
                           ? std::optional(postcondition::index_exists(table, "PRIMARY"))
                           : std::nullopt;
            if (r.accept("UNIQUE"))
                return derive_add_index(r, table, std::move(symbol));
            return std::nullopt; // CHECK
        }
        if (r.accept("UNIQUE") || r.accept("FULLTEXT") || r.accept("SPATIAL") ||
            r.peek_any("INDEX", "KEY"))
            return derive_add_index(r, table, std::nullopt);
        if (r.peek_any("FOREIGN", "CHECK", "PARTITION", "PERIOD", "SYSTEM"))
            return std::nullopt; // unnamed foreign key, check, partitioning: nothing to name
        return derive_add_column(r, table);
    }
    if (r.accept("DROP")) {
        if (r.accept("COLUMN"))
            return derive_drop_column(r, table);
        if (r.accept("INDEX") || r.accept("KEY")) {
            auto index = read_last_name(r);
            if (!index)
                return std::nullopt;
            return !postcondition::index_exists(table, std::move(*index));
        }
        if (r.accept("PRIMARY"))
            return r.accept("KEY") && r.at_end()
                       ? std::optional(!postcondition::index_exists(table, "PRIMARY"))
                       : std::nullopt;
        const bool foreign_key = r.accept("FOREIGN");
        if (foreign_key && !r.accept("KEY"))
            return std::nullopt;
        if (foreign_key || r.accept("CONSTRAINT")) {
            auto constraint = read_last_name(r);
            if (!constraint)
                return std::nullopt;
            return !postcondition::foreign_key_exists(table, std::move(*constraint));
        }
        if (r.peek_any("CHECK", "PARTITION", "PERIOD", "SYSTEM"))
            return std::nullopt;
        return derive_drop_column(r, table);
    }
    return std::nullopt; // MODIFY, CHANGE, RENAME, table options, ...
}

std::optional<postcondition> derive_alter(token_reader& r) {
    const auto table = read_alter_table_head(r);
    if (!table)
        return std::nullopt;
    std::vector<std::span<const token>> clauses;
    for (auto clause : split_top_level(r.rest()))
        if (!is_alter_option(clause))
            clauses.push_back(clause);
    if (clauses.size() != 1)
        return std::nullopt; // several changes: no single postcondition says all are done
    return derive_alter_clause(*table, clauses.front());
}

std::string sha256_hex(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("migration checksum: OpenSSL's SHA-256 failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(std::size_t{length} * 2);
    for (std::size_t i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0x0f];
    }
    return out;
}

void require_name(const std::string& value, std::string_view what, std::string_view factory) {
    if (trim(value).empty())
        throw std::invalid_argument(
            fmt::format("postcondition::{}: the {} name is empty", factory, what));
}

std::int64_t first_count(const result& r) {
    return r.empty() ? 0 : r[0].get<std::int64_t>(0);
}

} // namespace

// ---- normalize_sql, destroys_data ----------------------------------------------------------

std::string normalize_sql(const std::string& sql) {
    const std::string_view s(sql);
    std::string out;
    out.reserve(s.size());
    bool pending_space = false;
    std::size_t protected_length = 0; // out[0, protected_length) ends in quoted or verbatim text
    // Whitespace after '(', before ')' and around ',' never matters, and "CREATE TABLE t (\n
    // id INT,\n ...\n)" is the commonest reformatting: it goes. Elsewhere a run becomes one
    // space (it may matter there: "COUNT (*)" is not "COUNT(*)").
    //
    // "--" followed by a blank or the end of the text starts a comment, so where a removed
    // comment or a dropped ';' would leave "--" (two minus signs in the input, "5--/**/1" or
    // "5--;") followed by a blank or the end, an empty comment keeps them apart instead:
    // "5--/**/1". Otherwise the normal form would turn code into a comment, and normalizing it
    // again would change it.
    const auto ends_with_dashes = [&] {
        return out.size() >= protected_length + 2 && out.ends_with("--");
    };
    const auto emit = [&](std::string_view piece, bool verbatim) {
        const bool space_is_noise = out.empty() || out.back() == '(' || out.back() == ',' ||
                                    piece.front() == ')' || piece.front() == ',';
        if (pending_space && !space_is_noise)
            out += ends_with_dashes() ? "/**/" : " ";
        pending_space = false;
        out += piece;
        if (verbatim)
            protected_length = out.size();
    };

    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (is_space(c)) {
            pending_space = true;
            ++i;
        } else if (c == '\'' || c == '"' || c == '`') {
            const std::size_t end = skip_quoted(s, i);
            emit(s.substr(i, end - i), true);
            i = end;
        } else if (const std::size_t prefix = executable_comment_prefix(s, i); prefix != 0) {
            const std::size_t close = s.find("*/", i + prefix);
            const std::size_t end = close == std::string_view::npos ? s.size() : close + 2;
            emit(s.substr(i, end - i), true);
            i = end;
        } else if (starts_with_at(s, i, "/*")) {
            const std::size_t close = s.find("*/", i + 2);
            i = close == std::string_view::npos ? s.size() : close + 2;
            pending_space = true;
        } else if (c == '#' || is_dash_comment(s, i)) {
            const std::size_t newline = s.find('\n', i);
            i = newline == std::string_view::npos ? s.size() : newline;
            pending_space = true;
        } else {
            emit(s.substr(i, 1), false);
            ++i;
        }
    }
    while (out.size() > protected_length && (out.back() == ';' || out.back() == ' '))
        out.pop_back();
    if (ends_with_dashes())
        out += "/**/";
    return out;
}

bool destroys_data(const std::string& sql) {
    const auto tokens = tokenize(normalize_sql(sql));
    token_reader r(tokens);
    if (r.accept("DROP"))
        return r.peek_any("TABLE", "TABLES", "DATABASE", "SCHEMA"); // not DROP TEMPORARY TABLE
    if (r.accept("TRUNCATE"))
        return true;
    if (r.accept("CREATE"))
        // MariaDB's CREATE OR REPLACE TABLE drops the table that exists, rows and all.
        return r.accept("OR") && r.accept("REPLACE") && r.peek("TABLE");
    if (r.accept("ALTER")) {
        if (!read_alter_table_head(r))
            return false;
        const auto clauses = split_top_level(r.rest());
        return std::any_of(clauses.begin(), clauses.end(), alter_clause_destroys_data);
    }
    return false;
}

// ---- postcondition -------------------------------------------------------------------------

postcondition::postcondition(kind k, std::string table, std::string name, std::string type)
        : kind_(k), table_(std::move(table)), name_(std::move(name)), type_(std::move(type)) {
}

postcondition postcondition::table_exists(std::string table) {
    require_name(table, "table", "table_exists");
    return {kind::table, std::move(table), {}};
}

postcondition postcondition::column_exists(std::string table, std::string column,
                                           std::string column_type) {
    require_name(table, "table", "column_exists");
    require_name(column, "column", "column_exists");
    return {kind::column, std::move(table), std::move(column), std::string(trim(column_type))};
}

postcondition postcondition::index_exists(std::string table, std::string index) {
    require_name(table, "table", "index_exists");
    require_name(index, "index", "index_exists");
    return {kind::index, std::move(table), std::move(index)};
}

postcondition postcondition::foreign_key_exists(std::string table, std::string constraint) {
    require_name(table, "table", "foreign_key_exists");
    require_name(constraint, "constraint", "foreign_key_exists");
    return {kind::foreign_key, std::move(table), std::move(constraint)};
}

postcondition postcondition::operator!() const {
    postcondition p = *this;
    p.negated_ = !negated_;
    return p;
}

bool postcondition::holds(connection& conn, const std::string& database) const {
    bool exists = false;
    switch (kind_) {
    case kind::table:
        exists = first_count(conn.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                                          "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                                          database, table_)) > 0;
        break;
    case kind::column: {
        const result r = conn.execute("SELECT COLUMN_TYPE FROM information_schema.COLUMNS "
                                      "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND "
                                      "COLUMN_NAME = ?",
                                      database, table_, name_);
        exists = std::any_of(r.begin(), r.end(), [this](const row& column) {
            return type_.empty() || iequals(trim(column.get<std::string_view>(0)), type_);
        });
        break;
    }
    case kind::index:
        exists = first_count(conn.execute("SELECT COUNT(*) FROM information_schema.STATISTICS "
                                          "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND "
                                          "INDEX_NAME = ?",
                                          database, table_, name_)) > 0;
        break;
    case kind::foreign_key:
        exists = first_count(conn.execute(
                     "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS "
                     "WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = ? "
                     "AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
                     database, table_, name_)) > 0;
        break;
    }
    return exists != negated_;
}

std::string postcondition::describe() const {
    const std::string_view state = negated_ ? "is absent" : "exists";
    switch (kind_) {
    case kind::table:
        return fmt::format("table {} {}", quote_identifier(table_), state);
    case kind::column:
        if (type_.empty())
            return fmt::format("column {}.{} {}", quote_identifier(table_), quote_identifier(name_),
                               state);
        if (negated_) // the negation of "exists with that type"
            return fmt::format("column {}.{} is absent or not {}", quote_identifier(table_),
                               quote_identifier(name_), type_);
        return fmt::format("column {}.{} ({}) exists", quote_identifier(table_),
                           quote_identifier(name_), type_);
    case kind::index:
        return fmt::format("index {} on {} {}", quote_identifier(name_), quote_identifier(table_),
                           state);
    case kind::foreign_key:
        return fmt::format("foreign key {} on {} {}", quote_identifier(name_),
                           quote_identifier(table_), state);
    }
    return {};
}

std::optional<postcondition> postcondition::derive(const std::string& sql) {
    const auto tokens = tokenize(normalize_sql(sql));
    token_reader r(tokens);
    if (r.accept("CREATE"))
        return derive_create(r);
    if (r.accept("DROP"))
        return derive_drop(r);
    if (r.accept("RENAME"))
        return derive_rename(r);
    if (r.accept("ALTER"))
        return derive_alter(r);
    return std::nullopt;
}

// ---- steps and migrations ------------------------------------------------------------------

migration_step sql(std::string statement, std::optional<postcondition> done_when) {
    if (normalize_sql(statement).empty())
        throw std::invalid_argument("sql(): the statement is empty (only whitespace or comments)");
    migration_step step;
    step.done_when = done_when ? std::move(done_when) : postcondition::derive(statement);
    step.sql = std::move(statement);
    return step;
}

migration_step data(std::string description, std::function<void(connection&)> run) {
    if (!run)
        throw std::invalid_argument(
            fmt::format("data(\"{}\"): the function is empty", description));
    if (trim(description).empty())
        throw std::invalid_argument(
            "data(): the description is empty; it says what the step does and is part of the "
            "migration's checksum");
    migration_step step;
    step.description = std::move(description);
    step.run = std::move(run);
    return step;
}

std::string migration::checksum() const {
    std::string canonical;
    for (const migration_step& step : up) {
        if (step.is_data_step())
            canonical += "data:" + step.description + "\n";
        else
            canonical += "sql:" + normalize_sql(step.sql) + "\n";
    }
    return sha256_hex(canonical);
}

} // namespace cloudmysql
