// The migration chain the migrator tests apply, shared with the program they kill
// (migrate_victim.cpp) so that both run exactly the same steps.
//
// Three migrations, ten `up` steps: DDL of every kind the postconditions know (CREATE TABLE,
// CREATE INDEX, ALTER TABLE ADD COLUMN / ADD INDEX / ADD CONSTRAINT ... FOREIGN KEY), a plain
// DML statement, and data steps. Every migration writes one row into `step_log` (created by
// the first), so a step that ran twice, or not at all, shows in the data.
#pragma once

#include <cloudmysql/connection.hpp>
#include <cloudmysql/migration.hpp>

#include <cstddef>
#include <vector>

namespace cloudmysql::test {

enum class chain_kind {
    /// Migrations 2 and 3 write their rows with C++ data steps.
    data_steps,
    /// The same changes with SQL statements only: what plan() can print.
    sql_only,
};

inline migration chain_create_a() {
    migration m;
    m.version = 1;
    m.name = "create_a";
    m.up = {sql("CREATE TABLE a (id INT PRIMARY KEY, x INT) ENGINE=InnoDB"),
            sql("CREATE INDEX idx_a_x ON a (x)"),
            sql("CREATE TABLE step_log (version INT NOT NULL, note VARCHAR(40) NOT NULL) "
                "ENGINE=InnoDB"),
            sql("INSERT INTO step_log (version, note) VALUES (1, 'create_a')")};
    // Down steps drop tables without destroys_data: the flag is only about `up`.
    m.down = {sql("DROP TABLE step_log"), sql("DROP INDEX idx_a_x ON a"), sql("DROP TABLE a")};
    return m;
}

inline migration chain_add_column(chain_kind kind) {
    migration m;
    m.version = 2;
    m.name = "add_column";
    m.up = {sql("ALTER TABLE a ADD COLUMN y VARCHAR(20) NULL"),
            sql("ALTER TABLE a ADD INDEX idx_a_y (y)")};
    if (kind == chain_kind::data_steps) {
        m.up.push_back(data("insert three rows into a, log version 2", [](connection& conn) {
            conn.execute("INSERT INTO a (id, x, y) VALUES (?, ?, ?)", 1, 10, "one");
            conn.execute("INSERT INTO a (id, x, y) VALUES (?, ?, ?)", 2, 20, "two");
            conn.execute("INSERT INTO a (id, x, y) VALUES (?, ?, ?)", 3, 30, nullptr);
            conn.execute("INSERT INTO step_log (version, note) VALUES (?, ?)", 2, "add_column");
        }));
        m.down.push_back(data("delete the rows of version 2", [](connection& conn) {
            conn.execute("DELETE FROM a WHERE id IN (?, ?, ?)", 1, 2, 3);
            conn.execute("DELETE FROM step_log WHERE version = ?", 2);
        }));
    } else {
        m.up.push_back(sql("INSERT INTO a (id, x, y) VALUES (1, 10, 'one'), (2, 20, 'two'), "
                           "(3, 30, NULL)"));
        m.up.push_back(sql("INSERT INTO step_log (version, note) VALUES (2, 'add_column')"));
        m.down.push_back(sql("DELETE FROM a WHERE id IN (1, 2, 3)"));
        m.down.push_back(sql("DELETE FROM step_log WHERE version = 2"));
    }
    m.down.push_back(sql("ALTER TABLE a DROP INDEX idx_a_y"));
    m.down.push_back(sql("ALTER TABLE a DROP COLUMN y"));
    return m;
}

inline migration chain_create_b_fk(chain_kind kind) {
    migration m;
    m.version = 3;
    m.name = "create_b_fk";
    m.up = {sql("CREATE TABLE b (id INT PRIMARY KEY, a_id INT NOT NULL) ENGINE=InnoDB"),
            sql("ALTER TABLE b ADD CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES a (id)")};
    if (kind == chain_kind::data_steps) {
        m.up.push_back(data("insert a row into b, log version 3", [](connection& conn) {
            conn.execute("INSERT INTO b (id, a_id) VALUES (?, ?)", 1, 1);
            conn.execute("INSERT INTO step_log (version, note) VALUES (?, ?)", 3, "create_b_fk");
        }));
        m.down.push_back(data("delete the rows of version 3", [](connection& conn) {
            conn.execute("DELETE FROM b WHERE id = ?", 1);
            conn.execute("DELETE FROM step_log WHERE version = ?", 3);
        }));
    } else {
        m.up.push_back(sql("INSERT INTO b (id, a_id) VALUES (1, 1)"));
        m.up.push_back(sql("INSERT INTO step_log (version, note) VALUES (3, 'create_b_fk')"));
        m.down.push_back(sql("DELETE FROM b WHERE id = 1"));
        m.down.push_back(sql("DELETE FROM step_log WHERE version = 3"));
    }
    m.down.push_back(sql("ALTER TABLE b DROP FOREIGN KEY fk_b_a"));
    m.down.push_back(sql("DROP TABLE b"));
    return m;
}

/// The whole chain: versions 1, 2 and 3.
inline std::vector<migration> test_chain(chain_kind kind = chain_kind::data_steps) {
    return {chain_create_a(), chain_add_column(kind), chain_create_b_fk(kind)};
}

/// The number of `up` steps of a chain.
inline std::size_t total_up_steps(const std::vector<migration>& chain) {
    std::size_t n = 0;
    for (const auto& m : chain)
        n += m.up.size();
    return n;
}

} // namespace cloudmysql::test
