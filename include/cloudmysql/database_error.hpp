// The exception thrown by the throwing form of every cloudmysql operation.
#pragma once

#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>

#include <string>
#include <system_error>

namespace cloudmysql {

/// A failed database operation: the error code, the diagnostics and a what() that reads as a
/// sentence ("connect to 127.0.0.1:3306 as 'app' failed: ...; check the password").
class database_error : public std::system_error {
public:
    database_error(const error_code& ec, cloudmysql::diagnostics diag)
            : std::system_error(ec), error_code_(ec), diag_(std::move(diag)),
              what_(compose(error_code_, diag_)) {}

    /// The full sentence: our message, then the server's when it sent one.
    const char* what() const noexcept override { return what_.c_str(); }

    /// The code in cloudmysql's (Boost.System) form; code() gives the std::error_code form.
    const error_code& get_error_code() const noexcept { return error_code_; }
    const cloudmysql::diagnostics& diagnostics() const noexcept { return diag_; }
    cloudmysql::error_class error_class() const noexcept { return diag_.error_class(); }

private:
    static std::string compose(const error_code& ec, const cloudmysql::diagnostics& diag);

    error_code error_code_;
    cloudmysql::diagnostics diag_;
    std::string what_;
};

/// Throws database_error when ec holds an error.
inline void throw_on_error(const error_code& ec, const diagnostics& diag) {
    if (ec)
        throw database_error(ec, diag);
}

} // namespace cloudmysql
