// What an error says beyond its code: SQLSTATE, our message and the server's message.
#pragma once

#include <cloudmysql/error.hpp>

#include <string>
#include <utility>

namespace cloudmysql {

/// Details of the last failed operation, filled by every `f(args, error_code&, diagnostics&)`.
///
/// The server's message is kept apart from ours because it is untrusted input: it can quote
/// user data, and a program may want to log it differently or not show it to end users.
class diagnostics {
public:
    diagnostics() = default;
    diagnostics(std::string client_message, std::string server_message, std::string sqlstate,
                cloudmysql::error_class cls)
            : client_message_(std::move(client_message)),
              server_message_(std::move(server_message)), sqlstate_(std::move(sqlstate)),
              class_(cls) {}

    /// cloudmysql's description: what happened and what to do. Empty when there is no error.
    const std::string& client_message() const noexcept { return client_message_; }
    /// The server's own message, verbatim. Empty unless the server reported the error.
    const std::string& server_message() const noexcept { return server_message_; }
    /// The five-character SQLSTATE ("42000"), or empty when none applies.
    const std::string& sqlstate() const noexcept { return sqlstate_; }
    /// The class of the error, refined by where it happened (see classify()).
    cloudmysql::error_class error_class() const noexcept { return class_; }

    void clear() noexcept {
        client_message_.clear();
        server_message_.clear();
        sqlstate_.clear();
        class_ = error_class::none;
    }

private:
    std::string client_message_;
    std::string server_message_;
    std::string sqlstate_;
    cloudmysql::error_class class_ = error_class::none;
};

} // namespace cloudmysql
