// The typed read path (connection::query_as, for_each_as) and the dynamic result's reused
// metadata and buffers, against a real MariaDB.
#include "test_server.hpp"

#include <cloudmysql/connection.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using namespace cloudmysql;
using namespace std::chrono_literals;
using cloudmysql::test::scratch_database;

namespace {

struct patient {
    std::int64_t id = 0;
    std::string first_name;
    std::optional<std::chrono::year_month_day> born;
    std::optional<std::string_view> phone;
};

// The error a call throws, for its code and message.
template <class F>
database_error error_of(F&& f) {
    try {
        f();
    } catch (const database_error& e) {
        return e;
    }
    FAIL("expected a database_error");
    throw std::logic_error("unreachable");
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

} // namespace

template <>
struct cloudmysql::row_mapping<patient> {
    static constexpr auto fields =
        std::make_tuple(&patient::id, &patient::first_name, &patient::born, &patient::phone);
};

TEST_CASE("query_as reads every supported type, NULL included") {
    scratch_database db;
    connection conn(db.options());
    conn.query(
        "CREATE TABLE v (id INT PRIMARY KEY, t TINYINT NULL, sm SMALLINT NULL, "
        "md MEDIUMINT NULL, i INT NULL, iu INT UNSIGNED NULL, b BIGINT NULL, "
        "bu BIGINT UNSIGNED NULL, y YEAR NULL, f FLOAT NULL, d DOUBLE NULL, "
        "dec_ DECIMAL(30,10) NULL, dt DATE NULL, dtm DATETIME(6) NULL, ts TIMESTAMP(3) NULL, "
        "tm TIME NULL, s VARCHAR(50) NULL, tx TEXT NULL, bl BLOB NULL, e ENUM('a','b') NULL, "
        "flag BOOLEAN NULL) CHARACTER SET utf8mb4");
    conn.query("INSERT INTO v VALUES (1, -128, -32768, -8388608, -2147483648, 4294967295, "
               "-9223372036854775808, 18446744073709551615, 2024, 1.5, -2.25e300, "
               "'-12345678901234567890.0123456789', '1987-02-28', '2024-12-31 23:59:58.123456', "
               "'2001-02-03 04:05:06.789', '-838:59:59', 'h\xC3\xA9llo', 'text', X'00FF27', 'b', "
               "TRUE)");
    conn.query("INSERT INTO v (id) VALUES (2)");

    using all =
        std::tuple<std::optional<std::int8_t>, std::optional<std::int16_t>,
                   std::optional<std::int32_t>, std::optional<std::int32_t>,
                   std::optional<std::uint32_t>, std::optional<std::int64_t>,
                   std::optional<std::uint64_t>, std::optional<std::uint16_t>, std::optional<float>,
                   std::optional<double>, std::optional<std::string>,
                   std::optional<std::chrono::year_month_day>, std::optional<datetime>,
                   std::optional<datetime>, std::optional<std::string>, std::optional<std::string>,
                   std::optional<std::string_view>, std::optional<std::string>,
                   std::optional<std::string>, std::optional<bool>>;
    const auto rows = conn.query_as<all>("SELECT t, sm, md, i, iu, b, bu, y, f, d, dec_, dt, dtm, "
                                         "ts, tm, s, tx, bl, e, flag FROM v WHERE id >= ? "
                                         "ORDER BY id",
                                         1);
    REQUIRE(rows.size() == 2);
    const all& r = rows[0];
    CHECK(std::get<0>(r) == std::int8_t{-128});
    CHECK(std::get<1>(r) == std::int16_t{-32768});
    CHECK(std::get<2>(r) == -8388608);
    CHECK(std::get<3>(r) == std::numeric_limits<std::int32_t>::min());
    CHECK(std::get<4>(r) == std::numeric_limits<std::uint32_t>::max());
    CHECK(std::get<5>(r) == std::numeric_limits<std::int64_t>::min());
    CHECK(std::get<6>(r) == std::numeric_limits<std::uint64_t>::max());
    CHECK(std::get<7>(r) == std::uint16_t{2024});
    CHECK(std::get<8>(r) == 1.5f);
    CHECK(std::get<9>(r) == -2.25e300);
    CHECK(std::get<10>(r) == "-12345678901234567890.0123456789");
    CHECK(std::get<11>(r) == 1987y / 2 / 28);
    CHECK(std::get<12>(r) == std::chrono::sys_days(2024y / 12 / 31) + 23h + 59min + 58s + 123456us);
    CHECK(std::get<13>(r) == std::chrono::sys_days(2001y / 2 / 3) + 4h + 5min + 6s + 789ms);
    CHECK(std::get<14>(r) == "-838:59:59");
    CHECK(std::get<15>(r) == "h\xC3\xA9llo");
    CHECK(std::get<16>(r) == "text");
    CHECK(std::get<17>(r) == std::string("\x00\xFF'", 3));
    CHECK(std::get<18>(r) == "b");
    CHECK(std::get<19>(r) == true);

    // The row of NULLs: every optional is empty.
    std::apply([](const auto&... f) { CHECK(((!f.has_value()) && ...)); }, rows[1]);

    // Reading a NULL again after a value into the same reused row (for_each_as) empties it.
    std::vector<std::optional<std::int32_t>> seen;
    CHECK(conn.for_each_as<std::optional<std::int32_t>>(
              "SELECT i FROM v ORDER BY id",
              [&](const std::optional<std::int32_t>& i) { seen.push_back(i); }) == 2);
    CHECK(seen == std::vector<std::optional<std::int32_t>>{std::numeric_limits<std::int32_t>::min(),
                                                           std::nullopt});
}

TEST_CASE("query_as fills a mapped struct; string_view fields live until the next call") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE p (id INT PRIMARY KEY, first_name VARCHAR(50) NOT NULL, "
               "born DATE NULL, phone VARCHAR(15) NULL)");
    conn.query("INSERT INTO p VALUES (1, 'Ada', '1815-12-10', '555-0100'), "
               "(2, 'Grace', NULL, NULL), (3, 'Edsger', '1930-05-11', '')");
    conn.reset(); // what query() did needs a reset; the reads below must not
    const auto people =
        conn.query_as<patient>("SELECT id, first_name, born, phone FROM p ORDER BY id");
    REQUIRE(people.size() == 3);
    CHECK(people[0].id == 1);
    CHECK(people[0].first_name == "Ada");
    CHECK(people[0].born == 1815y / 12 / 10);
    CHECK(people[0].phone == "555-0100");
    CHECK(people[1].first_name == "Grace");
    CHECK_FALSE(people[1].born.has_value());
    CHECK_FALSE(people[1].phone.has_value());
    CHECK(people[2].phone == std::string_view(""));

