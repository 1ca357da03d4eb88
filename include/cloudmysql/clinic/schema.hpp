// The clinic schema: patients and their medical records, as migrations and typed rows.
#pragma once

#include <cloudmysql/migration.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cloudmysql::clinic {

/// The schema's migrations, in order:
///   1 create_patients         patients (id, first_name, last_name, date_of_birth, gender,
///                             contact_number)
///   2 create_medical_records  medical_records with a foreign key to patients(id) and an index
///                             on patient_id
///   3 index_patients_name     an index on patients (last_name, first_name), online; InnoDB
///                             appends id, so it serves lookup and keyset pagination by name
/// InnoDB, utf8mb4, utf8mb4_unicode_ci. Every migration has a working down.
std::vector<migration> migrations();

/// Column sizes, in characters (utf8mb4: one emoji is one character).
inline constexpr std::size_t first_name_max = 50;
inline constexpr std::size_t last_name_max = 50;
inline constexpr std::size_t gender_max = 10;
inline constexpr std::size_t contact_number_max = 15;
inline constexpr std::size_t diagnosis_max = 100;
inline constexpr std::size_t treatment_max = 200;

/// A row of `patients`. `id` is 0 until the row is stored.
struct patient {
    std::int64_t id = 0;
    std::string first_name{};
    std::string last_name{};
    std::chrono::year_month_day date_of_birth{};
    std::string gender{};
    std::optional<std::string> contact_number{};
};

/// A row of `medical_records`. A patient still admitted has no discharge_date.
struct medical_record {
    std::int64_t id = 0;
    std::int64_t patient_id = 0;
    std::string diagnosis{};
    std::string treatment{};
    std::chrono::year_month_day admission_date{};
    std::optional<std::chrono::year_month_day> discharge_date{};
};

/// One field that failed validation.
struct field_error {
    std::string field;   ///< "first_name", "records[2].discharge_date", ...
    std::string message; ///< "is 51 characters long; at most 50 fit"
};

/// Every problem of a row, thrown before anything reaches the server. what() lists them all:
/// "invalid patient: first_name is 51 characters long; at most 50 fit; date_of_birth
/// 2999-01-01 is in the future".
class validation_error : public std::invalid_argument {
public:
    /// `row` names what was invalid in what(): "patient", "medical record".
    explicit validation_error(std::vector<field_error> errors, std::string_view row = "row");
    const std::vector<field_error>& errors() const noexcept { return errors_; }

private:
    std::vector<field_error> errors_;
};

/// The problems of a patient: names, gender required (not empty or only spaces); lengths within
/// the columns (counted in characters; text must be valid UTF-8); a contact number, when
/// given, not blank and of digits, spaces, '+', '-', '(' and ')' only; a real date of birth,
/// not after `today` and not before 1900-01-01. Empty when the patient is valid.
std::vector<field_error> validate(const patient& p, std::chrono::year_month_day today);
/// The problems of a record (the patient's existence is checked by the repository): diagnosis
/// and treatment required and within their columns; real dates from 1900-01-01 to 9999-12-31
/// (a DATE column's last day); discharge not before admission. Empty when the record is valid.
std::vector<field_error> validate(const medical_record& r);

/// Today's date in UTC.
std::chrono::year_month_day today_utc();

/// The number of characters (code points) of UTF-8 text, or nothing when it is not valid
/// UTF-8: overlong encodings, surrogates, code points beyond U+10FFFF and truncated sequences
/// are refused.
std::optional<std::size_t> utf8_length(std::string_view text);

} // namespace cloudmysql::clinic
