// The clinic schema's migrations and the validation of its rows.
//
// Every migration step is one statement, because MySQL commits DDL at once; the migrator
// derives each step's postcondition (the table or index exists) from the statement, so a run
// killed between a statement and its journal entry resumes correctly.
#include <cloudmysql/clinic/schema.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <string_view>
#include <utility>

namespace cloudmysql::clinic {

std::vector<migration> migrations() {
    std::vector<migration> list;

    list.push_back({.version = 1,
                    .name = "create_patients",
                    .up = {sql("CREATE TABLE patients ("
                               "id INT AUTO_INCREMENT PRIMARY KEY, "
                               "first_name VARCHAR(50) NOT NULL, "
                               "last_name VARCHAR(50) NOT NULL, "
                               "date_of_birth DATE NOT NULL, "
                               "gender VARCHAR(10) NOT NULL, "
                               "contact_number VARCHAR(15) NULL"
                               ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                               "COLLATE=utf8mb4_unicode_ci")},
                    .down = {sql("DROP TABLE patients")}});

    // The index on patient_id is named here rather than left to InnoDB, which would make one
    // for the foreign key anyway: records_of() reads by it.
    list.push_back({.version = 2,
                    .name = "create_medical_records",
                    .up = {sql("CREATE TABLE medical_records ("
                               "id INT AUTO_INCREMENT PRIMARY KEY, "
                               "patient_id INT NOT NULL, "
                               "diagnosis VARCHAR(100) NOT NULL, "
                               "treatment VARCHAR(200) NOT NULL, "
                               "admission_date DATE NOT NULL, "
                               "discharge_date DATE NULL, "
                               "INDEX idx_medical_records_patient (patient_id), "
                               "CONSTRAINT fk_medical_records_patient FOREIGN KEY (patient_id) "
                               "REFERENCES patients (id)"
                               ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                               "COLLATE=utf8mb4_unicode_ci")},
                    .down = {sql("DROP TABLE medical_records")}});

    // Online: the table stays readable and writable while the index builds. InnoDB appends the
    // primary key to every secondary index, so this serves (last_name, first_name, id) keysets.
    list.push_back({.version = 3,
                    .name = "index_patients_name",
                    .up = {sql("ALTER TABLE patients ADD INDEX idx_patients_name "
                               "(last_name, first_name), ALGORITHM=INPLACE, LOCK=NONE")},
                    .down = {sql("ALTER TABLE patients DROP INDEX idx_patients_name")}});

    return list;
}

// ---- validation ----------------------------------------------------------------------------

namespace {

using namespace std::chrono;

// The range of dates the schema accepts: nobody in the clinic was born or admitted before
// 1900, and a DATE column ends at 9999-12-31.
constexpr year_month_day earliest_date{year{1900}, January, day{1}};
constexpr year_month_day latest_date{year{9999}, December, day{31}};

std::string compose(const std::vector<field_error>& errors, std::string_view row) {
    std::string text = fmt::format("invalid {}:", row);
    const char* separator = " ";
    for (const auto& e : errors) {
        text += separator;
        text += e.field;
        text += ' ';
        text += e.message;
        separator = "; ";
    }
    return text;
}

std::string format_date(year_month_day d) {
    // Also for dates that are not .ok(), such as 2023-02-30: the user sees what they passed.
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(d.year()),
                       static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

bool is_blank(std::string_view text) {
    return text.find_first_not_of(" \t\r\n\v\f") == std::string_view::npos;
}

// Text of a column: valid UTF-8, not blank when required, at most `max` characters.
void check_text(std::vector<field_error>& errors, std::string_view field, std::string_view text,
                std::size_t max, bool required) {
    const auto length = utf8_length(text);
    if (!length) {
        errors.push_back({std::string(field), "is not valid UTF-8"});
        return;
    }
    if (required && text.empty())
        errors.push_back({std::string(field), "is required"});
    else if (required && is_blank(text))
        errors.push_back({std::string(field), "holds only spaces; a value is required"});
    if (*length > max)
        errors.push_back({std::string(field),
                          fmt::format("is {} characters long; at most {} fit", *length, max)});
}

bool contact_character(char c) {
    return (c >= '0' && c <= '9') || c == ' ' || c == '+' || c == '-' || c == '(' || c == ')';
}

void check_contact_number(std::vector<field_error>& errors, std::string_view number) {
    const std::string field = "contact_number";
    if (!utf8_length(number)) {
        errors.push_back({field, "is not valid UTF-8"});
        return;
    }
    if (is_blank(number)) {
        errors.push_back({field, "is empty; leave it unset (NULL) when there is no number"});
        return;
    }
    check_text(errors, field, number, contact_number_max, true);
    // The offending character is named by position, not quoted: it may be a control character.
    std::size_t position = 0;
    for (const char c : number) {
        if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U)
            ++position; // the first byte of a character
        if (!contact_character(c)) {
            errors.push_back({field, fmt::format("has character {} that is not a digit, space, "
                                                 "'+', '-', '(' or ')'",
                                                 position)});
            return;
        }
    }
}

// A date within the range the schema accepts; false when it is not (an error was recorded).
bool check_date(std::vector<field_error>& errors, std::string_view field, year_month_day d) {
    if (!d.ok()) {
        errors.push_back(
            {std::string(field), fmt::format("{} is not a valid date", format_date(d))});
        return false;
    }
    if (d < earliest_date) {
        errors.push_back({std::string(field), fmt::format("{} is before {}", format_date(d),
                                                          format_date(earliest_date))});
        return false;
    }
    if (d > latest_date) {
        errors.push_back(
            {std::string(field), fmt::format("{} is after {}, the last date a DATE "
                                             "column holds",
                                             format_date(d), format_date(latest_date))});
        return false;
    }
    return true;
}

} // namespace

validation_error::validation_error(std::vector<field_error> errors, std::string_view row)
        : std::invalid_argument(compose(errors, row)), errors_(std::move(errors)) {
}

std::vector<field_error> validate(const patient& p, year_month_day today) {
    std::vector<field_error> errors;
    check_text(errors, "first_name", p.first_name, first_name_max, true);
    check_text(errors, "last_name", p.last_name, last_name_max, true);
    if (check_date(errors, "date_of_birth", p.date_of_birth) && p.date_of_birth > today)
        errors.push_back(
            {"date_of_birth", fmt::format("{} is in the future", format_date(p.date_of_birth))});
    check_text(errors, "gender", p.gender, gender_max, true);
    if (p.contact_number)
        check_contact_number(errors, *p.contact_number);
    return errors;
}

std::vector<field_error> validate(const medical_record& r) {
    std::vector<field_error> errors;
    check_text(errors, "diagnosis", r.diagnosis, diagnosis_max, true);
    check_text(errors, "treatment", r.treatment, treatment_max, true);
    const bool admission_ok = check_date(errors, "admission_date", r.admission_date);
    if (r.discharge_date && check_date(errors, "discharge_date", *r.discharge_date) &&
        admission_ok && *r.discharge_date < r.admission_date)
        errors.push_back({"discharge_date", fmt::format("{} is before the admission date {}",
                                                        format_date(*r.discharge_date),
                                                        format_date(r.admission_date))});
    return errors;
}

year_month_day today_utc() {
    return year_month_day{floor<days>(system_clock::now())};
}

std::optional<std::size_t> utf8_length(std::string_view text) {
    std::size_t characters = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t code_point = 0;
        std::uint32_t smallest = 0; // below this, the encoding is overlong
        if (lead < 0x80U) {
            ++i;
            ++characters;
            continue;
        } else if ((lead & 0xE0U) == 0xC0U) {
            length = 2;
            code_point = lead & 0x1FU;
            smallest = 0x80;
        } else if ((lead & 0xF0U) == 0xE0U) {
            length = 3;
            code_point = lead & 0x0FU;
            smallest = 0x800;
        } else if ((lead & 0xF8U) == 0xF0U) {
            length = 4;
            code_point = lead & 0x07U;
            smallest = 0x10000;
        } else {
            return std::nullopt; // a continuation byte first, or 0xF8-0xFF
        }
        if (text.size() - i < length)
            return std::nullopt; // truncated
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0U) != 0x80U)
                return std::nullopt;
            code_point = (code_point << 6U) | (next & 0x3FU);
        }
        if (code_point < smallest || code_point > 0x10FFFFU ||
            (code_point >= 0xD800U && code_point <= 0xDFFFU))
            return std::nullopt; // overlong, beyond Unicode, or a surrogate
        i += length;
        ++characters;
    }
    return characters;
}

} // namespace cloudmysql::clinic
