// Prepared statements: binding parameters and buffering binary-protocol results.
#include "mysql_glue.hpp"

#include <cloudmysql/statement.hpp>

#include <fmt/format.h>

#include <errmsg.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace cloudmysql {
namespace detail {
namespace {

bool is_integer_type(enum_field_types t) {
    switch (t) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return true;
    default:
        return false;
    }
}

bool is_float_type(enum_field_types t) {
    return t == MYSQL_TYPE_FLOAT || t == MYSQL_TYPE_DOUBLE;
}

bool is_date_type(enum_field_types t) {
    return t == MYSQL_TYPE_DATE || t == MYSQL_TYPE_NEWDATE;
}

bool is_datetime_type(enum_field_types t) {
    return t == MYSQL_TYPE_DATETIME || t == MYSQL_TYPE_TIMESTAMP;
}

std::string sql_type_name(const MYSQL_FIELD& f) {
    switch (f.type) {
    case MYSQL_TYPE_TINY:
        return "TINYINT";
    case MYSQL_TYPE_SHORT:
        return "SMALLINT";
    case MYSQL_TYPE_INT24:
        return "MEDIUMINT";
    case MYSQL_TYPE_LONG:
        return "INT";
    case MYSQL_TYPE_LONGLONG:
        return "BIGINT";
    case MYSQL_TYPE_YEAR:
        return "YEAR";
    case MYSQL_TYPE_FLOAT:
        return "FLOAT";
    case MYSQL_TYPE_DOUBLE:
        return "DOUBLE";
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
        return "DECIMAL";
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
        return "DATE";
    case MYSQL_TYPE_DATETIME:
        return "DATETIME";
    case MYSQL_TYPE_TIMESTAMP:
        return "TIMESTAMP";
    case MYSQL_TYPE_TIME:
        return "TIME";
    case MYSQL_TYPE_BIT:
        return "BIT";
    case MYSQL_TYPE_JSON:
        return "JSON";
    case MYSQL_TYPE_ENUM:
        return "ENUM";
    case MYSQL_TYPE_SET:
        return "SET";
    case MYSQL_TYPE_NULL:
        return "NULL";
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
        return f.charsetnr == 63 ? "BLOB" : "TEXT";
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
        return f.charsetnr == 63 ? "VARBINARY" : "VARCHAR";
    case MYSQL_TYPE_STRING:
        return f.charsetnr == 63 ? "BINARY" : "CHAR";
    default:
        return "OTHER";
    }
}

template <class T>
bool parse_number(std::string_view text, T& out) {
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc() && ptr == end;
}

// "YYYY-MM-DD"; false for anything else, including MySQL's zero dates.
bool parse_date(std::string_view text, std::chrono::year_month_day& out) {
    int y = 0;
    unsigned m = 0;
    unsigned d = 0;
    if (text.size() != 10 || text[4] != '-' || text[7] != '-' ||
        !parse_number(text.substr(0, 4), y) || !parse_number(text.substr(5, 2), m) ||
        !parse_number(text.substr(8, 2), d))
        return false;
    out = std::chrono::year_month_day{std::chrono::year{y}, std::chrono::month{m},
                                      std::chrono::day{d}};
    return out.ok();
}

// "YYYY-MM-DD HH:MM:SS[.ffffff]".
bool parse_datetime(std::string_view text, datetime& out) {
    std::chrono::year_month_day date;
    unsigned h = 0;
    unsigned mi = 0;
    unsigned s = 0;
    if (text.size() < 19 || text[10] != ' ' || text[13] != ':' || text[16] != ':' ||
        !parse_date(text.substr(0, 10), date) || !parse_number(text.substr(11, 2), h) ||
        !parse_number(text.substr(14, 2), mi) || !parse_number(text.substr(17, 2), s))
        return false;
    std::int64_t micros = 0;
    if (text.size() > 19) {
        const std::string_view frac = text.substr(20);
        if (text[19] != '.' || frac.empty() || frac.size() > 6 || !parse_number(frac, micros))
            return false;
        for (std::size_t i = frac.size(); i < 6; ++i)
            micros *= 10;
    }
    out = std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(mi) +
          std::chrono::seconds(s) + std::chrono::microseconds(micros);
    return true;
}

} // namespace

