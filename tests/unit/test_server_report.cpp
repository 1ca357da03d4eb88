// check_deployment() and tls_verification_of(): pure functions, no server.
//
// The numbers are the course's: a server with max_connections = 20 (Azure and Cloud SQL as the
// assignment set them up), pools of 8, 3 connections reserved for admin sessions and migrations.
#include <cloudmysql/server_report.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using cloudmysql::check_deployment;
using cloudmysql::deployment;
using cloudmysql::deployment_check;
using cloudmysql::server_report;
using namespace std::chrono_literals;

namespace {

server_report course_server() {
    server_report r;
    r.max_connections = 20;
    r.max_user_connections = 0;
    r.wait_timeout = 28800;
    return r;
}

deployment pools(std::size_t instances, std::size_t pool_size) {
    deployment d;
    d.instances = instances;
    d.pool_size = pool_size;
    return d;
}

// The check named `name`; fails the test when there is none.
deployment_check find(const cloudmysql::deployment_verdict& v, const std::string& name) {
    for (const auto& c : v.checks)
        if (c.name == name)
            return c;
    FAIL("no check named " << name);
    return {};
}

} // namespace

TEST_CASE("deployment defaults are the pool's and reserve 3") {
    const deployment d;
    const cloudmysql::pool_options p;
    CHECK(d.pool_size == p.max_size);
    CHECK(d.max_lifetime == p.max_lifetime);
    CHECK(d.idle_timeout == p.idle_timeout);
    CHECK(d.keepalive_interval == p.keepalive_interval);
    CHECK(d.reserve == 3);
}

TEST_CASE("2 x 8 + 3 fits max_connections 20, 3 x 8 + 3 does not") {
    const auto fits = check_deployment(course_server(), pools(2, 8));
    CHECK(fits.passed());
    const auto ok = find(fits, "max_connections");
    CHECK(ok.result == deployment_check::outcome::pass);
    CHECK(ok.reason == "2 × 8 + 3 reserved = 19 ≤ max_connections 20");

    const auto over = check_deployment(course_server(), pools(3, 8));
    CHECK_FALSE(over.passed());
    const auto bad = find(over, "max_connections");
    CHECK(bad.result == deployment_check::outcome::fail);
    CHECK(bad.reason == "3 × 8 + 3 reserved = 27 > max_connections 20: lower pool_size to 5 "
                        "or raise max_connections to 27");
}

TEST_CASE("exactly max_connections passes; one more fails") {
    auto d = pools(1, 17);
    CHECK(check_deployment(course_server(), d).passed());
    d.pool_size = 18;
    CHECK_FALSE(check_deployment(course_server(), d).passed());
    d = pools(1, 17);
    d.reserve = 4;
    CHECK_FALSE(check_deployment(course_server(), d).passed());
}

TEST_CASE("a fix is suggested even when no pool size fits") {
    auto d = pools(20, 1);
    const auto many = find(check_deployment(course_server(), d), "max_connections");
    CHECK(many.result == deployment_check::outcome::fail);
    CHECK(many.reason.find("run at most 17 instances with pool_size 1") != std::string::npos);

    d = pools(1, 1);
    d.reserve = 20;
    const auto reserved = find(check_deployment(course_server(), d), "max_connections");
    CHECK(reserved.result == deployment_check::outcome::fail);
    CHECK(reserved.reason.find("leaves nothing beyond the 20 reserved") != std::string::npos);
}

TEST_CASE("max_user_connections is checked only when it is set") {
    auto server = course_server();
    CHECK(check_deployment(server, pools(2, 8)).checks.size() == 2); // no per-user check
    server.max_user_connections = 10;
    const auto v = check_deployment(server, pools(2, 8));
    CHECK_FALSE(v.passed());
    CHECK(find(v, "max_connections").result == deployment_check::outcome::pass);
    const auto user = find(v, "max_user_connections");
    CHECK(user.result == deployment_check::outcome::fail);
    CHECK(user.reason == "2 × 8 + 3 reserved = 19 > max_user_connections 10: lower pool_size "
                         "to 3 or raise max_user_connections to 19");
    server.max_user_connections = 19;
    CHECK(check_deployment(server, pools(2, 8)).passed());
}

