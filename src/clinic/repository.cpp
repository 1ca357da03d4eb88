// The clinic's data access: validation first, then bound parameters in short transactions.
#include <cloudmysql/clinic/repository.hpp>

#include <cloudmysql/connection.hpp>
#include <cloudmysql/transaction.hpp>

#include <fmt/format.h>

#include <stdexcept>
#include <utility>

namespace cloudmysql::clinic {
namespace {

using std::chrono::year_month_day;

constexpr std::size_t max_page = 1000;

// The server's errno when an INSERT names a parent row that does not exist.
constexpr int er_no_referenced_row = 1452;

constexpr std::string_view patient_columns =
    "id, first_name, last_name, date_of_birth, gender, contact_number";
constexpr std::string_view record_columns =
    "id, patient_id, diagnosis, treatment, admission_date, discharge_date";

patient patient_from(const row& r) {
    return {.id = r.get<std::int64_t>("id"),
            .first_name = r.get<std::string>("first_name"),
            .last_name = r.get<std::string>("last_name"),
            .date_of_birth = r.get<year_month_day>("date_of_birth"),
            .gender = r.get<std::string>("gender"),
            .contact_number = r.get<std::optional<std::string>>("contact_number")};
}

medical_record record_from(const row& r) {
    return {.id = r.get<std::int64_t>("id"),
            .patient_id = r.get<std::int64_t>("patient_id"),
            .diagnosis = r.get<std::string>("diagnosis"),
            .treatment = r.get<std::string>("treatment"),
            .admission_date = r.get<year_month_day>("admission_date"),
            .discharge_date = r.get<std::optional<year_month_day>>("discharge_date")};
}

void check_limit(std::string_view operation, std::size_t limit) {
    if (limit < 1 || limit > max_page)
        throw std::invalid_argument(fmt::format("{}: limit is {}; it must be 1 to {} rows per page",
                                                operation, limit, max_page));
}

// The AUTO_INCREMENT id an INSERT generated. INT columns never exceed int64.
std::int64_t inserted_id(const result& r) {
    return static_cast<std::int64_t>(r.last_insert_id());
}

std::int64_t insert_patient(connection& conn, const patient& p) {
    return inserted_id(conn.execute("INSERT INTO patients (first_name, last_name, date_of_birth, "
                                    "gender, contact_number) VALUES (?, ?, ?, ?, ?)",
                                    p.first_name, p.last_name, p.date_of_birth, p.gender,
                                    p.contact_number));
}

constexpr std::string_view insert_record_sql =
    "INSERT INTO medical_records (patient_id, diagnosis, treatment, admission_date, "
    "discharge_date) VALUES (?, ?, ?, ?, ?)";

validation_error no_such_patient(std::int64_t patient_id) {
    return validation_error(
        {{"patient_id", fmt::format("is {}; no patient has that id", patient_id)}},
        "medical record");
}

// The prefix escaped for LIKE, so that it matches literally ("100%" is not "100" followed by
// anything). '!' is the escape character (ESCAPE '!'), not the default '\': a backslash in
// SQL text means different things with and without NO_BACKSLASH_ESCAPES, '!' means the same
// under every sql_mode.
std::string like_escaped(std::string_view prefix) {
    std::string escaped;
    escaped.reserve(prefix.size());
    for (const char c : prefix) {
        if (c == '%' || c == '_' || c == '!')
            escaped += '!';
        escaped += c;
    }
    return escaped;
}

} // namespace

std::int64_t repository::add_patient(const patient& p) {
    if (auto errors = validate(p, today_utc()); !errors.empty())
        throw validation_error(std::move(errors), "patient");
    auto conn = pool_.acquire();
    return insert_patient(*conn, p);
}

std::int64_t repository::add_patient_with_records(const patient& p,
                                                  const std::vector<medical_record>& records) {
    auto errors = validate(p, today_utc());
    for (std::size_t i = 0; i < records.size(); ++i)
        for (auto& e : validate(records[i]))
            errors.push_back({fmt::format("records[{}].{}", i, e.field), std::move(e.message)});
    if (!errors.empty())
        throw validation_error(std::move(errors), "patient");

    auto conn = pool_.acquire();
    transaction tx(*conn);
    const std::int64_t id = insert_patient(*conn, p);
    if (!records.empty()) {
        auto insert = conn->prepare(insert_record_sql);
        for (const auto& r : records)
            insert.execute(id, r.diagnosis, r.treatment, r.admission_date, r.discharge_date);
    }
    tx.commit();
    return id;
}

std::int64_t repository::add_record(const medical_record& r) {
    if (auto errors = validate(r); !errors.empty())
        throw validation_error(std::move(errors), "medical record");

    auto conn = pool_.acquire();
    transaction tx(*conn);
    // The shared lock keeps the patient from being deleted before the insert; the foreign key
    // would refuse the insert anyway, but only while foreign_key_checks is on.
    if (conn->execute("SELECT id FROM patients WHERE id = ? LOCK IN SHARE MODE", r.patient_id)
            .empty())
        throw no_such_patient(r.patient_id);
    error_code ec;
    diagnostics diag;
    const param values[] = {r.patient_id, r.diagnosis, r.treatment, r.admission_date,
                            r.discharge_date};
    const auto inserted = conn->execute_span(insert_record_sql, values, ec, diag);
    if (ec == make_mysql_error_code(er_no_referenced_row))
        throw no_such_patient(r.patient_id);
    throw_on_error(ec, diag);
    tx.commit();
    return inserted_id(inserted);
}

void repository::discharge(std::int64_t record_id, year_month_day date) {
    auto conn = pool_.acquire();
    transaction tx(*conn);
    const auto found = conn->execute(
        fmt::format("SELECT {} FROM medical_records WHERE id = ? FOR UPDATE", record_columns),
        record_id);
    if (found.empty())
        throw validation_error(
            {{"id", fmt::format("is {}; no medical record has that id", record_id)}},
            "medical record");
    auto record = record_from(found[0]);
    record.discharge_date = date;
    // Only the discharge date is new: the stored fields were valid when they were written.
    std::vector<field_error> errors;
    for (auto& e : validate(record))
        if (e.field == "discharge_date")
            errors.push_back(std::move(e));
    if (!errors.empty())
        throw validation_error(std::move(errors), "medical record");
    conn->execute("UPDATE medical_records SET discharge_date = ? WHERE id = ?", date, record_id);
    tx.commit();
}

std::optional<patient> repository::find_patient(std::int64_t id) {
    auto conn = pool_.acquire();
    const auto found =
        conn->execute(fmt::format("SELECT {} FROM patients WHERE id = ?", patient_columns), id);
    if (found.empty())
        return std::nullopt;
    return patient_from(found[0]);
}

page<patient, std::int64_t> repository::list_patients(std::int64_t after, std::size_t limit) {
    check_limit("list_patients", limit);
    auto conn = pool_.acquire();
    // One row more than the page: its presence says that there is a next page.
    const auto found = conn->execute(
        fmt::format("SELECT {} FROM patients WHERE id > ? ORDER BY id LIMIT ?", patient_columns),
        after, limit + 1);
    page<patient, std::int64_t> out;
    for (const auto& r : found) {
        if (out.rows.size() == limit) {
            out.next = out.rows.back().id;
            break;
        }
        out.rows.push_back(patient_from(r));
    }
    return out;
}

page<patient, name_key> repository::search_by_last_name(std::string_view prefix,
                                                        const std::optional<name_key>& after,
                                                        std::size_t limit) {
    check_limit("search_by_last_name", limit);
    const std::string escaped = like_escaped(prefix);
    auto conn = pool_.acquire();
    // The row comparison and ORDER BY both compare under the columns' collation, so the
    // keyset follows exactly the order in which the pages are cut; id breaks ties between
    // names the collation holds equal ("Smith", "SMITH").
    const auto found =
        after ? conn->execute(fmt::format("SELECT {} FROM patients "
                                          "WHERE last_name LIKE CONCAT(?, '%') ESCAPE '!' "
                                          "AND (last_name, first_name, id) > (?, ?, ?) "
                                          "ORDER BY last_name, first_name, id LIMIT ?",
                                          patient_columns),
                              escaped, after->last_name, after->first_name, after->id, limit + 1)
              : conn->execute(fmt::format("SELECT {} FROM patients "
                                          "WHERE last_name LIKE CONCAT(?, '%') ESCAPE '!' "
                                          "ORDER BY last_name, first_name, id LIMIT ?",
                                          patient_columns),
                              escaped, limit + 1);
    page<patient, name_key> out;
    for (const auto& r : found) {
        if (out.rows.size() == limit) {
            const auto& last = out.rows.back();
            out.next = name_key{last.last_name, last.first_name, last.id};
            break;
        }
        out.rows.push_back(patient_from(r));
    }
    return out;
}

std::vector<medical_record> repository::records_of(std::int64_t patient_id) {
    auto conn = pool_.acquire();
    const auto found = conn->execute(fmt::format("SELECT {} FROM medical_records "
                                                 "WHERE patient_id = ? "
                                                 "ORDER BY admission_date, id",
                                                 record_columns),
                                     patient_id);
    std::vector<medical_record> out;
    out.reserve(found.size());
    for (const auto& r : found)
        out.push_back(record_from(r));
    return out;
}

std::uint64_t repository::count_patients() {
    auto conn = pool_.acquire();
    return conn->query("SELECT COUNT(*) AS n FROM patients")[0].get<std::uint64_t>("n");
}

std::uint64_t repository::count_records() {
    auto conn = pool_.acquire();
    return conn->query("SELECT COUNT(*) AS n FROM medical_records")[0].get<std::uint64_t>("n");
}

} // namespace cloudmysql::clinic