std::shared_ptr<const std::vector<column>> columns_of(MYSQL_FIELD* fields, unsigned count) {
    auto columns = std::make_shared<std::vector<column>>();
    columns->reserve(count);
    for (unsigned i = 0; i < count; ++i) {
        const MYSQL_FIELD& f = fields[i];
        columns->push_back(column{std::string(f.name, f.name_length), sql_type_name(f),
                                  (f.flags & UNSIGNED_FLAG) != 0, (f.flags & NOT_NULL_FLAG) == 0});
    }
    return columns;
}

value from_text(const char* data, unsigned long length, const MYSQL_FIELD& field) {
    const std::string_view text(data, length);
    if (is_integer_type(field.type)) {
        if ((field.flags & UNSIGNED_FLAG) != 0) {
            std::uint64_t u = 0;
            if (parse_number(text, u))
                return u;
        } else {
            std::int64_t i = 0;
            if (parse_number(text, i))
                return i;
        }
    } else if (is_float_type(field.type)) {
        double d = 0;
        if (parse_number(text, d))
            return d;
    } else if (is_date_type(field.type)) {
        std::chrono::year_month_day date;
        if (parse_date(text, date))
            return date;
    } else if (is_datetime_type(field.type)) {
        datetime t;
        if (parse_datetime(text, t))
            return t;
    }
    return std::string(text); // DECIMAL, TIME, text, bytes; and what did not parse (zero dates)
}

} // namespace detail

namespace {

using detail::set_client_error;
using detail::set_error_from;

// Text buffers start at the column's declared length (bytes) within these bounds, and grow to
// the longest value seen up to the upper one; longer values are fetched alone each time.
constexpr std::size_t min_text_buffer = 16;
constexpr std::size_t initial_text_buffer_cap = 1024;
constexpr std::size_t max_text_buffer = std::size_t{1} << 20;

void set_time_of_date(MYSQL_TIME& t, const std::chrono::year_month_day& v) {
    std::memset(&t, 0, sizeof t);
    t.year = static_cast<unsigned>(static_cast<int>(v.year()));
    t.month = static_cast<unsigned>(v.month());
    t.day = static_cast<unsigned>(v.day());
    t.time_type = MYSQL_TIMESTAMP_DATE;
}

bool date_of(const MYSQL_TIME& t, std::chrono::year_month_day& out) noexcept {
    out = std::chrono::year_month_day{std::chrono::year{static_cast<int>(t.year)},
                                      std::chrono::month{t.month}, std::chrono::day{t.day}};
    return out.ok();
}

bool datetime_of(const MYSQL_TIME& t, datetime& out) noexcept {
    std::chrono::year_month_day ymd;
    if (!date_of(t, ymd))
        return false;
    out = datetime(std::chrono::sys_days(ymd) + std::chrono::hours(t.hour) +
                   std::chrono::minutes(t.minute) + std::chrono::seconds(t.second) +
                   std::chrono::microseconds(t.second_part));
    return true;
}

// The warnings of the statement's last execution.
unsigned warning_count(MYSQL_STMT* stmt) {
    return static_cast<unsigned>(mysql_stmt_warning_count(stmt));
}

std::string context_of(const statement::impl& s) {
    return fmt::format("execute '{}' failed", s.sql_excerpt);
}

// Reads the columns again when the server sent metadata that differs from what they were read
// from (libmariadb updates the statement's fields in place); otherwise keeps them, names
// included, and the buffers bound to them.
void refresh_columns(statement::impl& s, unsigned count) {
    const MYSQL_FIELD* fields = mariadb_stmt_fetch_fields(s.stmt);
    bool same = s.columns != nullptr && s.signature.size() == count;
    for (unsigned i = 0; same && i < count; ++i)
        same = s.signature[i] ==
               detail::column_signature{fields[i].type, fields[i].flags, fields[i].charsetnr};
    if (same)
        return;
    s.columns = detail::columns_of(const_cast<MYSQL_FIELD*>(fields), count);
    s.signature.clear();
    for (unsigned i = 0; i < count; ++i)
        s.signature.push_back({fields[i].type, fields[i].flags, fields[i].charsetnr});
    s.results.setup(fields, count);
    ++s.columns_version;
}

// Frees a statement's result however a read ends (a user callback may throw), and drains the
// further results a CALL returns, so that the statement can run again.
class result_guard {
public:
    explicit result_guard(statement::impl& s) noexcept : s_(s) {}
    result_guard(const result_guard&) = delete;
    result_guard& operator=(const result_guard&) = delete;
    ~result_guard() {
        MYSQL_STMT* stmt = s_.stmt;
        mysql_stmt_free_result(stmt);
        while (mysql_stmt_more_results(stmt)) {
            s_.results.bound = false; // libmariadb reads the next result's fields afresh
            if (mysql_stmt_next_result(stmt) != 0)
                break;
        }
    }

private:
    statement::impl& s_;
};

// Stores the result and binds the buffers: what both reads do after executing.
bool store_and_bind(statement::impl& s, error_code& ec, diagnostics& diag) {
    if (mysql_stmt_store_result(s.stmt) != 0) {
        set_error_from(s.stmt, context_of(s), ec, diag);
        return false;
    }
    s.results.grow();
    // libmariadb keeps the bound buffers from one execution to the next, as long as the
    // statement returns one result (it forgets them when more follow, as after a CALL).
    if (s.results.bound && !mysql_stmt_more_results(s.stmt))
        return true;
    if (mysql_stmt_bind_result(s.stmt, s.results.binds.data()) != 0) {
        s.results.bound = false;
        set_error_from(s.stmt, context_of(s), ec, diag);
        return false;
    }
    s.results.bound = true;
    return true;
}

} // namespace

