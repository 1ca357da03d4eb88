// The clinic schema without a server: the rules a patient and a medical record must meet before
// they reach the server, UTF-8 counting, the messages, and the shape of the migrations.
#include <cloudmysql/clinic/schema.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace cloudmysql::clinic;
using namespace std::chrono;

namespace {

constexpr year_month_day today{year{2024}, March, day{15}};

patient valid_patient() {
    return {.first_name = "Ada",
            .last_name = "Lovelace",
            .date_of_birth = year{1985} / December / 10,
            .gender = "female",
            .contact_number = "(020) 7946-0958"};
}

medical_record valid_record() {
    return {.patient_id = 1,
            .diagnosis = "Pneumonia",
            .treatment = "Antibiotics for ten days",
            .admission_date = year{2024} / January / 3,
            .discharge_date = year{2024} / January / 9};
}

std::string repeat(std::string_view piece, std::size_t times) {
    std::string text;
    for (std::size_t i = 0; i < times; ++i)
        text += piece;
    return text;
}

// The fields that have a problem, in the order reported.
std::vector<std::string> fields(const std::vector<field_error>& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors)
        out.push_back(e.field);
    return out;
}

using names = std::vector<std::string>;

} // namespace

// ---- utf8_length ---------------------------------------------------------------------------

TEST_CASE("utf8_length counts characters, not bytes") {
    CHECK(utf8_length("") == 0U);
    CHECK(utf8_length("O'Brien") == 7U);
    CHECK(utf8_length("Zo\xC3\xAB") == 3U);                // ë: 2 bytes
    CHECK(utf8_length("\xE2\x82\xAC") == 1U);              // €: 3 bytes
    CHECK(utf8_length("\xF0\x9F\x98\x80") == 1U);          // 😀: 4 bytes
    CHECK(utf8_length("\xF4\x8F\xBF\xBF") == 1U);          // U+10FFFF, the last code point
    CHECK(utf8_length(std::string_view("a\0b", 3)) == 3U); // NUL is a character
}

TEST_CASE("utf8_length refuses what is not UTF-8") {
    CHECK_FALSE(utf8_length("\xE9t\xE9"));            // Latin-1 "été"
    CHECK_FALSE(utf8_length("\x80"));                 // a continuation byte first
    CHECK_FALSE(utf8_length("\xC3"));                 // truncated at the end
    CHECK_FALSE(utf8_length("\xE2\x82"));             // truncated 3-byte sequence
    CHECK_FALSE(utf8_length("\xF0\x9F\x98"));         // truncated 4-byte sequence
    CHECK_FALSE(utf8_length("\xC3("));                // a lead byte followed by no continuation
    CHECK_FALSE(utf8_length("\xC0\xAF"));             // overlong '/'
    CHECK_FALSE(utf8_length("\xC1\xBF"));             // overlong 2-byte
    CHECK_FALSE(utf8_length("\xE0\x80\xAF"));         // overlong 3-byte
    CHECK_FALSE(utf8_length("\xF0\x82\x82\xAC"));     // overlong 4-byte '€'
    CHECK_FALSE(utf8_length("\xED\xA0\x80"));         // U+D800, a surrogate
    CHECK_FALSE(utf8_length("\xED\xBF\xBF"));         // U+DFFF, a surrogate
    CHECK_FALSE(utf8_length("\xF4\x90\x80\x80"));     // U+110000, beyond Unicode
    CHECK_FALSE(utf8_length("\xF8\x88\x80\x80\x80")); // a 5-byte form
    CHECK_FALSE(utf8_length("\xFF"));
    CHECK(utf8_length("\xED\x9F\xBF") == 1U); // U+D7FF, just below the surrogates
    CHECK(utf8_length("\xEE\x80\x80") == 1U); // U+E000, just above
}

// ---- patients ------------------------------------------------------------------------------

TEST_CASE("a valid patient has no problems, with or without a contact number") {
    auto p = valid_patient();
    CHECK(validate(p, today).empty());
    p.contact_number.reset();
    CHECK(validate(p, today).empty());
}

