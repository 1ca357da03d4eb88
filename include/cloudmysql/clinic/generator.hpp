// Synthetic but realistic clinic data, the same for the same seed, and a fast bulk loader.
#pragma once

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/pool.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace cloudmysql::clinic {

/// Deterministic data: the same seed gives the same patients and records, on every machine
/// (its own integer arithmetic, not std:: distributions, whose results vary between
/// libraries). Names, dates, diagnoses and treatments that look like a clinic's.
class generator {
public:
    explicit generator(std::uint64_t seed);

    /// The next patient (id 0). Born 1930 to 2020, relative to no clock: reproducible.
    patient next_patient();
    /// `count` records for a patient born on `born` (patient_id 0): admissions after birth and
    /// before 2026, most discharged a few days later, some still admitted.
    std::vector<medical_record> records_for(std::chrono::year_month_day born, std::size_t count);

private:
    std::uint64_t next_u64();
    std::uint64_t below(std::uint64_t n);
    std::uint64_t state_;
};

struct load_options {
    std::size_t patients = 1000;
    std::size_t records_per_patient = 3;
    /// Patients per transaction (their records go in the same one). 1 to 10000.
    std::size_t batch = 500;
    std::uint64_t seed = 1;
    /// Called after each batch with the patients and records stored so far.
    std::function<void(std::size_t patients, std::size_t records)> on_progress{};
};

struct load_report {
    std::size_t patients = 0;
    std::size_t records = 0;
    std::chrono::milliseconds took{0};
};

/// Inserts generated patients and records with multi-row INSERTs, one transaction per batch.
/// A failed batch is rolled back whole and the error thrown; earlier batches stay.
load_report bulk_load(pool& p, const load_options& options);

} // namespace cloudmysql::clinic