namespace detail {

bool param_buffers::fill(std::span<const param> params) {
    const std::size_t n = params.size();
    bool changed = !bound;
    if (binds.size() != n) {
        binds.resize(n);
        times.resize(n);
        lengths.resize(n);
        integers.resize(n);
        doubles.resize(n);
        changed = true;
    }
    for (std::size_t i = 0; i < n; ++i) {
        MYSQL_BIND b;
        std::memset(&b, 0, sizeof b);
        std::visit(
            [&](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::monostate>) {
                    b.buffer_type = MYSQL_TYPE_NULL;
                } else if constexpr (std::is_same_v<T, std::int64_t>) {
                    integers[i] = v;
                    b.buffer_type = MYSQL_TYPE_LONGLONG;
                    b.buffer = &integers[i];
                } else if constexpr (std::is_same_v<T, std::uint64_t>) {
                    std::memcpy(&integers[i], &v, sizeof v);
                    b.buffer_type = MYSQL_TYPE_LONGLONG;
                    b.buffer = &integers[i];
                    b.is_unsigned = 1;
                } else if constexpr (std::is_same_v<T, double>) {
                    doubles[i] = v;
                    b.buffer_type = MYSQL_TYPE_DOUBLE;
                    b.buffer = &doubles[i];
                } else if constexpr (std::is_same_v<T, std::string_view>) {
                    lengths[i] = v.size();
                    b.buffer_type = MYSQL_TYPE_STRING;
                    // libmariadb reads from the buffer; it never writes to a parameter.
                    b.buffer = const_cast<char*>(v.data());
                    b.buffer_length = v.size();
                    b.length = &lengths[i];
                } else if constexpr (std::is_same_v<T, std::chrono::year_month_day>) {
                    set_time_of_date(times[i], v);
                    b.buffer_type = MYSQL_TYPE_DATE;
                    b.buffer = &times[i];
                } else {
                    static_assert(std::is_same_v<T, datetime>);
                    MYSQL_TIME& t = times[i];
                    const auto day = std::chrono::floor<std::chrono::days>(v);
                    const std::chrono::hh_mm_ss<std::chrono::microseconds> tod(v - day);
                    set_time_of_date(t, std::chrono::year_month_day(day));
                    t.hour = static_cast<unsigned>(tod.hours().count());
                    t.minute = static_cast<unsigned>(tod.minutes().count());
                    t.second = static_cast<unsigned>(tod.seconds().count());
                    t.second_part = static_cast<unsigned long>(tod.subseconds().count());
                    t.time_type = MYSQL_TIMESTAMP_DATETIME;
                    b.buffer_type = MYSQL_TYPE_DATETIME;
                    b.buffer = &t;
                }
            },
            params[i].get());
        // libmariadb keeps its own copy of the binds and reads the values through their
        // pointers at each execution: only another type, pointer or length needs a new bind.
        const MYSQL_BIND& old = binds[i];
        changed = changed || b.buffer_type != old.buffer_type || b.buffer != old.buffer ||
                  b.buffer_length != old.buffer_length || b.is_unsigned != old.is_unsigned ||
                  b.length != old.length;
        binds[i] = b;
    }
    return changed;
}