TEST_CASE("first_name, last_name and gender are required: empty or only spaces is refused") {
    auto p = valid_patient();
    p.first_name = "";
    p.last_name = "   ";
    p.gender = "\t";
    const auto errors = validate(p, today);
    CHECK(fields(errors) == names{"first_name", "last_name", "gender"});
    CHECK(errors[0].message == "is required");
    CHECK(errors[1].message == "holds only spaces; a value is required");
}

TEST_CASE("a name of 50 characters fits even when they take 200 bytes; 51 do not") {
    for (const std::string_view character : {"a", "\xC3\xA9" /* é */, "\xF0\x9F\x98\x80"}) {
        CAPTURE(character);
        auto p = valid_patient();
        p.first_name = repeat(character, 50);
        p.last_name = repeat(character, 50);
        CHECK(validate(p, today).empty());

        p.first_name = repeat(character, 51);
        const auto errors = validate(p, today);
        REQUIRE(fields(errors) == names{"first_name"});
        CHECK(errors[0].message == "is 51 characters long; at most 50 fit");

        p.first_name = "Ada";
        p.last_name = repeat(character, 51);
        CHECK(fields(validate(p, today)) == names{"last_name"});
    }
}

TEST_CASE("gender holds at most 10 characters") {
    auto p = valid_patient();
    p.gender = repeat("\xC3\xA9", 10);
    CHECK(validate(p, today).empty());
    p.gender = "non-binary+";
    const auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"gender"});
    CHECK(errors[0].message == "is 11 characters long; at most 10 fit");
}

TEST_CASE("text that is not UTF-8 is refused in every column") {
    auto p = valid_patient();
    p.first_name = "Ren\xE9";         // Latin-1
    p.last_name = "\xC0\xAF";         // overlong
    p.gender = "f\xED\xA0\x80";       // a surrogate
    p.contact_number = "555\xF0\x9F"; // truncated
    const auto errors = validate(p, today);
    CHECK(fields(errors) == names{"first_name", "last_name", "gender", "contact_number"});
    for (const auto& e : errors)
        CHECK(e.message == "is not valid UTF-8");

    auto r = valid_record();
    r.diagnosis = "Fi\xE8vre";
    r.treatment = "\x80";
    CHECK(fields(validate(r)) == names{"diagnosis", "treatment"});
}

TEST_CASE("a contact number, when given, is not empty") {
    auto p = valid_patient();
    p.contact_number = "";
    auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"contact_number"});
    CHECK(errors[0].message == "is empty; leave it unset (NULL) when there is no number");
    p.contact_number = "   ";
    CHECK(fields(validate(p, today)) == names{"contact_number"});
}

TEST_CASE("a contact number holds at most 15 characters") {
    auto p = valid_patient();
    p.contact_number = "+1 (555) 010-99"; // 15
    CHECK(validate(p, today).empty());
    p.contact_number = "+1 (555) 010-999"; // 16
    const auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"contact_number"});
    CHECK(errors[0].message == "is 16 characters long; at most 15 fit");
}

TEST_CASE("a contact number holds only digits, spaces, '+', '-', '(' and ')'") {
    auto p = valid_patient();
    for (const char* good : {"5550100", "+1 555 0100", "(555) 010-0100", "0"}) {
        p.contact_number = good;
        CHECK_MESSAGE(validate(p, today).empty(), good);
    }
    for (const char* bad :
         {"555-CALL-NOW", "555.0100", "555/0100", "ext#12", "5\n5", "555 \xC3\xA9"}) {
        p.contact_number = bad;
        CHECK_MESSAGE(fields(validate(p, today)) == names{"contact_number"}, bad);
    }
    p.contact_number = "555\xC3\xA9"
                       "1"; // the 4th character is the bad one, not the 4th byte
    const auto errors = validate(p, today);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "has character 4 that is not a digit, space, '+', '-', '(' or ')'");
}

