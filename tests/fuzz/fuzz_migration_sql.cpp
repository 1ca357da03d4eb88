// Fuzz target: the migration engine's SQL text handling: normalize_sql() (what the checksum
// covers), detail::tokenize(), destroys_data(), postcondition::derive() and
// migration::checksum(). Properties, each checked with a crash:
//
// - no UB, and no exception from normalize_sql(), tokenize(), destroys_data() or derive()
//   (which returns a postcondition or none), nor from sql() unless the statement is empty;
// - normalize_sql() is idempotent, starts with no blank, and ignores comments and blanks
//   before the statement (a reformatted migration keeps its checksum);
// - destroys_data() and derive() answer the same for a statement and its normal form;
// - checksum() is 64 hex digits, the same for the statement and for its normal form, and
//   changes when the statement's normal form does.
#include "sql_text.hpp"

#include <cloudmysql/migration.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void broken(std::string_view property, std::string_view sql,
                         std::string_view detail = {}) {
    std::fprintf(stderr, "property broken: %.*s\n  sql: %.*s\n  %.*s\n",
                 static_cast<int>(property.size()), property.data(), static_cast<int>(sql.size()),
                 sql.data(), static_cast<int>(detail.size()), detail.data());
    std::abort();
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// The checksum of a migration whose one up step is `sql`, or nothing when sql() refuses the
// statement as empty (only blanks and comments).
std::optional<std::string> checksum_of(const std::string& sql) {
    cloudmysql::migration m{1, "fuzz", {}, {}};
    try {
        m.up.push_back(cloudmysql::sql(sql));
    } catch (const std::invalid_argument&) {
        if (!cloudmysql::normalize_sql(sql).empty())
            broken("sql() refused a statement that is not empty", sql);
        return std::nullopt;
    }
    return m.checksum();
}

void check(const std::string& sql) {
    const std::string normal = cloudmysql::normalize_sql(sql);
    if (cloudmysql::normalize_sql(normal) != normal)
        broken("normalize_sql is not idempotent", sql, cloudmysql::normalize_sql(normal));
    // (It may end with one: an unterminated quote keeps its text as written.)
    if (!normal.empty() && is_blank(normal.front()))
        broken("normalize_sql left a blank in front", sql, normal);
    for (std::string_view before :
         {"/* a comment */", "-- a comment\n", "# a comment\n", " \t\r\n", "/**/\n-- x\n\t"})
        if (cloudmysql::normalize_sql(std::string(before) + sql) != normal)
            broken("a comment or blanks before the statement changed its normal form", sql, before);

    (void)cloudmysql::detail::tokenize(sql);
    (void)cloudmysql::detail::tokenize(normal);
    if (cloudmysql::destroys_data(sql) != cloudmysql::destroys_data(normal))
        broken("destroys_data differs for the normal form", sql, normal);
    if (cloudmysql::postcondition::derive(sql) != cloudmysql::postcondition::derive(normal))
        broken("derive() differs for the normal form", sql, normal);

    const auto sum = checksum_of(sql);
    if (sum != checksum_of(normal))
        broken("the checksum differs for the normal form", sql, normal);
    if (sum &&
        (sum->size() != 64 || sum->find_first_not_of("0123456789abcdef") != std::string::npos))
        broken("the checksum is not 64 hex digits", sql, *sum);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string sql(reinterpret_cast<const char*>(data), size);
    check(sql);

    // Two statements cut from the input: different normal forms give different checksums.
    FuzzedDataProvider provider(data, size);
    const std::string a = provider.ConsumeRandomLengthString(size);
    const std::string b = provider.ConsumeRemainingBytesAsString();
    const auto sum_a = checksum_of(a);
    const auto sum_b = checksum_of(b);
    if (sum_a && sum_b &&
        (*sum_a == *sum_b) != (cloudmysql::normalize_sql(a) == cloudmysql::normalize_sql(b)))
        broken("equal checksums for different normal forms, or the reverse", a, b);
    return 0;
}