void result_buffers::setup(const MYSQL_FIELD* fields, unsigned count) {
    binds.assign(count, MYSQL_BIND{});
    integers.assign(count, 0);
    doubles.assign(count, 0);
    times.assign(count, MYSQL_TIME{});
    strings.resize(count);
    whole.resize(count);
    lengths.assign(count, 0);
    nulls.assign(count, 0);
    errors.assign(count, 0);
    wanted.assign(count, 0);
    bound = false;
    for (unsigned i = 0; i < count; ++i) {
        const MYSQL_FIELD& f = fields[i];
        MYSQL_BIND& b = binds[i];
        b.is_null = &nulls[i];
        b.length = &lengths[i];
        b.error = &errors[i];
        if (is_integer_type(f.type)) {
            b.buffer_type = MYSQL_TYPE_LONGLONG;
            b.buffer = &integers[i];
            b.is_unsigned = (f.flags & UNSIGNED_FLAG) != 0;
        } else if (is_float_type(f.type)) {
            b.buffer_type = MYSQL_TYPE_DOUBLE;
            b.buffer = &doubles[i];
        } else if (is_date_type(f.type) || is_datetime_type(f.type)) {
            b.buffer_type = is_date_type(f.type) ? MYSQL_TYPE_DATE : MYSQL_TYPE_DATETIME;
            b.buffer = &times[i];
        } else {
            // The declared length (in bytes) is a good first guess for VARCHAR; TEXT and BLOB
            // declare up to 4 GB, so the buffer starts capped and grows to what arrives.
            const std::size_t size = std::clamp<std::size_t>(
                static_cast<std::size_t>(f.length) + 1, min_text_buffer, initial_text_buffer_cap);
            if (strings[i].size() < size)
                strings[i].resize(size);
            b.buffer_type = MYSQL_TYPE_STRING;
            b.buffer = strings[i].data();
            b.buffer_length = strings[i].size();
        }
    }
}

void result_buffers::grow() {
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        if (wanted[i] <= strings[i].size())
            continue;
        strings[i].resize(wanted[i]);
        binds[i].buffer = strings[i].data();
        binds[i].buffer_length = strings[i].size();
        bound = false;
    }
}

