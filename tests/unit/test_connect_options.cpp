// connect_options: URL parsing and printing, the TLS default, validation and from_env().
//
// The password checks matter most: these strings end up in logs, so a test fails as soon as a
// password shows up in any printed form or error message.
#include <cloudmysql/connect_options.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using cloudmysql::connect_options;
using cloudmysql::tls_mode;
using namespace std::chrono_literals;

namespace {

// The message of the std::invalid_argument that from_url throws. Fails the test when the URL is
// accepted; any other exception type propagates and fails the test case too.
std::string from_url_error(const std::string& url) {
    try {
        (void)connect_options::from_url(url);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL_CHECK("from_url accepted a malformed URL: " << url);
    return {};
}

std::string validate_error(const connect_options& opts) {
    try {
        opts.validate();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL_CHECK("validate() accepted invalid options");
    return {};
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// Every field a URL can carry, compared one by one so a failure names the field.
void check_same_address_and_settings(const connect_options& a, const connect_options& b) {
    CHECK(a.host == b.host);
    CHECK(a.port == b.port);
    CHECK(a.unix_socket == b.unix_socket);
    CHECK(a.user == b.user);
    CHECK(a.database == b.database);
    CHECK(a.tls_mode == b.tls_mode);
    CHECK(a.ssl_ca == b.ssl_ca);
    CHECK(a.connect_timeout == b.connect_timeout);
    CHECK(a.read_timeout == b.read_timeout);
    CHECK(a.write_timeout == b.write_timeout);
}

connect_options remote_options() {
    connect_options opts;
    opts.host = "db.example.com";
    opts.user = "app";
    opts.password = "S3cr3t-Pa55";
    opts.database = "clinic";
    return opts;
}

} // namespace

TEST_CASE("to_string(tls_mode) gives the URL spelling") {
    CHECK(cloudmysql::to_string(tls_mode::disabled) == "DISABLED");
    CHECK(cloudmysql::to_string(tls_mode::preferred) == "PREFERRED");
    CHECK(cloudmysql::to_string(tls_mode::required) == "REQUIRED");
    CHECK(cloudmysql::to_string(tls_mode::verify_ca) == "VERIFY_CA");
    CHECK(cloudmysql::to_string(tls_mode::verify_identity) == "VERIFY_IDENTITY");
}

TEST_CASE("from_url accepts the documented forms") {
    SUBCASE("full mysql URL") {
        auto opts = connect_options::from_url("mysql://app:pw@db.example.com:3307/clinic");
        CHECK(opts.user == "app");
        CHECK(opts.password == "pw");
        CHECK(opts.host == "db.example.com");
        CHECK(opts.port == 3307);
        CHECK(opts.database == "clinic");
        CHECK(opts.unix_socket.empty());
        CHECK_FALSE(opts.tls_mode.has_value());
        CHECK(opts.ssl_ca.empty());
        CHECK(opts.connect_timeout == 3s);
        CHECK(opts.read_timeout == 0s);
        CHECK(opts.write_timeout == 0s);
    }
    SUBCASE("mariadb scheme, default port") {
        auto opts = connect_options::from_url("mariadb://app:pw@db.example.com/clinic");
        CHECK(opts.host == "db.example.com");
        CHECK(opts.port == connect_options::default_port);
        CHECK(opts.port == 3306);
        CHECK(opts.database == "clinic");
    }
    SUBCASE("scheme is case-insensitive") {
        CHECK(connect_options::from_url("MySQL://app@h").host == "h");
        CHECK(connect_options::from_url("MARIADB://app@h").host == "h");
    }
    SUBCASE("no password, no database") {
        auto opts = connect_options::from_url("mysql://app@db.example.com");
        CHECK(opts.user == "app");
        CHECK(opts.password.empty());
        CHECK(opts.database.empty());
        CHECK(opts.port == 3306);
    }
    SUBCASE("empty database after '/'") {
        auto opts = connect_options::from_url("mysql://app@db.example.com:3310/");
        CHECK(opts.database.empty());
        CHECK(opts.port == 3310);
    }
    SUBCASE("query directly after the host") {
        auto opts = connect_options::from_url("mysql://app@db.example.com?ssl-mode=REQUIRED");
        CHECK(opts.host == "db.example.com");
        CHECK(opts.database.empty());
        CHECK(opts.tls_mode == tls_mode::required);
    }
    SUBCASE("empty password after ':'") {
        auto opts = connect_options::from_url("mysql://app:@h/db");
        CHECK(opts.user == "app");
        CHECK(opts.password.empty());
    }
    SUBCASE("raw ':' in the password: user ends at the first ':'") {
        auto opts = connect_options::from_url("mysql://app:p:w:d@h/db");
        CHECK(opts.user == "app");
        CHECK(opts.password == "p:w:d");
    }
    SUBCASE("raw '@' in the password: the last '@' ends the user info") {
        auto opts = connect_options::from_url("mysql://app:p@ss@w@h.example.com/db");
        CHECK(opts.user == "app");
        CHECK(opts.password == "p@ss@w");
        CHECK(opts.host == "h.example.com");
    }
    SUBCASE("IPv4 host and host names with '_' and '-'") {
        CHECK(connect_options::from_url("mysql://u@10.0.0.5:3306").host == "10.0.0.5");
        CHECK(connect_options::from_url("mysql://u@my_db-1.internal").host == "my_db-1.internal");
    }
    SUBCASE("lowest and highest port") {
        CHECK(connect_options::from_url("mysql://u@h:1").port == 1);
        CHECK(connect_options::from_url("mysql://u@h:65535").port == 65535);
    }
}

TEST_CASE("from_url percent-decodes user, password and database") {
    SUBCASE("'@', ':' and '/' in user and password") {
        auto opts = connect_options::from_url("mysql://a%40corp%3Ax:p%40ss%3Aw%2Frd@h/db");
        CHECK(opts.user == "a@corp:x");
        CHECK(opts.password == "p@ss:w/rd");
    }
    SUBCASE("hex digits in either case") {
        auto opts = connect_options::from_url("mysql://a%3ab:%2f%2F@h/x%5f%5Fy");
        CHECK(opts.user == "a:b");
        CHECK(opts.password == "//");
        CHECK(opts.database == "x__y");
    }
    SUBCASE("utf-8 database and user") {
        auto opts = connect_options::from_url("mysql://jos%C3%A9@h/caf%C3%A9");
        CHECK(opts.user == "jos\xC3\xA9");
        CHECK(opts.database == "caf\xC3\xA9");
    }
    SUBCASE("'%25' is a literal '%', '+' stays '+'") {
        auto opts = connect_options::from_url("mysql://u:100%25+x@h/a+b");
        CHECK(opts.password == "100%+x");
        CHECK(opts.database == "a+b");
    }
    SUBCASE("database of exactly 64 characters, counted in characters not bytes") {
        std::string ascii(64, 'd');
        CHECK(connect_options::from_url("mysql://u@h/" + ascii).database == ascii);
        std::string accented;
        for (int i = 0; i < 64; ++i)
            accented += "%C3%A9";
        CHECK(connect_options::from_url("mysql://u@h/" + accented).database.size() == 128u);
    }
}

TEST_CASE("from_url reads IPv6 hosts in brackets") {
    SUBCASE("[::1], default port") {
        auto opts = connect_options::from_url("mysql://u@[::1]/db");
        CHECK(opts.host == "::1");
        CHECK(opts.port == 3306);
        CHECK(opts.database == "db");
    }
    SUBCASE("[2001:db8::1]:3307") {
        auto opts = connect_options::from_url("mysql://u:pw@[2001:db8::1]:3307/db");
        CHECK(opts.host == "2001:db8::1");
        CHECK(opts.port == 3307);
    }
    SUBCASE("full form and an IPv4 tail") {
        CHECK(connect_options::from_url("mysql://u@[2001:0db8:0:0:0:0:0:1]").host ==
              "2001:0db8:0:0:0:0:0:1");
        CHECK(connect_options::from_url("mysql://u@[::ffff:192.0.2.1]:3306").host ==
              "::ffff:192.0.2.1");
    }
}

TEST_CASE("from_url reads the unix socket form") {
    SUBCASE("Cloud SQL socket, no host") {
        auto opts = connect_options::from_url("mysql://user@/db?socket=/cloudsql/p:r:i");
        CHECK(opts.user == "user");
        CHECK(opts.host.empty());
        CHECK(opts.unix_socket == "/cloudsql/p:r:i");
        CHECK(opts.database == "db");
    }
    SUBCASE("socket path is percent-decoded") {
        auto opts = connect_options::from_url("mysql://u@/db?socket=%2Fcloudsql%2Fp%3Ar%3Ai");
        CHECK(opts.unix_socket == "/cloudsql/p:r:i");
    }
    SUBCASE("a host and port given with socket= are dropped") {
        auto opts =
            connect_options::from_url("mysql://u@localhost:3307/db?socket=/run/mysqld/mysqld.sock");
        CHECK(opts.host.empty());
        CHECK(opts.port == 3306);
        CHECK(opts.unix_socket == "/run/mysqld/mysqld.sock");
    }
    SUBCASE("no database") {
        auto opts = connect_options::from_url("mysql://u@?socket=/tmp/mysql.sock");
        CHECK(opts.unix_socket == "/tmp/mysql.sock");
        CHECK(opts.database.empty());
    }
}

TEST_CASE("from_url reads every query parameter") {
    SUBCASE("ssl-mode, every value, case-insensitive") {
        struct expectation {
            const char* value;
            tls_mode mode;
        };
        // A plain loop variable: clang before 16 cannot capture a structured binding in CAPTURE.
        for (const auto& e : {expectation{"DISABLED", tls_mode::disabled},
                              expectation{"preferred", tls_mode::preferred},
                              expectation{"Required", tls_mode::required},
                              expectation{"verify_ca", tls_mode::verify_ca},
                              expectation{"VERIFY_IDENTITY", tls_mode::verify_identity},
                              expectation{"Verify_Identity", tls_mode::verify_identity}}) {
            CAPTURE(e.value);
            auto opts =
                connect_options::from_url(std::string("mysql://u@h/db?ssl-mode=") + e.value);
            REQUIRE(opts.tls_mode.has_value());
            CHECK(*opts.tls_mode == e.mode);
        }
    }
    SUBCASE("ssl-ca, decoded") {
        auto opts = connect_options::from_url("mysql://u@h/db?ssl-ca=/etc/ssl/ca%20bundle.pem");
        CHECK(opts.ssl_ca == "/etc/ssl/ca bundle.pem");
        CHECK_FALSE(opts.tls_mode.has_value());
    }
    SUBCASE("timeouts") {
        auto opts = connect_options::from_url(
            "mysql://u@h/db?connect-timeout=10&read-timeout=30&write-timeout=45");
        CHECK(opts.connect_timeout == 10s);
        CHECK(opts.read_timeout == 30s);
        CHECK(opts.write_timeout == 45s);
    }
    SUBCASE("timeout limits are inclusive") {
        auto low = connect_options::from_url(
            "mysql://u@h?connect-timeout=1&read-timeout=0&write-timeout=0");
        CHECK(low.connect_timeout == 1s);
        CHECK(low.read_timeout == 0s);
        CHECK(low.write_timeout == 0s);
        auto high = connect_options::from_url(
            "mysql://u@h?connect-timeout=3600&read-timeout=3600&write-timeout=3600");
        CHECK(high.connect_timeout == 3600s);
        CHECK(high.read_timeout == 3600s);
        CHECK(high.write_timeout == 3600s);
    }
    SUBCASE("all together, in any order") {
        auto opts = connect_options::from_url(
            "mysql://u@h/db?write-timeout=5&ssl-ca=/ca.pem&ssl-mode=verify_ca&read-timeout=7"
            "&connect-timeout=9");
        CHECK(opts.tls_mode == tls_mode::verify_ca);
        CHECK(opts.ssl_ca == "/ca.pem");
        CHECK(opts.connect_timeout == 9s);
        CHECK(opts.read_timeout == 7s);
        CHECK(opts.write_timeout == 5s);
    }
}

TEST_CASE("from_url rejects malformed URLs, naming the problem") {
    struct bad_url {
        std::string url;
        std::vector<std::string> message_parts;
    };
    const std::vector<bad_url> cases = {
        {"", {"invalid URL", "empty"}},
        {"localhost:3306/db", {"missing scheme", "mysql://"}},
        {"mysql:/u@h/db", {"missing scheme"}},
        {"postgres://db.example.com/clinic", {"scheme 'postgres'", "mysql:// or mariadb://"}},
        {"mysqlx://h/db", {"scheme 'mysqlx'"}},
        // With an '@' after it, the "scheme" may be a user name whose URL lacks its scheme.
        {"postgres://u@h/db", {"scheme is not supported", "mysql:// or mariadb://"}},
        {"mysql://h/db", {"missing user", "USER[:PASSWORD]@HOST"}},
        {"mysql://@h/db", {"user is empty"}},
        {"mysql://:pw@h/db", {"user is empty"}},
        {"mysql://u%G1@h/db",
         {"user has an invalid percent-escape;", "write a literal '%' as %25"}},
        {"mysql://u@/db", {"missing host"}},
        {"mysql://u@h:/db", {"port is empty"}},
        {"mysql://u@h:99999/db", {"port '99999' is out of range (1-65535)"}},
        {"mysql://u@h:0/db", {"port '0' is out of range"}},
        {"mysql://u@h:33a6/db", {"port '33a6' is not a number"}},
        {"mysql://u@h:-1/db", {"port '-1' is not a number"}},
        {"mysql://u@h:123456789012345678901234567890", {"out of range (1-65535)"}},
        {"mysql://u@[::1/db", {"unterminated '['"}},
        {"mysql://u@[::1]x/db", {"unexpected text 'x' after ']'"}},
        {"mysql://u@[::1]:/db", {"port is empty"}},
        {"mysql://u@[::g]/db", {"'[::g]' is not a valid IPv6 address"}},
        {"mysql://u@[1::2::3]/db", {"not a valid IPv6 address"}},
        {"mysql://u@[]/db", {"not a valid IPv6 address"}},
        {"mysql://u@::1/db", {"in brackets"}},
        {"mysql://u@db host/x", {"host 'db host' contains ' '"}},
        {"mysql://u@db%41/x", {"host 'db%41' contains '%'"}},
        {"mysql://u@" + std::string(254, 'h'), {"host is 254 characters long"}},
        {"mysql://u@h/db/extra", {"more than one segment"}},
        {"mysql://u@h/db/", {"more than one segment"}},
        {"mysql://u@h/a%2Fb", {"database 'a/b' contains '/'"}},
        {"mysql://u@h/" + std::string(65, 'd'), {"65 characters", "at most 64"}},
        {"mysql://u@h/db%4", {"database has an invalid percent-escape '%4'"}},
        {"mysql://u@h/db%", {"database has an invalid percent-escape"}},
        {"mysql://u@h/db%00x", {"database contains %00"}},
        {"mysql://u@h/db?sslmode=REQUIRED",
         {"unknown parameter 'sslmode'", "ssl-mode, ssl-ca, connect-timeout", "socket"}},
        {"mysql://u@h/db?ssl-mode=REQUIRED&ssl-mode=DISABLED", {"'ssl-mode' is given twice"}},
        {"mysql://u@h/db?ssl-mode", {"'ssl-mode' has no value"}},
        {"mysql://u@h/db?ssl-ca=", {"'ssl-ca' has no value"}},
        {"mysql://u@h/db?socket=", {"'socket' has no value"}},
        {"mysql://u@/db?socket=", {"'socket' has no value"}},
        {"mysql://u@h/db?ssl-mode=STRICT", {"ssl-mode 'STRICT' is not one of", "VERIFY_CA"}},
        {"mysql://u@h/db?ssl-ca=%ZZ", {"ssl-ca has an invalid percent-escape '%ZZ'"}},
        {"mysql://u@h/db?connect-timeout=0", {"connect-timeout '0' is out of range (1-3600"}},
        {"mysql://u@h/db?connect-timeout=3601", {"connect-timeout '3601' is out of range"}},
        {"mysql://u@h/db?read-timeout=3601", {"read-timeout '3601' is out of range (0-3600"}},
        {"mysql://u@h/db?write-timeout=-1", {"write-timeout '-1' is not a whole number"}},
        {"mysql://u@h/db?read-timeout=1.5", {"read-timeout '1.5' is not a whole number"}},
        {"mysql://u@h/db?connect-timeout=99999999999999999999", {"out of range (1-3600"}},
        {"mysql://u@h/db?ssl-mode=REQUIRED&", {"empty parameter"}},
        {"mysql://u@h/db?&ssl-mode=REQUIRED", {"empty parameter"}},
        {"mysql://u@h/db?=REQUIRED", {"parameter without a name"}},
        {"mysql://u@h/db#frag", {"fragment"}},
        {"mysql://u@h/db\n", {"control character 0x0A"}},
        {"mysql://u@h/d\tb", {"control character 0x09 at position 13"}},
    };
    for (const auto& c : cases) {
        CAPTURE(c.url);
        std::string message = from_url_error(c.url);
        CAPTURE(message);
        CHECK(message.rfind("invalid URL: ", 0) == 0);
        for (const auto& part : c.message_parts) {
            CAPTURE(part);
            CHECK(contains(message, part));
        }
    }
}

TEST_CASE("from_url throws std::invalid_argument") {
    CHECK_THROWS_WITH_AS(connect_options::from_url("mysql://u@h:99999/db"),
                         "invalid URL: port '99999' is out of range (1-65535)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(connect_options::from_url("postgres://db.example.com/clinic"),
                         doctest::Contains("'postgres'"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(connect_options::from_url("mysql://db.example.com/clinic"),
                         doctest::Contains("missing user"), std::invalid_argument);
}

TEST_CASE("from_url errors never contain the password") {
    // Each URL carries the secret "Pw5ecret"; several are malformed in the password itself.
    const std::vector<std::string> urls = {
        "mysql://app:Pw5ecret%G1@h/db",              // bad escape inside the password
        "mysql://app:Pw5ecret%4@h/db",               // truncated escape inside the password
        "mysql://app:Pw5ecret%@h/db",                // lone '%' at the end of the password
        "mysql://app:Pw5ecret%00x@h/db",             // NUL inside the password
        "mysql://app:Pw5e/cret@h/db",                // unencoded '/' cuts the authority short
        "mysql://app:Pw5e?cret@h/db",                // unencoded '?' cuts the authority short
        "mysql://app:Pw5e#cret@h/db",                // unencoded '#' looks like a fragment
        "mysql://app:Pw5e\ncret@h/db",               // control character in the password
        "mysql://app:Pw5ecret@h:99999/db",           // bad port after a good password
        "mysql://app:Pw5ecret@[::1/db",              // bad host after a good password
        "mysql://app:Pw5ecret@h/db?ssl-mode=STRICT", // bad parameter after a good password
        "mysql://app:Pw5ecret@h/db?password=Pw5ecret",
        "mysql://app:Pw5ecret@/db",     // missing host
        "mysql://:Pw5ecret@h/db",       // missing user
        "postgres://app:Pw5ecret@h/db", // wrong scheme
        "app:Pw5ecret@h/db",            // no scheme at all
        "app:Pw5ecret@h://db",          // "scheme" that is really user info
    };
    for (const auto& url : urls) {
        CAPTURE(url);
        std::string message = from_url_error(url);
        CAPTURE(message);
        CHECK_FALSE(message.empty());
        CHECK_FALSE(contains(message, "Pw5e"));
        CHECK_FALSE(contains(message, "cret"));
    }
    // The bad escape itself is a piece of the password: it is not quoted either, unlike in
    // other parts ("database has an invalid percent-escape '%4'").
    for (std::string url : {"mysql://app:Pw5ecret%G1@h/db", "mysql://app:Pw5ecret%4@h/db",
                            "mysql://app:Pw5ecret%@h/db"}) {
        CAPTURE(url);
        std::string message = from_url_error(url);
        CAPTURE(message);
        CHECK(contains(message, "password has an invalid percent-escape;"));
        CHECK_FALSE(contains(message, "percent-escape '"));
        CHECK_FALSE(contains(message, "G1"));
    }
    // Not quoting the password must not make the message useless: it still says which part.
    CHECK(contains(from_url_error("mysql://app:Pw5ecret%00x@h/db"), "password contains %00"));
}

// ---- no error quotes user info, under any reading of the URL -------------------------------
//
// A password with an unencoded '@' and a later '/', '?' or ':' makes the parser end the user
// info too early, and what it then calls the host, port, path or a parameter is the password's
// tail. The tests below build URLs as SCHEME://USER:PASSWORD@REST from generated user names and
// passwords full of reserved characters, one REST per error branch, and check that no message
// holds three consecutive bytes of the user name or password.

namespace {

// Letters that no message text of the parser uses (its words, the URL syntax, the ssl-mode
// names, hex digits) and no REST below contains: three bytes of user info that include one of
// them can only be in a message because the message quotes user info.
constexpr std::string_view secret_letters = "GJXZ";

// Every run of at least three bytes of `secret` that contains a secret letter and appears in
// `message`; empty when the message holds none.
std::vector<std::string> leaked_pieces(std::string_view secret, std::string_view message) {
    std::vector<std::string> leaks;
    for (std::size_t i = 0; i + 3 <= secret.size(); ++i) {
        const std::string_view piece = secret.substr(i, 3);
        if (piece.find_first_of(secret_letters) != std::string_view::npos &&
            contains(message, piece))
            leaks.emplace_back(piece);
    }
    return leaks;
}

// A user name or password: secret letters, digits and the characters that a URL's user info
// must percent-encode, sometimes with a parameter name in it ("?ssl-mode=..." inside the
// password reaches the parameter parser).
std::string generated_secret(std::mt19937& random, bool user) {
    constexpr std::string_view reserved = "@/?:#%&=[]";
    constexpr std::array<std::string_view, 6> pieces = {
        "ssl-mode=", "connect-timeout=", "keepalive=", "socket=", ":99999", "%4"};
    std::string out;
    const std::size_t length = 3 + random() % 14;
    while (out.size() < length) {
        const auto roll = random() % 20;
        if (roll < 9)
            out += secret_letters[random() % secret_letters.size()];
        else if (roll < 11)
            out += static_cast<char>('0' + random() % 10);
        else if (roll < 19)
            out += reserved[random() % reserved.size()];
        else
            out += pieces[random() % pieces.size()];
    }
    if (user && (out.front() == ':' || out.front() == '@'))
        out.front() = 'G'; // an empty user name is an error of its own, tested elsewhere
    return out;
}

// What follows USER:PASSWORD@, one or more for each error the parser can report, and a few
// valid ones (with reserved characters in the password, those fail elsewhere).
const std::vector<std::string>& rests() {
    static const std::vector<std::string> all = {
        "h/db",
        "h:99999/db",
        "h:33a6/db",
        "h:/db",
        "[::1/db",
        "[::g]/db",
        "[::1]x/db",
        "::1/db",
        "db host/x",
        std::string(254, 'h'),
        "h/db/extra",
        "h/a%2Fb",
        "h/" + std::string(65, 'd'),
        "h/db%4",
        "h/db%00x",
        "h/db?sslmode=REQUIRED",
        "h/db?ssl-mode=REQUIRED&ssl-mode=DISABLED",
        "h/db?ssl-mode",
        "h/db?ssl-mode=STRICT",
        "h/db?ssl-ca=%ZZ",
        "h/db?connect-timeout=0",
        "h/db?read-timeout=1.5",
        "h/db?keepalive=maybe",
        "h/db?keepalive-idle=0",
        "h/db?keepalive-count=999",
        "h/db?&ssl-mode=REQUIRED",
        "h/db?=REQUIRED",
        "h/db#frag",
        "h/d\tb",
        "",
        "/db",
        "?socket=/tmp/s.sock",
        "h/a@b?ssl-mode=STRICT", // an '@' after the user info's: the last '@' is the database's
    };
    return all;
}

} // namespace

TEST_CASE("from_url errors quote no byte of the user name or password, whatever the URL") {
    std::mt19937 random(20240611); // fixed: the same URLs every run
    std::size_t failures = 0;
    for (int round = 0; round < 400; ++round) {
        const std::string user = generated_secret(random, true);
        const std::string password = generated_secret(random, false);
        for (const std::string scheme : {"mysql://", "mariadb://", "postgres://", ""}) {
            for (const std::string& rest : rests()) {
                const std::string url = scheme + user + ':' + password + '@' + rest;
                std::string message;
                try {
                    (void)connect_options::from_url(url);
                    continue; // parsed: nothing to quote
                } catch (const std::invalid_argument& e) {
                    message = e.what();
                }
                ++failures;
                CAPTURE(url);
                CAPTURE(message);
                CHECK(leaked_pieces(user, message).empty());
                CHECK(leaked_pieces(password, message).empty());
                // Reserved characters in the user info: the message says how to write them.
                if (password.find_first_of("@/?#:") != std::string::npos ||
                    user.find_first_of("@/?#") != std::string::npos)
                    CHECK(contains(message, "%40, %2F, %3F, %3A, %23 and %25"));
            }
        }
    }
    CHECK(failures > 40000); // nearly every URL above is malformed somewhere
}

TEST_CASE("the issue's URL: the password's tail is not quoted, and the fix is named") {
    const std::string message = from_url_error("mysql://app:S3c@ss/word@db.example.com/clinic");
    CAPTURE(message);
    CHECK(contains(message, "path has more than one segment"));
    CHECK(contains(message, "percent-encoded as %40, %2F, %3F, %3A, %23 and %25"));
    for (std::string_view piece : {"S3c", "3c@", "ss/", "/wo", "d@d"})
        CHECK_FALSE(contains(message, piece));

    // The same through each part that the password's tail can land in.
    struct landing {
        std::string url;
        std::string says;
    };
    for (const auto& l : std::vector<landing>{
             {"mysql://app:S3c@ss:wJ:rd/x@db/clinic", "host has several ':'"},
             {"mysql://app:S3c@ss:wJrd/x@db/clinic", "port is not a number"},
             {"mysql://app:S3c@ss:99999/x@db/clinic", "port is out of range"},
             {"mysql://app:S3c@ss/wJ%rd@db", "database has an invalid percent-escape;"},
             {"mysql://app:S3c@ss?wJrd=1@db/clinic", "unknown parameter;"},
             {"mysql://app:S3c@ss?ssl-mode=wJrd@db/clinic", "a parameter's value is not one of"},
             {"mysql://app:S3c@ss?connect-timeout=wJrd@db/clinic",
              "a parameter's value is not a whole number"},
             {"mysql://app:S3c@ss?keepalive=wJrd@db/clinic", "a parameter's value is not on"},
             {"mysql://app:S3c@ss?ssl-mode&wJrd@db", "a parameter has no value"},
             {"mysql://app:S3c@s s/wJrd@db/clinic", "host contains a character"},
             {"mysql://app:S3c@[ss/wJrd@db/clinic", "unterminated '[' in host;"},
             {"mysql://app:S3c/wJrd@db/clinic", "missing user"},
             {"mysql://app:S3c#wJrd@db/clinic", "fragment"},
             {"mysql://app:S3c\nwJrd@db/clinic", "control character"},
             {"mysql:/app:S3c@ss/wJrd@db/clinic", "missing scheme"},
         }) {
        CAPTURE(l.url);
        const std::string m = from_url_error(l.url);
        CAPTURE(m);
        CHECK(contains(m, l.says));
        CHECK(contains(m, "%40, %2F, %3F, %3A, %23 and %25"));
        for (std::string_view piece : {"S3c", "wJr", "Jrd"})
            CHECK_FALSE(contains(m, piece));
    }
}

TEST_CASE("plain mistakes keep their precise messages") {
    // No reserved character before the last '@': what is wrong is quoted, and no advice about
    // percent-encoding clutters the message.
    for (const auto& [url, says] : std::vector<std::pair<std::string, std::string>>{
             {"mysql://app:Pw5ecret@h:99999/db", "port '99999' is out of range"},
             {"mysql://app:Pw5ecret@db host/x", "host 'db host' contains ' '"},
             {"mysql://app:Pw5ecret@h/db/extra", "path '/db/extra' has more than one segment"},
             {"mysql://app:Pw5ecret@h/db?sslmode=x", "unknown parameter 'sslmode'"},
             {"mysql://app:Pw5ecret@h/db?ssl-mode=STRICT", "ssl-mode 'STRICT' is not one of"},
             {"mysql://app:Pw5ecret@h/db?read-timeout=1.5", "read-timeout '1.5' is not a whole"},
             {"mysql://app:Pw5ecret@h/db%4", "database has an invalid percent-escape '%4'"},
             {"mysql://app:Pw5ecret@h/db\n", "control character 0x0A at position 25"},
             {"mysql://app:p%40ss@h:0/db", "port '0' is out of range"}, // encoded: no advice
             {"mysql://app:Pw5ecret@caf\xC3\xA9/db", "host 'caf\xC3\xA9' contains byte 0xC3"},
         }) {
        CAPTURE(url);
        const std::string message = from_url_error(url);
        CAPTURE(message);
        CHECK(contains(message, says));
        CHECK_FALSE(contains(message, "percent-encoded as"));
        CHECK_FALSE(contains(message, "Pw5e"));
    }
    // Text after an '@' in the database or a parameter value may still be quoted.
    CHECK(contains(from_url_error("mysql://u@h/a@b?ssl-mode=STRICT"), "ssl-mode 'STRICT'"));
}

TEST_CASE("an '@' in the database or a parameter value parses and round-trips") {
    auto opts = connect_options::from_url("mysql://u:pw@h:3307/a@b?ssl-ca=/certs/x@y.pem");
    CHECK(opts.user == "u");
    CHECK(opts.password == "pw");
    CHECK(opts.host == "h");
    CHECK(opts.port == 3307);
    CHECK(opts.database == "a@b");
    CHECK(opts.ssl_ca == "/certs/x@y.pem");
    const std::string printed = opts.to_url();
    CHECK(printed == "mysql://u:****@h:3307/a@b?ssl-ca=/certs/x@y.pem");
    auto reparsed = connect_options::from_url(printed);
    check_same_address_and_settings(opts, reparsed);
    CHECK(reparsed.password == "****");
}

TEST_CASE("from_env messages quote no byte of the user info either") {
    constexpr const char* name = "CLOUDMYSQL_TEST_CONNECT_OPTIONS_URL";
    std::mt19937 random(7);
    for (int round = 0; round < 50; ++round) {
        const std::string password = generated_secret(random, false);
        for (const std::string rest :
             {"db.example.com:99999/clinic", "h/db?ssl-mode=STRICT", "h/db/extra", "h/db?x=1"}) {
            const std::string url = "mysql://GJ:" + password + "@" + rest;
            ::setenv(name, url.c_str(), 1);
            std::string message;
            try {
                (void)connect_options::from_env(name);
                FAIL_CHECK("from_env accepted a malformed URL");
            } catch (const std::invalid_argument& e) {
                message = e.what();
            }
            CAPTURE(url);
            CAPTURE(message);
            CHECK(message.rfind("CLOUDMYSQL_TEST_CONNECT_OPTIONS_URL: invalid URL: ", 0) == 0);
            CHECK(leaked_pieces(password, message).empty());
        }
    }
    ::unsetenv(name);
}

TEST_CASE("to_url prints a canonical URL with the password masked") {
    SUBCASE("the documented example") {
        auto opts = remote_options();
        opts.tls_mode = tls_mode::verify_identity;
        opts.ssl_ca = "/etc/ca.pem";
        CHECK(opts.to_url() == "mysql://app:****@db.example.com:3306/clinic"
                               "?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem");
    }
    SUBCASE("no password: no mask") {
        auto opts = remote_options();
        opts.password.clear();
        CHECK(opts.to_url() == "mysql://app@db.example.com:3306/clinic");
    }
    SUBCASE("a credentials provider alone is masked too") {
        auto opts = remote_options();
        opts.password.clear();
        opts.credentials = [] { return std::string("token"); };
        CHECK(opts.to_url() == "mysql://app:****@db.example.com:3306/clinic");
    }
    SUBCASE("no database") {
        auto opts = remote_options();
        opts.database.clear();
        opts.port = 3307;
        CHECK(opts.to_url() == "mysql://app:****@db.example.com:3307");
    }
    SUBCASE("IPv6 in brackets") {
        auto opts = remote_options();
        opts.host = "::1";
        CHECK(opts.to_url() == "mysql://app:****@[::1]:3306/clinic");
    }
    SUBCASE("socket form") {
        connect_options opts;
        opts.user = "user";
        opts.password = "pw";
        opts.unix_socket = "/cloudsql/p:r:i";
        opts.database = "db";
        CHECK(opts.to_url() == "mysql://user:****@/db?socket=/cloudsql/p:r:i");
    }
    SUBCASE("user, database and parameter values are percent-encoded where needed") {
        auto opts = remote_options();
        opts.user = "a@b:c d";
        opts.database = "caf\xC3\xA9/%?#";
        opts.ssl_ca = "/ca dir/a&b=c#.pem";
        CHECK(opts.to_url() == "mysql://a%40b%3Ac%20d:****@db.example.com:3306/"
                               "caf%C3%A9%2F%25%3F%23?ssl-ca=/ca%20dir/a%26b%3Dc%23.pem");
    }
    SUBCASE("only timeouts that differ from the defaults") {
        auto opts = remote_options();
        opts.connect_timeout = 10s;
        CHECK(opts.to_url() == "mysql://app:****@db.example.com:3306/clinic?connect-timeout=10");
        opts.connect_timeout = 3s;
        opts.read_timeout = 30s;
        opts.write_timeout = 5s;
        CHECK(opts.to_url() ==
              "mysql://app:****@db.example.com:3306/clinic?read-timeout=30&write-timeout=5");
    }
}

TEST_CASE("from_url(to_url()) gives back the same options, except the password") {
    SUBCASE("parsed URLs") {
        for (std::string url : {
                 "mysql://app:pw@db.example.com:3307/clinic",
                 "mariadb://app@db.example.com",
                 "mysql://a%40corp%3Ax:p%40ss@h/caf%C3%A9",
                 "mysql://u:pw@[2001:db8::1]:3307/db",
                 "mysql://u@[::1]/db?ssl-mode=disabled",
                 "mysql://user:pw@/db?socket=/cloudsql/p:r:i",
                 "mysql://user@?socket=/tmp/my%20sock",
                 "mysql://u@h/db?ssl-mode=verify_ca&ssl-ca=/a%26b.pem&connect-timeout=1"
                 "&read-timeout=3600&write-timeout=7",
             }) {
            CAPTURE(url);
            auto original = connect_options::from_url(url);
            auto printed = original.to_url();
            CAPTURE(printed);
            auto reparsed = connect_options::from_url(printed);
            check_same_address_and_settings(original, reparsed);
            CHECK(reparsed.password == (original.password.empty() ? "" : "****"));
        }
    }
    SUBCASE("options built in code with characters that need escaping") {
        connect_options opts;
        opts.host = "db-1.example.com";
        opts.port = 4000;
        opts.user = "o'brien@corp:x&y";
        opts.password = "S3cr3t-Pa55";
        opts.database = "a b&c?d#e%f+g:h@i";
        opts.tls_mode = tls_mode::required;
        opts.ssl_ca = "/path with spaces/ca&?#%=.pem";
        opts.connect_timeout = 20s;
        opts.read_timeout = 60s;
        opts.write_timeout = 61s;
        auto reparsed = connect_options::from_url(opts.to_url());
        check_same_address_and_settings(opts, reparsed);

        connect_options socket_opts;
        socket_opts.user = "svc";
        socket_opts.unix_socket = "/run/my sock#1&x=y";
        auto socket_reparsed = connect_options::from_url(socket_opts.to_url());
        check_same_address_and_settings(socket_opts, socket_reparsed);
    }
}

TEST_CASE("describe gives a short label without the password") {
    auto opts = remote_options();
    CHECK(opts.describe() == "app@db.example.com:3306/clinic");
    opts.host = "::1";
    CHECK(opts.describe() == "app@[::1]:3306/clinic");
    opts.unix_socket = "/cloudsql/p:r:i";
    CHECK(opts.describe() == "app@unix:/cloudsql/p:r:i/clinic");
    opts.unix_socket.clear();
    opts.host = "db.example.com";
    opts.database.clear();
    CHECK(opts.describe() == "app@db.example.com:3306");
}

TEST_CASE("no printed form shows the password") {
    auto opts = remote_options();
    opts.password = "Pw5ecret";
    SUBCASE("plain host") {
    }
    SUBCASE("socket") {
        opts.unix_socket = "/tmp/mysql.sock";
    }
    SUBCASE("credentials provider") {
        opts.credentials = [] { return std::string("Pw5ecret"); };
    }
    std::ostringstream stream;
    stream << opts;
    for (const std::string& printed :
         {opts.to_url(), fmt::format("{}", opts), fmt::format("{:>120}", opts), stream.str(),
          opts.describe()}) {
        CAPTURE(printed);
        CHECK_FALSE(contains(printed, "Pw5ecret"));
    }
    CHECK(stream.str() == opts.to_url());
    CHECK(fmt::format("{}", opts) == opts.to_url());
    CHECK(contains(opts.to_url(), ":****@"));
}

TEST_CASE("validate checks every limit, naming the option") {
    auto opts = remote_options();
    opts.password = "Pw5ecret";
    SUBCASE("valid options pass") {
        CHECK_NOTHROW(opts.validate());
    }
    SUBCASE("boundaries are inclusive") {
        opts.connect_timeout = 1s;
        opts.read_timeout = 3600s;
        opts.write_timeout = 0s;
        CHECK_NOTHROW(opts.validate());
        opts.connect_timeout = 3600s;
        CHECK_NOTHROW(opts.validate());
    }
    SUBCASE("a unix socket needs no host, and verify modes are allowed with it") {
        opts.host.clear();
        opts.unix_socket = "/cloudsql/p:r:i";
        opts.tls_mode = tls_mode::verify_identity;
        CHECK_NOTHROW(opts.validate());
    }

    std::string message;
    SUBCASE("no host and no socket") {
        opts.host.clear();
        message = validate_error(opts);
        CHECK(message == "connect_options: host is empty and no unix_socket is set");
    }
    SUBCASE("empty user") {
        opts.user.clear();
        message = validate_error(opts);
        CHECK(contains(message, "user is empty"));
    }
    SUBCASE("port 0") {
        opts.port = 0;
        message = validate_error(opts);
        CHECK(contains(message, "port is 0"));
        CHECK(contains(message, "1-65535"));
    }
    SUBCASE("connect_timeout below and above its range") {
        opts.connect_timeout = 0s;
        message = validate_error(opts);
        CHECK(contains(message, "connect_timeout is 0 s"));
        CHECK(contains(message, "1 s to 3600 s"));
        opts.connect_timeout = 3601s;
        message = validate_error(opts);
        CHECK(contains(message, "connect_timeout is 3601 s"));
    }
    SUBCASE("read_timeout negative or too long") {
        opts.read_timeout = -1s;
        message = validate_error(opts);
        CHECK(contains(message, "read_timeout is -1 s"));
        CHECK(contains(message, "0 (no limit) to 3600 s"));
        opts.read_timeout = 3601s;
        CHECK(contains(validate_error(opts), "read_timeout is 3601 s"));
    }
    SUBCASE("write_timeout too long") {
        opts.write_timeout = 3601s;
        message = validate_error(opts);
        CHECK(contains(message, "write_timeout is 3601 s"));
    }
    CHECK_FALSE(contains(message, "Pw5ecret"));
}

TEST_CASE("effective_tls_mode: verify remote hosts, relax for loopback, explicit wins") {
    connect_options opts;
    opts.user = "u";
    SUBCASE("remote hosts get verify_identity") {
        for (const char* host :
             {"db.example.com", "10.0.0.1", "128.0.0.1", "127.example.com", "127.0.0.1.nip.io",
              "127.0.0", "127.0.0.1.5", "0127.0.0.1", "localhost.example.com", "::2", "2001:db8::1",
              "::ffff:10.0.0.1"}) {
            CAPTURE(host);
            opts.host = host;
            CHECK_FALSE(opts.is_local());
            CHECK(opts.effective_tls_mode() == tls_mode::verify_identity);
        }
    }
    SUBCASE("loopback addresses and sockets get preferred") {
        for (const char* host : {"127.0.0.1", "127.9.9.9", "127.255.255.255", "localhost",
                                 "LocalHost", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"}) {
            CAPTURE(host);
            opts.host = host;
            CHECK(opts.is_local());
            CHECK(opts.effective_tls_mode() == tls_mode::preferred);
        }
        opts.host = "db.example.com";
        opts.unix_socket = "/tmp/mysql.sock";
        CHECK(opts.is_local());
        CHECK(opts.effective_tls_mode() == tls_mode::preferred);
    }
    SUBCASE("an explicit tls_mode wins") {
        opts.host = "localhost";
        opts.tls_mode = tls_mode::verify_ca;
        CHECK(opts.effective_tls_mode() == tls_mode::verify_ca);
        opts.host = "db.example.com";
        opts.tls_mode = tls_mode::disabled;
        CHECK(opts.effective_tls_mode() == tls_mode::disabled);
    }
    SUBCASE("from a URL") {
        CHECK(connect_options::from_url("mysql://u@db.example.com").effective_tls_mode() ==
              tls_mode::verify_identity);
        CHECK(connect_options::from_url("mysql://u@[::1]").effective_tls_mode() ==
              tls_mode::preferred);
        CHECK(connect_options::from_url("mysql://u@/?socket=/s").effective_tls_mode() ==
              tls_mode::preferred);
        CHECK(connect_options::from_url("mysql://u@127.0.0.1?ssl-mode=REQUIRED")
                  .effective_tls_mode() == tls_mode::required);
    }
}

TEST_CASE("from_env reads a URL from the environment") {
    constexpr const char* name = "CLOUDMYSQL_TEST_CONNECT_OPTIONS_URL";
    SUBCASE("unset") {
        ::unsetenv(name);
        CHECK_FALSE(connect_options::from_env(name).has_value());
    }
    SUBCASE("empty") {
        ::setenv(name, "", 1);
        CHECK_FALSE(connect_options::from_env(name).has_value());
    }
    SUBCASE("valid") {
        ::setenv(name, "mysql://app:pw@db.example.com:3307/clinic?ssl-mode=REQUIRED", 1);
        auto opts = connect_options::from_env(name);
        REQUIRE(opts.has_value());
        CHECK(opts->host == "db.example.com");
        CHECK(opts->port == 3307);
        CHECK(opts->user == "app");
        CHECK(opts->password == "pw");
        CHECK(opts->database == "clinic");
        CHECK(opts->tls_mode == tls_mode::required);
    }
    SUBCASE("invalid: the message starts with the variable name") {
        ::setenv(name, "mysql://app:Pw5ecret@db.example.com:99999/clinic", 1);
        std::string message;
        try {
            (void)connect_options::from_env(name);
            FAIL_CHECK("from_env accepted a malformed URL");
        } catch (const std::invalid_argument& e) {
            message = e.what();
        }
        CHECK(message.rfind("CLOUDMYSQL_TEST_CONNECT_OPTIONS_URL: invalid URL: ", 0) == 0);
        CHECK(contains(message, "port '99999'"));
        CHECK_FALSE(contains(message, "Pw5ecret"));
    }
    SUBCASE("invalid password escape: still no password") {
        ::setenv(name, "mysql://app:Pw5ecret%ZZ@db.example.com/clinic", 1);
        CHECK_THROWS_WITH_AS(connect_options::from_env(name),
                             doctest::Contains("CLOUDMYSQL_TEST_CONNECT_OPTIONS_URL: invalid URL"),
                             std::invalid_argument);
        try {
            (void)connect_options::from_env(name);
        } catch (const std::invalid_argument& e) {
            CHECK_FALSE(contains(e.what(), "Pw5ecret"));
        }
    }
    ::unsetenv(name);
}

TEST_CASE("keepalive: on by default, set in the URL, printed back, checked") {
    const connect_options defaults = remote_options();
    CHECK(defaults.keepalive.enabled);
    // Azure's load balancer drops flows idle for 4 minutes: the first probe must come well
    // before that, and a dead peer must be found within it.
    CHECK(defaults.keepalive.idle < 240s);
    CHECK(defaults.keepalive.idle + defaults.keepalive.interval * defaults.keepalive.count < 240s);
    CHECK_FALSE(contains(defaults.to_url(), "keepalive"));

    CHECK(defaults.keepalive.dead_path_limit() == 45s); // what the README promises

    auto opts = connect_options::from_url("mysql://app@db.example.com/clinic?keepalive-idle=40&"
                                          "keepalive-interval=7&keepalive-count=4");
    CHECK(opts.keepalive == cloudmysql::tcp_keepalive{true, 40s, 7s, 4});
    CHECK(opts.keepalive.dead_path_limit() == 68s);
    CHECK(contains(opts.to_url(), "keepalive-idle=40&keepalive-interval=7&keepalive-count=4"));
    CHECK(connect_options::from_url(opts.to_url()).keepalive == opts.keepalive);

    for (const char* off : {"off", "OFF", "0", "false"}) {
        CAPTURE(off);
        opts = connect_options::from_url(std::string("mysql://app@h/db?keepalive=") + off);
        CHECK_FALSE(opts.keepalive.enabled);
        CHECK(contains(opts.to_url(), "keepalive=off"));
    }
    CHECK(connect_options::from_url("mysql://app@h/db?keepalive=on").keepalive.enabled);

    CHECK(contains(from_url_error("mysql://app@h/db?keepalive=maybe"),
                   "keepalive 'maybe' is not on or off"));
    CHECK(contains(from_url_error("mysql://app@h/db?keepalive-idle=0"),
                   "keepalive-idle '0' is not a number of seconds from 1 to 32767"));
    CHECK(contains(from_url_error("mysql://app@h/db?keepalive-interval=40000"),
                   "keepalive-interval '40000'"));
    CHECK(contains(from_url_error("mysql://app@h/db?keepalive-count=128"),
                   "keepalive-count '128' is not a number from 1 to 127"));

    opts = remote_options();
    opts.keepalive.idle = 0s;
    CHECK(contains(validate_error(opts), "keepalive.idle is 0 s; expected 1 s to 32767 s"));
    opts = remote_options();
    opts.keepalive.interval = 32768s;
    CHECK(contains(validate_error(opts), "keepalive.interval is 32768 s"));
    opts = remote_options();
    opts.keepalive.count = 0;
    CHECK(contains(validate_error(opts), "keepalive.count is 0; expected 1 to 127"));
}

TEST_CASE("a credential provider is allowed only over verified TLS or a unix socket") {
    auto opts = remote_options();
    opts.credentials = cloudmysql::credential_provider("azure-entra", [] { return "token"; });

    // Unset mode: remote hosts verify anyway, and so does loopback TCP once a token is involved.
    CHECK(opts.effective_tls_mode() == tls_mode::verify_identity);
    CHECK_NOTHROW(opts.validate());
    opts.host = "127.0.0.1";
    CHECK(opts.effective_tls_mode() == tls_mode::verify_identity);
    CHECK_NOTHROW(opts.validate());

    for (auto mode : {tls_mode::disabled, tls_mode::preferred, tls_mode::required}) {
        CAPTURE(cloudmysql::to_string(mode));
        opts.tls_mode = mode;
        const std::string message = validate_error(opts);
        CHECK(contains(message, "credential provider 'azure-entra'"));
        CHECK(contains(message, fmt::format("ssl-mode={}", cloudmysql::to_string(mode))));
        CHECK(contains(message, "VERIFY_CA or VERIFY_IDENTITY"));
    }
    opts.tls_mode = tls_mode::verify_ca;
    CHECK_NOTHROW(opts.validate());

    // The Auth Proxy's socket is local to the machine: no TLS needed.
    opts.host.clear();
    opts.unix_socket = "/cloudsql/p:r:i";
    opts.tls_mode.reset();
    CHECK(opts.effective_tls_mode() == tls_mode::preferred);
    CHECK_NOTHROW(opts.validate());
    opts.tls_mode = tls_mode::disabled;
    CHECK_NOTHROW(opts.validate());
}
