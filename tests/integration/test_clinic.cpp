// The clinic schema and repository against a real MariaDB: the migrated schema matches the
// assignment's description column by column, invalid rows write nothing, multi-row writes are
// all or nothing (also when the server refuses a row that passed validation), hostile and
// non-ASCII text round-trips verbatim, and keyset pagination visits every row exactly once
// while another thread inserts.
#include "test_server.hpp"

#include <cloudmysql/clinic/repository.hpp>
#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/connection.hpp>
#include <cloudmysql/migrator.hpp>
#include <cloudmysql/pool.hpp>
#include <cloudmysql/transaction.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace cloudmysql;
using namespace std::chrono;
using cloudmysql::test::scratch_database;

namespace {

// A database of the test's own at the clinic schema's latest version, a small pool over it and
// a repository. Members are destroyed in reverse: the pool closes before the database drops.
struct clinic_database {
    scratch_database db;
    pool connections;
    clinic::repository repo;

    clinic_database() : connections(migrated(db), {.max_size = 4}), repo(connections) {}

    static const connect_options& migrated(const scratch_database& db) {
        migrator(db.options(), clinic::migrations()).up();
        return db.options();
    }
};

clinic::patient make_patient(std::string first, std::string last,
                             std::optional<std::string> contact = std::nullopt) {
    return {.first_name = std::move(first),
            .last_name = std::move(last),
            .date_of_birth = year{1980} / May / 17,
            .gender = "female",
            .contact_number = std::move(contact)};
}

clinic::medical_record make_record(std::string diagnosis, year_month_day admitted,
                                   std::optional<year_month_day> discharged) {
    return {.diagnosis = std::move(diagnosis),
            .treatment = "Rest and fluids",
            .admission_date = admitted,
            .discharge_date = discharged};
}

void check_same(const clinic::patient& got, const clinic::patient& want) {
    CHECK(got.id == want.id);
    CHECK(got.first_name == want.first_name);
    CHECK(got.last_name == want.last_name);
    CHECK(got.date_of_birth == want.date_of_birth);
    CHECK(got.gender == want.gender);
    CHECK(got.contact_number == want.contact_number);
}

void check_same(const clinic::medical_record& got, const clinic::medical_record& want) {
    CHECK(got.id == want.id);
    CHECK(got.patient_id == want.patient_id);
    CHECK(got.diagnosis == want.diagnosis);
    CHECK(got.treatment == want.treatment);
    CHECK(got.admission_date == want.admission_date);
    CHECK(got.discharge_date == want.discharge_date);
}

std::string join(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& line : lines)
        text += line + "\n";
    return text;
}

std::vector<std::string> field_names(const clinic::validation_error& e) {
    std::vector<std::string> out;
    for (const auto& f : e.errors())
        out.push_back(f.field);
    return out;
}

// The validation_error that `f` throws; fails the test when it throws nothing or another type.
template <class F>
std::optional<clinic::validation_error> validation_error_of(F&& f) {
    try {
        f();
    } catch (const clinic::validation_error& e) {
        return e;
    } catch (const std::exception& e) {
        FAIL_CHECK("expected a validation_error, got: ", e.what());
        return std::nullopt;
    }
    FAIL_CHECK("expected a validation_error, nothing was thrown");
    return std::nullopt;
}

// ---- the schema as information_schema sees it ------------------------------------------------

// One line per column: "name type[(length)] NULL|NOT NULL[ key=K][ auto_increment]".
std::string columns_of(connection& conn, const std::string& schema, std::string_view table) {
    const auto rows = conn.execute("SELECT COLUMN_NAME AS name, DATA_TYPE AS type, "
                                   "CHARACTER_MAXIMUM_LENGTH AS length, IS_NULLABLE AS nullable, "
                                   "COLUMN_KEY AS col_key, EXTRA AS extra "
                                   "FROM information_schema.COLUMNS "
                                   "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
                                   "ORDER BY ORDINAL_POSITION",
                                   schema, table);
    std::vector<std::string> lines;
    for (const auto& r : rows) {
        std::string line = r.get<std::string>("name") + " " + r.get<std::string>("type");
        if (const auto length = r.get<std::optional<std::int64_t>>("length"))
            line += fmt::format("({})", *length);
        line += r.get<std::string>("nullable") == "YES" ? " NULL" : " NOT NULL";
        if (const auto key = r.get<std::string>("col_key"); !key.empty())
            line += " key=" + key;
        if (r.get<std::string>("extra").find("auto_increment") != std::string::npos)
            line += " auto_increment";
        lines.push_back(line);
    }
    return join(lines);
}

