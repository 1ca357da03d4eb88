// Error classification and the text of errors, without a server.
#include <cloudmysql/database_error.hpp>
#include <cloudmysql/error.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace cloudmysql;

TEST_CASE("mysql errno values are classed by what a program should do") {
    struct expectation {
        unsigned errno_value;
        error_class cls;
    };
    const expectation table[] = {
        {2006, error_class::connection_lost},
        {2013, error_class::connection_lost},
        {2026, error_class::connection_lost},
        {1927, error_class::connection_lost},
        {1053, error_class::connection_lost},
        {1290, error_class::read_only},
        {1792, error_class::read_only},
        {1836, error_class::read_only},
        {1040, error_class::server_full},
        {1203, error_class::server_full},
        {1045, error_class::auth},
        {3159, error_class::tls},
        {1205, error_class::timeout},
        {2002, error_class::unreachable},
        {2003, error_class::unreachable},
        {2005, error_class::unreachable},
        {1064, error_class::bad_input},
        {1406, error_class::bad_input},
        {1062, error_class::bad_input},
        {1452, error_class::bad_input},
        {1213, error_class::other},
    };
    for (const auto& e : table) {
        CAPTURE(e.errno_value);
        CHECK(classify(make_mysql_error_code(e.errno_value)) == e.cls);
    }
    CHECK(classify(error_code{}) == error_class::none);
}

TEST_CASE("cloudmysql's own errors have their own category and class") {
    const error_code ec = client_errc::tls_not_negotiated;
    CHECK(ec.category() == client_category());
    CHECK(std::string(ec.category().name()) == "cloudmysql");
    CHECK(classify(ec) == error_class::tls);
    CHECK(classify(client_errc::field_is_null) == error_class::bad_input);
    CHECK(ec.message().find("not encrypted") != std::string::npos);
}

TEST_CASE("the mysql category tells client errors from server errors") {
    CHECK(make_mysql_error_code(2013).message() == "client error 2013");
    CHECK(make_mysql_error_code(1064).message() == "server error 1064");
    CHECK(is_client_errno(2026));
    CHECK(is_client_errno(5001));
    CHECK_FALSE(is_client_errno(1045));
    CHECK_FALSE(is_client_errno(3159));
}

TEST_CASE("database_error reads as a sentence and keeps the server's words apart") {
    const database_error e(make_mysql_error_code(1064),
                           diagnostics("query 'SELEC 1' failed", "You have an error in your SQL",
                                       "42000", error_class::bad_input));
    const std::string what = e.what();
    CHECK(what.find("query 'SELEC 1' failed") == 0);
    CHECK(what.find("[server error 1064, SQLSTATE 42000: You have an error in your SQL]") !=
          std::string::npos);
    CHECK(e.code().value() == 1064); // the std::error_code form keeps the number
    CHECK(e.get_error_code().category() == mysql_category());
    CHECK(e.error_class() == error_class::bad_input);
    CHECK(e.diagnostics().server_message() == "You have an error in your SQL");

    const database_error ours(
        client_errc::not_connected,
        diagnostics("ping: the connection is not open", {}, {}, error_class::connection_lost));
    CHECK(std::string(ours.what()) == "ping: the connection is not open");
    CHECK_THROWS_AS(throw_on_error(client_errc::not_connected, {}), database_error);
    CHECK_NOTHROW(throw_on_error(error_code{}, {}));
}

TEST_CASE("every error class has a name") {
    CHECK(to_string(error_class::connection_lost) == "connection_lost");
    CHECK(to_string(error_class::server_full) == "server_full");
    CHECK(to_string(error_class::bad_input) == "bad_input");
}
