// One field of a result row, and the conversions from it to C++ types.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace cloudmysql {

/// A DATETIME or TIMESTAMP value, in microseconds. TIMESTAMP arrives in the session time zone.
using datetime = std::chrono::sys_time<std::chrono::microseconds>;

/// A field: NULL, a signed or unsigned integer, a double, text or bytes, a date or a datetime.
///
/// Integer columns give int64 (uint64 when UNSIGNED), FLOAT/DOUBLE give double, DATE gives
/// year_month_day, DATETIME/TIMESTAMP give datetime; everything else (DECIMAL, TIME, text,
/// BLOB, JSON) arrives as its exact text or bytes in std::string. Text and prepared-statement
/// results give the same types.
using value = std::variant<std::monostate, std::int64_t, std::uint64_t, double, std::string,
                           std::chrono::year_month_day, datetime>;

/// The name of the type a value holds: "NULL", "int64", "uint64", "double", "string", "date",
/// "datetime".
std::string_view type_name(const value& v) noexcept;

/// Formats a value for people: NULL, numbers, text, dates as ISO 8601.
std::string to_display_string(const value& v);

namespace detail {
// Why a conversion failed; value_as<T>() turns it into a database_error with context.
enum class conversion_failure { none, is_null, mismatch, out_of_range };
} // namespace detail

} // namespace cloudmysql
