// read_server_report() against real servers: it must agree with what the server says of
// itself, see an account's own connection limit, count one user's sessions, and say how the
// certificate was checked.
#include "test_server.hpp"

#include <cloudmysql/server_report.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <unistd.h>
#include <vector>

using cloudmysql::connection;
using cloudmysql::server_report;
using cloudmysql::tls_verification;

namespace {

std::int64_t number(connection& conn, const std::string& expression) {
    return conn.query("SELECT " + expression)[0].get<std::int64_t>(0);
}

// A user of its own with MAX_USER_CONNECTIONS, dropped at the end of the test.
class limited_user {
public:
    explicit limited_user(int limit)
            : admin_(cloudmysql::test::server_options()),
              name_(fmt::format("cm_limited_{}", ::getpid())), password_("Lim1ted-pw-for-test") {
        admin_.query(fmt::format("DROP USER IF EXISTS '{}'@'%'", name_));
        admin_.query(fmt::format("CREATE USER '{}'@'%' IDENTIFIED BY '{}' WITH "
                                 "MAX_USER_CONNECTIONS {}",
                                 name_, password_, limit));
    }
    limited_user(const limited_user&) = delete;
    limited_user& operator=(const limited_user&) = delete;
    ~limited_user() {
        try {
            admin_.query(fmt::format("DROP USER IF EXISTS '{}'@'%'", name_));
        } catch (const std::exception& e) {
            MESSAGE("could not drop user ", name_, ": ", e.what());
        }
    }
    cloudmysql::connect_options options() const {
        auto o = cloudmysql::test::server_options();
        o.user = name_;
        o.password = password_;
        o.database.clear();
        return o;
    }

private:
    connection admin_;
    std::string name_;
    std::string password_;
};

} // namespace

TEST_CASE("the report agrees with the server's own variables") {
    connection conn(cloudmysql::test::server_options());
    const server_report r = cloudmysql::read_server_report(conn);
    CHECK(r.version == conn.server_version());
    CHECK(r.flavor == conn.flavor());
    CHECK(r.max_connections == number(conn, "@@GLOBAL.max_connections"));
    CHECK(r.max_user_connections == number(conn, "@@SESSION.max_user_connections"));
    CHECK(r.connect_timeout == number(conn, "@@GLOBAL.connect_timeout"));
    CHECK(r.wait_timeout == number(conn, "@@SESSION.wait_timeout"));
    CHECK(r.interactive_timeout == number(conn, "@@SESSION.interactive_timeout"));
    CHECK(r.lock_wait_timeout == number(conn, "@@SESSION.lock_wait_timeout"));
    CHECK(r.require_secure_transport ==
          (number(conn, "@@GLOBAL.require_secure_transport") != 0 ? "ON" : "OFF"));
    CHECK(r.tls_cipher == conn.tls_cipher());
    CHECK(r.tls_version == conn.tls_version());
    REQUIRE(r.threads_connected.has_value());
    CHECK(*r.threads_connected >= 1);
    REQUIRE(r.max_used_connections.has_value());
    CHECK(*r.max_used_connections >= *r.threads_connected - 1); // others may have just left
    if (!cloudmysql::test::sandbox_dir().empty()) {             // the sandbox's own settings
        CHECK(r.max_connections == 20);
        CHECK(r.connect_timeout == 3);
        CHECK(r.require_secure_transport == "ON");
        CHECK(r.verification == tls_verification::ca_and_host);
        CHECK(r.cloud == "unknown");
        CHECK(r.cloud_evidence.empty());
    }
}

TEST_CASE("an account's own limit shows as max_user_connections, and its sessions are counted") {
    const limited_user user(4);
    connection first(user.options());
    const server_report r = cloudmysql::read_server_report(first);
    CHECK(r.max_user_connections == 4);
    CHECK(r.user_connections == 1);

    std::vector<connection> more;
    more.emplace_back(user.options());
    more.emplace_back(user.options());
    CHECK(cloudmysql::read_server_report(first).user_connections == 3);

    cloudmysql::deployment d;
    d.instances = 2;
    d.pool_size = 8;
    const auto verdict = cloudmysql::check_deployment(r, d);
    CHECK_FALSE(verdict.passed());
    bool per_user_failed = false;
    for (const auto& c : verdict.checks)
        if (c.name == "max_user_connections")
            per_user_failed = c.result == cloudmysql::deployment_check::outcome::fail;
    CHECK(per_user_failed);
}

TEST_CASE("a plaintext session reports that nothing was checked") {
    connection conn(cloudmysql::test::plain_server_options());
    const server_report r = cloudmysql::read_server_report(conn);
    CHECK(r.verification == tls_verification::not_encrypted);
    CHECK(r.tls_version.empty());
    CHECK(r.tls_cipher.empty());
    CHECK(r.ssl_mode == cloudmysql::tls_mode::disabled);
    CHECK(r.max_connections.has_value());
}
