// A network path that dies under open connections. The test and a server of its own share a
// network namespace of their own (tests/integration/with-own-network), where nft drops every
// packet to and from the server's port, as a failed load balancer or a cut link would, while
// the server itself stays up. What a caller sees:
//   - a query waiting for its answer fails with connection_lost once the peer has been silent
//     for the keepalive's dead_path_limit() (the server's kernel would have answered the
//     probes, however long the query ran);
//   - a query sent into the dead path fails at the same limit (TCP_USER_TIMEOUT): keepalive
//     alone leaves unacknowledged data to the kernel's retransmissions, about 15 minutes;
//   - the pool's own checks are abandoned at check_timeout, whatever the keepalive says.
// No assertion on timing: each wait is bounded far above the limits, and a wait that runs out
// fails the test.
#include "own_sandbox.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/pool.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <future>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

extern char** environ;

using namespace cloudmysql;
using namespace std::chrono_literals;

namespace {

// Runs `nft` with one command line; true when it succeeds.
bool nft(const std::string& command) {
    std::vector<std::string> args{"nft", command};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawnp(&pid, "nft", nullptr, nullptr, argv.data(), environ) != 0)
        return false;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Every packet to or from `port` on loopback is dropped while it lives: the path is dead, the
// sockets at both ends stay open.
class dead_path {
public:
    explicit dead_path(std::uint16_t port) {
        REQUIRE(nft("add table inet cloudmysql_dead_path"));
        REQUIRE(nft("add chain inet cloudmysql_dead_path input { type filter hook input "
                    "priority 0 ; }"));
        REQUIRE(
            nft(fmt::format("add rule inet cloudmysql_dead_path input tcp dport {} drop", port)));
        REQUIRE(
            nft(fmt::format("add rule inet cloudmysql_dead_path input tcp sport {} drop", port)));
    }
    dead_path(const dead_path&) = delete;
    dead_path& operator=(const dead_path&) = delete;
    ~dead_path() { heal(); }
    void heal() {
        if (!healed_)
            healed_ = nft("delete table inet cloudmysql_dead_path");
    }

private:
    bool healed_ = false;
};

// Short keepalive settings, so that the limit is seconds: dead_path_limit() = 2 + 1 x 2 = 4 s.
connect_options quick_to_notice(connect_options o) {
    o.keepalive = {true, 2s, 1s, 2};
    return o;
}

struct outcome {
    error_code ec;
    diagnostics diag;
};

// An operation on a thread of its own, waited for with a bound. A thread that has not
// returned when the test ends is joined after the path healed.
class background {
public:
    explicit background(std::function<outcome()> operation) {
        std::packaged_task<outcome()> task(std::move(operation));
        result_ = task.get_future();
        thread_ = std::thread(std::move(task));
    }
    background(const background&) = delete;
    background& operator=(const background&) = delete;
    ~background() {
        if (thread_.joinable())
            thread_.join();
    }
    /// The outcome, or nullopt when it has not returned within `bound`.
    std::optional<outcome> wait(std::chrono::seconds bound) {
        if (result_.wait_for(bound) != std::future_status::ready)
            return std::nullopt;
        thread_.join();
        return result_.get();
    }

private:
    std::future<outcome> result_;
    std::thread thread_;
};

std::string describe(const outcome& o) {
    return fmt::format("{} [{}] {}", o.ec.message(), to_string(o.diag.error_class()),
                       o.diag.client_message());
}

} // namespace

TEST_CASE("a dead path ends a query at the keepalive limit, sent or waiting for its answer") {
    test::own_sandbox sandbox("CLOUDMYSQL_DEAD_PATH_SANDBOX_DIR");
    const connect_options options = quick_to_notice(sandbox.options());
    REQUIRE(options.keepalive.dead_path_limit() == 4s);
    // The bound of each wait: far above the 4 s limit, far below what the kernel would take
    // on its own (keepalive off or no TCP_USER_TIMEOUT: minutes).
    constexpr auto bound = 60s;

    SUBCASE("the request was acknowledged, the answer never comes: keepalive") {
        connection conn(options);
        std::optional<dead_path> cut;
        // Declared after `cut`: destroyed first, once the path healed.
        background query([&] {
            outcome o;
            conn.query("SELECT SLEEP(20)", o.ec, o.diag);
            return o;
        });
        std::this_thread::sleep_for(500ms); // the query is under way on the server
        cut.emplace(options.port);
        const auto result = query.wait(bound);
        cut->heal();
        REQUIRE_MESSAGE(result, "the query still waited ", bound.count(), " s after the cut");
        CHECK_MESSAGE(result->diag.error_class() == error_class::connection_lost,
                      describe(*result));
    }
    SUBCASE("the request is sent into the dead path: TCP_USER_TIMEOUT") {
        connection conn(options);
        dead_path cut(options.port);
        background query([&] {
            outcome o;
            conn.query("SELECT 1", o.ec, o.diag);
            return o;
        });
        const auto result = query.wait(bound);
        cut.heal();
        REQUIRE_MESSAGE(result, "the query still waited ", bound.count(), " s after the cut");
        CHECK_MESSAGE(result->diag.error_class() == error_class::connection_lost,
                      describe(*result));
    }
}

TEST_CASE("on a dead path the pool abandons its own checks at check_timeout") {
    test::own_sandbox sandbox("CLOUDMYSQL_DEAD_PATH_SANDBOX_DIR");
    // The default keepalive (dead_path_limit() 45 s) would end the ping much later than
    // check_timeout: the pool does not wait for it.
    const connect_options options = sandbox.options();
    REQUIRE(options.keepalive.dead_path_limit() > 30s);
    pool p(options,
           {.max_size = 2, .acquire_timeout = 2s, .validate_after_idle = 0ms, .check_timeout = 1s});
    p.acquire(); // opened, checked, returned
    dead_path cut(options.port);
    error_code ec;
    diagnostics diag;
    auto conn = p.acquire(ec, diag); // its check (a ping) goes into the dead path
    CHECK(ec == client_errc::pool_exhausted);
    CHECK_MESSAGE(diag.client_message().find("has not answered the pool's checks") !=
                      std::string::npos,
                  diag.client_message());
    // Bounded: well below the keepalive's 45 s, after which the ping would fail by itself
    // and count as broken rather than unanswered.
    bool abandoned = false;
    for (int i = 0; i < 300 && !abandoned; ++i) {
        abandoned = p.metrics().closed[static_cast<std::size_t>(close_reason::unanswered)] > 0;
        if (!abandoned)
            std::this_thread::sleep_for(50ms);
    }
    CHECK(abandoned);
    cut.heal();
    auto again = p.acquire(ec, diag);
    CHECK_MESSAGE(!ec, diag.client_message());
}
