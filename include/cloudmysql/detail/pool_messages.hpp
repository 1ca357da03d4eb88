// Every text the pool shows a user, in one place: what happened and what to do about it.
// pool_core decides which one applies and gathers the figures; this file words them.
#pragma once

#include <cloudmysql/diagnostics.hpp>
#include <cloudmysql/error.hpp>
#include <cloudmysql/pool_options.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

namespace cloudmysql::detail::pool_messages {

inline diagnostics pool_closed() {
    return diagnostics("acquire failed: the pool is closed", {}, {}, error_class::other);
}

/// "; last connect error: ..." or nothing when no connect has failed.
inline std::string last_connect_error(const error_code& ec, const diagnostics& diag) {
    if (!ec)
        return {};
    return fmt::format("; last connect error: {}",
                       diag.client_message().empty() ? ec.message() : diag.client_message());
}

/// What the pool saw while a request waited in vain: the figures behind exhausted().
struct wait_report {
    double waited_s = 0;
    std::size_t leased = 0;
    std::size_t max_size = 0;
    std::size_t checking = 0; ///< pings and resets under way
    std::size_t opening = 0;
    std::size_t waiting = 0; ///< other requests still waiting
    const error_code* last_error = nullptr;
    const diagnostics* last_error_diag = nullptr;
    bool connect_failed_during_wait = false;
    std::optional<double> check_silent_for_s; ///< the oldest check without an answer, if long
    bool check_abandoned_during_wait = false;
    long long check_timeout_ms = 0;
    std::optional<double> connect_pending_for_s; ///< the oldest connect under way, if long
    std::size_t consecutive_failures = 0;
    long long backoff_max_ms = 0;
};

/// Why a waiter got nothing by its deadline, the most telling cause first.
inline diagnostics exhausted(const wait_report& r) {
    const std::string counts = fmt::format(
        "{} of {} connections in use, {} being checked, {} opening, {} more requests waiting",
        r.leased, r.max_size, r.checking, r.opening, r.waiting);
    const std::string last_error = last_connect_error(*r.last_error, *r.last_error_diag);
    const auto timeout = [](std::string text) {
        return diagnostics(std::move(text), {}, {}, error_class::timeout);
    };
    // A connect that failed during the wait is the cause.
    if (r.connect_failed_during_wait)
        return diagnostics(fmt::format("no connection within {:.1f} s (acquire_timeout) because "
                                       "connecting to the server fails{} ({})",
                                       r.waited_s, last_error, counts),
                           r.last_error_diag->server_message(), r.last_error_diag->sqlstate(),
                           r.last_error_diag->error_class());
    // Connections held up in the pool's own checks: the server stopped answering.
    if (r.check_silent_for_s || r.check_abandoned_during_wait)
        return timeout(fmt::format(
            "no connection within {:.1f} s (acquire_timeout): the server has not answered the "
            "pool's checks {}({}); it may be frozen or overloaded, or the network path to it "
            "down: a ping or reset without an answer within check_timeout ({} ms) is abandoned "
            "and its connection replaced",
            r.waited_s,
            r.check_silent_for_s ? fmt::format("for {:.1f} s ", *r.check_silent_for_s)
                                 : std::string("within check_timeout "),
            counts, r.check_timeout_ms));
    // A connect that neither succeeds nor fails.
    if (r.connect_pending_for_s)
        return timeout(fmt::format(
            "no connection within {:.1f} s (acquire_timeout): the pool's connect to the server "
            "has gone {:.1f} s without an answer ({}); the server may be slow to accept "
            "sessions, frozen, or unreachable: a connect fails after its connect_timeout{}",
            r.waited_s, *r.connect_pending_for_s, counts, last_error));
    // Earlier connects failed, and the next waits for its backoff.
    if (r.consecutive_failures > 0 && r.leased + r.checking + r.opening < r.max_size)
        return timeout(fmt::format(
            "no connection within {:.1f} s (acquire_timeout): the last {} connects to the server "
            "failed, and the next waits for its backoff (up to backoff_max, {} ms){} ({})",
            r.waited_s, r.consecutive_failures, r.backoff_max_ms, last_error, counts));
    return timeout(fmt::format(
        "pool exhausted: {}; waited {:.1f} s (acquire_timeout){}; return connections sooner, "
        "raise max_size if the server allows more, or look for leaks with leak_threshold",
        counts, r.waited_s, last_error));
}

/// The breaker is open: acquires fail at once until a probe connect succeeds.
inline diagnostics breaker_open(std::size_t consecutive_failures, double retry_in_s,
                                const error_code& last_error, const diagnostics& last_diag) {
    return diagnostics(
        fmt::format("server unavailable: the last {} connect attempts failed, so the pool fails "
                    "acquires at once until a probe connect succeeds (next in {:.1f} s){}",
                    consecutive_failures, retry_in_s, last_connect_error(last_error, last_diag)),
        last_diag.server_message(), last_diag.sqlstate(), last_diag.error_class());
}

/// The notice for a lease held past leak_threshold (when on_leak is unset).
inline pool_notice leak_notice(const leak_report& report) {
    return {pool_notice::kind::leak,
            fmt::format("connection #{} held for {} ms (leak_threshold), acquired at {}:{} in {}",
                        report.connection_sequence, report.held_for.count(),
                        report.acquired_at.file_name(), report.acquired_at.line(),
                        report.acquired_at.function_name()),
            report};
}

// Misuse of a manually driven pool (tests): the call would wait for work nobody runs.
inline constexpr const char* manual_acquire_stuck =
    "cloudmysql: acquire() on a manually driven pool cannot complete: nothing is left to run; "
    "advance the clock or use async_acquire()";
inline constexpr const char* manual_warm_up_stuck =
    "cloudmysql: warm_up() on a manually driven pool has nothing left to run";

} // namespace cloudmysql::detail::pool_messages