// "table index [unique] (col,col)" for the clinic's tables, in byte order.
std::string indexes_of(connection& conn, const std::string& schema) {
    const auto rows =
        conn.execute("SELECT TABLE_NAME AS tbl, INDEX_NAME AS idx, MIN(NON_UNIQUE) AS non_unique, "
                     "GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') AS cols "
                     "FROM information_schema.STATISTICS "
                     "WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('patients', 'medical_records') "
                     "GROUP BY TABLE_NAME, INDEX_NAME",
                     schema);
    std::set<std::string> lines;
    for (const auto& r : rows)
        lines.insert(fmt::format(
            "{} {}{} ({})", r.get<std::string>("tbl"), r.get<std::string>("idx"),
            r.get<std::int64_t>("non_unique") == 0 ? " unique" : "", r.get<std::string>("cols")));
    return join({lines.begin(), lines.end()});
}

std::string foreign_keys_of(connection& conn, const std::string& schema) {
    const auto rows =
        conn.execute("SELECT CONSTRAINT_NAME AS name, TABLE_NAME AS tbl, COLUMN_NAME AS col, "
                     "REFERENCED_TABLE_SCHEMA AS ref_schema, REFERENCED_TABLE_NAME AS ref_tbl, "
                     "REFERENCED_COLUMN_NAME AS ref_col "
                     "FROM information_schema.KEY_COLUMN_USAGE "
                     "WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
                     schema);
    std::set<std::string> lines;
    for (const auto& r : rows)
        lines.insert(fmt::format("{}: {}.{} -> {}{}.{}", r.get<std::string>("name"),
                                 r.get<std::string>("tbl"), r.get<std::string>("col"),
                                 r.get<std::string>("ref_schema") == schema ? "" : "elsewhere.",
                                 r.get<std::string>("ref_tbl"), r.get<std::string>("ref_col")));
    return join({lines.begin(), lines.end()});
}

// "table engine collation" for the clinic's tables.
std::string tables_of(connection& conn, const std::string& schema) {
    const auto rows = conn.execute("SELECT TABLE_NAME AS tbl, ENGINE AS engine, "
                                   "TABLE_COLLATION AS collation "
                                   "FROM information_schema.TABLES "
                                   "WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN "
                                   "('patients', 'medical_records')",
                                   schema);
    std::set<std::string> lines;
    for (const auto& r : rows)
        lines.insert(fmt::format("{} {} {}", r.get<std::string>("tbl"),
                                 r.get<std::optional<std::string>>("engine").value_or("-"),
                                 r.get<std::optional<std::string>>("collation").value_or("-")));
    return join({lines.begin(), lines.end()});
}

} // namespace

