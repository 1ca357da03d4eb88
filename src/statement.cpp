// Prepared statements: binding parameters and buffering binary-protocol results.
#include "mysql_glue.hpp"

#include <cloudmysql/statement.hpp>

#include <fmt/format.h>

#include <errmsg.h>

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

// Storage that must outlive mysql_stmt_execute for the parameters.
struct bound_params {
    std::vector<MYSQL_BIND> binds;
    std::vector<MYSQL_TIME> times;
    std::vector<unsigned long> lengths;
    std::vector<std::int64_t> integers; // int64 and uint64 bit patterns
    std::vector<double> doubles;

    explicit bound_params(std::span<const param> params)
            : binds(params.size()), times(params.size()), lengths(params.size()),
              integers(params.size()), doubles(params.size()) {
        for (std::size_t i = 0; i < params.size(); ++i)
            bind_one(i, params[i].get());
    }

    void bind_one(std::size_t i, const param::storage& p) {
        MYSQL_BIND& b = binds[i];
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
                    MYSQL_TIME& t = times[i];
                    std::memset(&t, 0, sizeof t);
                    t.year = static_cast<unsigned>(static_cast<int>(v.year()));
                    t.month = static_cast<unsigned>(v.month());
                    t.day = static_cast<unsigned>(v.day());
                    t.time_type = MYSQL_TIMESTAMP_DATE;
                    b.buffer_type = MYSQL_TYPE_DATE;
                    b.buffer = &t;
                } else {
                    static_assert(std::is_same_v<T, datetime>);
                    MYSQL_TIME& t = times[i];
                    std::memset(&t, 0, sizeof t);
                    const auto day = std::chrono::floor<std::chrono::days>(v);
                    const std::chrono::year_month_day ymd(day);
                    const std::chrono::hh_mm_ss<std::chrono::microseconds> tod(v - day);
                    t.year = static_cast<unsigned>(static_cast<int>(ymd.year()));
                    t.month = static_cast<unsigned>(ymd.month());
                    t.day = static_cast<unsigned>(ymd.day());
                    t.hour = static_cast<unsigned>(tod.hours().count());
                    t.minute = static_cast<unsigned>(tod.minutes().count());
                    t.second = static_cast<unsigned>(tod.seconds().count());
                    t.second_part = static_cast<unsigned long>(tod.subseconds().count());
                    t.time_type = MYSQL_TIMESTAMP_DATETIME;
                    b.buffer_type = MYSQL_TYPE_DATETIME;
                    b.buffer = &t;
                }
            },
            p);
    }
};

// Buffers for one fetched row of a binary-protocol result.
struct result_buffers {
    std::vector<MYSQL_BIND> binds;
    std::vector<std::int64_t> integers;
    std::vector<double> doubles;
    std::vector<MYSQL_TIME> times;
    std::vector<std::string> strings;
    std::vector<unsigned long> lengths;
    std::vector<my_bool> nulls;
    std::vector<my_bool> errors;

    result_buffers(MYSQL_FIELD* fields, unsigned count)
            : binds(count), integers(count), doubles(count), times(count), strings(count),
              lengths(count), nulls(count), errors(count) {
        for (unsigned i = 0; i < count; ++i) {
            const MYSQL_FIELD& f = fields[i];
            MYSQL_BIND& b = binds[i];
            std::memset(&b, 0, sizeof b);
            b.is_null = &nulls[i];
            b.length = &lengths[i];
            b.error = &errors[i];
            if (detail::is_integer_type(f.type)) {
                b.buffer_type = MYSQL_TYPE_LONGLONG;
                b.buffer = &integers[i];
                b.is_unsigned = (f.flags & UNSIGNED_FLAG) != 0;
            } else if (detail::is_float_type(f.type)) {
                b.buffer_type = MYSQL_TYPE_DOUBLE;
                b.buffer = &doubles[i];
            } else if (detail::is_date_type(f.type) || detail::is_datetime_type(f.type)) {
                b.buffer_type =
                    detail::is_date_type(f.type) ? MYSQL_TYPE_DATE : MYSQL_TYPE_DATETIME;
                b.buffer = &times[i];
            } else {
                // max_length is the longest value in the buffered result (UPDATE_MAX_LENGTH).
                strings[i].resize(std::max<unsigned long>(f.max_length, 1) + 1);
                b.buffer_type = MYSQL_TYPE_STRING;
                b.buffer = strings[i].data();
                b.buffer_length = strings[i].size();
            }
        }
    }

