// Buffered query results: columns, rows and typed access to fields.
#pragma once

#include <cloudmysql/database_error.hpp>
#include <cloudmysql/value.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cloudmysql {

/// A result column.
struct column {
    std::string name;      ///< the column's name or alias as the query wrote it
    std::string type_name; ///< the SQL type as the server reports it: "INT", "VARCHAR", ...
    bool is_unsigned = false;
    bool nullable = true;
};

namespace detail {

[[noreturn]] void throw_conversion_error(conversion_failure why, const value& v, std::size_t index,
                                         const column* col, std::string_view wanted);

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
conversion_failure convert(const value& v, T& out) {
    if (std::holds_alternative<std::monostate>(v))
        return conversion_failure::is_null;
    if constexpr (std::is_same_v<T, bool>) {
        if (const auto* i = std::get_if<std::int64_t>(&v)) {
            out = *i != 0;
            return conversion_failure::none;
        }
        if (const auto* u = std::get_if<std::uint64_t>(&v)) {
            out = *u != 0;
            return conversion_failure::none;
        }
        return conversion_failure::mismatch;
    } else if constexpr (std::is_integral_v<T>) {
        if (const auto* i = std::get_if<std::int64_t>(&v)) {
            if (!std::in_range<T>(*i))
                return conversion_failure::out_of_range;
            out = static_cast<T>(*i);
            return conversion_failure::none;
        }
        if (const auto* u = std::get_if<std::uint64_t>(&v)) {
            if (!std::in_range<T>(*u))
                return conversion_failure::out_of_range;
            out = static_cast<T>(*u);
            return conversion_failure::none;
        }
        return conversion_failure::mismatch;
    } else if constexpr (std::is_floating_point_v<T>) {
        if (const auto* d = std::get_if<double>(&v)) {
            out = static_cast<T>(*d);
            return conversion_failure::none;
        }
        return conversion_failure::mismatch;
    } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
        if (const auto* s = std::get_if<std::string>(&v)) {
            out = T(*s);
            return conversion_failure::none;
        }
        return conversion_failure::mismatch;
    } else if constexpr (std::is_same_v<T, std::chrono::year_month_day> ||
                         std::is_same_v<T, datetime>) {
        if (const auto* x = std::get_if<T>(&v)) {
            out = *x;
            return conversion_failure::none;
        }
        return conversion_failure::mismatch;
    } else {
        static_assert(sizeof(T) == 0, "cloudmysql: no conversion from a field to this type");
    }
}

template <class T>
std::string_view wanted_name() {
    if constexpr (std::is_same_v<T, bool>)
        return "bool";
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
        return "a signed integer";
    else if constexpr (std::is_integral_v<T>)
        return "an unsigned integer";
    else if constexpr (std::is_floating_point_v<T>)
        return "a floating-point number";
    else if constexpr (std::is_same_v<T, std::chrono::year_month_day>)
        return "std::chrono::year_month_day";
    else if constexpr (std::is_same_v<T, datetime>)
        return "cloudmysql::datetime";
    else
        return "a string";
}

} // namespace detail

/// One row of a result. Copyable; it shares the column list with its result.
class row {
public:
    row() = default;
    row(std::vector<value> values, std::shared_ptr<const std::vector<column>> columns)
            : values_(std::move(values)), columns_(std::move(columns)) {}

    std::size_t size() const noexcept { return values_.size(); }
    const value& operator[](std::size_t index) const { return values_.at(index); }
    std::span<const value> values() const noexcept { return values_; }

    /// The index of a column by name (exact match); throws database_error (unknown_column).
    std::size_t index_of(std::string_view name) const;

    bool is_null(std::size_t index) const {
        return std::holds_alternative<std::monostate>(values_.at(index));
    }

    /// The field converted to T: an integer type (range-checked), bool, float/double,
    /// std::string / std::string_view (a view into this row), std::chrono::year_month_day,
    /// datetime, or std::optional of one of them for nullable columns. Throws database_error
    /// (field_is_null, type_mismatch or value_out_of_range) naming the column and the types.
    template <class T>
    T get(std::size_t index) const {
        const value& v = values_.at(index);
        if constexpr (detail::is_optional<T>::value) {
            if (std::holds_alternative<std::monostate>(v))
                return std::nullopt;
            return get<typename T::value_type>(index);
        } else {
            T out{};
            auto why = detail::convert(v, out);
            if (why != detail::conversion_failure::none)
                detail::throw_conversion_error(why, v, index, column_at(index),
                                               detail::wanted_name<T>());
            return out;
        }
    }

    template <class T>
    T get(std::string_view column_name) const {
        return get<T>(index_of(column_name));
    }

    const std::vector<column>& columns() const;

private:
    const column* column_at(std::size_t index) const noexcept {
        return columns_ && index < columns_->size() ? &(*columns_)[index] : nullptr;
    }

    std::vector<value> values_;
    std::shared_ptr<const std::vector<column>> columns_;
};

/// A fully buffered result: the rows of a SELECT, or the counts of an INSERT/UPDATE/DELETE.
class result {
public:
    result() = default;
    result(std::shared_ptr<const std::vector<column>> columns, std::vector<row> rows,
           std::uint64_t affected_rows, std::uint64_t last_insert_id, unsigned warning_count)
            : columns_(std::move(columns)), rows_(std::move(rows)), affected_rows_(affected_rows),
              last_insert_id_(last_insert_id), warning_count_(warning_count) {}

    /// The columns; empty for statements that return no rows.
    const std::vector<column>& columns() const;
    const std::vector<row>& rows() const noexcept { return rows_; }
    std::size_t size() const noexcept { return rows_.size(); }
    bool empty() const noexcept { return rows_.empty(); }
    const row& operator[](std::size_t index) const { return rows_.at(index); }
    auto begin() const noexcept { return rows_.begin(); }
    auto end() const noexcept { return rows_.end(); }

    /// Rows changed by INSERT/UPDATE/DELETE (for SELECT, the number of rows).
    std::uint64_t affected_rows() const noexcept { return affected_rows_; }
    /// The AUTO_INCREMENT value the statement generated, 0 if none.
    std::uint64_t last_insert_id() const noexcept { return last_insert_id_; }
    unsigned warning_count() const noexcept { return warning_count_; }

private:
    std::shared_ptr<const std::vector<column>> columns_;
    std::vector<row> rows_;
    std::uint64_t affected_rows_ = 0;
    std::uint64_t last_insert_id_ = 0;
    unsigned warning_count_ = 0;
};

} // namespace cloudmysql
