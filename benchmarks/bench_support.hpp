// What the benchmark programs share: their command line, the clinic data they query, the raw
// libmariadb baseline, and a reporter that turns the medians into rows of the results table.
#pragma once

#include <cloudmysql/connect_options.hpp>

#include <benchmark/benchmark.h>
#include <mysql.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace cloudmysql::bench {

/// The lookup every server benchmark runs: one patient by primary key.
inline constexpr std::string_view lookup_sql =
    "SELECT id, first_name, last_name, date_of_birth, gender, contact_number FROM patients "
    "WHERE id = ?";

/// The connections the pool under test may hold in every benchmark.
inline constexpr std::size_t pool_size = 16;

/// What the programs take besides Google Benchmark's own flags.
struct settings {
    std::optional<connect_options> server; ///< --url, else CLOUDMYSQL_URL
    std::size_t patients = 10000;          ///< --patients: loaded when fewer exist
    std::string summary_path;              ///< --summary FILE: the table rows go there
};

/// Reads and removes --url, --database, --patients and --summary from argv (before
/// benchmark::Initialize sees it). With needs_server, a missing URL is an error. Exits with 2
/// and a usage text on bad arguments.
settings parse_args(int& argc, char** argv, std::string_view program, bool needs_server);

/// The server as the table reports it.
struct server_facts {
    std::string version;
    std::int64_t max_connections = 0;
    std::string tls; ///< "TLSv1.3 TLS_AES_256_GCM_SHA384", or "none"
};
server_facts read_server(const connect_options& server);

/// Creates the URL's database if missing, applies the clinic migrations and loads generated
/// patients until at least `patients` exist. Returns the range of patient ids to look up.
struct id_range {
    std::int64_t first = 0;
    std::int64_t last = 0;
};
id_range prepare_clinic(const settings& s);

/// A fast, reproducible pick of patient ids (xorshift), one per thread.
class id_picker {
public:
    id_picker(id_range range, std::uint64_t seed) : range_(range), state_(seed * 2654435761u + 1) {}
    std::int64_t next() noexcept {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        const auto span = static_cast<std::uint64_t>(range_.last - range_.first + 1);
        return range_.first + static_cast<std::int64_t>(state_ % span);
    }

private:
    id_range range_;
    std::uint64_t state_;
};

/// A raw libmariadb session opened with the same options cloudmysql uses for the URL: TLS with
/// the URL's CA, the chain and the host name verified for verify_identity, the connect
/// timeout. Throws std::runtime_error with libmariadb's message.
class raw_connection {
public:
    explicit raw_connection(const connect_options& options);
    raw_connection(const raw_connection&) = delete;
    raw_connection& operator=(const raw_connection&) = delete;
    ~raw_connection();
    MYSQL* get() const noexcept { return mysql_; }

private:
    MYSQL* mysql_ = nullptr;
};

/// True for the connect errors a benchmark waits out: "Too many connections" (sessions that a
/// pool or an earlier run closed a moment ago may still count on the server) and "Connection
/// reset by peer" (64 TLS handshakes at once on a loaded machine can outlast the server's
/// connect_timeout, and the server then drops them).
inline bool worth_retrying(std::string_view message) noexcept {
    return message.find("Too many connections") != std::string_view::npos ||
           message.find("Connection reset by peer") != std::string_view::npos;
}

/// A raw_connection, tried again (for up to 5 s) while the error is worth_retrying().
std::unique_ptr<raw_connection> connect_when_room(const connect_options& options);

/// Runs `open` again (for up to 5 s) while it throws an error that is worth_retrying().
template <class Open>
void retry_when_full(Open&& open) {
    for (int attempt = 1;; ++attempt) {
        try {
            open();
            return;
        } catch (const std::exception& e) {
            if (attempt >= 50 || !worth_retrying(e.what()))
                throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

/// Opens the pool `make` returns into `held` and warms it up, again while the server is full;
/// on failure leaves `held` empty and puts why in `why`, for the benchmarks to report.
template <class Pool, class Make>
void open_warm_pool(std::unique_ptr<Pool>& held, std::string& why, Make make) {
    try {
        retry_when_full([&] {
            held.reset();
            held = make();
            held->warm_up();
        });
    } catch (const std::exception& e) {
        held.reset();
        why = std::string("cannot open the pool: ") + e.what();
    }
}

/// lookup_sql prepared once on a raw connection, with bound result buffers: the fastest way
/// libmariadb can run it. Throws std::runtime_error.
class raw_lookup {
public:
    explicit raw_lookup(raw_connection& conn);
    raw_lookup(const raw_lookup&) = delete;
    raw_lookup& operator=(const raw_lookup&) = delete;
    ~raw_lookup();
    /// Runs the lookup; true when the patient exists.
    bool find(std::int64_t id);

private:
    MYSQL_STMT* stmt_ = nullptr;
    std::int64_t param_ = 0;
    MYSQL_BIND param_bind_{};
    std::int64_t id_ = 0;
    char first_[256]{};
    char last_[256]{};
    MYSQL_TIME born_{};
    char gender_[64]{};
    char contact_[64]{};
    unsigned long lengths_[6]{};
    my_bool nulls_[6]{};
    MYSQL_BIND result_binds_[6]{};
};

/// The `dedicated` baseline: this thread opens its own raw connection, prepares the lookup
/// once and runs it on every iteration (items: lookups). Reports failures through fail().
void dedicated_lookups(benchmark::State& state, const connect_options& server, id_range ids);

/// One benchmark's figures: the median over repetitions, or the single run's.
struct figure {
    double real_time_ns = 0; ///< per iteration
    std::map<std::string, double> counters;
    double counter(const std::string& name) const {
        auto it = counters.find(name);
        return it == counters.end() ? 0.0 : it->second;
    }
};
/// Figures by "function_name[/args]/threads" (e.g. "dedicated/4", "async_pooled/64/1/1").
using figures = std::map<std::string, figure>;

/// A row of the results table: | benchmark | figure | value | target |.
struct table_row {
    std::string benchmark;
    std::string what;
    std::string value;
    std::string target;
};

/// Marks the run as failed (the program exits 1) and stops the benchmark with the message.
void fail(benchmark::State& state, std::string_view what);

/// Runs the benchmarks that were registered, printing to the console; then calls `summarize`
/// with the figures and writes its rows to --summary (or prints them). Returns the exit code:
/// 1 when a benchmark failed or none ran.
int run(int argc, char** argv, const settings& s,
        const std::function<std::vector<table_row>(const figures&)>& summarize);

/// "12,345" / "0.97" helpers for the table.
std::string format_rate(double per_second);
std::string format_ratio(double ratio);
std::string format_ns(double ns);

} // namespace cloudmysql::bench
