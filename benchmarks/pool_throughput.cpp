// pool_throughput: "look up one patient by id" (a prepared SELECT by primary key) at 1, 4, 16
// and 64 threads, three ways in the same run:
//   dedicated          raw libmariadb, one connection per thread kept open, the statement
//                      prepared once: the limit no pool can beat;
//   pooled             cloudmysql::pool of 16: acquire, execute, release. execute() keeps the
//                      statement prepared in the session, and the pool does not reset a
//                      session that ran only a plain SELECT (connection::needs_reset()), so
//                      after the first lease of each connection this is one round trip;
//   pooled_typed       the same lookup through the typed read path: query_as<std::tuple<...>>
//                      decodes the row straight into C++ types (no result, no value variant);
//   pooled_kept_statement  a diagnostic, not a cloudmysql API: basic_pool (the same template)
//                      over raw libmariadb sessions that keep the statement prepared and are
//                      not reset on return: the pool's queueing apart from its session reset;
//   connect_per_query  raw libmariadb: connect (TLS as the URL says) + prepare + execute + close
//                      each time: what a pool saves;
//   soci_pooled        SOCI's soci::connection_pool of 16 (Debian libsoci-dev, its mysql
//                      backend over libmariadb): lease a soci::session, `sql << "... :id",
//                      use(id), into(...)`, give it back; built when CMake found SOCI
//                      (soci_lookup.cpp), else left out with a note.
// Queries per second are items_per_second. Each pool is open only during its own runs (opened
// and warmed up before, closed after: Setup and Teardown), so that the raw connections have the
// server to themselves; a thread count that needs more connections than the server allows (10
// kept spare for sessions still closing) is left out, and the program says so.
#include "bench_support.hpp"

#include <cloudmysql/basic_pool.hpp>
#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

#if CLOUDMYSQL_BENCH_HAVE_SOCI
#include "soci_lookup.hpp"
#endif

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

