// Typed rows: the C++ types connection::query_as() and for_each_as() decode a result into.
#pragma once

#include <cloudmysql/detail/row_reader.hpp>
#include <cloudmysql/value.hpp>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace cloudmysql {

/// Maps a struct to the columns of a result, in order: specialize it with a `fields` tuple of
/// member pointers, one per column, in the order the SELECT lists them (names are not
/// compared). For example:
///
///     struct patient_name { std::int64_t id; std::string first_name; };
///     template <> struct cloudmysql::row_mapping<patient_name> {
///         static constexpr auto fields =
///             std::make_tuple(&patient_name::id, &patient_name::first_name);
///     };
///
/// The struct must be default-constructible. Without a specialization, a type is not a
/// mapped struct.
template <class T>
struct row_mapping;

namespace detail {

template <class T>
struct field_traits {
    static constexpr bool supported = false;
};

template <std::integral T>
requires(!std::same_as<T, bool> && !std::same_as<T, char>) struct field_traits<T> {
    static constexpr bool supported = true;
    static constexpr field_kind kind =
        std::is_signed_v<T> ? field_kind::signed_integer : field_kind::unsigned_integer;
    static constexpr std::string_view name() {
        constexpr bool s = std::is_signed_v<T>;
        switch (sizeof(T)) {
        case 1:
            return s ? "std::int8_t" : "std::uint8_t";
        case 2:
            return s ? "std::int16_t" : "std::uint16_t";
        case 4:
            return s ? "std::int32_t" : "std::uint32_t";
        default:
            return s ? "std::int64_t" : "std::uint64_t";
        }
    }
    static decode_failure read(const fetched_row& row, std::size_t i, T& out, bool) noexcept {
        // The metadata check made sure every value of the column fits T.
        out = static_cast<T>(row.integer(i));
        return decode_failure::none;
    }
};

template <>
struct field_traits<bool> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::boolean;
    static constexpr std::string_view name() { return "bool"; }
    static decode_failure read(const fetched_row& row, std::size_t i, bool& out, bool) noexcept {
        out = row.integer(i) != 0;
        return decode_failure::none;
    }
};

template <std::floating_point T>
requires(sizeof(T) == 4 || sizeof(T) == 8) struct field_traits<T> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::floating;
    static constexpr std::string_view name() { return sizeof(T) == 4 ? "float" : "double"; }
    static decode_failure read(const fetched_row& row, std::size_t i, T& out, bool) noexcept {
        out = static_cast<T>(row.real(i));
        return decode_failure::none;
    }
};

template <>
struct field_traits<std::string> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::text;
    static constexpr std::string_view name() { return "std::string"; }
    static decode_failure read(const fetched_row& row, std::size_t i, std::string& out, bool) {
        out.assign(row.text(i));
        return decode_failure::none;
    }
};

template <>
struct field_traits<std::string_view> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::text;
    static constexpr std::string_view name() { return "std::string_view"; }
    static decode_failure read(const fetched_row& row, std::size_t i, std::string_view& out,
                               bool keep) {
        out = keep ? row.kept_text(i) : row.text(i);
        return decode_failure::none;
    }
};

template <>
struct field_traits<std::chrono::year_month_day> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::date;
    static constexpr std::string_view name() { return "std::chrono::year_month_day"; }
    static decode_failure read(const fetched_row& row, std::size_t i,
                               std::chrono::year_month_day& out, bool) noexcept {
        return row.date(i, out) ? decode_failure::none : decode_failure::invalid_date;
    }
};

template <>
struct field_traits<datetime> {
    static constexpr bool supported = true;
    static constexpr field_kind kind = field_kind::date_time;
    static constexpr std::string_view name() { return "cloudmysql::datetime"; }
    static decode_failure read(const fetched_row& row, std::size_t i, datetime& out,
                               bool) noexcept {
        return row.date_time(i, out) ? decode_failure::none : decode_failure::invalid_date;
    }
};

template <class T>
struct field_traits<std::optional<T>> {
    static constexpr bool supported = field_traits<T>::supported;
    static constexpr field_kind kind = field_traits<T>::kind;
    static constexpr std::string_view name() { return field_traits<T>::name(); }
    static decode_failure read(const fetched_row& row, std::size_t i, std::optional<T>& out,
                               bool keep) {
        if (row.is_null(i)) {
            out.reset();
            return decode_failure::none;
        }
        if (!out)
            out.emplace();
        return field_traits<T>::read(row, i, *out, keep);
    }
};

template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

template <class T>
constexpr field_spec spec_of() {
    return field_spec{field_traits<T>::kind, static_cast<std::uint8_t>(sizeof(T)),
                      is_std_optional<T>::value, field_traits<T>::name()};
}
template <class T>
constexpr field_spec spec_of_optional_aware() {
    if constexpr (is_std_optional<T>::value) {
        field_spec s = spec_of<typename T::value_type>();
        s.optional = true;
        return s;
    } else {
        return spec_of<T>();
    }
}