    // Each row's view points to its own text, not to a buffer the next row overwrote.
    const auto phones =
        conn.query_as<std::string_view>("SELECT first_name FROM p WHERE id <> ? ORDER BY id", 0);
    REQUIRE(phones.size() == 3);
    CHECK(phones[0] == "Ada");
    CHECK(phones[1] == "Grace");
    CHECK(phones[2] == "Edsger");

    // One column, one field: a plain value per row.
    CHECK(conn.query_as<std::int64_t>("SELECT COUNT(*) FROM p") == std::vector<std::int64_t>{3});
    // The session stays clean for a pool: a plain SELECT leaves nothing to reset.
    CHECK_FALSE(conn.needs_reset());
}

TEST_CASE("an empty result is an empty vector and no call of the callback") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE e (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)");
    CHECK(conn.query_as<std::tuple<int, std::string>>("SELECT id, name FROM e WHERE id = ?", 7)
              .empty());
    int calls = 0;
    CHECK(conn.for_each_as<std::tuple<int, std::string>>(
              "SELECT id, name FROM e", [&](const std::tuple<int, std::string>&) { ++calls; }) ==
          0);
    CHECK(calls == 0);
}

TEST_CASE("long text and blobs arrive whole, beyond any buffer, on both paths") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE l (id INT PRIMARY KEY, s VARCHAR(20) NULL, b LONGBLOB NULL)");
    std::string big(100000, 'x');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('a' + i % 26);
    std::string huge(3 << 20, '\0'); // beyond the most a fetch buffer grows to
    for (std::size_t i = 0; i < huge.size(); ++i)
        huge[i] = static_cast<char>(i * 7);
    conn.execute("INSERT INTO l VALUES (1, 'short', 'tiny')");
    conn.execute("INSERT INTO l VALUES (2, NULL, ?)", big);
    conn.execute("INSERT INTO l VALUES (3, 'x', ?)", huge);
    conn.execute("INSERT INTO l VALUES (4, 'y', 'small again')");

    constexpr std::string_view sql = "SELECT s, b FROM l WHERE id >= ? ORDER BY id";
    using text_row = std::tuple<std::optional<std::string>, std::string>;
    using view_row = std::tuple<std::optional<std::string_view>, std::string_view>;
    for (int round = 0; round < 2; ++round) { // the second round reuses grown buffers
        CAPTURE(round);
        const auto owned = conn.query_as<text_row>(sql, 1);
        REQUIRE(owned.size() == 4);
        CHECK(std::get<1>(owned[0]) == "tiny");
        CHECK(std::get<1>(owned[1]) == big);
        CHECK(std::get<1>(owned[2]) == huge);
        CHECK(std::get<1>(owned[3]) == "small again");
        CHECK(std::get<0>(owned[0]) == "short");
        CHECK_FALSE(std::get<0>(owned[1]).has_value());

        const auto views = conn.query_as<view_row>(sql, 1);
        REQUIRE(views.size() == 4);
        CHECK(std::get<1>(views[1]) == big);
        CHECK(std::get<1>(views[2]) == huge);
        CHECK(std::get<1>(views[3]) == "small again");

        std::vector<std::size_t> sizes;
        conn.for_each_as<view_row>(
            sql, [&](const view_row& r) { sizes.push_back(std::get<1>(r).size()); }, 1);
        CHECK(sizes == std::vector<std::size_t>{4, big.size(), huge.size(), 11});

        const result dynamic = conn.execute(sql, 1);
        REQUIRE(dynamic.size() == 4);
        CHECK(dynamic[1].get<std::string>(1) == big);
        CHECK(dynamic[2].get<std::string>(1) == huge);
        CHECK(dynamic[3].get<std::string>(1) == "small again");
    }
}

