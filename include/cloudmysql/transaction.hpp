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
    /// Sends ROLLBACK if still active(). Errors are swallowed: a lost session rolls back on
    /// the server anyway.
    ~transaction();

    /// COMMIT. When it fails with the session lost, whether it committed is unknown: read the
    /// data again on a new connection before doing the work again.
    void commit();
    void commit(error_code& ec, diagnostics& diag);
    /// ROLLBACK. May be called again after a failure that left the guard active().
    void rollback();
    void rollback(error_code& ec, diagnostics& diag);

    /// True while the transaction may still be open on the session: from a successful start
    /// until commit() or rollback() succeeds, or until the session is lost (the server rolls
    /// back the open transaction of a session that ends). A commit() or rollback() that fails
    /// on a live session leaves it true: the transaction is still open there, and the
    /// destructor will try ROLLBACK again. False when the guard failed to start.
    bool active() const noexcept { return active_; }

private:
    void note_end(const error_code& ec) noexcept;

    connection& conn_;
    bool active_ = false;
};

} // namespace cloudmysql
