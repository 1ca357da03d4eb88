// The clinic schema (patients and their medical records) as migrations: a stand-in until the
// library ships them as cloudmysql::clinic.
//
// Every step is one statement, because MySQL commits DDL at once; the migrator derives each
// step's postcondition (the table or index exists) from the statement, so a run killed
// between a statement and its journal entry resumes correctly.
#pragma once

#include <cloudmysql/migration.hpp>

#include <vector>

inline std::vector<cloudmysql::migration> clinic_migrations() {
    using cloudmysql::sql;
    std::vector<cloudmysql::migration> list;

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

    // InnoDB creates the index that the foreign key needs on patient_id by itself.
    list.push_back({.version = 2,
                    .name = "create_medical_records",
                    .up = {sql("CREATE TABLE medical_records ("
                               "id INT AUTO_INCREMENT PRIMARY KEY, "
                               "patient_id INT NOT NULL, "
                               "diagnosis VARCHAR(100) NOT NULL, "
                               "treatment VARCHAR(200) NOT NULL, "
                               "admission_date DATE NOT NULL, "
                               "discharge_date DATE NULL, "
                               "CONSTRAINT fk_medical_records_patient FOREIGN KEY (patient_id) "
                               "REFERENCES patients(id)"
                               ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                               "COLLATE=utf8mb4_unicode_ci")},
                    .down = {sql("DROP TABLE medical_records")}});

    // Online: the table stays readable and writable while the index builds.
    list.push_back({.version = 3,
                    .name = "index_patients_name",
                    .up = {sql("ALTER TABLE patients ADD INDEX idx_patients_name "
                               "(last_name, first_name), ALGORITHM=INPLACE, LOCK=NONE")},
                    .down = {sql("ALTER TABLE patients DROP INDEX idx_patients_name")}});

    return list;
}