TEST_CASE("after up, the schema is the assignment's, column by column") {
    scratch_database db;
    migrator m(db.options(), clinic::migrations());
    CHECK(m.up().version_after == 3);
    connection conn(db.options());

    // From the seed's description: patients (id auto-increment primary key, first_name and
    // last_name up to 50 characters, date_of_birth, gender up to 10, contact_number up to 15
    // and nullable) ...
    CHECK(columns_of(conn, db.name(), "patients") == join({
                                                         "id int NOT NULL key=PRI auto_increment",
                                                         "first_name varchar(50) NOT NULL",
                                                         "last_name varchar(50) NOT NULL key=MUL",
                                                         "date_of_birth date NOT NULL",
                                                         "gender varchar(10) NOT NULL",
                                                         "contact_number varchar(15) NULL",
                                                     }));
    // ... and medical_records (id, patient_id referencing patients.id, diagnosis up to 100,
    // treatment up to 200, admission_date, discharge_date nullable: still admitted).
    CHECK(columns_of(conn, db.name(), "medical_records") ==
          join({
              "id int NOT NULL key=PRI auto_increment",
              "patient_id int NOT NULL key=MUL",
              "diagnosis varchar(100) NOT NULL",
              "treatment varchar(200) NOT NULL",
              "admission_date date NOT NULL",
              "discharge_date date NULL",
          }));
    CHECK(foreign_keys_of(conn, db.name()) ==
          join({"fk_medical_records_patient: medical_records.patient_id -> patients.id"}));
    CHECK(indexes_of(conn, db.name()) == join({
                                             "medical_records PRIMARY unique (id)",
                                             "medical_records idx_medical_records_patient "
                                             "(patient_id)",
                                             "patients PRIMARY unique (id)",
                                             "patients idx_patients_name (last_name,first_name)",
                                         }));
    CHECK(tables_of(conn, db.name()) == join({
                                            "medical_records InnoDB utf8mb4_unicode_ci",
                                            "patients InnoDB utf8mb4_unicode_ci",
                                        }));
    // Every text column stores utf8mb4 under the table's collation.
    const auto text_columns =
        conn.execute("SELECT COUNT(*) AS n, SUM(CHARACTER_SET_NAME = 'utf8mb4' AND "
                     "COLLATION_NAME = 'utf8mb4_unicode_ci') AS good "
                     "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND "
                     "TABLE_NAME IN ('patients', 'medical_records') AND DATA_TYPE = 'varchar'",
                     db.name());
    CHECK(text_columns[0].get<std::int64_t>("n") == 6);
    CHECK(text_columns[0].get<std::string>("good") == "6");

    // Every migration goes down cleanly, and up again.
    CHECK(m.down_to(0).version_after == 0);
    CHECK(tables_of(conn, db.name()).empty());
    CHECK(m.up().version_after == 3);
    CHECK(columns_of(conn, db.name(), "patients").starts_with("id int NOT NULL key=PRI"));
}

TEST_CASE("rows that fail validation write nothing") {
    clinic_database c;
    auto& repo = c.repo;

    SUBCASE("add_patient") {
        auto p = make_patient(std::string(51, 'x'), "Nobody");
        p.date_of_birth = year{2999} / January / 1;
        const auto e = validation_error_of([&] { repo.add_patient(p); });
        REQUIRE(e);
        CHECK(field_names(*e) == std::vector<std::string>{"first_name", "date_of_birth"});
        CHECK(std::string(e->what()).starts_with("invalid patient: first_name is 51 characters"));
        CHECK(repo.count_patients() == 0);
    }
    SUBCASE("add_record for a patient that does not exist") {
        auto r = make_record("Fracture", year{2024} / March / 1, std::nullopt);
        r.patient_id = 4242;
        const auto e = validation_error_of([&] { repo.add_record(r); });
        REQUIRE(e);
        CHECK(field_names(*e) == std::vector<std::string>{"patient_id"});
        CHECK(std::string(e->what()) ==
              "invalid medical record: patient_id is 4242; no patient has that id");
        CHECK(repo.count_records() == 0);
    }
    SUBCASE("add_record that is invalid itself") {
        const auto id = repo.add_patient(make_patient("Ada", "Lovelace"));
        auto r = make_record("", year{2024} / March / 10, year{2024} / March / 9);
        r.patient_id = id;
        const auto e = validation_error_of([&] { repo.add_record(r); });
        REQUIRE(e);
        CHECK(field_names(*e) == std::vector<std::string>{"diagnosis", "discharge_date"});
        CHECK(repo.count_records() == 0);
    }
    SUBCASE("discharge before the admission, or of a record that does not exist") {
        const auto id = repo.add_patient(make_patient("Ada", "Lovelace"));
        auto r = make_record("Influenza", year{2024} / March / 10, std::nullopt);
        r.patient_id = id;
        const auto record_id = repo.add_record(r);

        const auto early =
            validation_error_of([&] { repo.discharge(record_id, year{2024} / March / 9); });
        REQUIRE(early);
        CHECK(std::string(early->what()) == "invalid medical record: discharge_date 2024-03-09 is "
                                            "before the admission date 2024-03-10");
        const auto invalid =
            validation_error_of([&] { repo.discharge(record_id, year{2024} / February / 30); });
        REQUIRE(invalid);
        CHECK(field_names(*invalid) == std::vector<std::string>{"discharge_date"});
        const auto missing =
            validation_error_of([&] { repo.discharge(record_id + 1, year{2024} / March / 11); });
        REQUIRE(missing);
        CHECK(field_names(*missing) == std::vector<std::string>{"id"});

        const auto records = repo.records_of(id);
        REQUIRE(records.size() == 1);
        CHECK_FALSE(records[0].discharge_date); // still admitted
        CHECK(repo.count_records() == 1);
    }
}

