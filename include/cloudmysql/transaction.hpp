// A transaction that rolls back unless committed.
#pragma once

#include <cloudmysql/connection.hpp>

namespace cloudmysql {

/// Starts a transaction on construction; commit() ends it. If the guard is destroyed without
/// commit() (an exception, an early return), the transaction is rolled back. Not copyable or
/// movable: it lives in the scope whose work it guards.
///
/// Note that MySQL commits implicitly before and after DDL (CREATE, ALTER, DROP): a guard
/// cannot undo those.
class transaction {
public:
    /// START TRANSACTION; throws database_error on failure.
    explicit transaction(connection& conn);
    transaction(connection& conn, error_code& ec, diagnostics& diag);
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    /// Rolls back if still active. Errors are swallowed: a lost connection rolls back anyway.
    ~transaction();

    void commit();
    void commit(error_code& ec, diagnostics& diag);
    void rollback();
    void rollback(error_code& ec, diagnostics& diag);

    /// True until commit() or rollback() succeeds or the guard failed to start.
    bool active() const noexcept { return active_; }

private:
    connection& conn_;
    bool active_ = false;
};

} // namespace cloudmysql
