// Reading and writing patients and records through a pool, every value a bound parameter.
#pragma once

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/pool.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql::clinic {

/// One page of a keyset-paginated listing. Pass `next` back to get the following page; it is
/// empty on the last page. Pages stay stable while rows are inserted: every row that existed
/// when the listing began is visited exactly once.
template <class Row, class Key>
struct page {
    std::vector<Row> rows{};
    std::optional<Key> next{};
};

/// Where a by-name listing continues: after this (last_name, first_name, id).
struct name_key {
    std::string last_name{};
    std::string first_name{};
    std::int64_t id = 0;
};

/// The clinic's data access. Thread-safe: each call takes a connection from the pool for its
/// own duration. Writes validate first (throwing validation_error and writing nothing), then
/// run in one transaction; database errors throw database_error.
class repository {
public:
    explicit repository(pool& p) : pool_(p) {}

    /// Stores a patient; returns its id.
    std::int64_t add_patient(const patient& p);
    /// Stores a patient and its records in one transaction: all or nothing. The records'
    /// patient_id is ignored (the new patient's is used). Validates the patient and every
    /// record first; a record's problems are named "records[0].diagnosis" (0-based). Returns
    /// the patient's id.
    std::int64_t add_patient_with_records(const patient& p,
                                          const std::vector<medical_record>& records);
    /// Stores a record for an existing patient (validation_error when there is none).
    std::int64_t add_record(const medical_record& r);
    /// Sets a record's discharge date; validation_error when it is before the admission or the
    /// record does not exist.
    void discharge(std::int64_t record_id, std::chrono::year_month_day date);

    std::optional<patient> find_patient(std::int64_t id);
    /// Patients by id, `limit` (1 to 1000) at a time, after id `after` (0 for the first page).
    page<patient, std::int64_t> list_patients(std::int64_t after, std::size_t limit);
    /// Patients whose last name starts with `prefix` (case-insensitive, as the collation
    /// compares; '%' and '_' in the prefix match themselves), by (last_name, first_name, id),
    /// `limit` (1 to 1000) at a time, after `after` (nothing for the first page).
    page<patient, name_key> search_by_last_name(std::string_view prefix,
                                                const std::optional<name_key>& after,
                                                std::size_t limit);
    /// A patient's records, by admission date then id.
    std::vector<medical_record> records_of(std::int64_t patient_id);
    std::uint64_t count_patients();
    std::uint64_t count_records();

private:
    pool& pool_;
};

} // namespace cloudmysql::clinic