std::string_view result_buffers::text(MYSQL_STMT* stmt, unsigned i) {
    MYSQL_BIND& b = binds[i];
    const unsigned long length = lengths[i];
    if (length <= b.buffer_length)
        return {strings[i].data(), length};
    // Longer than the bound buffer: fetch this value alone, and bind a buffer that holds it
    // for the next execution (up to max_text_buffer).
    std::string& all = whole[i];
    all.resize(length);
    MYSQL_BIND one;
    std::memset(&one, 0, sizeof one);
    one.buffer_type = MYSQL_TYPE_STRING;
    one.buffer = all.data();
    one.buffer_length = length;
    mysql_stmt_fetch_column(stmt, &one, i, 0);
    // The bound buffer must not move while libmariadb fetches into it: grow() resizes it
    // before the next execution binds.
    if (length < max_text_buffer)
        wanted[i] = std::max(wanted[i], std::bit_ceil(static_cast<std::size_t>(length) + 1));
    return all;
}

value result_buffers::take(MYSQL_STMT* stmt, unsigned i) {
    if (nulls[i])
        return {};
    const MYSQL_BIND& b = binds[i];
    switch (b.buffer_type) {
    case MYSQL_TYPE_LONGLONG:
        if (b.is_unsigned) {
            std::uint64_t u = 0;
            std::memcpy(&u, &integers[i], sizeof u);
            return u;
        }
        return integers[i];
    case MYSQL_TYPE_DOUBLE:
        return doubles[i];
    case MYSQL_TYPE_DATE: {
        std::chrono::year_month_day d;
        if (date_of(times[i], d))
            return d;
        return std::string("0000-00-00"); // a zero date: keep its text rather than invent one
    }
    case MYSQL_TYPE_DATETIME: {
        datetime t;
        if (datetime_of(times[i], t))
            return t;
        return std::string("0000-00-00 00:00:00");
    }
    default:
        return std::string(text(stmt, i));
    }
}

std::string_view text_arena::keep(std::string_view text) {
    if (text.empty())
        return {};
    if (blocks_.empty() || blocks_.back().size - used_ < text.size()) {
        const std::size_t size =
            std::max<std::size_t>(text.size(), blocks_.empty() ? 4096 : blocks_.back().size * 2);
        blocks_.push_back(block{std::make_unique<char[]>(size), size});
        used_ = 0;
    }
    char* at = blocks_.back().data.get() + used_;
    std::memcpy(at, text.data(), text.size());
    used_ += text.size();
    return {at, text.size()};
}

void text_arena::clear() noexcept {
    if (blocks_.size() > 1) {
        block largest = std::move(blocks_.back()); // each block is at least twice the last
        blocks_.clear();
        blocks_.push_back(std::move(largest));
    }
    used_ = 0;
}

bool execute_prepared(statement::impl& s, std::span<const param> params, error_code& ec,
                      diagnostics& diag) {
    MYSQL_STMT* stmt = s.stmt;
    if (s.session.expired()) {
        // libmariadb detaches statements when their session is reset or closed, and would
        // report "Lost connection" for them although the session is fine.
        set_client_error(client_errc::statement_closed,
                         fmt::format("{}: the statement belonged to a session that was reset or "
                                     "closed since it was prepared: prepare it again",
                                     context_of(s)),
                         ec, diag);
        return false;
    }
    const unsigned long expected = mysql_stmt_param_count(stmt);
    if (expected != params.size()) {
        set_client_error(client_errc::wrong_parameter_count,
                         fmt::format("{}: the statement has {} '?' placeholder(s) but {} "
                                     "parameter(s) were given",
                                     context_of(s), expected, params.size()),
                         ec, diag);
        return false;
    }
    if (s.params.fill(params) && !params.empty()) {
        s.params.bound = mysql_stmt_bind_param(stmt, s.params.binds.data()) == 0;
        if (!s.params.bound) {
            set_error_from(stmt, context_of(s), ec, diag);
            return false;
        }
    }
    if (mysql_stmt_execute(stmt) != 0) {
        set_error_from(stmt, context_of(s), ec, diag);
        return false;
    }
    return true;
}