TEST_CASE("the date of birth is a real date") {
    auto p = valid_patient();
    p.date_of_birth = year{2023} / February / 29; // 2023 is no leap year
    auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"date_of_birth"});
    CHECK(errors[0].message == "2023-02-29 is not a valid date");
    p.date_of_birth = year{2020} / February / 29;
    CHECK(validate(p, today).empty());
    p.date_of_birth = year{2020} / 13 / 1;
    CHECK(fields(validate(p, today)) == names{"date_of_birth"});
    p.date_of_birth = {};
    CHECK(fields(validate(p, today)) == names{"date_of_birth"});
}

TEST_CASE("the date of birth is not after today") {
    auto p = valid_patient();
    p.date_of_birth = today; // born today
    CHECK(validate(p, today).empty());
    p.date_of_birth = year_month_day{sys_days{today} + days{1}};
    const auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"date_of_birth"});
    CHECK(errors[0].message == "2024-03-16 is in the future");
}

TEST_CASE("the date of birth is not before 1900-01-01") {
    auto p = valid_patient();
    p.date_of_birth = year{1900} / January / 1;
    CHECK(validate(p, today).empty());
    p.date_of_birth = year{1899} / December / 31;
    const auto errors = validate(p, today);
    REQUIRE(fields(errors) == names{"date_of_birth"});
    CHECK(errors[0].message == "1899-12-31 is before 1900-01-01");
}

TEST_CASE("every problem of a patient is listed at once, and what() reads as a sentence") {
    auto p = valid_patient();
    p.first_name = std::string(51, 'x');
    p.last_name = "";
    p.date_of_birth = year{2999} / January / 1;
    p.gender = "\xFF";
    p.contact_number = "call me";
    const auto errors = validate(p, today);
    CHECK(fields(errors) ==
          names{"first_name", "last_name", "date_of_birth", "gender", "contact_number"});

    const validation_error e(errors, "patient");
    CHECK(e.errors().size() == 5);
    CHECK(std::string(e.what()) ==
          "invalid patient: first_name is 51 characters long; at most 50 fit; last_name is "
          "required; date_of_birth 2999-01-01 is in the future; gender is not valid UTF-8; "
          "contact_number has character 1 that is not a digit, space, '+', '-', '(' or ')'");
    // It is a std::invalid_argument: the caller's data is wrong.
    const std::invalid_argument& base = e;
    CHECK(std::string(base.what()).starts_with("invalid patient: first_name"));
}

TEST_CASE("today_utc is today's date in UTC") {
    const auto before = year_month_day{floor<days>(system_clock::now())};
    const auto t = today_utc();
    const auto after = year_month_day{floor<days>(system_clock::now())};
    CHECK(t.ok());
    CHECK(before <= t);
    CHECK(t <= after);
}

// ---- medical records -----------------------------------------------------------------------

TEST_CASE("a valid record has no problems, discharged or still admitted") {
    auto r = valid_record();
    CHECK(validate(r).empty());
    r.discharge_date.reset();
    CHECK(validate(r).empty());
    r.discharge_date = r.admission_date; // same-day discharge
    CHECK(validate(r).empty());
}

TEST_CASE("diagnosis and treatment are required") {
    auto r = valid_record();
    r.diagnosis = "";
    r.treatment = "  ";
    CHECK(fields(validate(r)) == names{"diagnosis", "treatment"});
}

TEST_CASE("diagnosis holds 100 characters and treatment 200") {
    auto r = valid_record();
    r.diagnosis = repeat("\xF0\x9F\x98\x80", 100);
    r.treatment = repeat("\xC3\xA9", 200);
    CHECK(validate(r).empty());
    r.diagnosis = repeat("\xF0\x9F\x98\x80", 101);
    r.treatment = repeat("\xC3\xA9", 201);
    const auto errors = validate(r);
    REQUIRE(fields(errors) == names{"diagnosis", "treatment"});
    CHECK(errors[0].message == "is 101 characters long; at most 100 fit");
    CHECK(errors[1].message == "is 201 characters long; at most 200 fit");
}