TEST_CASE("add_patient_with_records is all or nothing") {
    clinic_database c;
    auto& repo = c.repo;
    const auto patient = make_patient("Grace", "Hopper", "555 0100");
    const auto first = make_record("Asthma", year{2023} / June / 1, year{2023} / June / 3);

    SUBCASE("an invalid record: nothing reaches the server, every problem is named") {
        const auto bad = make_record("Migraine", year{2023} / July / 10, year{2023} / July / 9);
        const auto worse =
            make_record(std::string(101, 'd'), year{1850} / January / 1, std::nullopt);
        const auto e = validation_error_of([&] {
            repo.add_patient_with_records(patient, {first, bad, worse});
        });
        REQUIRE(e);
        CHECK(field_names(*e) == std::vector<std::string>{"records[1].discharge_date",
                                                          "records[2].diagnosis",
                                                          "records[2].admission_date"});
        CHECK(std::string(e->what()).starts_with(
            "invalid patient: records[1].discharge_date 2023-07-09 is before the admission date"));
        CHECK(repo.count_patients() == 0);
        CHECK(repo.count_records() == 0);
    }

    SUBCASE("the server refuses the second record: the patient and the first record roll back") {
        // A record that passes validation but that the server refuses, after the patient and
        // the first record were inserted in the same transaction. The schema itself has no
        // such rule (validation mirrors it), so the test adds one: a CHECK constraint that
        // MariaDB (10.2+) and MySQL (8.0.16+) enforce, error 4025 or 3819.
        connection conn(c.db.options());
        conn.query("ALTER TABLE medical_records ADD CONSTRAINT chk_test_refused "
                   "CHECK (diagnosis <> 'Refused by the server')");
        const auto refused =
            make_record("Refused by the server", year{2023} / August / 1, std::nullopt);
        REQUIRE(clinic::validate(refused).empty());

        CHECK_THROWS_AS(repo.add_patient_with_records(patient, {first, refused}), database_error);
        CHECK(repo.count_patients() == 0);
        CHECK(repo.count_records() == 0);

        // The pool's connection is fine afterwards, and the same patient goes in without it.
        const auto id = repo.add_patient_with_records(patient, {first});
        CHECK(repo.count_patients() == 1);
        CHECK(repo.records_of(id).size() == 1);
    }
}