TEST_CASE("a row type that does not fit the result says which column, what and what to do") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE m (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, "
               "price DECIMAL(10,2) NOT NULL, born DATE NULL, big BIGINT NOT NULL)");
    conn.query("INSERT INTO m VALUES (1, 'a', 9.99, NULL, 5)");

    auto e = error_of([&] { conn.query_as<std::tuple<int, std::string>>("SELECT * FROM m"); });
    CHECK(e.code() == make_error_code(client_errc::type_mismatch));
    CHECK(contains(e.what(), "the result has 5 column(s) ('id', 'name', 'price', 'born', 'big') "
                             "but the row type has 2 field(s)"));

    e = error_of([&] { conn.query_as<std::tuple<int, int>>("SELECT id, name FROM m"); });
    CHECK(e.code() == make_error_code(client_errc::type_mismatch));
    CHECK(contains(e.what(), "column 1 'name' (VARCHAR)"));
    CHECK(contains(e.what(), "which is std::int32_t"));
    CHECK(contains(e.what(), "declare that field as std::string or std::string_view"));

    e = error_of([&] { conn.query_as<double>("SELECT price FROM m"); });
    CHECK(contains(e.what(), "column 0 'price' (DECIMAL)"));
    CHECK(contains(e.what(), "std::string (the exact decimal text)"));
    CHECK(conn.query_as<std::string>("SELECT price FROM m") == std::vector<std::string>{"9.99"});

    e = error_of([&] { conn.query_as<std::int32_t>("SELECT big FROM m"); });
    CHECK(contains(e.what(), "column 0 'big' (BIGINT)"));
    CHECK(contains(e.what(), "declare that field as std::int64_t"));

    e = error_of([&] { conn.query_as<std::string>("SELECT born FROM m"); });
    CHECK(contains(e.what(), "std::chrono::year_month_day"));

    // NULL into a field that is not std::optional: found when the row arrives.
    e = error_of([&] { conn.query_as<std::chrono::year_month_day>("SELECT born FROM m"); });
    CHECK(e.code() == make_error_code(client_errc::field_is_null));
    CHECK(contains(e.what(), "column 0 'born' (DATE) is NULL in row 1"));
    CHECK(contains(e.what(), "declare it std::optional<std::chrono::year_month_day>"));

    e = error_of([&] { conn.query_as<std::int64_t>("INSERT INTO m VALUES (2, 'b', 1, NULL, 1)"); });
    CHECK(contains(e.what(), "returns no rows"));

    // The callback form reports the same; the connection and its statements stay usable.
    error_code ec;
    diagnostics diag;
    const std::array<param, 0> none{};
    CHECK(conn.for_each_as_span<std::tuple<int, int>>(
              "SELECT id, name FROM m", none, [](const std::tuple<int, int>&) {}, ec, diag) == 0);
    CHECK(ec == make_error_code(client_errc::type_mismatch));
    CHECK(contains(diag.client_message(), "column 1 'name'"));
    CHECK(
        conn.query_as<std::tuple<int, std::string>>("SELECT id, name FROM m ORDER BY id").size() ==
        2);
}

