// pool_overhead: what the pool itself costs, without a server. basic_pool over a connector
// whose connect, ping, reset and close do nothing and whose sessions never need a reset:
// acquire + release by 1 to 32 threads over a pool of 16 connections. Reports cycles per second
// (items_per_second), the time per cycle, and the median and 99th percentile of the time acquire()
// waited (sampled on every 8th cycle, so that reading the clock costs the cycle little), and the
// ratios against issue 12's targets: acquire + release < 100 ns on one thread, and cycles/s at 32
// threads over 16 connections >= 0.5 x one thread's (the p99 wait printed beside it).
#include "bench_support.hpp"

#include <cloudmysql/basic_pool.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <vector>

namespace {

using namespace cloudmysql;

// A connection that costs nothing: only the pool's own work is measured.
struct null_connection {
    int id = 0;
};

struct null_connector {
    using connection_type = null_connection;
    int next = 0; // only connect() writes it, under the pool's connect jobs (max_connecting 1)

    null_connection connect(error_code&, diagnostics&) { return {++next}; }
    void ping(null_connection&, error_code&, diagnostics&) {}
    void reset(null_connection&, error_code&, diagnostics&) {}
    void close(null_connection&) noexcept {}
    error_class fault(const null_connection&) const noexcept { return error_class::none; }
    // Nothing to undo, like a session that ran only plain SELECTs: a returned connection is
    // available again at once (the pool's return path without a reset job).
    bool needs_reset(const null_connection&) const noexcept { return false; }
};

using null_pool = basic_pool<null_connector>;

null_pool& shared_pool() {
    static null_pool pool(pool_options{.max_size = bench::pool_size,
                                       .min_idle = bench::pool_size,
                                       .max_connecting = 1},
                          null_connector{});
    return pool;
}

// The wait samples of all threads of one run, so that thread 0 can take their percentiles.
struct wait_samples {
    std::mutex m;
    std::condition_variable cv;
    std::vector<double> all;
    int arrived = 0;

    // Thread 0, before the loop (the other threads add only after it).
    void begin() {
        std::lock_guard lock(m);
        all.clear();
        arrived = 0;
    }
    void add(const std::vector<double>& mine) {
        std::lock_guard lock(m);
        all.insert(all.end(), mine.begin(), mine.end());
        ++arrived;
        cv.notify_all();
    }
    // Thread 0: the samples of all `threads`, sorted.
    std::vector<double> gather(int threads) {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return arrived == threads; });
        std::sort(all.begin(), all.end());
        return all;
    }
};

double thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty())
        return 0;
    const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(i, sorted.size() - 1)];
}

void acquire_release(benchmark::State& state) {
    static wait_samples samples;
    null_pool& pool = shared_pool();
    if (state.thread_index() == 0)
        samples.begin();
    std::vector<double> waits;
    waits.reserve(1 << 16);
    std::uint64_t n = 0;
    const double cpu_start = thread_cpu_ns();
    for (auto _ : state) {
        if ((++n & 7) == 0) {
            const auto t0 = std::chrono::steady_clock::now();
            auto conn = pool.acquire();
            const auto t1 = std::chrono::steady_clock::now();
            benchmark::DoNotOptimize(conn->id);
            waits.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        } else {
            auto conn = pool.acquire();
            benchmark::DoNotOptimize(conn->id);
        }
    }
    // This thread's CPU time per cycle: on a busy machine, wall time also counts the time
    // other programs ran; this does not.
    const double cpu_per_cycle =
        (thread_cpu_ns() - cpu_start) /
        static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
    state.SetItemsProcessed(state.iterations());
    samples.add(waits);
    if (state.thread_index() == 0) {
        const auto sorted = samples.gather(state.threads());
        state.counters["wait_median_ns"] = percentile(sorted, 0.5);
        state.counters["wait_p99_ns"] = percentile(sorted, 0.99);
        state.counters["cpu_ns_per_cycle"] = cpu_per_cycle;
    }
}

constexpr int thread_counts[] = {1, 2, 4, 8, 16, 32};

std::vector<bench::table_row> summarize(const bench::figures& f) {
    std::vector<bench::table_row> rows;
    double single = 0;
    for (const int t : thread_counts) {
        const auto it = f.find(fmt::format("acquire_release/{}", t));
        if (it == f.end())
            continue;
        const double per_second = it->second.counter("items_per_second");
        if (t == 1)
            single = per_second;
        const double cycle_ns = per_second > 0 ? 1e9 * t / per_second : 0;
        rows.push_back({"pool_overhead", fmt::format("acquire + release, {} thread(s)", t),
                        fmt::format("{} per cycle per thread, {} cycles/s; wait median {}, p99 {}",
                                    bench::format_ns(cycle_ns), bench::format_rate(per_second),
                                    bench::format_ns(it->second.counter("wait_median_ns")),
                                    bench::format_ns(it->second.counter("wait_p99_ns"))),
                        ""});
    }
    // The targets of issue 12, each next to its figure from this run.
    if (const auto it = f.find("acquire_release/1"); it != f.end() && single > 0)
        rows.push_back({"pool_overhead", "acquire+release 1 thread",
                        fmt::format("{} (CPU time {})", bench::format_ns(1e9 / single),
                                    bench::format_ns(it->second.counter("cpu_ns_per_cycle"))),
                        "< 100 ns"});
    if (const auto it = f.find("acquire_release/32"); it != f.end() && single > 0) {
        rows.push_back({"pool_overhead", "32 threads / 1 thread (cycles/s, 16 connections)",
                        bench::format_ratio(it->second.counter("items_per_second") / single),
                        ">= 0.5"});
        rows.push_back({"pool_overhead", "wait p99 at 32 threads (first come, first served)",
                        bench::format_ns(it->second.counter("wait_p99_ns")), "printed"});
    }
    return rows;
}

} // namespace

int main(int argc, char** argv) {
    const auto s = bench::parse_args(argc, argv, "pool_overhead", false);
    shared_pool().warm_up();
    for (const int t : thread_counts)
        benchmark::RegisterBenchmark("acquire_release", acquire_release)->Threads(t)->UseRealTime();
    return bench::run(argc, argv, s, summarize);
}
