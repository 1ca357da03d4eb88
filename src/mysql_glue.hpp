// Internal: what connection.cpp and statement.cpp share. The only place besides them that
// sees <mysql.h>; never installed.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/result.hpp>
#include <cloudmysql/statement.hpp>

#include <mysql.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql {

struct connection::impl {
    MYSQL* mysql = nullptr;
    connect_options options;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() { close(); }

    void close() noexcept {
        if (mysql != nullptr) {
            mysql_close(mysql);
            mysql = nullptr;
        }
    }
};

struct statement::impl {
    MYSQL_STMT* stmt = nullptr;
    std::string sql_excerpt;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() {
        if (stmt != nullptr)
            mysql_stmt_close(stmt);
    }
};

namespace detail {

/// The SQL shortened for a message: one line, at most ~60 characters.
std::string excerpt(std::string_view sql);

/// Fills ec and diag from the handle's last error. `context` says what was being done
/// ("query 'SELECT ...' failed"); the hint for the user is added from the error class.
void set_error_from(MYSQL* mysql, std::string_view context, error_code& ec, diagnostics& diag);
void set_error_from(MYSQL_STMT* stmt, std::string_view context, error_code& ec, diagnostics& diag);
/// Fills ec and diag with one of our own errors.
void set_client_error(client_errc code, std::string message, error_code& ec, diagnostics& diag);

/// What the user should do about an error of this class ("" when nothing useful applies).
std::string_view hint_for(error_class cls) noexcept;

/// The columns of a result's metadata.
std::shared_ptr<const std::vector<column>> columns_of(MYSQL_FIELD* fields, unsigned count);

/// A text-protocol field converted to the value type its column declares.
value from_text(const char* data, unsigned long length, const MYSQL_FIELD& field);

} // namespace detail
} // namespace cloudmysql