TEST_CASE("quotes, SQL and emoji in names are stored and read back verbatim") {
    clinic_database c;
    auto& repo = c.repo;
    const std::vector<clinic::patient> people = {
        make_patient("Se\xC3\xA1n", "O'Brien", "+353 1 555 0100"),
        make_patient("Robert'); DROP TABLE patients;--", "Tables"),
        make_patient("Zo\xC3\xAB \xF0\x9F\x98\x80", "\xC3\x9Cnal"),
        make_patient("Back\\slash", "\"Quoted\" `ticks`"),
    };
    for (auto p : people) {
        p.id = repo.add_patient(p);
        const auto stored = repo.find_patient(p.id);
        REQUIRE(stored);
        check_same(*stored, p);
    }
    CHECK(repo.count_patients() == people.size());

    // The tables are all still there.
    connection conn(c.db.options());
    CHECK(tables_of(conn, c.db.name()) == join({
                                              "medical_records InnoDB utf8mb4_unicode_ci",
                                              "patients InnoDB utf8mb4_unicode_ci",
                                          }));
    const auto found = repo.search_by_last_name("o'b", std::nullopt, 10);
    REQUIRE(found.rows.size() == 1);
    CHECK(found.rows[0].last_name == "O'Brien");
}

TEST_CASE("search_by_last_name matches '%', '_' and '!' in the prefix literally") {
    clinic_database c;
    auto& repo = c.repo;
    for (const char* name : {"100% Natural", "100 Natural", "1000 Natural", "A_B", "AxB", "Ex!cl",
                             "Excl", "Back\\slash", "Backslash"})
        repo.add_patient(make_patient("Test", name));

    const auto last_names = [&](std::string_view prefix) {
        std::vector<std::string> out;
        for (const auto& p : repo.search_by_last_name(prefix, std::nullopt, 100).rows)
            out.push_back(p.last_name);
        return out;
    };
    using names = std::vector<std::string>;
    CHECK(last_names("100%") == names{"100% Natural"});
    CHECK(last_names("a_") == names{"A_B"}); // case-insensitive, as the collation compares
    CHECK(last_names("Ex!") == names{"Ex!cl"});
    CHECK(last_names("Back\\") == names{"Back\\slash"});
    CHECK(last_names("100").size() == 3);
    CHECK(last_names("").size() == 9);
    CHECK(last_names("%").empty());
    CHECK(last_names("Zz").empty());

    CHECK_THROWS_AS(repo.search_by_last_name("", std::nullopt, 0), std::invalid_argument);
    CHECK_THROWS_AS(repo.search_by_last_name("", std::nullopt, 1001), std::invalid_argument);
    CHECK_THROWS_AS(repo.list_patients(0, 0), std::invalid_argument);
    CHECK_THROWS_WITH_AS(repo.list_patients(0, 1001),
                         "list_patients: limit is 1001; it must be 1 to 1000 rows per page",
                         std::invalid_argument);
    CHECK(repo.list_patients(0, 1000).rows.size() == 9);
}

namespace {

// Names with many ties under utf8mb4_unicode_ci ("Page", "PAGE" and "Pagé" compare equal), so
// that the keyset's id tie-break matters; one in ten does not match the prefix "pag".
clinic::patient crowd_member(std::size_t i) {
    static const char* const last_names[] = {"Page",        "PAGE",  "page",
                                             "Pag\xC3\xA9", "Paget", "Pagett"};
    static const char* const first_names[] = {"Ann", "ANN", "Bob", "\xC3\x89mile", "Emile"};
    auto p = make_patient(first_names[(i / 6) % 5], last_names[i % 6]);
    if (i % 10 == 9)
        p.last_name = "Smith";
    return p;
}

// Inserts `count` patients on a thread of its own through the repository, and lets the
// reader wait until a given number are in: inserts land between the reader's pages (and
// during them) by construction, not by timing.
class concurrent_inserter {
public:
    concurrent_inserter(clinic::repository& repo, std::size_t first, std::size_t count)
            : thread_([this, &repo, first, count] {
                  try {
                      for (std::size_t i = 0; i < count; ++i) {
                          repo.add_patient(crowd_member(first + i));
                          std::lock_guard lock(mutex_);
                          ++inserted_;
                          changed_.notify_all();
                      }
                  } catch (...) {
                      std::lock_guard lock(mutex_);
                      error_ = std::current_exception();
                  }
                  std::lock_guard lock(mutex_);
                  done_ = true;
                  changed_.notify_all();
              }) {}