TEST_CASE("an idle connection goes unheard for the smaller of idle_timeout and keepalive") {
    using cloudmysql::longest_idle_silence;
    CHECK(longest_idle_silence(600s, 120s) == 120s);
    CHECK(longest_idle_silence(60s, 120s) == 60s);
    CHECK(longest_idle_silence(0ms, 120s) == 120s); // kept forever, but pinged
    CHECK(longest_idle_silence(600s, 0ms) == 600s); // no keepalive, but closed
    CHECK(longest_idle_silence(0ms, 0ms) == 0ms);   // never touched: without bound
}

TEST_CASE("the min_idle connections a pool keeps are bounded by the keepalive alone") {
    using cloudmysql::longest_idle_silence;
    // idle_timeout never closes the min_idle connections: only the keepalive reaches them.
    CHECK(longest_idle_silence(60s, 120s, 2) == 120s);
    CHECK(longest_idle_silence(600s, 0ms, 2) == 0ms); // kept open and never pinged
    CHECK(longest_idle_silence(600s, 0ms, 0) == 600s);

    auto server = course_server();
    server.wait_timeout = 300;
    auto d = pools(2, 8);
    d.idle_timeout = 60s;
    d.keepalive_interval = 0ms;
    CHECK(find(check_deployment(server, d), "wait_timeout").result ==
          deployment_check::outcome::pass);
    d.min_idle = 2;
    const auto idle = find(check_deployment(server, d), "wait_timeout");
    CHECK(idle.result == deployment_check::outcome::fail);
    CHECK_MESSAGE(idle.reason.find("min_idle 2 kept open") != std::string::npos, idle.reason);
    // The way out is the keepalive or min_idle 0: a lower idle_timeout would change nothing.
    CHECK_MESSAGE(idle.reason.find("lower keepalive_interval below wait_timeout 300 (idle_timeout "
                                   "does not close the min_idle connections), or set min_idle to "
                                   "0") != std::string::npos,
                  idle.reason);
}

TEST_CASE("wait_timeout 300 with idle_timeout 600 passes: the keepalive pings at 120 s") {
    auto server = course_server();
    server.wait_timeout = 300;
    auto d = pools(2, 8);
    d.idle_timeout = 600s;
    d.keepalive_interval = 120s;
    const auto v = check_deployment(server, d);
    CHECK(v.passed());
    const auto idle = find(v, "wait_timeout");
    CHECK(idle.result == deployment_check::outcome::pass);
    CHECK(idle.reason == "an idle connection is pinged or closed after 120 s (idle_timeout 600 s, "
                         "keepalive_interval 120 s) < wait_timeout 300 s");
}

TEST_CASE("without a keepalive, an idle_timeout not below wait_timeout fails") {
    auto server = course_server();
    server.wait_timeout = 300;
    auto d = pools(2, 8);
    d.idle_timeout = 600s;
    d.keepalive_interval = 0ms;
    const auto v = check_deployment(server, d);
    CHECK_FALSE(v.passed());
    const auto idle = find(v, "wait_timeout");
    CHECK(idle.result == deployment_check::outcome::fail);
    CHECK(idle.reason == "an idle connection is pinged or closed after 600 s (idle_timeout 600 s, "
                         "keepalive_interval 0 (off)), not below wait_timeout 300 s: the server "
                         "drops idle sessions the pool still holds; lower keepalive_interval or "
                         "idle_timeout below wait_timeout 300, or raise wait_timeout");

    d.keepalive_interval = 300s; // equal is not below
    CHECK(find(check_deployment(server, d), "wait_timeout").result ==
          deployment_check::outcome::fail);
    d.keepalive_interval = 299s;
    CHECK(check_deployment(server, d).passed());
    d.keepalive_interval = 0ms;
    d.idle_timeout = 1500ms;
    CHECK(find(check_deployment(server, d), "wait_timeout").reason ==
          "an idle connection is pinged or closed after 1.5 s (idle_timeout 1.5 s, "
          "keepalive_interval 0 (off)) < wait_timeout 300 s");
}

TEST_CASE("max_lifetime is not checked: wait_timeout counts idle time, not age") {
    auto server = course_server();
    server.wait_timeout = 300;
    auto d = pools(2, 8);
    d.max_lifetime = 0ms; // no limit
    CHECK(check_deployment(server, d).passed());
    d.max_lifetime = 100000s;
    const auto v = check_deployment(server, d);
    CHECK(v.passed());
    for (const auto& c : v.checks)
        CHECK(c.name != "max_lifetime");
}

