// A snapshot of a pool's state and counters, and its Prometheus text form.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cloudmysql {

/// Why the pool closed a connection.
enum class close_reason {
    idle_timeout, ///< unused for idle_timeout while more than min_idle were open
    max_lifetime, ///< reached its (jittered) max_lifetime
    retired,      ///< older than a connection that failed with connection_lost or read_only
    broken,       ///< a ping or reset on it failed
    discarded,    ///< the user called discard()
    pool_closed,  ///< the pool was closed
    unanswered,   ///< a ping or reset on it got no answer within check_timeout
};
inline constexpr std::size_t close_reason_count = 7;

/// "idle_timeout", "max_lifetime", ...
std::string_view to_string(close_reason r) noexcept;

/// Durations in fixed buckets (upper bounds in seconds), as Prometheus histograms want them.
struct duration_histogram {
    static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
    std::array<std::uint64_t, bounds.size() + 1> buckets{}; ///< last: above every bound
    std::uint64_t count = 0;
    double sum_seconds = 0;

    void record(std::chrono::nanoseconds d) noexcept {
        const double s = std::chrono::duration<double>(d).count();
        std::size_t i = 0;
        while (i < bounds.size() && s > bounds[i])
            ++i;
        ++buckets[i];
        ++count;
        sum_seconds += s;
    }
};

/// What a pool looks like at one moment. Names follow OpenTelemetry's database client
/// metrics (db.client.connection.*).
struct pool_metrics {
    std::size_t idle = 0;             ///< db.client.connection.count{state=idle}
    std::size_t in_use = 0;           ///< db.client.connection.count{state=used}
    std::size_t opening = 0;          ///< connects in flight
    std::size_t pending_requests = 0; ///< db.client.connection.pending_requests
    std::size_t max = 0;              ///< db.client.connection.max
    std::size_t idle_min = 0;         ///< db.client.connection.idle.min

    std::uint64_t acquired = 0;           ///< leases handed out
    std::uint64_t timeouts = 0;           ///< db.client.connection.timeouts
    std::uint64_t created = 0;            ///< connections opened
    std::uint64_t connect_failures = 0;   ///< connect attempts that failed
    std::uint64_t breaker_rejections = 0; ///< acquires failed at once by the open breaker
    std::uint64_t leaks_reported = 0;
    std::array<std::uint64_t, close_reason_count> closed{}; ///< by close_reason
    bool breaker_open = false;

    duration_histogram create_time; ///< db.client.connection.create_time
    duration_histogram wait_time;   ///< db.client.connection.wait_time
    duration_histogram use_time;    ///< db.client.connection.use_time
};

/// The Prometheus text exposition of a snapshot; `pool_name` goes into the pool_name label.
std::string prometheus_text(const pool_metrics& m, std::string_view pool_name = "default");

} // namespace cloudmysql
