// Typed access to fields and parameter binding, without a server.
#include <cloudmysql/param.hpp>
#include <cloudmysql/result.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>

using namespace cloudmysql;
using namespace std::chrono_literals;

namespace {

row make_row(std::vector<value> values) {
    auto cols = std::make_shared<std::vector<column>>();
    for (std::size_t i = 0; i < values.size(); ++i)
        cols->push_back(column{fmt::format("c{}", i), "INT", false, true});
    return row(std::move(values), cols);
}

} // namespace

TEST_CASE("integers convert to any integer type that holds them, and only those") {
    const row r = make_row({std::int64_t{-5}, std::uint64_t{300},
                            std::uint64_t{std::numeric_limits<std::uint64_t>::max()}});
    CHECK(r.get<int>(0) == -5);
    CHECK(r.get<std::int64_t>(1) == 300);
    CHECK(r.get<std::uint16_t>(1) == 300);
    CHECK_THROWS_WITH_AS(r.get<unsigned>(0), doctest::Contains("does not fit"), database_error);
    CHECK_THROWS_WITH_AS(r.get<std::uint8_t>(1), doctest::Contains("holds 300"), database_error);
    CHECK_THROWS_AS(r.get<std::int64_t>(2), database_error);
    CHECK(r.get<std::uint64_t>(2) == std::numeric_limits<std::uint64_t>::max());
    CHECK(r.get<bool>(0));
    try {
        (void)r.get<unsigned>(0);
    } catch (const database_error& e) {
        CHECK(e.get_error_code() == client_errc::value_out_of_range);
    }
}

TEST_CASE("NULL reads as std::optional, and is an error for other types") {
    const row r = make_row({value{}, std::string("x")});
    CHECK(r.is_null(0));
    CHECK_FALSE(r.get<std::optional<int>>(0).has_value());
    CHECK(r.get<std::optional<std::string>>(1) == "x");
    try {
        (void)r.get<int>(0);
        FAIL("NULL read as int");
    } catch (const database_error& e) {
        CHECK(e.get_error_code() == client_errc::field_is_null);
        CHECK(std::string(e.what()).find("column 'c0' (index 0, INT) is NULL") == 0);
    }
}

TEST_CASE("a type mismatch names the column, the stored type and the wanted type") {
    const row r = make_row({std::string("abc"), 2.5, std::chrono::year_month_day{2020y / 1 / 2}});
    CHECK_THROWS_WITH_AS(r.get<int>(0),
                         doctest::Contains("holds a string value, which cannot be read as a "
                                           "signed integer"),
                         database_error);
    CHECK_THROWS_AS(r.get<std::string>(1), database_error);
    CHECK(r.get<double>(1) == 2.5);
    CHECK(r.get<std::string_view>(0) == "abc");
    CHECK(r.get<std::chrono::year_month_day>(2) == 2020y / 1 / 2);
    CHECK_THROWS_AS(r.get<datetime>(2), database_error);
    CHECK_THROWS_WITH_AS(r.get<int>("zz"), doctest::Contains("columns: 'c0', 'c1', 'c2'"),
                         database_error);
}

TEST_CASE("values display for people") {
    CHECK(to_display_string(value{}) == "NULL");
    CHECK(to_display_string(std::int64_t{-3}) == "-3");
    CHECK(to_display_string(std::chrono::year_month_day{1999y / 12 / 31}) == "1999-12-31");
    const datetime t = std::chrono::sys_days(2024y / 2 / 29) + 1h + 2min + 3s;
    CHECK(to_display_string(t) == "2024-02-29 01:02:03");
    CHECK(to_display_string(t + 5us) == "2024-02-29 01:02:03.000005");
    CHECK(type_name(value{2.0}) == "double");
}

TEST_CASE("parameters keep the type and value they were given") {
    CHECK(param().is_null());
    CHECK(param(std::nullopt).is_null());
    CHECK(std::get<std::int64_t>(param(-7).get()) == -7);
    CHECK(std::get<std::uint64_t>(param(7U).get()) == 7U);
    CHECK(std::get<std::int64_t>(param(true).get()) == 1);
    CHECK(std::get<double>(param(1.5F).get()) == 1.5);
    const std::string s = "it's";
    CHECK(std::get<std::string_view>(param(s).get()).data() == s.data()); // no copy
    CHECK(param(std::optional<int>{}).is_null());
    CHECK(std::get<std::int64_t>(param(std::optional<int>{4}).get()) == 4);
    const value v = std::string("from a row");
    CHECK(std::get<std::string_view>(param(v).get()) == "from a row");
}
