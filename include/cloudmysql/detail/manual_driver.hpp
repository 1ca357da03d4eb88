// For tests: runs a manually driven basic_pool's work (I/O jobs, timers) on the test's thread,
// with a fake clock, so that a test decides exactly what happens when. Not for programs.
#pragma once

#include <cloudmysql/basic_pool.hpp>

#include <cstddef>

namespace cloudmysql::detail {

/// Drives a basic_pool built with detail::manual_drive. Holds a reference: the pool must
/// outlive it.
template <class Pool>
class manual_driver {
public:
    explicit manual_driver(Pool& pool) noexcept : pool_(pool) {}

    /// Runs one queued job (connect, ping, reset or close); false if none.
    bool run_one_job() { return pool_.pool_->run_one_job(); }
    /// Expires waiters, retires and pings idle connections, reports leaks, interrupts checks
    /// past check_timeout, as of Clock::now().
    void run_timers() { pool_.pool_->run_timers(); }
    /// Runs timers and jobs until nothing is left to do; returns the jobs run.
    std::size_t poll() {
        std::size_t jobs = 0;
        run_timers();
        while (run_one_job()) {
            ++jobs;
            run_timers();
        }
        return jobs;
    }
    /// Jobs queued and not yet run.
    std::size_t queued_jobs() const { return pool_.pool_->queued_jobs(); }

private:
    Pool& pool_;
};

} // namespace cloudmysql::detail
