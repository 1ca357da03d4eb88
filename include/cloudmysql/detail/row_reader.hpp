// Internal: what the typed read path (typed_row.hpp) hands to the compiled part and gets back.
// Not API: the names here may change without notice.
#pragma once

#include <cloudmysql/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cloudmysql::detail {

/// What a C++ field type can hold, as the check against the result's metadata sees it.
enum class field_kind : std::uint8_t {
    boolean,          ///< bool: TINYINT
    signed_integer,   ///< a signed integer of `size` bytes
    unsigned_integer, ///< an unsigned integer of `size` bytes
    floating,         ///< float (size 4) or double (size 8)
    text,             ///< std::string or std::string_view: text, bytes, DECIMAL, TIME, JSON...
    date,             ///< std::chrono::year_month_day: DATE
    date_time,        ///< cloudmysql::datetime: DATETIME, TIMESTAMP
};

/// One field of a row type: what it holds and how to name it in a message.
struct field_spec {
    field_kind kind;
    std::uint8_t size;         ///< bytes, for integers and floating point
    bool optional;             ///< std::optional<...>: accepts NULL
    std::string_view cpp_name; ///< "std::int64_t", "std::string", ... (without the optional)
};

/// Why a fetched field could not be stored in the row.
enum class decode_failure : std::uint8_t {
    none,
    is_null,      ///< NULL into a type that is not std::optional
    invalid_date, ///< a zero or otherwise invalid DATE / DATETIME ("0000-00-00")
};

/// Which field failed to decode, and why.
struct decode_status {
    std::size_t index = 0;
    decode_failure why = decode_failure::none;
};

/// The row just fetched, as the decoders read it; made by the compiled part (src/statement.cpp).
/// Each accessor reads the field as the kind the metadata check accepted, so it is never
/// called for another kind.
class fetched_row {
public:
    fetched_row(void* buffers, void* statement, void* arena) noexcept
            : buffers_(buffers), statement_(statement), arena_(arena) {}

    bool is_null(std::size_t index) const noexcept;
    /// An integer field; an UNSIGNED column's value as its bit pattern.
    std::int64_t integer(std::size_t index) const noexcept;
    double real(std::size_t index) const noexcept;
    /// The whole text or bytes of the field, valid until the next row is fetched (a value
    /// longer than the reused buffer is fetched on its own).
    std::string_view text(std::size_t index) const;
    /// text(), copied to storage the connection keeps until its next call.
    std::string_view kept_text(std::size_t index) const;
    /// A DATE / DATETIME field; false for a zero or invalid date.
    bool date(std::size_t index, std::chrono::year_month_day& out) const noexcept;
    bool date_time(std::size_t index, datetime& out) const noexcept;

private:
    void* buffers_;
    void* statement_;
    void* arena_;
};

/// What connection::read_rows() needs from a row type: the fields to check against the
/// metadata, and callbacks (a function pointer and its context: no allocation) that store rows.
struct row_reader {
    std::span<const field_spec> fields;
    /// Identifies the row type: a statement remembers the last one it was checked against.
    const void* row_type = nullptr;
    /// Whether string_view fields view storage that outlives the row (query_as) or the
    /// fetch buffers (for_each_as).
    bool keep_text = false;
    void* context = nullptr;
    /// Called once before the rows with their number.
    void (*on_start)(void* context, std::uint64_t rows) = nullptr;
    /// Stores one row; returns the field that failed, if any. May throw (a user callback):
    /// the read stops and the exception propagates.
    decode_status (*on_row)(void* context, const fetched_row& row) = nullptr;
};

} // namespace cloudmysql::detail