TEST_CASE("a zero date is an error for a date field, with what to do") {
    scratch_database db;
    connection conn(db.options());
    conn.query("SET SESSION sql_mode = ''");
    conn.query("CREATE TABLE z (d DATE NOT NULL)");
    conn.query("INSERT INTO z VALUES ('0000-00-00')");
    const auto e = error_of([&] { conn.query_as<std::chrono::year_month_day>("SELECT d FROM z"); });
    CHECK(e.code() == make_error_code(client_errc::value_out_of_range));
    CHECK(contains(e.what(), "column 0 'd' (DATE) holds a zero or invalid date in row 1"));
    CHECK(contains(e.what(), "CAST"));
}

TEST_CASE("the columns are checked again when the server sends new metadata") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE c (id INT PRIMARY KEY, a INT NOT NULL)");
    conn.query("INSERT INTO c VALUES (1, 42)");
    constexpr std::string_view sql = "SELECT a FROM c WHERE id = ?";
    CHECK(conn.query_as<std::int32_t>(sql, 1) == std::vector<std::int32_t>{42});
    CHECK(conn.execute(sql, 1)[0].columns()[0].type_name == "INT");

    // Same column count, another type: libmariadb updates the statement in place.
    conn.query("ALTER TABLE c MODIFY a VARCHAR(10) NOT NULL");
    const auto e = error_of([&] { conn.query_as<std::int32_t>(sql, 1); });
    CHECK(e.code() == make_error_code(client_errc::type_mismatch));
    CHECK(contains(e.what(), "column 0 'a' (VARCHAR)"));
    CHECK(conn.query_as<std::string>(sql, 1) == std::vector<std::string>{"42"});
    const result r = conn.execute(sql, 1);
    CHECK(r.columns()[0].type_name == "VARCHAR");
    CHECK(r[0].get<std::string>(0) == "42");
}

TEST_CASE("an exception from the callback stops the read and leaves the connection usable") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE x (id INT PRIMARY KEY)");
    conn.query("INSERT INTO x VALUES (1), (2), (3)");
    int calls = 0;
    CHECK_THROWS_AS(conn.for_each_as<int>("SELECT id FROM x ORDER BY id",
                                          [&](int id) {
                                              ++calls;
                                              if (id == 2)
                                                  throw std::runtime_error("stop");
                                          }),
                    std::runtime_error);
    CHECK(calls == 2);
    CHECK(conn.query_as<int>("SELECT id FROM x ORDER BY id") == std::vector<int>{1, 2, 3});
    CHECK(conn.execute("SELECT id FROM x ORDER BY id").size() == 3);
}

TEST_CASE("results of the dynamic path share their column list across executions") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE s (id INT PRIMARY KEY, name VARCHAR(20))");
    conn.query("INSERT INTO s VALUES (1, 'one'), (2, 'two')");
    constexpr std::string_view sql = "SELECT id, name FROM s WHERE id = ?";
    const result first = conn.execute(sql, 1);
    const result second = conn.execute(sql, 2);
    CHECK(&first.columns() == &second.columns()); // read once, shared
    CHECK(first[0].get<std::string>("name") == "one");
    CHECK(second[0].get<std::string>("name") == "two");
    // Results outlive the statement's later executions and the connection.
    conn.close();
    CHECK(first[0].get<int>("id") == 1);
    CHECK(first.columns()[1].name == "name");
}

