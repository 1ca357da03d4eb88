// clinic_load: fill the clinic schema with generated patients and medical records, fast.
//
// Shows: the clinic migrations applied by a program at startup, clinic::bulk_load (multi-row
// INSERTs with bound parameters, one transaction per batch), progress that suits the output
// (one updating line on a terminal, a line per tenth in a log), and the server's message on
// error.
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   clinic_load --patients 100000 --records-per-patient 3 --batch 500 --seed 1
//
// The same seed gives the same data. Exit codes: 0 loaded, 1 failed (a batch that fails is
// rolled back whole; earlier batches stay), 2 bad usage.
#include "common/command_line.hpp"

#include <cloudmysql/clinic/generator.hpp>
#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/migrator.hpp>
#include <cloudmysql/pool.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using cloudmysql_examples::command_line;

void declare(command_line& cl, cloudmysql::clinic::load_options& o) {
    cl.number("--patients", o.patients, 0, 100'000'000, "patients to generate (default 1000)");
    cl.number("--records-per-patient", o.records_per_patient, 0, 1000,
              "medical records per patient (default 3)", "K");
    cl.number("--batch", o.batch, 1, 10000, "patients per transaction (default 500)", "B");
    cl.number("--seed", o.seed, 0, std::numeric_limits<std::uint64_t>::max(),
              "the generator's seed (default 1): the same seed gives the same data", "S");
}

// Whether the terminal's progress line waits for its newline.
bool line_open = false;

// 1234567 -> "1,234,567": the same in every locale, so logs and tests can read it.
std::string grouped(std::uint64_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0)
            out += ',';
        out += digits[i];
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    cloudmysql::clinic::load_options load;
    command_line cl("clinic_load", "[OPTIONS]",
                    "clinic_load: fill the clinic schema with generated patients and medical "
                    "records",
                    "The server comes from CLOUDMYSQL_URL=mysql://USER:PASSWORD@HOST[:PORT]/"
                    "DATABASE\nExit codes: 0 loaded, 1 failed, 2 bad usage.");
    declare(cl, load);
    std::optional<cloudmysql::connect_options> url;
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        cl.allow_positionals(0, "options only");
        url = cloudmysql::connect_options::from_env();
        if (!url)
            throw std::invalid_argument("set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST/DB");
        if (url->database.empty())
            throw std::invalid_argument("CLOUDMYSQL_URL names no database: add /DATABASE");
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "clinic_load: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }

    try {
        const auto migrated = cloudmysql::migrator(*url, cloudmysql::clinic::migrations()).up();
        fmt::print("schema at version {} ({} migrations applied now)\n", migrated.version_after,
                   migrated.applied.size());

        // A terminal gets one line that updates in place; a pipe or log gets a line whenever
        // another tenth is done, so that it stays short.
        const bool terminal = ::isatty(::fileno(stdout)) != 0;
        std::size_t next_tenth = 1;
        const std::size_t total = load.patients;
        load.on_progress = [&](std::size_t patients, std::size_t records) {
            const std::size_t percent = total == 0 ? 100 : patients * 100 / total;
            if (terminal) {
                fmt::print("\rloading: {} of {} patients ({}%), {} records", grouped(patients),
                           grouped(total), percent, grouped(records));
                std::fflush(stdout);
                line_open = true;
            } else if (percent >= next_tenth * 10) {
                fmt::print("loaded {} of {} patients ({}%), {} records\n", grouped(patients),
                           grouped(total), percent, grouped(records));
                next_tenth = percent / 10 + 1;
            }
        };

        cloudmysql::pool pool(*url, {.max_size = 2});
        const auto report = cloudmysql::clinic::bulk_load(pool, load);
        if (line_open)
            fmt::print("\n");
        line_open = false;
        const double seconds = std::chrono::duration<double>(report.took).count();
        const auto rows = report.patients + report.records;
        fmt::print("loaded {} patients and {} records in {:.1f} s: {} rows/s\n", report.patients,
                   report.records, seconds,
                   grouped(seconds > 0
                               ? static_cast<std::uint64_t>(static_cast<double>(rows) / seconds)
                               : rows));
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}clinic_load: {}\n", line_open ? "\n" : "", e.what());
        return 1;
    }
}
