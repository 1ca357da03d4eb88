// pool_warmup: the time to open 16 TLS connections (TCP, TLS handshake with the certificate
// verified as the URL says, login):
//   warm_up_16_at_once   pool.warm_up() with min_idle = 16 and max_connecting = 16;
//   warm_up_default      the same with the default max_connecting (2): what a pool built with
//                        default options gets;
//   one_after_another    16 cloudmysql::connection objects opened in turn.
// Only the opening is timed (manual time): the pool's threads start before and the connections
// close after. The handshakes cost the server CPU: with fewer cores than connects in flight,
// the server, not the client, limits the speed-up (the table states the core count).
#include "bench_support.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <thread>
#include <vector>

namespace {

using namespace cloudmysql;
using clock_type = std::chrono::steady_clock;

bench::settings config;
constexpr std::size_t connections = 16;

void warm_up_with(benchmark::State& state, std::size_t max_connecting) {
    try {
        for (auto _ : state) {
            pool p(*config.server, pool_options{.max_size = connections,
                                                .min_idle = connections,
                                                .max_connecting = max_connecting});
            const auto start = clock_type::now();
            p.warm_up();
            state.SetIterationTime(
                std::chrono::duration<double>(clock_type::now() - start).count());
            if (p.metrics().idle != connections)
                bench::fail(state, fmt::format("warm_up() left {} idle connections, not {}",
                                               p.metrics().idle, connections));
        }
        state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(connections));
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

void warm_up_16_at_once(benchmark::State& state) {
    warm_up_with(state, connections);
}

void warm_up_default(benchmark::State& state) {
    warm_up_with(state, pool_options{}.max_connecting);
}

void one_after_another(benchmark::State& state) {
    try {
        for (auto _ : state) {
            std::vector<connection> open(connections);
            const auto start = clock_type::now();
            for (auto& c : open)
                c.connect(*config.server);
            state.SetIterationTime(
                std::chrono::duration<double>(clock_type::now() - start).count());
        }
        state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(connections));
    } catch (const std::exception& e) {
        bench::fail(state, e.what());
    }
}

std::vector<bench::table_row> summarize(const bench::figures& f) {
    auto time_of = [&](std::string_view name) {
        const auto it = f.find(fmt::format("{}/1", name));
        return it == f.end() ? 0.0 : it->second.real_time_ns;
    };
    const double at_once = time_of("warm_up_16_at_once");
    const double by_default = time_of("warm_up_default");
    const double serial = time_of("one_after_another");
    std::vector<bench::table_row> rows;
    rows.push_back({"pool_warmup",
                    "16 TLS connections: warm_up() 16 at once / default (2 at "
                    "once) / one after another",
                    fmt::format("{} / {} / {}", bench::format_ns(at_once),
                                bench::format_ns(by_default), bench::format_ns(serial)),
                    ""});
    rows.push_back(
        {"pool_warmup",
         fmt::format("one after another / warm_up() 16 at once ({} cores for client and server)",
                     std::thread::hardware_concurrency()),
         at_once > 0 && serial > 0 ? bench::format_ratio(serial / at_once) : "n/a", ">= 4"});
    return rows;
}

} // namespace

int main(int argc, char** argv) {
    config = bench::parse_args(argc, argv, "pool_warmup", true);
    try {
        const auto server = bench::read_server(*config.server);
        if (server.max_connections < static_cast<std::int64_t>(connections) + 2) {
            fmt::print(stderr,
                       "pool_warmup: the server allows {} connections; 16 and 2 spare are "
                       "needed: raise max_connections\n",
                       server.max_connections);
            return 1;
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "pool_warmup: cannot reach the server: {}\n", e.what());
        return 1;
    }
    benchmark::RegisterBenchmark("warm_up_16_at_once", warm_up_16_at_once)->UseManualTime();
    benchmark::RegisterBenchmark("warm_up_default", warm_up_default)->UseManualTime();
    benchmark::RegisterBenchmark("one_after_another", one_after_another)->UseManualTime();
    return bench::run(argc, argv, config, summarize);
}