    value take(MYSQL_STMT* stmt, unsigned i) {
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
        case MYSQL_TYPE_DATE:
        case MYSQL_TYPE_DATETIME:
            return from_time(times[i], b.buffer_type == MYSQL_TYPE_DATE);
        default:
            break;
        }
        if (lengths[i] > b.buffer_length) {
            // Longer than max_length promised: fetch the whole value column-wise.
            std::string whole(lengths[i], '\0');
            MYSQL_BIND one;
            std::memset(&one, 0, sizeof one);
            one.buffer_type = MYSQL_TYPE_STRING;
            one.buffer = whole.data();
            one.buffer_length = whole.size();
            mysql_stmt_fetch_column(stmt, &one, i, 0);
            return whole;
        }
        return std::string(strings[i].data(), lengths[i]);
    }

    static value from_time(const MYSQL_TIME& t, bool date_only) {
        const std::chrono::year_month_day ymd{std::chrono::year{static_cast<int>(t.year)},
                                              std::chrono::month{t.month}, std::chrono::day{t.day}};
        if (!ymd.ok()) // a zero date: keep its text rather than invent a date
            return date_only ? std::string("0000-00-00") : std::string("0000-00-00 00:00:00");
        if (date_only)
            return ymd;
        return datetime(std::chrono::sys_days(ymd) + std::chrono::hours(t.hour) +
                        std::chrono::minutes(t.minute) + std::chrono::seconds(t.second) +
                        std::chrono::microseconds(t.second_part));
    }
};

// The warnings of the statement's last execution.
unsigned warning_count(MYSQL_STMT* stmt) {
    return static_cast<unsigned>(mysql_stmt_warning_count(stmt));
}

} // namespace

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
    MYSQL_STMT* stmt = impl_->stmt;
    const detail::fault_watch watch(impl_->fault, diag);
    const auto context = [&] { return fmt::format("execute '{}' failed", impl_->sql_excerpt); };
    if (impl_->session.expired()) {
        // libmariadb detaches statements when their session is reset or closed, and would
        // report "Lost connection" for them although the session is fine.
        set_client_error(client_errc::statement_closed,
                         fmt::format("{}: the statement belonged to a session that was reset or "
                                     "closed since it was prepared: prepare it again",
                                     context()),
                         ec, diag);
        return {};
    }

    const unsigned long expected = mysql_stmt_param_count(stmt);
    if (expected != params.size()) {
        set_client_error(client_errc::wrong_parameter_count,
                         fmt::format("{}: the statement has {} '?' placeholder(s) but {} "
                                     "parameter(s) were given",
                                     context(), expected, params.size()),
                         ec, diag);
        return {};
    }
    bound_params bound(params);
    if ((!bound.binds.empty() && mysql_stmt_bind_param(stmt, bound.binds.data()) != 0) ||
        mysql_stmt_execute(stmt) != 0) {
        set_error_from(stmt, context(), ec, diag);
        return {};
    }

    const unsigned count = mysql_stmt_field_count(stmt);
    if (count == 0) {
        return result(nullptr, {}, mysql_stmt_affected_rows(stmt), mysql_stmt_insert_id(stmt),
                      warning_count(stmt));
    }

    const my_bool update_max_length = 1;
    mysql_stmt_attr_set(stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &update_max_length);
    if (mysql_stmt_store_result(stmt) != 0) {
        set_error_from(stmt, context(), ec, diag);
        return {};
    }
    MYSQL_RES* meta = mysql_stmt_result_metadata(stmt);
    MYSQL_FIELD* fields = meta ? mysql_fetch_fields(meta) : nullptr;
    if (fields == nullptr) {
        if (meta)
            mysql_free_result(meta);
        set_error_from(stmt, context(), ec, diag);
        return {};
    }
    auto columns = detail::columns_of(fields, count);
    // The metadata's fields carry max_length: it is read after mysql_stmt_store_result().
    result_buffers buffers(fields, count);
    mysql_free_result(meta);

    std::vector<row> rows;
    rows.reserve(static_cast<std::size_t>(mysql_stmt_num_rows(stmt)));
    if (mysql_stmt_bind_result(stmt, buffers.binds.data()) != 0) {
        set_error_from(stmt, context(), ec, diag);
        mysql_stmt_free_result(stmt);
        return {};
    }
    for (;;) {
        const int rc = mysql_stmt_fetch(stmt);
        if (rc == MYSQL_NO_DATA)
            break;
        if (rc == 1) {
            set_error_from(stmt, context(), ec, diag);
            mysql_stmt_free_result(stmt);
            return {};
        }
        // rc is 0 or MYSQL_DATA_TRUNCATED; take() fetches truncated columns whole.
        std::vector<value> values;
        values.reserve(count);
        for (unsigned i = 0; i < count; ++i)
            values.push_back(buffers.take(stmt, i));
        rows.emplace_back(std::move(values), columns);
    }
    const std::uint64_t row_count = rows.size();
    mysql_stmt_free_result(stmt);
    // A CALL returns its result sets and a final status; drain them so the statement is reusable.
    while (mysql_stmt_more_results(stmt) && mysql_stmt_next_result(stmt) == 0) {
    }
    return result(std::move(columns), std::move(rows), row_count, mysql_stmt_insert_id(stmt),
                  warning_count(stmt));
}

} // namespace cloudmysql
