// Internal: the scanners of SQL text that connection.cpp and migration.cpp use, declared here
// so that the fuzz targets (tests/fuzz) can call them. Not part of the API.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql::detail {

/// True when `sql` is a SELECT that reads and leaves nothing behind in the session, so that
/// the connection needs no reset after it (connection.cpp says exactly what passes). Errs
/// toward false. Accepted statements hold no ';', '@', '#', '`', '"', "/*" or "--", and begin
/// with SELECT after blanks.
bool plain_select(std::string_view sql);

/// One token of a normalised statement (normalize_sql()).
struct sql_token {
    enum class type { word, identifier, string, symbol };
    type what = type::symbol;
    std::string text; ///< word as written; identifier unquoted; string with its quotes; symbol
};

/// Splits a normalised statement into words, `identifiers`, 'strings' and one-character
/// symbols. The markers of executable comments (/*! and /*M!, with their version digits, and
/// their */) are dropped and their content tokenised: it is code. Whitespace and the empty
/// comments that a normal form may hold ("5--/**/1") separate tokens and are dropped; an
/// unterminated quote runs to the end. Never throws but std::bad_alloc.
std::vector<sql_token> tokenize(std::string_view normalized);

} // namespace cloudmysql::detail