    /// Waits until `n` patients are in (or the thread ended).
    void wait_for(std::size_t n) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return inserted_ >= n || done_; });
    }

    /// Waits for the end; rethrows the thread's error.
    std::size_t finish() {
        wait_for(static_cast<std::size_t>(-1));
        thread_.join();
        if (error_)
            std::rethrow_exception(error_);
        return inserted_;
    }

    ~concurrent_inserter() {
        if (thread_.joinable())
            thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t inserted_ = 0;
    bool done_ = false;
    std::exception_ptr error_;
    std::thread thread_; // last: starts once the members it uses exist
};

constexpr std::size_t initial_rows = 500;
constexpr std::size_t concurrent_rows = 300;
constexpr std::size_t page_size = 37;
constexpr std::size_t rows_per_page = 15; // the inserter's lead over the reader, per page
// More pages than this means the listing went round in circles.
constexpr std::size_t max_pages = (initial_rows + concurrent_rows) / page_size + 2;

// Inserts the first 500 patients in one transaction; returns their ids.
std::vector<std::int64_t> insert_crowd(const scratch_database& db) {
    connection conn(db.options());
    transaction tx(conn);
    auto insert = conn.prepare("INSERT INTO patients (first_name, last_name, date_of_birth, "
                               "gender) VALUES (?, ?, ?, ?)");
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < initial_rows; ++i) {
        const auto p = crowd_member(i);
        ids.push_back(static_cast<std::int64_t>(
            insert.execute(p.first_name, p.last_name, p.date_of_birth, p.gender).last_insert_id()));
    }
    tx.commit();
    return ids;
}

bool starts_with_pag(const std::string& last_name) {
    return last_name != "Smith";
}

} // namespace

TEST_CASE("list_patients visits every patient once while another thread inserts") {
    clinic_database c;
    const auto initial = insert_crowd(c.db);

    concurrent_inserter inserter(c.repo, initial_rows, concurrent_rows);
    std::vector<std::int64_t> seen;
    std::int64_t after = 0;
    std::size_t pages = 0;
    for (;;) {
        inserter.wait_for(pages * rows_per_page);
        const auto page = c.repo.list_patients(after, page_size);
        REQUIRE(++pages <= max_pages);
        REQUIRE(page.rows.size() <= page_size);
        for (const auto& p : page.rows)
            seen.push_back(p.id);
        if (!page.next)
            break;
        REQUIRE(page.rows.size() == page_size);
        CHECK(*page.next == page.rows.back().id);
        after = *page.next;
    }
    CHECK(inserter.finish() == concurrent_rows);

    // In id order, so no id twice; every patient that existed at the start is there.
    for (std::size_t i = 1; i < seen.size(); ++i)
        REQUIRE(seen[i - 1] < seen[i]);
    const std::set<std::int64_t> seen_set(seen.begin(), seen.end());
    for (const auto id : initial)
        REQUIRE(seen_set.count(id) == 1);
    CHECK(seen.size() >= initial_rows);
    CHECK(seen.size() <= initial_rows + concurrent_rows);
    MESSAGE(pages, " pages, ", seen.size() - initial_rows, " of the ", concurrent_rows,
            " concurrent rows seen");
    // Past the last page, nothing.
    CHECK(c.repo.list_patients(seen.back(), page_size).rows.empty());
}

