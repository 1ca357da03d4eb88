// What the typed read path derives from a row type at compile time: the fields it checks
// against a result's metadata (no server: the reading itself is in the integration tests).
#include <cloudmysql/typed_row.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using namespace cloudmysql;
using detail::field_kind;

namespace {

struct visit {
    std::int32_t id = 0;
    std::optional<std::string_view> note;
    datetime at{};
};

struct unmapped {
    int x = 0;
};

} // namespace

template <>
struct cloudmysql::row_mapping<visit> {
    static constexpr auto fields = std::make_tuple(&visit::id, &visit::note, &visit::at);
};

static_assert(typed_row<std::tuple<int, std::string>>);
static_assert(typed_row<visit>);
static_assert(typed_row<std::int64_t>);
static_assert(typed_row<std::optional<std::chrono::year_month_day>>);
static_assert(!typed_row<unmapped>);               // a struct needs a row_mapping
static_assert(!typed_row<std::tuple<int, void*>>); // no field type for a pointer
static_assert(!typed_row<std::vector<int>>);
static_assert(!typed_row<char>); // a character is not a number: use std::string or an int8

TEST_CASE("a tuple's fields are its element types, in order, optional marked") {
    constexpr auto& f = detail::row_traits<
        std::tuple<bool, std::uint16_t, std::optional<std::int64_t>, float, double, std::string,
                   std::chrono::year_month_day, std::optional<datetime>>>::fields;
    REQUIRE(f.size() == 8);
    CHECK(f[0].kind == field_kind::boolean);
    CHECK(f[1].kind == field_kind::unsigned_integer);
    CHECK(f[1].size == 2);
    CHECK(f[1].cpp_name == "std::uint16_t");
    CHECK(f[2].kind == field_kind::signed_integer);
    CHECK(f[2].size == 8);
    CHECK(f[2].optional);
    CHECK(f[2].cpp_name == "std::int64_t");
    CHECK_FALSE(f[1].optional);
    CHECK(f[3].kind == field_kind::floating);
    CHECK(f[3].size == 4);
    CHECK(f[4].size == 8);
    CHECK(f[5].kind == field_kind::text);
    CHECK(f[6].kind == field_kind::date);
    CHECK(f[7].kind == field_kind::date_time);
    CHECK(f[7].optional);
}

TEST_CASE("a mapped struct's fields follow its row_mapping") {
    constexpr auto& f = detail::row_traits<visit>::fields;
    REQUIRE(f.size() == 3);
    CHECK(f[0].kind == field_kind::signed_integer);
    CHECK(f[0].size == 4);
    CHECK(f[1].kind == field_kind::text);
    CHECK(f[1].optional);
    CHECK(f[1].cpp_name == "std::string_view");
    CHECK(f[2].kind == field_kind::date_time);
    CHECK(f[2].cpp_name == "cloudmysql::datetime");
}

TEST_CASE("each row type has its own identity for the statement's checked-once memory") {
    CHECK(&detail::row_type_id<visit> != &detail::row_type_id<std::tuple<int>>);
    CHECK(&detail::row_type_id<int> != &detail::row_type_id<long>);
}
