// A server-side prepared statement.
#pragma once

#include <cloudmysql/database_error.hpp>
#include <cloudmysql/param.hpp>
#include <cloudmysql/result.hpp>

#include <array>
#include <memory>
#include <span>

namespace cloudmysql {

class connection;

/// A prepared statement, made by connection::prepare(). Move-only; closes itself on
/// destruction. It belongs to its connection's session: connection::reset() and reconnecting
/// invalidate it (executing it then fails with a clear error), and it must not outlive the
/// connection object. Not thread-safe, like the connection.
class statement {
public:
    statement() noexcept;
    statement(statement&&) noexcept;
    statement& operator=(statement&&) noexcept;
    ~statement();

    bool valid() const noexcept { return impl_ != nullptr; }
    /// The number of '?' placeholders.
    unsigned param_count() const noexcept;

    /// Executes with the given parameters (one per '?', in order) and buffers the result.
    template <class... Params>
    result execute(const Params&... params) {
        const std::array<param, sizeof...(Params)> bound{param(params)...};
        return execute_span(bound);
    }

    result execute_span(std::span<const param> params);
    result execute_span(std::span<const param> params, error_code& ec, diagnostics& diag);

    /// Releases the server-side statement now (the destructor does this too).
    void close() noexcept;

    struct impl;

private:
    friend class connection;
    explicit statement(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

} // namespace cloudmysql