TEST_CASE("kept forever without a keepalive fails against any wait_timeout") {
    auto d = pools(2, 8);
    d.idle_timeout = 0ms;
    d.keepalive_interval = 0ms;
    const auto v = check_deployment(course_server(), d);
    CHECK_FALSE(v.passed());
    CHECK(find(v, "wait_timeout").reason ==
          "an idle connection is never pinged or closed (idle_timeout 0 (kept forever), "
          "keepalive_interval 0 (off)), not below wait_timeout 28800 s: the server drops idle "
          "sessions the pool still holds; lower keepalive_interval or idle_timeout below "
          "wait_timeout 28800");
    d.keepalive_interval = 120s; // kept forever is fine while it is pinged
    CHECK(check_deployment(course_server(), d).passed());
}

TEST_CASE("every reason names settings as the library does, never a program's flags") {
    auto server = course_server();
    server.wait_timeout = 300;
    server.max_user_connections = 10;
    std::vector<deployment> failing;
    for (const auto& [instances, size, reserve] :
         {std::tuple{3, 8, 3}, std::tuple{20, 1, 3}, std::tuple{1, 1, 20}}) {
        auto d = pools(static_cast<std::size_t>(instances), static_cast<std::size_t>(size));
        d.reserve = static_cast<std::size_t>(reserve);
        failing.push_back(d);
    }
    for (const auto& [idle, keepalive] :
         {std::pair{600s, 0s}, std::pair{0s, 0s}, std::pair{0s, 400s}, std::pair{300s, 300s}}) {
        auto d = pools(1, 1);
        d.idle_timeout = idle;
        d.keepalive_interval = keepalive;
        failing.push_back(d);
    }
    for (const auto& d : failing) {
        const auto v = check_deployment(server, d);
        CHECK_FALSE(v.passed());
        for (const auto& c : v.checks) {
            INFO(c.reason);
            CHECK(c.reason.find("--") == std::string::npos);
        }
    }
}

TEST_CASE("what the server did not show is unknown, not a failure") {
    const server_report silent; // nothing read
    const auto v = check_deployment(silent, pools(3, 8));
    CHECK(v.passed());
    CHECK(v.checks.size() == 2);
    for (const auto& c : v.checks) {
        CHECK(c.result == deployment_check::outcome::unknown);
        CHECK(c.reason.find("check it by hand") != std::string::npos);
    }
}

TEST_CASE("no instances or an empty pool is a programming error") {
    CHECK_THROWS_AS(check_deployment(course_server(), pools(0, 8)), std::invalid_argument);
    CHECK_THROWS_AS(check_deployment(course_server(), pools(2, 0)), std::invalid_argument);
}

TEST_CASE("absurd sizes saturate instead of wrapping around") {
    const auto v = check_deployment(course_server(), pools(SIZE_MAX, SIZE_MAX));
    CHECK_FALSE(v.passed());
}

TEST_CASE("how the certificate was checked follows the effective ssl-mode") {
    using cloudmysql::tls_mode;
    using cloudmysql::tls_verification;
    using cloudmysql::tls_verification_of;
    cloudmysql::connect_options o;
    o.host = "db.example.com";
    CHECK(tls_verification_of(o, true) == tls_verification::ca_and_host); // remote default
    CHECK(tls_verification_of(o, false) == tls_verification::not_encrypted);
    o.tls_mode = tls_mode::verify_ca;
    CHECK(tls_verification_of(o, true) == tls_verification::ca);
    o.tls_mode = tls_mode::required;
    CHECK(tls_verification_of(o, true) == tls_verification::unverified);
    o.ssl_ca = "/etc/ca.pem"; // libmariadb checks the chain once it has a CA
    CHECK(tls_verification_of(o, true) == tls_verification::ca);
    o.tls_mode = tls_mode::preferred; // the CA is not handed over in this mode
    CHECK(tls_verification_of(o, true) == tls_verification::unverified);
    CHECK(to_string(tls_verification::ca_and_host) == "ca-and-host-verified");
    CHECK(to_string(tls_verification::unverified) == "encrypted-unverified");
}
