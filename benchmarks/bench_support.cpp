#include "bench_support.hpp"

#include <cloudmysql/clinic/generator.hpp>
#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/migrator.hpp>
#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace cloudmysql::bench {
namespace {

std::atomic<bool> failed{false};

[[noreturn]] void usage(std::string_view program, std::string_view problem) {
    fmt::print(stderr,
               "{}: {}\n"
               "usage: {} [--url URL] [--database NAME] [--patients N] [--summary FILE]\n"
               "          [Google Benchmark flags, e.g. --benchmark_min_time=0.5]\n"
               "  The server comes from --url or CLOUDMYSQL_URL (mysql://USER:PASSWORD@HOST/DB);\n"
               "  --database replaces the URL's database (created if missing); N patients\n"
               "  (default 10000) are loaded when fewer exist. --summary writes the results\n"
               "  table's rows (markdown) to FILE instead of stdout.\n",
               program, problem, program);
    std::exit(2);
}

std::string describe_tls(MYSQL* mysql) {
    const char* cipher = mysql_get_ssl_cipher(mysql);
    if (cipher == nullptr)
        return "none";
    const char* version = nullptr;
    if (mariadb_get_infov(mysql, MARIADB_CONNECTION_TLS_VERSION, &version) == 0 &&
        version != nullptr)
        return fmt::format("{} {}", version, cipher);
    return cipher;
}

} // namespace

settings parse_args(int& argc, char** argv, std::string_view program, bool needs_server) {
    settings s;
    std::optional<std::string> url;
    std::optional<std::string> database;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool ours =
            arg == "--url" || arg == "--database" || arg == "--patients" || arg == "--summary";
        if (!ours) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            usage(program, fmt::format("{} needs a value", arg));
        const std::string_view value = argv[++i];
        if (arg == "--url") {
            url = std::string(value);
        } else if (arg == "--database") {
            database = std::string(value);
        } else if (arg == "--summary") {
            s.summary_path = std::string(value);
        } else {
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc{} || end != value.data() + value.size() || n < 100 ||
                n > 10'000'000)
                usage(program, fmt::format("--patients wants a number from 100 to 10000000, "
                                           "not '{}'",
                                           value));
            s.patients = n;
        }
    }
    argc = out;
    argv[argc] = nullptr;
    if (!needs_server)
        return s;
    try {
        if (url)
            s.server = connect_options::from_url(*url);
        else
            s.server = connect_options::from_env();
    } catch (const std::invalid_argument& e) {
        usage(program, e.what());
    }
    if (!s.server)
        usage(program, "no server: set CLOUDMYSQL_URL or pass --url");
    if (database)
        s.server->database = *database;
    if (s.server->database.empty())
        usage(program, "the URL names no database: add /DATABASE or pass --database");
    return s;
}

server_facts read_server(const connect_options& server) {
    raw_connection conn(server);
    server_facts f;
    f.version = mysql_get_server_info(conn.get());
    f.tls = describe_tls(conn.get());
    if (mysql_query(conn.get(), "SELECT @@max_connections") != 0)
        throw std::runtime_error(
            fmt::format("cannot read max_connections: {}", mysql_error(conn.get())));
    MYSQL_RES* res = mysql_store_result(conn.get());
    if (res != nullptr) {
        if (MYSQL_ROW row = mysql_fetch_row(res); row != nullptr && row[0] != nullptr)
            f.max_connections = std::strtoll(row[0], nullptr, 10);
        mysql_free_result(res);
    }
    return f;
}

id_range prepare_clinic(const settings& s) {
    const connect_options& target = *s.server;
    {
        // The database may not exist yet: create it from a session without one.
        connect_options no_db = target;
        no_db.database.clear();
        connection admin(no_db);
        admin.query(fmt::format("CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE "
                                "utf8mb4_unicode_ci",
                                target.database));
    }
    migrator(target, clinic::migrations()).up();
    connection conn(target);
    auto count = [&] {
        return conn.query("SELECT COUNT(*) AS n FROM patients")[0].get<std::uint64_t>("n");
    };
    const std::uint64_t have = count();
    if (have < s.patients) {
        fmt::print(stderr, "loading {} patients into {} (there were {})\n", s.patients - have,
                   target.database, have);
        pool loader(target, {.max_size = 2});
        clinic::bulk_load(loader, {.patients = s.patients - have,
                                   .records_per_patient = 3,
                                   .batch = 1000,
                                   .seed = 7 + have});
    }
    const auto r = conn.query("SELECT MIN(id) AS first, MAX(id) AS last FROM patients");
    return {r[0].get<std::int64_t>("first"), r[0].get<std::int64_t>("last")};
}

