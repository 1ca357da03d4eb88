// The Prometheus text exposition of pool metrics.
#include <cloudmysql/pool_metrics.hpp>

#include <fmt/format.h>

#include <iterator>

namespace cloudmysql {

std::string_view to_string(close_reason r) noexcept {
    switch (r) {
    case close_reason::idle_timeout:
        return "idle_timeout";
    case close_reason::max_lifetime:
        return "max_lifetime";
    case close_reason::retired:
        return "retired";
    case close_reason::broken:
        return "broken";
    case close_reason::discarded:
        return "discarded";
    case close_reason::pool_closed:
        return "pool_closed";
    case close_reason::unanswered:
        return "unanswered";
    }
    return "unknown";
}

namespace {

// Label values are escaped as the exposition format requires.
std::string escape_label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"')
            out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               const duration_histogram& h, const std::string& pool) {
    auto it = std::back_inserter(out);
    fmt::format_to(it, "# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < duration_histogram::bounds.size(); ++i) {
        cumulative += h.buckets[i];
        fmt::format_to(it, "{}_bucket{{pool_name=\"{}\",le=\"{}\"}} {}\n", name, pool,
                       duration_histogram::bounds[i], cumulative);
    }
    fmt::format_to(it, "{}_bucket{{pool_name=\"{}\",le=\"+Inf\"}} {}\n", name, pool, h.count);
    fmt::format_to(it, "{}_sum{{pool_name=\"{}\"}} {}\n", name, pool, h.sum_seconds);
    fmt::format_to(it, "{}_count{{pool_name=\"{}\"}} {}\n", name, pool, h.count);
}

void single(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            const std::string& pool, auto value) {
    fmt::format_to(std::back_inserter(out),
                   "# HELP {} {}\n# TYPE {} {}\n{}{{pool_name=\"{}\"}} {}\n", name, help, name,
                   type, name, pool, value);
}

} // namespace

std::string prometheus_text(const pool_metrics& m, std::string_view pool_name) {
    const std::string pool = escape_label(pool_name);
    std::string out;
    auto it = std::back_inserter(out);
    fmt::format_to(it,
                   "# HELP db_client_connection_count Connections by state.\n"
                   "# TYPE db_client_connection_count gauge\n"
                   "db_client_connection_count{{pool_name=\"{0}\",state=\"idle\"}} {1}\n"
                   "db_client_connection_count{{pool_name=\"{0}\",state=\"used\"}} {2}\n",
                   pool, m.idle, m.in_use);
    single(out, "db_client_connection_max", "gauge", "Most connections the pool may open.", pool,
           m.max);
    single(out, "db_client_connection_idle_min", "gauge", "Idle connections the pool keeps.", pool,
           m.idle_min);
    single(out, "db_client_connection_pending_requests", "gauge",
           "Acquires waiting for a connection.", pool, m.pending_requests);
    single(out, "db_client_connection_opening", "gauge", "Connects in flight.", pool, m.opening);
    single(out, "db_client_connection_timeouts_total", "counter",
           "Acquires that failed at acquire_timeout.", pool, m.timeouts);
    single(out, "db_client_connection_acquired_total", "counter", "Leases handed out.", pool,
           m.acquired);
    single(out, "db_client_connection_created_total", "counter", "Connections opened.", pool,
           m.created);
    single(out, "db_client_connection_connect_failures_total", "counter",
           "Connect attempts that failed.", pool, m.connect_failures);
    single(out, "db_client_connection_breaker_rejections_total", "counter",
           "Acquires failed at once while the breaker was open.", pool, m.breaker_rejections);
    single(out, "db_client_connection_breaker_open", "gauge",
           "1 while acquires fail fast after repeated connect failures.", pool,
           m.breaker_open ? 1 : 0);
    single(out, "db_client_connection_leaks_reported_total", "counter",
           "Leases held past leak_threshold.", pool, m.leaks_reported);
    fmt::format_to(it, "# HELP db_client_connection_closed_total Connections closed, by reason.\n"
                       "# TYPE db_client_connection_closed_total counter\n");
    for (std::size_t i = 0; i < close_reason_count; ++i)
        fmt::format_to(it,
                       "db_client_connection_closed_total{{pool_name=\"{}\",reason=\"{}\"}} {}\n",
                       pool, to_string(static_cast<close_reason>(i)), m.closed[i]);
    histogram(out, "db_client_connection_create_time_seconds", "Time to open a connection.",
              m.create_time, pool);
    histogram(out, "db_client_connection_wait_time_seconds",
              "Time an acquire waited for a connection.", m.wait_time, pool);
    histogram(out, "db_client_connection_use_time_seconds", "Time a connection was leased.",
              m.use_time, pool);
    return out;
}

} // namespace cloudmysql