result buffer_result(statement::impl& s, error_code& ec, diagnostics& diag) {
    MYSQL_STMT* stmt = s.stmt;
    const unsigned count = mysql_stmt_field_count(stmt);
    if (count == 0) {
        return result(nullptr, {}, mysql_stmt_affected_rows(stmt), mysql_stmt_insert_id(stmt),
                      warning_count(stmt));
    }
    refresh_columns(s, count);
    std::vector<row> rows;
    {
        const result_guard guard(s);
        if (!store_and_bind(s, ec, diag))
            return {};
        rows.reserve(static_cast<std::size_t>(mysql_stmt_num_rows(stmt)));
        for (;;) {
            const int rc = mysql_stmt_fetch(stmt);
            if (rc == MYSQL_NO_DATA)
                break;
            if (rc == 1) {
                set_error_from(stmt, context_of(s), ec, diag);
                return {};
            }
            // rc is 0 or MYSQL_DATA_TRUNCATED; take() fetches longer text whole.
            std::vector<value> values;
            values.reserve(count);
            for (unsigned i = 0; i < count; ++i)
                values.push_back(s.results.take(stmt, i));
            rows.emplace_back(std::move(values), s.columns);
        }
    }
    const std::uint64_t row_count = rows.size();
    return result(s.columns, std::move(rows), row_count, mysql_stmt_insert_id(stmt),
                  warning_count(stmt));
}

} // namespace detail

// ---- the typed read path ---------------------------------------------------------------------