/// Reads field i into out: NULL into a non-optional fails.
template <class T>
decode_failure read_field(const fetched_row& row, std::size_t i, T& out, bool keep) {
    if constexpr (!is_std_optional<T>::value) {
        if (row.is_null(i))
            return decode_failure::is_null;
    }
    return field_traits<T>::read(row, i, out, keep);
}

template <class T>
concept mapped_struct = requires {
    row_mapping<T>::fields;
};

template <class T>
struct is_std_tuple : std::false_type {};
template <class... Ts>
struct is_std_tuple<std::tuple<Ts...>> : std::true_type {};

template <class M>
struct member_type;
template <class S, class F>
struct member_type<F S::*> {
    using type = F;
};

/// How a row type is read: its fields' specs, and a decoder. Defined for std::tuple of field
/// types, mapped structs, and a single field type (a one-column result).
template <class Row>
struct row_traits;

template <class... Ts>
requires(field_traits<Ts>::supported&&...) struct row_traits<std::tuple<Ts...>> {
    static constexpr std::array<field_spec, sizeof...(Ts)> fields{spec_of_optional_aware<Ts>()...};
    static decode_status read(const fetched_row& row, std::tuple<Ts...>& out, bool keep) {
        return read_all(row, out, keep, std::index_sequence_for<Ts...>{});
    }
    template <std::size_t... I>
    static decode_status read_all(const fetched_row& row, std::tuple<Ts...>& out, bool keep,
                                  std::index_sequence<I...>) {
        decode_status st;
        (void)((st.why = read_field(row, I, std::get<I>(out), keep), st.index = I,
                st.why == decode_failure::none) &&
               ...);
        return st;
    }
};

/// The type of a mapped struct's I-th member.
template <class S, std::size_t I>
using mapped_member_t = typename member_type<
    std::decay_t<std::tuple_element_t<I, std::decay_t<decltype(row_mapping<S>::fields)>>>>::type;

template <class S, std::size_t... I>
constexpr std::array<field_spec, sizeof...(I)> mapped_fields(std::index_sequence<I...>) {
    static_assert((field_traits<mapped_member_t<S, I>>::supported && ...),
                  "cloudmysql::row_mapping: a member's type is not a field type that query_as "
                  "can read (see typed_row)");
    return {spec_of_optional_aware<mapped_member_t<S, I>>()...};
}

template <mapped_struct S>
struct row_traits<S> {
    static constexpr auto members = row_mapping<S>::fields;
    static constexpr std::size_t size = std::tuple_size_v<std::decay_t<decltype(members)>>;
    static constexpr std::array<field_spec, size> fields =
        mapped_fields<S>(std::make_index_sequence<size>{});

    static decode_status read(const fetched_row& row, S& out, bool keep) {
        return read_all(row, out, keep, std::make_index_sequence<size>{});
    }
    template <std::size_t... I>
    static decode_status read_all(const fetched_row& row, S& out, bool keep,
                                  std::index_sequence<I...>) {
        decode_status st;
        (void)((st.why = read_field(row, I, out.*(std::get<I>(members)), keep), st.index = I,
                st.why == decode_failure::none) &&
               ...);
        return st;
    }
};

template <class T>
requires(field_traits<T>::supported) struct row_traits<T> {
    static constexpr std::array<field_spec, 1> fields{spec_of_optional_aware<T>()};
    static decode_status read(const fetched_row& row, T& out, bool keep) {
        return {0, read_field(row, 0, out, keep)};
    }
};

/// The address that identifies a row type to the statement cache's "checked once" memory.
template <class Row>
inline constexpr char row_type_id = 0;

} // namespace detail

/// What connection::query_as<Row>() and for_each_as<Row>() accept as Row:
/// - std::tuple<F...>: one field per column, in order;
/// - a struct with a row_mapping specialization;
/// - a single field type F: a result of one column.
/// A field type F is: bool (TINYINT), a signed or unsigned integer type (wide enough for every
/// value of the column's type: INT wants 32 bits, INT UNSIGNED an unsigned 32-bit or any 64-bit
/// integer), float (FLOAT) or double (FLOAT, DOUBLE), std::string or std::string_view (text,
/// bytes, DECIMAL as its exact text, TIME, ENUM, SET, JSON, BIT),
/// std::chrono::year_month_day (DATE), cloudmysql::datetime (DATETIME, TIMESTAMP), or
/// std::optional of one of them, which a column that may hold NULL needs.
template <class Row>
concept typed_row = std::default_initializable<Row> && requires {
    detail::row_traits<Row>::fields;
};

/// What for_each_as<Row>() calls for each row: anything callable with a const Row&.
template <class F, class Row>
concept row_callback = std::invocable < std::remove_reference_t<F>
&, const Row& > ;

} // namespace cloudmysql