TEST_CASE("the admission date is a real date from 1900 to 9999") {
    auto r = valid_record();
    r.discharge_date.reset();
    r.admission_date = year{2023} / April / 31;
    CHECK(fields(validate(r)) == names{"admission_date"});
    r.admission_date = year{1899} / December / 31;
    CHECK(fields(validate(r)) == names{"admission_date"});
    r.admission_date = year{1900} / January / 1;
    CHECK(validate(r).empty());
    // year_month_day goes to 32767, a DATE column to 9999-12-31.
    r.admission_date = year{10000} / January / 1;
    const auto errors = validate(r);
    REQUIRE(fields(errors) == names{"admission_date"});
    CHECK(errors[0].message ==
          "10000-01-01 is after 9999-12-31, the last date a DATE column holds");
}

TEST_CASE("the discharge date, when given, is real and not before the admission") {
    auto r = valid_record();
    r.discharge_date = year{2024} / January / 2; // the day before admission
    auto errors = validate(r);
    REQUIRE(fields(errors) == names{"discharge_date"});
    CHECK(errors[0].message == "2024-01-02 is before the admission date 2024-01-03");

    r.discharge_date = year{2024} / January / 32;
    errors = validate(r);
    REQUIRE(fields(errors) == names{"discharge_date"});
    CHECK(errors[0].message == "2024-01-32 is not a valid date");

    r.discharge_date = year{10000} / January / 1;
    CHECK(fields(validate(r)) == names{"discharge_date"});

    // With no valid admission there is nothing to compare with: one problem, not two.
    r.admission_date = year{2024} / February / 30;
    r.discharge_date = year{2024} / January / 1;
    CHECK(fields(validate(r)) == names{"admission_date"});
}

TEST_CASE("every problem of a record is listed at once") {
    medical_record r;
    r.admission_date = year{1850} / May / 1;
    r.discharge_date = year{2024} / June / 31;
    const auto errors = validate(r);
    CHECK(fields(errors) == names{"diagnosis", "treatment", "admission_date", "discharge_date"});
    const validation_error e(errors, "medical record");
    CHECK(std::string(e.what()) ==
          "invalid medical record: diagnosis is required; treatment is required; admission_date "
          "1850-05-01 is before 1900-01-01; discharge_date 2024-06-31 is not a valid date");
}

// ---- migrations ----------------------------------------------------------------------------

TEST_CASE("the clinic schema is three reversible migrations, versions 1 to 3") {
    const auto list = migrations();
    REQUIRE(list.size() == 3);
    const char* expected_names[] = {"create_patients", "create_medical_records",
                                    "index_patients_name"};
    for (std::size_t i = 0; i < list.size(); ++i) {
        CAPTURE(i);
        const auto& m = list[i];
        CHECK(m.version == i + 1);
        CHECK(m.name == expected_names[i]);
        CHECK(m.reversible());
        CHECK_FALSE(m.destroys_data);
        // One statement per step: MySQL commits DDL at once, so each is journalled alone,
        // and each has a postcondition for resuming after a kill.
        REQUIRE(m.up.size() == 1);
        REQUIRE(m.down.size() == 1);
        CHECK_FALSE(m.up[0].is_data_step());
        CHECK(m.up[0].done_when.has_value());
        CHECK(m.down[0].done_when.has_value());
    }
    CHECK(list[0].up[0].sql.starts_with("CREATE TABLE patients ("));
    CHECK(list[0].down[0].sql == "DROP TABLE patients");
    CHECK(list[1].up[0].sql.find("FOREIGN KEY (patient_id) REFERENCES patients (id)") !=
          std::string::npos);
    CHECK(list[1].down[0].sql == "DROP TABLE medical_records");
    CHECK(list[2].up[0].sql.find("ALGORITHM=INPLACE, LOCK=NONE") != std::string::npos);
    CHECK(list[2].down[0].sql == "ALTER TABLE patients DROP INDEX idx_patients_name");
    for (const auto& m : list)
        CHECK(m.up[0].sql.find("utf8mb4_general_ci") == std::string::npos);
    // The checksums are what the history compares: pin that they are stable and distinct.
    CHECK(migrations()[0].checksum() == list[0].checksum());
    CHECK(list[0].checksum() != list[1].checksum());
}
