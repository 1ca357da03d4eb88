// Statement parameters: what a C++ value becomes when it is bound to a '?'.
#pragma once

#include <cloudmysql/value.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace cloudmysql {

/// A bound parameter: a non-owning view of the caller's value, valid for the duration of the
/// execute call that takes it. Strings are sent as bytes, exactly as given (no escaping is
/// ever involved: the server receives the value apart from the SQL text).
class param {
public:
    using storage = std::variant<std::monostate, std::int64_t, std::uint64_t, double,
                                 std::string_view, std::chrono::year_month_day, datetime>;

    /// NULL.
    param() noexcept = default;
    param(std::nullopt_t) noexcept {}
    param(std::nullptr_t) noexcept {}

    template <std::signed_integral T>
    param(T v) noexcept : value_(static_cast<std::int64_t>(v)) {}
    template <std::unsigned_integral T>
    requires(!std::same_as<T, bool>) param(T v)
    noexcept : value_(static_cast<std::uint64_t>(v)) {}
    param(bool v) noexcept : value_(std::int64_t{v ? 1 : 0}) {}
    param(double v) noexcept : value_(v) {}
    param(float v) noexcept : value_(static_cast<double>(v)) {}
    param(std::string_view v) noexcept : value_(v) {}
    param(const std::string& v) noexcept : value_(std::string_view(v)) {}
    param(const char* v) noexcept : value_(std::string_view(v)) {}
    param(std::chrono::year_month_day v) noexcept : value_(v) {}
    param(datetime v) noexcept : value_(v) {}

    /// std::optional binds its value, or NULL when empty.
    template <class T>
    param(const std::optional<T>& v) noexcept {
        if (v)
            value_ = param(*v).value_;
    }

    /// A result field binds as itself (text as a view into the field).
    param(const value& v) noexcept {
        std::visit(
            [this](const auto& x) {
                if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>)
                    value_ = std::string_view(x);
                else
                    value_ = x;
            },
            v);
    }

    const storage& get() const noexcept { return value_; }
    bool is_null() const noexcept { return std::holds_alternative<std::monostate>(value_); }

private:
    storage value_;
};

} // namespace cloudmysql