// ---- raw libmariadb -------------------------------------------------------------------------

raw_connection::raw_connection(const connect_options& options) {
    mysql_ = mysql_init(nullptr);
    if (mysql_ == nullptr)
        throw std::bad_alloc();
    const unsigned timeout = static_cast<unsigned>(options.connect_timeout.count());
    mysql_optionsv(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    const tls_mode mode = options.effective_tls_mode();
    if (mode != tls_mode::disabled) {
        const my_bool on = 1;
        mysql_optionsv(mysql_, MYSQL_OPT_SSL_ENFORCE, &on);
        if (!options.ssl_ca.empty())
            mysql_optionsv(mysql_, MYSQL_OPT_SSL_CA, options.ssl_ca.c_str());
        else if (mode >= tls_mode::verify_ca)
            mysql_optionsv(mysql_, MYSQL_OPT_SSL_CAPATH, "/etc/ssl/certs");
        if (mode == tls_mode::verify_identity)
            mysql_optionsv(mysql_, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    const bool socket = !options.unix_socket.empty();
    if (mysql_real_connect(
            mysql_, socket ? nullptr : options.host.c_str(), options.user.c_str(),
            options.password.c_str(), options.database.empty() ? nullptr : options.database.c_str(),
            options.port, socket ? options.unix_socket.c_str() : nullptr, 0) == nullptr) {
        const std::string why =
            fmt::format("raw connect to {} failed: {} (error {})", options.describe(),
                        mysql_error(mysql_), mysql_errno(mysql_));
        mysql_close(mysql_);
        throw std::runtime_error(why);
    }
    if (mode >= tls_mode::required && mysql_get_ssl_cipher(mysql_) == nullptr) {
        mysql_close(mysql_);
        throw std::runtime_error(
            fmt::format("raw connect to {}: TLS required but the session is not encrypted",
                        options.describe()));
    }
}

raw_connection::~raw_connection() {
    mysql_close(mysql_);
}

std::unique_ptr<raw_connection> connect_when_room(const connect_options& options) {
    for (int attempt = 1;; ++attempt) {
        try {
            return std::make_unique<raw_connection>(options);
        } catch (const std::runtime_error& e) {
            // Under TLS the refusal arrives as client error 2002 quoting the server's 1040.
            if (attempt >= 50 || !worth_retrying(e.what()))
                throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

raw_lookup::raw_lookup(raw_connection& conn) {
    stmt_ = mysql_stmt_init(conn.get());
    if (stmt_ == nullptr)
        throw std::bad_alloc();
    if (mysql_stmt_prepare(stmt_, lookup_sql.data(), lookup_sql.size()) != 0) {
        const std::string why = fmt::format("prepare failed: {}", mysql_stmt_error(stmt_));
        mysql_stmt_close(stmt_);
        throw std::runtime_error(why);
    }
    param_bind_.buffer_type = MYSQL_TYPE_LONGLONG;
    param_bind_.buffer = &param_;
    struct column_buffer {
        enum_field_types type;
        void* buffer;
        unsigned long size;
    };
    const column_buffer columns[6] = {
        {MYSQL_TYPE_LONGLONG, &id_, sizeof id_},
        {MYSQL_TYPE_STRING, first_, sizeof first_},
        {MYSQL_TYPE_STRING, last_, sizeof last_},
        {MYSQL_TYPE_DATE, &born_, sizeof born_},
        {MYSQL_TYPE_STRING, gender_, sizeof gender_},
        {MYSQL_TYPE_STRING, contact_, sizeof contact_},
    };
    for (std::size_t i = 0; i < 6; ++i) {
        result_binds_[i].buffer_type = columns[i].type;
        result_binds_[i].buffer = columns[i].buffer;
        result_binds_[i].buffer_length = columns[i].size;
        result_binds_[i].length = &lengths_[i];
        result_binds_[i].is_null = &nulls_[i];
    }
    if (mysql_stmt_bind_param(stmt_, &param_bind_) != 0 ||
        mysql_stmt_bind_result(stmt_, result_binds_) != 0) {
        const std::string why = fmt::format("bind failed: {}", mysql_stmt_error(stmt_));
        mysql_stmt_close(stmt_);
        throw std::runtime_error(why);
    }
}

raw_lookup::~raw_lookup() {
    mysql_stmt_close(stmt_);
}

bool raw_lookup::find(std::int64_t id) {
    param_ = id;
    if (mysql_stmt_execute(stmt_) != 0 || mysql_stmt_store_result(stmt_) != 0)
        throw std::runtime_error(fmt::format("lookup failed: {}", mysql_stmt_error(stmt_)));
    bool found = false;
    while (mysql_stmt_fetch(stmt_) == 0)
        found = true;
    mysql_stmt_free_result(stmt_);
    return found;
}

void dedicated_lookups(benchmark::State& state, const connect_options& server, id_range ids) {
    try {
        const auto conn = connect_when_room(server);
        raw_lookup lookup(*conn);
        id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        for (auto _ : state)
            benchmark::DoNotOptimize(lookup.find(pick.next()));
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// ---- running and reporting ------------------------------------------------------------------

void fail(benchmark::State& state, std::string_view what) {
    failed = true;
    const std::string message(what);
    state.SkipWithError(message.c_str());
}

namespace {

// The console as usual, and the medians (or single runs) kept for the summary.
class collecting_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const Run& r : runs) {
            if (r.error_occurred) {
                failed = true;
                continue;
            }
            const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
            const bool single = r.run_type == Run::RT_Iteration;
            if (!median && !single)
                continue;
            std::string key = r.run_name.function_name;
            if (!r.run_name.args.empty())
                key += "/" + r.run_name.args;
            key += fmt::format("/{}", r.threads);
            // A single run does not replace a median already kept (repetitions report both
            // unless aggregates only).
            if (single && medians_.contains(key))
                continue;
            figure f;
            f.real_time_ns = r.GetAdjustedRealTime();
            for (const auto& [name, counter] : r.counters)
                f.counters[name] = counter.value;
            if (single)
                singles_[key] = f;
            else
                medians_[key] = f;
        }
    }

    figures result() const {
        figures all = singles_;
        for (const auto& [k, f] : medians_)
            all[k] = f;
        return all;
    }

private:
    figures medians_;
    figures singles_;
};

} // namespace

int run(int argc, char** argv, const settings& s,
        const std::function<std::vector<table_row>(const figures&)>& summarize) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    collecting_reporter reporter;
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    if (ran == 0) {
        fmt::print(stderr, "no benchmark ran: check --benchmark_filter\n");
        return 1;
    }
    std::string rows;
    for (const table_row& row : summarize(reporter.result()))
        rows +=
            fmt::format("| {} | {} | {} | {} |\n", row.benchmark, row.what, row.value, row.target);
    if (s.summary_path.empty()) {
        fmt::print("\n{}", rows);
    } else {
        std::ofstream out(s.summary_path);
        out << rows;
        if (!out)
            fmt::print(stderr, "cannot write {}\n", s.summary_path);
    }
    return failed ? 1 : 0;
}

std::string format_rate(double per_second) {
    const auto n = static_cast<std::uint64_t>(per_second + 0.5);
    std::string digits = std::to_string(n);
    for (auto i = digits.size(); i > 3; i -= 3)
        digits.insert(i - 3, ",");
    return digits;
}

std::string format_ratio(double ratio) {
    return fmt::format("{:.2f}", ratio);
}

std::string format_ns(double ns) {
    if (ns >= 1e6)
        return fmt::format("{:.2f} ms", ns / 1e6);
    if (ns >= 1e3)
        return fmt::format("{:.2f} µs", ns / 1e3);
    return fmt::format("{:.0f} ns", ns);
}

} // namespace cloudmysql::bench
