// clinic_server's client connections: the accept loop (a cap on open connections, back-off
// when accepting fails), one coroutine per connection with deadlines on every read and write,
// and the stop on a signal.
#pragma once

#include "clinic_server/database.hpp"
#include "clinic_server/pages.hpp"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

namespace clinic_server {

/// How clients are served.
struct connection_settings {
    request_limits limits;
    /// From the first byte of a request to the end of its header fields: a client slower than
    /// that (slowloris) is closed.
    std::chrono::steady_clock::duration header_timeout = std::chrono::seconds(10);
    /// For the body, after the header fields.
    std::chrono::steady_clock::duration body_timeout = std::chrono::seconds(10);
    /// A kept-alive connection with no new request for this long is closed.
    std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(30);
    /// For writing an answer; a client that does not read it is closed.
    std::chrono::steady_clock::duration write_timeout = std::chrono::seconds(10);
    /// Client connections served at once; more are answered 503 and closed at once.
    std::size_t max_connections = 1000;
};

/// What the connections share. Thread-safe: the counters are atomic.
struct server {
    database& db;
    connection_settings settings;
    /// The 503s for a client turned away at once (busy_response()): beyond max_connections,
    /// and when the process is out of descriptors.
    std::string at_cap = busy_response(fmt::format(
        "clinic_server is serving its limit of {} connections (--max-connections); try again "
        "shortly",
        settings.max_connections));
    std::string out_of_descriptors = busy_response(
        "clinic_server cannot take connections now (out of file descriptors); try again shortly");
    std::atomic<std::size_t> open{0};  ///< connections being served
    std::atomic<int> in_flight{0};     ///< requests between read and written answer
    std::atomic<bool> stopping{false}; ///< answers then say Connection: close
};

/// Accepts connections until the acceptor closes. Beyond max_connections, a connection gets the
/// busy answer and is closed at once. When accepting fails (out of descriptors or memory), it
/// waits 10 ms, doubling up to 1 s while the failures go on, and meanwhile turns waiting
/// clients away with the busy answer through a descriptor kept spare for that.
boost::asio::awaitable<void> accept_loop(server& s, boost::asio::ip::tcp::acceptor& acceptor);

/// SIGINT or SIGTERM: stops accepting, lets the requests under way finish (up to 10 s), stops
/// `io`.
boost::asio::awaitable<void> stop_on_signal(server& s, boost::asio::signal_set& signals,
                                            boost::asio::ip::tcp::acceptor& acceptor,
                                            boost::asio::io_context& io);

/// How many client connections fit in the process's descriptor limit (RLIMIT_NOFILE).
struct descriptor_budget {
    std::size_t limit = 0;    ///< RLIMIT_NOFILE (soft), after raising it towards the hard one
    std::size_t reserved = 0; ///< kept for the rest: open now, the pool's, a margin
    std::size_t fits = 0;     ///< limit - reserved: the most max_connections can be
};

/// Raises the soft RLIMIT_NOFILE towards the hard limit if `wanted` connections do not fit, and
/// says how many fit beside what is open now, two descriptors per database session (its socket
/// and a file while it connects) and a margin of 32 for the libraries (name lookups, TLS files,
/// the sanitizers' own pipes).
descriptor_budget budget_descriptors(std::size_t wanted, std::size_t database_sessions);

} // namespace clinic_server