namespace {

// The integer column's width in bytes, 0 for other columns.
unsigned integer_width(enum_field_types t) {
    switch (t) {
    case MYSQL_TYPE_TINY:
        return 1;
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_YEAR:
        return 2;
    case MYSQL_TYPE_INT24:
        return 3;
    case MYSQL_TYPE_LONG:
        return 4;
    case MYSQL_TYPE_LONGLONG:
        return 8;
    default:
        return 0;
    }
}

std::string_view integer_name(unsigned bytes, bool is_signed) {
    switch (bytes) {
    case 1:
        return is_signed ? "std::int8_t" : "std::uint8_t";
    case 2:
        return is_signed ? "std::int16_t" : "std::uint16_t";
    case 3:
    case 4:
        return is_signed ? "std::int32_t" : "std::uint32_t";
    default:
        return is_signed ? "std::int64_t" : "std::uint64_t";
    }
}

// The C++ type to suggest for a column.
std::string suggested_type(const MYSQL_FIELD& f) {
    if (const unsigned w = integer_width(f.type); w != 0) {
        const bool is_unsigned = (f.flags & UNSIGNED_FLAG) != 0;
        std::string s(integer_name(w, !is_unsigned));
        if (f.type == MYSQL_TYPE_TINY)
            s += " (or bool)";
        return s;
    }
    if (f.type == MYSQL_TYPE_FLOAT)
        return "float or double";
    if (f.type == MYSQL_TYPE_DOUBLE)
        return "double";
    if (detail::is_date_type(f.type))
        return "std::chrono::year_month_day";
    if (detail::is_datetime_type(f.type))
        return "cloudmysql::datetime";
    if (f.type == MYSQL_TYPE_DECIMAL || f.type == MYSQL_TYPE_NEWDECIMAL)
        return "std::string (the exact decimal text)";
    return "std::string or std::string_view";
}

// Whether a field of this kind holds every value of the column.
bool accepts(const detail::field_spec& spec, const MYSQL_FIELD& f) {
    using detail::field_kind;
    if (f.type == MYSQL_TYPE_NULL)
        return true; // SELECT NULL: every value is NULL, which std::optional takes
    const unsigned width = integer_width(f.type);
    const bool is_unsigned = (f.flags & UNSIGNED_FLAG) != 0;
    switch (spec.kind) {
    case field_kind::boolean:
        return f.type == MYSQL_TYPE_TINY;
    case field_kind::signed_integer:
        return width != 0 && spec.size >= width + (is_unsigned ? 1 : 0);
    case field_kind::unsigned_integer:
        return width != 0 && is_unsigned && spec.size >= width;
    case field_kind::floating:
        return (f.type == MYSQL_TYPE_FLOAT) || (f.type == MYSQL_TYPE_DOUBLE && spec.size == 8);
    case field_kind::date:
        return detail::is_date_type(f.type);
    case field_kind::date_time:
        return detail::is_datetime_type(f.type);
    case field_kind::text:
        return width == 0 && !detail::is_float_type(f.type) && !detail::is_date_type(f.type) &&
               !detail::is_datetime_type(f.type);
    }
    return false;
}

std::string field_type_name(const detail::field_spec& spec) {
    return spec.optional ? fmt::format("std::optional<{}>", spec.cpp_name)
                         : std::string(spec.cpp_name);
}

std::string column_label(const MYSQL_FIELD& f, std::size_t index) {
    return fmt::format("column {} '{}' ({}{})", index, std::string_view(f.name, f.name_length),
                       detail::sql_type_name(f), (f.flags & UNSIGNED_FLAG) != 0 ? " UNSIGNED" : "");
}

std::string typed_context(const statement::impl& s) {
    return fmt::format("reading the rows of '{}' as typed rows failed", s.sql_excerpt);
}

void set_type_mismatch(std::string message, error_code& ec, diagnostics& diag) {
    ec = make_error_code(client_errc::type_mismatch);
    diag = diagnostics(std::move(message), {}, {}, error_class::bad_input);
}

// Checks the result's columns against the row type's fields.
bool check_columns(const statement::impl& s, std::span<const detail::field_spec> specs,
                   unsigned count, error_code& ec, diagnostics& diag) {
    const MYSQL_FIELD* fields = mariadb_stmt_fetch_fields(s.stmt);
    if (count != specs.size()) {
        std::string names;
        for (unsigned i = 0; i < count; ++i)
            fmt::format_to(std::back_inserter(names), "{}'{}'", i == 0 ? "" : ", ",
                           std::string_view(fields[i].name, fields[i].name_length));
        set_type_mismatch(fmt::format("{}: the result has {} column(s) ({}) but the row type has "
                                      "{} field(s): select one column per field, in the order of "
                                      "the row type's fields",
                                      typed_context(s), count, names, specs.size()),
                          ec, diag);
        return false;
    }
    for (unsigned i = 0; i < count; ++i) {
        if (accepts(specs[i], fields[i]))
            continue;
        set_type_mismatch(fmt::format("{}: {} cannot be read into field {} of the row type, "
                                      "which is {}: declare that field as {} (in std::optional "
                                      "where the column may be NULL), or CAST the column in "
                                      "the SQL",
                                      typed_context(s), column_label(fields[i], i), i,
                                      field_type_name(specs[i]), suggested_type(fields[i])),
                          ec, diag);
        return false;
    }
    return true;
}

void set_decode_error(const statement::impl& s, const detail::decode_status& status,
                      std::span<const detail::field_spec> specs, std::uint64_t row_number,
                      error_code& ec, diagnostics& diag) {
    const MYSQL_FIELD& f = mariadb_stmt_fetch_fields(s.stmt)[status.index];
    const detail::field_spec& spec = specs[status.index];
    if (status.why == detail::decode_failure::is_null) {
        ec = make_error_code(client_errc::field_is_null);
        diag = diagnostics(
            fmt::format("{}: {} is NULL in row {}, but field {} of the row type is {}: declare "
                        "it std::optional<{}> to accept NULL",
                        typed_context(s), column_label(f, status.index), row_number, status.index,
                        spec.cpp_name, spec.cpp_name),
            {}, {}, error_class::bad_input);
    } else {
        ec = make_error_code(client_errc::value_out_of_range);
        diag = diagnostics(
            fmt::format("{}: {} holds a zero or invalid date in row {}, which {} cannot "
                        "represent: CAST it AS CHAR in the SQL and read it as std::string, or "
                        "store a valid date",
                        typed_context(s), column_label(f, status.index), row_number, spec.cpp_name),
            {}, {}, error_class::bad_input);
    }
}

} // namespace