TEST_CASE("a CALL that returns rows runs again and again through the reused buffers") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE PROCEDURE pair(IN n INT) SELECT n AS a, REPEAT('x', n) AS b");
    // A CALL answers with its result, then a status: libmariadb rebinds the fetch buffers
    // each time, with a short value, then a longer one than the first buffer held.
    for (const int n : {1, 3, 2000, 5}) {
        CAPTURE(n);
        const result r = conn.execute("CALL pair(?)", n);
        REQUIRE(r.size() == 1);
        CHECK(r[0].get<int>("a") == n);
        CHECK(r[0].get<std::string>("b") == std::string(static_cast<std::size_t>(n), 'x'));
        const auto typed = conn.query_as<std::tuple<std::int64_t, std::string>>("CALL pair(?)", n);
        REQUIRE(typed.size() == 1);
        CHECK(std::get<0>(typed[0]) == n);
        CHECK(std::get<1>(typed[0]) == std::string(static_cast<std::size_t>(n), 'x'));
    }
    // Parameters of another type or length on the same statement: bound again.
    for (const auto& word : {std::string("a"), std::string("longer"), std::string()}) {
        CHECK(conn.query_as<std::string>("SELECT CONCAT(?, '!')", word) ==
              std::vector<std::string>{word + "!"});
    }
    CHECK(conn.query_as<std::optional<std::string>>("SELECT CONCAT(?, '!')", nullptr) ==
          std::vector<std::optional<std::string>>{std::nullopt});
    CHECK(conn.query_as<std::string>("SELECT CONCAT(?, '!')", 12) ==
          std::vector<std::string>{"12!"});
}

namespace {
// README.md, "Typed rows": the same code, run.
struct patient_card {
    std::int64_t id;
    std::string first_name;
    std::optional<std::chrono::year_month_day> born; // std::optional: the column may be NULL
};
} // namespace
template <>
struct cloudmysql::row_mapping<patient_card> {
    static constexpr auto fields =
        std::make_tuple(&patient_card::id, &patient_card::first_name, &patient_card::born);
};

TEST_CASE("the README's typed rows example runs") {
    scratch_database db;
    connection conn(db.options());
    conn.query("CREATE TABLE patients (id INT AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(50) "
               "NOT NULL, last_name VARCHAR(50) NOT NULL, date_of_birth DATE NULL)");
    conn.query("INSERT INTO patients (first_name, last_name, date_of_birth) VALUES "
               "('Ada', 'Lovelace', '1815-12-10'), ('Byron', 'Lovelace', NULL), "
               "('Alan', 'Turing', '1912-06-23')");

    std::vector<patient_card> cards = conn.query_as<patient_card>(
        "SELECT id, first_name, date_of_birth FROM patients WHERE last_name = ?", "Lovelace");
    auto pairs = conn.query_as<std::tuple<std::int64_t, std::string_view>>(
        "SELECT id, last_name FROM patients WHERE id < ?", 100);
    std::int64_t n = conn.query_as<std::int64_t>("SELECT COUNT(*) FROM patients").at(0);
    std::vector<std::string> names;
    conn.for_each_as<std::tuple<std::int64_t, std::string_view>>(
        "SELECT id, last_name FROM patients",
        [&](const auto& row) { names.emplace_back(std::get<1>(row)); });

    REQUIRE(cards.size() == 2);
    CHECK(cards[0].first_name == "Ada");
    CHECK(cards[0].born == 1815y / 12 / 10);
    CHECK_FALSE(cards[1].born.has_value());
    REQUIRE(pairs.size() == 3);
    CHECK(std::get<1>(pairs[2]) == "Turing");
    CHECK(n == 3);
    CHECK(names == std::vector<std::string>{"Lovelace", "Lovelace", "Turing"});
}

TEST_CASE("a typed read on a closed connection names the call and what to do") {
    connection conn;
    auto e = error_of([&] { conn.query_as<int>("SELECT 1"); });
    CHECK(e.code() == make_error_code(client_errc::not_connected));
    CHECK(contains(e.what(), "query_as: the connection is not open: call connect() first"));
    e = error_of([&] { conn.for_each_as<int>("SELECT 1", [](int) {}); });
    CHECK(contains(e.what(), "for_each_as: the connection is not open"));
}
