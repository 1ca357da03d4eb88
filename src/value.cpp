// Field values: names, display, and the errors of typed access.
#include <cloudmysql/result.hpp>
#include <cloudmysql/value.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace cloudmysql {
namespace {

const std::vector<column>& no_columns() {
    static const std::vector<column> empty;
    return empty;
}

std::string format_date(const std::chrono::year_month_day& d) {
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(d.year()),
                       static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

std::string format_datetime(const datetime& t) {
    const auto day = std::chrono::floor<std::chrono::days>(t);
    const std::chrono::hh_mm_ss<std::chrono::microseconds> tod(t - day);
    std::string text =
        fmt::format("{} {:02}:{:02}:{:02}", format_date(std::chrono::year_month_day(day)),
                    tod.hours().count(), tod.minutes().count(), tod.seconds().count());
    if (tod.subseconds().count() != 0)
        fmt::format_to(std::back_inserter(text), ".{:06}", tod.subseconds().count());
    return text;
}

} // namespace

std::string_view type_name(const value& v) noexcept {
    switch (v.index()) {
    case 0:
        return "NULL";
    case 1:
        return "int64";
    case 2:
        return "uint64";
    case 3:
        return "double";
    case 4:
        return "string";
    case 5:
        return "date";
    case 6:
        return "datetime";
    }
    return "unknown";
}

std::string to_display_string(const value& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>)
                return "NULL";
            else if constexpr (std::is_same_v<T, std::string>)
                return x;
            else if constexpr (std::is_same_v<T, std::chrono::year_month_day>)
                return format_date(x);
            else if constexpr (std::is_same_v<T, datetime>)
                return format_datetime(x);
            else
                return fmt::format("{}", x);
        },
        v);
}

namespace detail {

void throw_conversion_error(conversion_failure why, const value& v, std::size_t index,
                            const column* col, std::string_view wanted) {
    const std::string where =
        col ? fmt::format("column '{}' (index {}, {})", col->name, index, col->type_name)
            : fmt::format("column {}", index);
    switch (why) {
    case conversion_failure::is_null:
        throw database_error(
            client_errc::field_is_null,
            diagnostics(
                fmt::format("{} is NULL; read it as std::optional<...> to accept NULL", where), {},
                {}, error_class::bad_input));
    case conversion_failure::out_of_range:
        throw database_error(
            client_errc::value_out_of_range,
            diagnostics(fmt::format("{} holds {}, which does not fit in {}; read it as a wider "
                                    "type",
                                    where, to_display_string(v), wanted),
                        {}, {}, error_class::bad_input));
    case conversion_failure::mismatch:
    case conversion_failure::none:
        break;
    }
    throw database_error(client_errc::type_mismatch,
                         diagnostics(fmt::format("{} holds a {} value, which cannot be read as {}",
                                                 where, type_name(v), wanted),
                                     {}, {}, error_class::bad_input));
}

} // namespace detail

std::size_t row::index_of(std::string_view name) const {
    const auto& cols = columns();
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (cols[i].name == name)
            return i;
    std::string known;
    for (const auto& c : cols)
        fmt::format_to(std::back_inserter(known), "{}'{}'", known.empty() ? "" : ", ", c.name);
    throw database_error(
        client_errc::unknown_column,
        diagnostics(fmt::format("the row has no column named '{}' (columns: {})", name, known), {},
                    {}, error_class::bad_input));
}

const std::vector<column>& row::columns() const {
    return columns_ ? *columns_ : no_columns();
}

const std::vector<column>& result::columns() const {
    return columns_ ? *columns_ : no_columns();
}

} // namespace cloudmysql
