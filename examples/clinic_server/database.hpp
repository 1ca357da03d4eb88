// clinic_server's database side: the queries (blocking, every value a bound parameter), run on
// threads of their own with a connection from the pool, and the check at start.
#pragma once

#include "clinic_server/pages.hpp"

#include <cloudmysql/pool.hpp>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <optional>
#include <stdexcept>
#include <string>

namespace clinic_server {

/// Where the queries go.
struct database {
    cloudmysql::pool& pool;
    boost::asio::thread_pool& threads; // where the blocking libmariadb calls run
    /// Opens a session per request instead of leasing one (the baseline scripts/bench loads).
    bool connect_per_request = false;
};

/// Runs what `req` asks for and renders the answer: 503 with the reason when the database
/// fails (printed on stderr too), 500 for anything else.
boost::asio::awaitable<response> respond(database& db, const request& req);

/// A setting that can never work: the program stops (exit 2) with this message.
class configuration_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Connects once to see whether the settings can work. Throws configuration_error, with the
/// library's message, for what no wait can cure: a refused login, a TLS failure (a certificate
/// that does not verify, a server without TLS), a database that does not exist. Returns why
/// the database is unavailable for what may pass (down, unreachable, full, slow), nothing when
/// it answered.
std::optional<std::string> check_at_start(const cloudmysql::connect_options& options);

} // namespace clinic_server
