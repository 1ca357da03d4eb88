// What basic_pool needs from the code that opens, checks, resets and closes one connection.
#pragma once

#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>

#include <concepts>
#include <utility>

namespace cloudmysql {

/// What basic_pool needs to manage connections of one kind. Its member functions are called
/// from several pool threads at once, each time on a different connection.
template <class C>
concept pool_connector = std::movable<typename C::connection_type> &&
    std::default_initializable<typename C::connection_type> &&
    requires(C& c, typename C::connection_type& conn, error_code& ec, diagnostics& diag) {
    // Opens a connection (blocking, bounded by the connect timeout).
    { c.connect(ec, diag) } -> std::same_as<typename C::connection_type>;
    // Checks that the session is alive.
    c.ping(conn, ec, diag);
    // Rolls back, resets the session, re-applies the init statements.
    c.reset(conn, ec, diag);
    // Closes it; must not throw.
    { c.close(conn) }
    noexcept;
    // connection_lost or read_only when an operation on the connection failed that way since
    // it opened (the pool then closes it on return and retires older ones); none otherwise.
    { c.fault(std::as_const(conn)) }
    noexcept->std::same_as<error_class>;
};

/// Optional for a pool_connector: `bool needs_reset(const connection_type&) const noexcept`,
/// false when the connection's session holds nothing a caller left behind. The pool then
/// skips reset() and makes the returned connection available at once, on the returning
/// thread, without a hand-off to a pool thread. Without it (or when it is not noexcept), every
/// returned connection is reset. Called on the returning thread, which still holds the
/// connection.
template <class C>
concept connector_tracks_resets = requires(const C& c, const typename C::connection_type& conn) {
    { c.needs_reset(conn) }
    noexcept->std::same_as<bool>;
};

/// Optional for a pool_connector: `void interrupt(const connection_type&) noexcept`, which makes
/// an operation blocked on the connection in another thread return soon with an error (for
/// cloudmysql::connection, the socket is shut down). The pool calls it, under its own lock, on
/// a ping or reset of its own that had no answer within check_timeout; it must not block.
/// Without it, such a check is still reported, but goes on until the connection's own
/// timeouts end it.
template <class C>
concept connector_interrupts = requires(const C& c, const typename C::connection_type& conn) {
    { c.interrupt(conn) }
    noexcept;
};

} // namespace cloudmysql