bool detail::fetched_row::is_null(std::size_t index) const noexcept {
    return static_cast<const result_buffers*>(buffers_)->nulls[index] != 0;
}

std::int64_t detail::fetched_row::integer(std::size_t index) const noexcept {
    return static_cast<const result_buffers*>(buffers_)->integers[index];
}

double detail::fetched_row::real(std::size_t index) const noexcept {
    return static_cast<const result_buffers*>(buffers_)->doubles[index];
}

std::string_view detail::fetched_row::text(std::size_t index) const {
    return static_cast<result_buffers*>(buffers_)->text(static_cast<MYSQL_STMT*>(statement_),
                                                        static_cast<unsigned>(index));
}

std::string_view detail::fetched_row::kept_text(std::size_t index) const {
    return static_cast<text_arena*>(arena_)->keep(text(index));
}

bool detail::fetched_row::date(std::size_t index, std::chrono::year_month_day& out) const noexcept {
    return date_of(static_cast<const result_buffers*>(buffers_)->times[index], out);
}

bool detail::fetched_row::date_time(std::size_t index, datetime& out) const noexcept {
    return datetime_of(static_cast<const result_buffers*>(buffers_)->times[index], out);
}

void detail::read_typed(statement::impl& s, const row_reader& reader, text_arena& arena,
                        error_code& ec, diagnostics& diag) {
    MYSQL_STMT* stmt = s.stmt;
    const unsigned count = mysql_stmt_field_count(stmt);
    if (count == 0) {
        set_type_mismatch(fmt::format("{}: the statement returns no rows (it is not a SELECT): "
                                      "run it with execute()",
                                      typed_context(s)),
                          ec, diag);
        return;
    }
    refresh_columns(s, count);
    const result_guard guard(s);
    if (s.checked_row_type != reader.row_type || s.checked_version != s.columns_version) {
        if (!check_columns(s, reader.fields, count, ec, diag))
            return;
        s.checked_row_type = reader.row_type;
        s.checked_version = s.columns_version;
    }
    if (!store_and_bind(s, ec, diag))
        return;
    reader.on_start(reader.context, mysql_stmt_num_rows(stmt));
    const fetched_row row(&s.results, stmt, &arena);
    for (std::uint64_t n = 1;; ++n) {
        const int rc = mysql_stmt_fetch(stmt);
        if (rc == MYSQL_NO_DATA)
            return;
        if (rc == 1) {
            set_error_from(stmt, context_of(s), ec, diag);
            return;
        }
        const decode_status status = reader.on_row(reader.context, row);
        if (status.why != decode_failure::none) {
            set_decode_error(s, status, reader.fields, n, ec, diag);
            return;
        }
    }
}

// ---- statement -------------------------------------------------------------------------------

statement::statement() noexcept = default;
statement::statement(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {
}
statement::statement(statement&&) noexcept = default;
statement& statement::operator=(statement&&) noexcept = default;
statement::~statement() = default;

unsigned statement::param_count() const noexcept {
    return impl_ ? static_cast<unsigned>(mysql_stmt_param_count(impl_->stmt)) : 0;
}

void statement::close() noexcept {
    impl_.reset();
}

result statement::execute_span(std::span<const param> params) {
    error_code ec;
    diagnostics diag;
    auto r = execute_span(params, ec, diag);
    throw_on_error(ec, diag);
    return r;
}

result statement::execute_span(std::span<const param> params, error_code& ec, diagnostics& diag) {
    ec.clear();
    diag.clear();
    if (!impl_) {
        set_client_error(client_errc::not_connected,
                         "execute: the statement is empty (moved from or closed): prepare it", ec,
                         diag);
        return {};
    }
    const detail::fault_watch watch(impl_->fault, diag);
    if (!detail::execute_prepared(*impl_, params, ec, diag))
        return {};
    return detail::buffer_result(*impl_, ec, diag);
}

} // namespace cloudmysql