namespace {

using namespace cloudmysql;

bench::settings config;
bench::id_range ids;
std::unique_ptr<pool> shared_pool;
std::string setup_error; // why a pool could not be opened, for the benchmark to report

void dedicated(benchmark::State& state) {
    bench::dedicated_lookups(state, *config.server, ids);
}

void open_pool(const benchmark::State&) {
    bench::open_warm_pool(shared_pool, setup_error, [] {
        return std::make_unique<pool>(*config.server, pool_options{.max_size = bench::pool_size,
                                                                   .min_idle = bench::pool_size});
    });
}

void close_pool(const benchmark::State&) {
    shared_pool.reset();
}

void pooled(benchmark::State& state) {
    if (!shared_pool)
        return bench::fail(state, setup_error);
    try {
        bench::id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        for (auto _ : state) {
            auto conn = shared_pool->acquire();
            benchmark::DoNotOptimize(conn->execute(bench::lookup_sql, pick.next()).size());
        }
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

// The lookup's row as the typed path decodes it.
using patient_row = std::tuple<std::int64_t, std::string, std::string, std::chrono::year_month_day,
                               std::string, std::optional<std::string>>;

void pooled_typed(benchmark::State& state) {
    if (!shared_pool)
        return bench::fail(state, setup_error);
    try {
        bench::id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        for (auto _ : state) {
            auto conn = shared_pool->acquire();
            benchmark::DoNotOptimize(conn->query_as<patient_row>(bench::lookup_sql, pick.next()));
        }
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

// A raw session with the lookup prepared once; what pooled_kept_statement leases.
struct kept_session {
    std::unique_ptr<bench::raw_connection> conn;
    std::unique_ptr<bench::raw_lookup> lookup;
};

// Opens kept_sessions; reset() does nothing, so the statement survives the lease.
struct kept_statement_connector {
    using connection_type = kept_session;
    kept_session connect(error_code& ec, diagnostics& diag) {
        try {
            kept_session s;
            s.conn = std::make_unique<bench::raw_connection>(*config.server);
            s.lookup = std::make_unique<bench::raw_lookup>(*s.conn);
            return s;
        } catch (const std::exception& e) {
            ec = make_error_code(client_errc::not_connected);
            diag = diagnostics(e.what(), {}, {}, error_class::unreachable);
            return {};
        }
    }
    void ping(kept_session& s, error_code& ec, diagnostics& diag) {
        if (mysql_ping(s.conn->get()) != 0) {
            ec = make_error_code(client_errc::not_connected);
            diag = diagnostics(mysql_error(s.conn->get()), {}, {}, error_class::connection_lost);
        }
    }
    void reset(kept_session&, error_code&, diagnostics&) {}
    void close(kept_session& s) noexcept {
        s.lookup.reset();
        s.conn.reset();
    }
    error_class fault(const kept_session&) const noexcept { return error_class::none; }
};

std::unique_ptr<basic_pool<kept_statement_connector>> kept_pool;

void open_kept_pool(const benchmark::State&) {
    bench::open_warm_pool(kept_pool, setup_error, [] {
        return std::make_unique<basic_pool<kept_statement_connector>>(
            pool_options{.max_size = bench::pool_size, .min_idle = bench::pool_size},
            kept_statement_connector{});
    });
}

void close_kept_pool(const benchmark::State&) {
    kept_pool.reset();
}

void pooled_kept_statement(benchmark::State& state) {
    if (!kept_pool)
        return bench::fail(state, setup_error);
    try {
        bench::id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        for (auto _ : state) {
            auto conn = kept_pool->acquire();
            benchmark::DoNotOptimize(conn->lookup->find(pick.next()));
        }
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

void connect_per_query(benchmark::State& state) {
    try {
        bench::id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        for (auto _ : state) {
            bench::raw_connection conn(*config.server);
            bench::raw_lookup lookup(conn);
            benchmark::DoNotOptimize(lookup.find(pick.next()));
        }
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

#if CLOUDMYSQL_BENCH_HAVE_SOCI
std::string soci_error; // why the SOCI pool could not be opened

void open_soci_pool(const benchmark::State&) {
    soci_error = bench::soci_baseline::open_pool(*config.server, bench::pool_size);
}

void close_soci_pool(const benchmark::State&) {
    bench::soci_baseline::close_pool();
}

void soci_pooled(benchmark::State& state) {
    if (!soci_error.empty())
        return bench::fail(state, soci_error);
    bench::soci_baseline::lookups(state, ids);
}
#endif

constexpr int thread_counts[] = {1, 4, 16, 64};
bench::server_facts server;

std::vector<bench::table_row> summarize(const bench::figures& f) {
    auto qps = [&](std::string_view way, int threads) -> double {
        const auto it = f.find(fmt::format("{}/{}", way, threads));
        return it == f.end() ? 0.0 : it->second.counter("items_per_second");
    };
    auto ratio = [](double a, double b) {
        return b > 0 && a > 0 ? bench::format_ratio(a / b) : "n/a";
    };
    std::vector<bench::table_row> rows;
    rows.push_back({"pool_throughput", "server",
                    fmt::format("{}, {}, max_connections {}", server.version, server.tls,
                                server.max_connections),
                    ""});
    for (const int t : thread_counts) {
        const double d = qps("dedicated", t);
        const double p = qps("pooled", t);
        const double c = qps("connect_per_query", t);
        const double k = qps("pooled_kept_statement", t);
        const double y = qps("pooled_typed", t);
        const double so = qps("soci_pooled", t);
        if (d == 0 && p == 0 && c == 0)
            continue;
        rows.push_back(
            {"pool_throughput", fmt::format("queries/s at {} thread(s)", t),
             fmt::format("dedicated {}, pooled {}, SOCI pool {}, connect_per_query {}",
                         bench::format_rate(d), bench::format_rate(p),
                         so > 0 ? bench::format_rate(so) : "not run", bench::format_rate(c)),
             ""});
        if (y > 0)
            rows.push_back({"pool_throughput",
                            fmt::format("pooled_typed ({} queries/s) / dedicated, {} thread(s): "
                                        "query_as instead of execute",
                                        bench::format_rate(y), t),
                            ratio(y, d), ""});
        if (so > 0)
            rows.push_back({"pool_throughput",
                            fmt::format("pooled / SOCI connection_pool, {} thread(s)", t),
                            ratio(p, so), ">= 1.3"});
        if (k > 0)
            rows.push_back({"pool_throughput",
                            fmt::format("diagnostic: pooled_kept_statement ({} queries/s) / "
                                        "dedicated, {} thread(s): no reset, statement kept",
                                        bench::format_rate(k), t),
                            ratio(k, d), ""});
        if (t < 64) {
            rows.push_back({"pool_throughput", fmt::format("pooled / dedicated, {} thread(s)", t),
                            ratio(p, d), ">= 0.97"});
        } else {
            const double d16 = qps("dedicated", 16);
            rows.push_back(
                {"pool_throughput", "pooled / dedicated, 64 threads (vs dedicated at 16 / at 64)",
                 fmt::format("{} / {}", ratio(p, d16), ratio(p, d)), ">= 0.95 vs the better"});
        }
        rows.push_back({"pool_throughput",
                        fmt::format("pooled / connect_per_query, {} thread(s)", t), ratio(p, c),
                        ">= 30"});
    }
#if !CLOUDMYSQL_BENCH_HAVE_SOCI
    rows.push_back({"pool_throughput", "SOCI connection_pool",
                    "left out: built without SOCI (Debian libsoci-dev)", ">= 1.3"});
#endif
    return rows;
}

} // namespace

int main(int argc, char** argv) {
    config = bench::parse_args(argc, argv, "pool_throughput", true);
    try {
        ids = bench::prepare_clinic(config);
        server = bench::read_server(*config.server);
    } catch (const std::exception& e) {
        fmt::print(stderr, "pool_throughput: cannot set up: {}\n", e.what());
        return 1;
    }
    const auto fits = [&](int threads) {
        return static_cast<std::int64_t>(threads) + 10 <= server.max_connections;
    };
    for (const int t : thread_counts) {
        if (fits(t))
            benchmark::RegisterBenchmark("dedicated", dedicated)->Threads(t)->UseRealTime();
        else
            fmt::print(stderr,
                       "dedicated and connect_per_query at {} threads left out: they need more "
                       "than the server's max_connections = {} (10 kept spare)\n",
                       t, server.max_connections);
    }
    for (const int t : thread_counts)
        benchmark::RegisterBenchmark("pooled", pooled)
            ->Threads(t)
            ->UseRealTime()
            ->Setup(open_pool)
            ->Teardown(close_pool);
    for (const int t : thread_counts)
        benchmark::RegisterBenchmark("pooled_typed", pooled_typed)
            ->Threads(t)
            ->UseRealTime()
            ->Setup(open_pool)
            ->Teardown(close_pool);
    for (const int t : thread_counts)
        benchmark::RegisterBenchmark("pooled_kept_statement", pooled_kept_statement)
            ->Threads(t)
            ->UseRealTime()
            ->Setup(open_kept_pool)
            ->Teardown(close_kept_pool);
#if CLOUDMYSQL_BENCH_HAVE_SOCI
    for (const int t : thread_counts)
        benchmark::RegisterBenchmark("soci_pooled", soci_pooled)
            ->Threads(t)
            ->UseRealTime()
            ->Setup(open_soci_pool)
            ->Teardown(close_soci_pool);
#else
    fmt::print(stderr, "soci_pooled left out: this build found no SOCI (Debian: libsoci-dev; "
                       "CMake option CLOUDMYSQL_BENCH_SOCI)\n");
#endif
    for (const int t : thread_counts)
        if (fits(t))
            benchmark::RegisterBenchmark("connect_per_query", connect_per_query)
                ->Threads(t)
                ->UseRealTime();
    return bench::run(argc, argv, config, summarize);
}