TEST_CASE("search_by_last_name visits every match once while another thread inserts") {
    clinic_database c;
    const auto initial = insert_crowd(c.db);
    std::set<std::int64_t> initial_matches;
    for (std::size_t i = 0; i < initial.size(); ++i)
        if (starts_with_pag(crowd_member(i).last_name))
            initial_matches.insert(initial[i]);

    concurrent_inserter inserter(c.repo, initial_rows, concurrent_rows);
    std::vector<std::int64_t> seen;
    std::optional<clinic::name_key> after;
    std::size_t pages = 0;
    for (;;) {
        inserter.wait_for(pages * rows_per_page);
        const auto page = c.repo.search_by_last_name("pag", after, page_size);
        REQUIRE(++pages <= max_pages);
        REQUIRE(page.rows.size() <= page_size);
        for (const auto& p : page.rows) {
            CHECK(starts_with_pag(p.last_name));
            seen.push_back(p.id);
        }
        if (!page.next)
            break;
        REQUIRE(page.rows.size() == page_size);
        CHECK(page.next->id == page.rows.back().id);
        CHECK(page.next->last_name == page.rows.back().last_name);
        CHECK(page.next->first_name == page.rows.back().first_name);
        after = page.next;
    }
    CHECK(inserter.finish() == concurrent_rows);

    const std::set<std::int64_t> seen_set(seen.begin(), seen.end());
    CHECK(seen_set.size() == seen.size()); // no id twice
    for (const auto id : initial_matches)
        REQUIRE(seen_set.count(id) == 1);
    MESSAGE(pages, " pages, ", seen.size() - initial_matches.size(), " concurrent matches seen of ",
            initial_matches.size(), " initial");
}

TEST_CASE("patients and records round-trip every field, NULLs included, and discharge works") {
    clinic_database c;
    auto& repo = c.repo;

    // A patient without a contact number (NULL), found as stored.
    auto lone = make_patient("Alan", "Turing");
    lone.gender = "male";
    lone.date_of_birth = year{1912} / June / 23;
    lone.id = repo.add_patient(lone);
    REQUIRE(lone.id > 0);
    const auto found = repo.find_patient(lone.id);
    REQUIRE(found);
    check_same(*found, lone);
    CHECK_FALSE(found->contact_number);
    CHECK_FALSE(repo.find_patient(lone.id + 1000));

    // A patient with records: one discharged, one still admitted (NULL), listed by admission.
    auto p = make_patient("Katherine", "Johnson", "(757) 555-0123");
    std::vector<clinic::medical_record> records = {
        make_record("Bronchitis", year{2024} / February / 1, std::nullopt),
        make_record("Sprained ankle", year{2023} / November / 20, year{2023} / November / 22),
    };
    records[0].patient_id = 999999; // ignored: the new patient's id is used
    p.id = repo.add_patient_with_records(p, records);
    check_same(*repo.find_patient(p.id), p);

    auto stored = repo.records_of(p.id);
    REQUIRE(stored.size() == 2);
    auto expected_first = records[1]; // admitted earlier
    auto expected_second = records[0];
    expected_first.patient_id = expected_second.patient_id = p.id;
    expected_first.id = stored[0].id;
    expected_second.id = stored[1].id;
    check_same(stored[0], expected_first);
    check_same(stored[1], expected_second);
    CHECK(stored[0].id != stored[1].id);

    // add_record for the existing patient, then discharge it on its admission day.
    auto extra = make_record("Observation", year{2024} / February / 1, std::nullopt);
    extra.patient_id = p.id;
    extra.id = repo.add_record(extra);
    repo.discharge(extra.id, year{2024} / February / 1);
    repo.discharge(stored[1].id, year{2024} / February / 9);

    stored = repo.records_of(p.id);
    REQUIRE(stored.size() == 3);
    CHECK(stored[1].id == expected_second.id); // same admission date: by id
    CHECK(stored[1].discharge_date == year{2024} / February / 9);
    extra.discharge_date = year{2024} / February / 1;
    check_same(stored[2], extra);
    CHECK(repo.records_of(lone.id).empty());
    CHECK(repo.count_patients() == 2);
    CHECK(repo.count_records() == 3);

    // Pages that end exactly at the limit have no next page.
    auto all = repo.list_patients(0, 2);
    CHECK(all.rows.size() == 2);
    CHECK_FALSE(all.next);
    auto first_page = repo.list_patients(0, 1);
    REQUIRE(first_page.next);
    CHECK(*first_page.next == lone.id);
    auto second_page = repo.list_patients(*first_page.next, 1);
    REQUIRE(second_page.rows.size() == 1);
    check_same(second_page.rows[0], p);
    CHECK_FALSE(second_page.next);
}
