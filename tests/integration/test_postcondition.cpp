// Postconditions checked in information_schema of a real MariaDB: what the migrator relies on
// to tell whether an interrupted DDL step already ran.
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/migration.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace cloudmysql;
using cloudmysql::test::scratch_database;

namespace {

// The postcondition holds, and its negation does not.
void check_holds(const postcondition& p, connection& conn, const std::string& database) {
    CAPTURE(p.describe());
    CHECK(p.holds(conn, database));
    CHECK_FALSE((!p).holds(conn, database));
}

// The postcondition does not hold, and its negation does.
void check_fails(const postcondition& p, connection& conn, const std::string& database) {
    CAPTURE(p.describe());
    CHECK_FALSE(p.holds(conn, database));
    CHECK((!p).holds(conn, database));
}

} // namespace

TEST_CASE("postconditions hold exactly when the table, column, index or foreign key exists") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE patients (id INT AUTO_INCREMENT PRIMARY KEY, "
               "contact_number VARCHAR(15) NOT NULL, last_name VARCHAR(50)) ENGINE=InnoDB");
    conn.query("CREATE INDEX idx_last_name ON patients (last_name)");
    conn.query("CREATE TABLE medical_records (id INT AUTO_INCREMENT PRIMARY KEY, "
               "patient_id INT NOT NULL, CONSTRAINT fk_patient FOREIGN KEY (patient_id) "
               "REFERENCES patients (id)) ENGINE=InnoDB");
    const std::string& database = db.name();

    SUBCASE("tables") {
        check_holds(postcondition::table_exists("patients"), conn, database);
        check_holds(postcondition::table_exists("medical_records"), conn, database);
        check_fails(postcondition::table_exists("doctors"), conn, database);
        // Only in the database asked about.
        CHECK_FALSE(postcondition::table_exists("patients").holds(conn, "mysql"));
    }

    SUBCASE("columns, with and without a type") {
        check_holds(postcondition::column_exists("patients", "contact_number"), conn, database);
        check_holds(postcondition::column_exists("patients", "contact_number", "varchar(15)"), conn,
                    database);
        check_holds(postcondition::column_exists("patients", "contact_number", " VARCHAR(15) "),
                    conn, database);
        check_fails(postcondition::column_exists("patients", "contact_number", "varchar(20)"), conn,
                    database);
        check_fails(postcondition::column_exists("patients", "email"), conn, database);
        check_fails(postcondition::column_exists("doctors", "contact_number"), conn, database);
    }

    SUBCASE("indexes, the primary key among them") {
        check_holds(postcondition::index_exists("patients", "idx_last_name"), conn, database);
        check_holds(postcondition::index_exists("patients", "PRIMARY"), conn, database);
        check_fails(postcondition::index_exists("patients", "idx_first_name"), conn, database);
        check_fails(postcondition::index_exists("medical_records", "idx_last_name"), conn,
                    database);
    }

    SUBCASE("foreign keys") {
        check_holds(postcondition::foreign_key_exists("medical_records", "fk_patient"), conn,
                    database);
        check_fails(postcondition::foreign_key_exists("patients", "fk_patient"), conn, database);
        check_fails(postcondition::foreign_key_exists("medical_records", "fk_doctor"), conn,
                    database);
        // An index of the same name is not a foreign key.
        check_fails(postcondition::foreign_key_exists("patients", "idx_last_name"), conn, database);
    }

    SUBCASE("a derived postcondition turns true when its statement has run") {
        const std::string statements[] = {
            "ALTER TABLE patients ADD COLUMN email VARCHAR(100), ALGORITHM=INPLACE, LOCK=NONE",
            "CREATE UNIQUE INDEX uq_email ON patients (email)",
            "ALTER TABLE medical_records DROP FOREIGN KEY fk_patient",
            "RENAME TABLE medical_records TO records",
            "DROP TABLE records",
        };
        for (const auto& statement : statements) {
            CAPTURE(statement);
            const auto done = postcondition::derive(statement);
            REQUIRE(done.has_value());
            CHECK_FALSE(done->holds(conn, database));
            conn.query(statement);
            CHECK(done->holds(conn, database));
        }
    }
}

TEST_CASE("holds() throws database_error when the server cannot be asked") {
    connection conn;
    CHECK_THROWS_AS(postcondition::table_exists("patients").holds(conn, "any"), database_error);
}
