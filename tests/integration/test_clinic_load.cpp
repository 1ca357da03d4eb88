// clinic::bulk_load against a real MariaDB: exact counts whatever the batch size, the same
// rows for the same seed (and exactly what the generator makes, each record under its own
// patient), other rows for another seed, and a failing batch rolled back whole.
#include "test_server.hpp"

#include <cloudmysql/clinic/generator.hpp>
#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/database_error.hpp>
#include <cloudmysql/migrator.hpp>
#include <cloudmysql/pool.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace cloudmysql;
using cloudmysql::test::scratch_database;

namespace {

// A scratch database with the clinic schema.
struct clinic_database {
    scratch_database db;
    clinic_database() { migrator(db.options(), clinic::migrations()).up(); }
    const connect_options& options() const { return db.options(); }
};

// Every row of a query, each as "v1|v2|...", values as to_display_string shows them.
std::vector<std::string> rows_of(connection& conn, const std::string& sql) {
    std::vector<std::string> out;
    for (const auto& row : conn.query(sql)) {
        std::string line;
        for (const auto& v : row.values())
            line.append(line.empty() ? "" : "|").append(to_display_string(v));
        out.push_back(std::move(line));
    }
    return out;
}

std::vector<std::string> patients_of(connection& conn) {
    return rows_of(conn, "SELECT * FROM patients ORDER BY id");
}
std::vector<std::string> records_of(connection& conn) {
    return rows_of(conn, "SELECT * FROM medical_records ORDER BY id");
}

std::uint64_t count(connection& conn, const char* table) {
    return conn.query(fmt::format("SELECT COUNT(*) FROM {}", table))[0].get<std::uint64_t>(0);
}

clinic::load_report load(const connect_options& target, clinic::load_options options) {
    pool p(target, {.max_size = 2});
    return clinic::bulk_load(p, options);
}

} // namespace

TEST_CASE("the loader stores exactly N patients and N*K records, batch after batch") {
    clinic_database db;
    std::vector<std::pair<std::size_t, std::size_t>> progress;
    const auto report =
        load(db.options(),
             {.patients = 1234,
              .records_per_patient = 3,
              .batch = 100,
              .seed = 11,
              .on_progress = [&](std::size_t p, std::size_t r) { progress.emplace_back(p, r); }});
    CHECK(report.patients == 1234);
    CHECK(report.records == 3702);
    connection conn(db.options());
    CHECK(count(conn, "patients") == 1234);
    CHECK(count(conn, "medical_records") == 3702);

    // One call per batch (12 full ones and a last one of 34), with the running totals.
    REQUIRE(progress.size() == 13);
    CHECK(progress.front() == std::pair<std::size_t, std::size_t>{100, 300});
    CHECK(progress[11] == std::pair<std::size_t, std::size_t>{1200, 3600});
    CHECK(progress.back() == std::pair<std::size_t, std::size_t>{1234, 3702});

    // Every patient has its records, and the records point at existing patients.
    CHECK(conn.query("SELECT COUNT(*) FROM patients p WHERE (SELECT COUNT(*) FROM "
                     "medical_records r WHERE r.patient_id = p.id) <> 3")[0]
              .get<int>(0) == 0);

    // Loading again appends: the ids go on.
    load(db.options(), {.patients = 7, .records_per_patient = 0, .batch = 3, .seed = 12});
    CHECK(count(conn, "patients") == 1241);
    CHECK(count(conn, "medical_records") == 3702);
}

TEST_CASE("the same seed loads the same rows; another seed, other rows") {
    const clinic::load_options options{
        .patients = 500, .records_per_patient = 3, .batch = 64, .seed = 2024};
    clinic_database first, second, other;
    load(first.options(), options);
    auto rebatched = options; // the batch size changes nothing but the transactions
    rebatched.batch = 500;
    load(second.options(), rebatched);
    auto reseeded = options;
    reseeded.seed = 2025;
    load(other.options(), reseeded);

    connection a(first.options()), b(second.options()), c(other.options());
    const auto patients = patients_of(a);
    const auto records = records_of(a);
    REQUIRE(patients.size() == 500);
    REQUIRE(records.size() == 1500);
    CHECK(patients == patients_of(b));
    CHECK(records == records_of(b));
    CHECK(patients != patients_of(c));
    CHECK(records != records_of(c));

    SUBCASE("the rows are the generator's, each record under its own patient") {
        clinic::generator gen(options.seed);
        std::size_t record = 0;
        const auto stored = a.query("SELECT id, first_name, last_name, date_of_birth, gender, "
                                    "contact_number FROM patients ORDER BY id");
        const auto stored_records =
            a.query("SELECT patient_id, diagnosis, treatment, admission_date, discharge_date "
                    "FROM medical_records ORDER BY patient_id, id");
        for (const auto& row : stored) {
            const auto p = gen.next_patient();
            CHECK(row.get<std::string>(1) == p.first_name);
            CHECK(row.get<std::string>(2) == p.last_name);
            CHECK(row.get<std::chrono::year_month_day>(3) == p.date_of_birth);
            CHECK(row.get<std::string>(4) == p.gender);
            CHECK(row.get<std::optional<std::string>>(5) == p.contact_number);
            for (const auto& r : gen.records_for(p.date_of_birth, options.records_per_patient)) {
                const auto& s = stored_records[record++];
                CHECK(s.get<std::int64_t>(0) == row.get<std::int64_t>(0));
                CHECK(s.get<std::string>(1) == r.diagnosis);
                CHECK(s.get<std::string>(2) == r.treatment);
                CHECK(s.get<std::chrono::year_month_day>(3) == r.admission_date);
                CHECK(s.get<std::optional<std::chrono::year_month_day>>(4) == r.discharge_date);
            }
        }
        CHECK(record == stored_records.size());
    }
}

TEST_CASE("a batch that fails is rolled back whole; the batches before it stay") {
    clinic_database db;
    connection saboteur(db.options());
    std::size_t batches = 0;
    clinic::load_options options{.patients = 1000, .records_per_patient = 2, .batch = 50};
    options.on_progress = [&](std::size_t, std::size_t) {
        if (++batches == 3) // the next batch's records have nowhere to go
            saboteur.query("DROP TABLE medical_records");
    };
    CHECK_THROWS_AS(load(db.options(), options), database_error);
    CHECK(batches == 3);
    // The fourth batch's patients went in before its records failed: rolled back with them.
    CHECK(count(saboteur, "patients") == 150);
    CHECK(count(saboteur, "patients") % options.batch == 0);
}

TEST_CASE("bad load options are refused before anything is stored") {
    clinic_database db;
    CHECK_THROWS_AS(load(db.options(), {.batch = 0}), std::invalid_argument);
    CHECK_THROWS_AS(load(db.options(), {.batch = 10001}), std::invalid_argument);
    connection conn(db.options());
    CHECK(count(conn, "patients") == 0);
    const auto none = load(db.options(), {.patients = 0});
    CHECK(none.patients == 0);
    CHECK(none.records == 0);
}
