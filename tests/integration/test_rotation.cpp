// Password rotation under load: the server changes a user's password while a pool serves 16
// threads, and the credential provider (a cache over a secret store, the shape of an Azure
// Entra or Cloud SQL IAM token provider) starts returning the new one.
//
// ALTER USER does not end the sessions already open, so the old connections keep working
// until max_lifetime retires them; new connections must use the new password. Against a
// server of the test's own (the shared sandbox's users stay untouched). No assertion depends
// on timing except the bound the issue sets: no thread sees requests fail for longer than one
// acquire_timeout. Waits are bounded loops.
#include "own_sandbox.hpp"
#include "stopping_threads.hpp"
#include "test_server.hpp"

#include <cloudmysql/credentials.hpp>
#include <cloudmysql/pool.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace cloudmysql;
using namespace std::chrono_literals;

namespace {

using cloudmysql::test::eventually;
using steady = std::chrono::steady_clock;

std::uint64_t closed_for(const pool_metrics& m, close_reason r) {
    return m.closed[static_cast<std::size_t>(r)];
}

std::set<std::uint64_t> session_ids_of(connection& root, const std::string& user) {
    std::set<std::uint64_t> ids;
    for (const auto& r :
         root.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user))
        ids.insert(r.get<std::uint64_t>(0));
    return ids;
}

/// Where the application keeps its database password (a vault, a secret manager): the test
/// writes the new password here right after ALTER USER.
class secret_store {
public:
    explicit secret_store(std::string password) : password_(std::move(password)) {}
    void put(std::string password) {
        std::lock_guard lock(mutex_);
        password_ = std::move(password);
    }
    std::string get() const {
        std::lock_guard lock(mutex_);
        return password_;
    }

private:
    mutable std::mutex mutex_;
    std::string password_;
};

/// What each connect attempt was given, and when: the pool's provider wraps the cached one.
struct fetch_record {
    steady::time_point at;
    std::string password;
};

class fetch_log {
public:
    void add(std::string password) {
        std::lock_guard lock(mutex_);
        records_.push_back({steady::now(), std::move(password)});
    }
    std::vector<fetch_record> records() const {
        std::lock_guard lock(mutex_);
        return records_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<fetch_record> records_;
};

/// One worker's view: requests that succeeded, failed, and its longest run of failures
/// (from the start of the first failed request to the start of the next request that
/// succeeded, or to the end of the test).
struct worker_record {
    std::uint64_t successes = 0;
    std::uint64_t failures = 0;
    steady::duration longest_failure_run{};
    std::string first_failure;
};

} // namespace

TEST_CASE("the password rotates under 16 threads: connections turn over to the new password") {
    test::own_sandbox sandbox("CLOUDMYSQL_ROTATION_SANDBOX_DIR");
    connection root(sandbox.root_options());

    // A user of the test's own with rights on one database only, like an application's.
    const std::string user = "rotating_app";
    const std::string old_password = "rotation-old-4f1c9a";
    const std::string new_password = "rotation-new-8b27d3";
    root.query(fmt::format("CREATE USER '{}'@'%' IDENTIFIED BY '{}'", user, old_password));
    root.query(fmt::format("GRANT SELECT ON cloudmysql_test.* TO '{}'@'%'", user));

    secret_store store(old_password);
    fetch_log log;
    std::atomic<int> rejections{0};
    // The realistic shape: a cache in front of the store (tokens live an hour), dropped when
    // the server refuses what it returned.
    const credential_provider cached = cached_token_provider("rotating-secret", [&store] {
        return access_token{store.get(), std::chrono::system_clock::now() + 1h};
    });
    connect_options options = sandbox.options();
    options.user = user;
    options.password.clear();
    options.credentials = credential_provider(
        "rotating-secret",
        [&log, cached] {
            std::string password = cached();
            log.add(password);
            return password;
        },
        [&rejections, cached] {
            ++rejections;
            cached.rejected();
        });

    // Short lifetimes, so that every connection opened with the old password is retired
    // within a few seconds of the change.
    pool_options pool_settings{
        .max_size = 8, .acquire_timeout = 2s, .max_lifetime = 2s, .max_lifetime_jitter = 500ms};
    pool p(options, pool_settings);

    constexpr int threads = 16;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> successes{0};
    std::vector<worker_record> records(threads);
    test::stopping_threads workers(stop);
    for (int t = 0; t < threads; ++t)
        workers.start([&, t] {
            worker_record& rec = records[static_cast<std::size_t>(t)];
            std::optional<steady::time_point> failing_since;
            // Bounded, though the stop flag ends it much sooner.
            for (int i = 0; i < 1000000 && !stop.load(); ++i) {
                const auto started = steady::now();
                error_code ec;
                diagnostics diag;
                std::string stage = "acquire";
                if (auto conn = p.acquire(ec, diag)) {
                    stage = "SELECT CONNECTION_ID()";
                    const auto r = conn->query("SELECT CONNECTION_ID()", ec, diag);
                    if (!ec && (r.size() != 1 || r[0].get<std::uint64_t>(0) == 0))
                        ec = make_error_code(client_errc::type_mismatch);
                }
                if (!ec) {
                    if (failing_since)
                        rec.longest_failure_run =
                            std::max(rec.longest_failure_run, started - *failing_since);
                    failing_since.reset();
                    ++rec.successes;
                    ++successes;
                    continue;
                }
                if (!failing_since)
                    failing_since = started;
                if (rec.failures++ == 0)
                    rec.first_failure = fmt::format("{}: {} [{}] {} {}", stage, ec.message(),
                                                    to_string(diag.error_class()),
                                                    diag.client_message(), diag.server_message());
                std::this_thread::sleep_for(10ms);
            }
            if (failing_since)
                rec.longest_failure_run =
                    std::max(rec.longest_failure_run, steady::now() - *failing_since);
        });
    const auto stop_workers = [&] { workers.join(); };

    // The pool is busy and has opened its connections with the old password.
    const bool warm = eventually([&] { return successes.load() >= 2000; }, 400, 25ms);
    const std::set<std::uint64_t> before = session_ids_of(root, user);
    if (!warm || before.empty()) {
        stop_workers();
        FAIL("the pool did not get going: ", successes.load(), " requests served, ", before.size(),
             " sessions of ", user);
    }

    // The rotation: the server first, then the secret store.
    root.query(fmt::format("ALTER USER '{}'@'%' IDENTIFIED BY '{}'", user, new_password));
    const auto changed_at = steady::now();
    store.put(new_password);
    const auto stored_at = steady::now();
    // Connection ids only grow: every session made after the change has a larger one.
    const std::uint64_t id_at_change = connection(sandbox.root_options()).connection_id();
    const std::uint64_t successes_at_change = successes.load();

    // The pool turns over: no session from before the change is left. Lifetimes end within
    // max_lifetime; connections are retired when they come back, which happens all the time.
    std::set<std::uint64_t> still_there;
    const bool turned_over = eventually(
        [&] {
            still_there.clear();
            const auto now = session_ids_of(root, user);
            std::ranges::set_intersection(before, now,
                                          std::inserter(still_there, still_there.begin()));
            return still_there.empty();
        },
        400, 50ms);
    // One more lifetime under load on the new password only.
    const std::uint64_t successes_at_turnover = successes.load();
    eventually([&] { return successes.load() >= successes_at_turnover + 2000; }, 400, 25ms);
    const std::uint64_t successes_after_turnover = successes.load() - successes_at_turnover;
    stop_workers();

    // The pool is still open: its sessions are all from after the change.
    const std::set<std::uint64_t> after = session_ids_of(root, user);
    const pool_metrics m = p.metrics();

    MESSAGE(successes.load(), " requests (", successes_at_change, " before the change); ",
            m.created, " connections opened, ", m.connect_failures, " connect failures, ",
            rejections.load(), " passwords rejected; ", before.size(), " sessions before, ",
            after.size(), " after");
    CHECK_MESSAGE(turned_over, still_there.size(),
                  " sessions from before the change are still open");
    CHECK(successes_after_turnover >= 2000);
    CHECK(closed_for(m, close_reason::max_lifetime) > 0);
    CHECK(m.breaker_open == false);

    // No worker saw requests fail for longer than one acquire_timeout.
    for (int t = 0; t < threads; ++t) {
        const worker_record& rec = records[static_cast<std::size_t>(t)];
        const auto longest =
            std::chrono::duration_cast<std::chrono::milliseconds>(rec.longest_failure_run);
        CHECK_MESSAGE(rec.successes > 0, "worker ", t, " never succeeded");
        CHECK_MESSAGE(longest <= pool_settings.acquire_timeout, "worker ", t, ": ", rec.failures,
                      " failed requests, failing for up to ", longest.count(),
                      " ms; first: ", rec.first_failure);
    }

    // Every session left was made after the change, so with the new password; the sessions
    // opened with the old password are gone.
    REQUIRE_FALSE(after.empty());
    for (const std::uint64_t id : after) {
        CHECK_MESSAGE(id > id_at_change, "session ", id, " predates the password change (",
                      id_at_change, ")");
        CHECK_MESSAGE(!before.contains(id), "session ", id, " was open before the change");
    }

    // The provider's log: a connect attempt that began after the store had the new password
    // got the old one only from the cache, before the server's refusal dropped it. Such
    // attempts run together, so there are at most max_connecting of them; every later one
    // got the new password.
    const auto fetches = log.records();
    std::size_t stale_after_store = 0;
    std::size_t new_after_change = 0;
    std::size_t old_before_change = 0;
    for (const auto& f : fetches) {
        if (f.at < changed_at) {
            CHECK(f.password == old_password);
            if (f.password == old_password)
                ++old_before_change;
        } else if (f.password == new_password) {
            ++new_after_change;
        } else if (f.at > stored_at) {
            ++stale_after_store;
        }
    }
    MESSAGE(fetches.size(), " connect attempts: ", old_before_change,
            " with the old password before the change, ", new_after_change,
            " with the new one after it, ", stale_after_store,
            " with the old one after the store had the new one");
    CHECK(old_before_change > 0);
    CHECK(new_after_change >= after.size());
    CHECK(stale_after_store <= pool_settings.max_connecting);
    if (stale_after_store > 0)
        CHECK(rejections.load() > 0); // the server refused them and the cache let go
    // Once a new-password attempt happened, no attempt got the old password again.
    const auto first_new = std::ranges::find_if(
        fetches, [&](const fetch_record& f) { return f.password == new_password; });
    REQUIRE(first_new != fetches.end());
    const std::size_t stale_later = static_cast<std::size_t>(
        std::count_if(first_new, fetches.end(),
                      [&](const fetch_record& f) { return f.password == old_password; }));
    CHECK(stale_later <= pool_settings.max_connecting - 1);

    // On the server: the old password no longer opens a session, the new one does.
    connect_options direct = sandbox.options();
    direct.user = user;
    direct.password = old_password;
    {
        connection c;
        error_code ec;
        diagnostics diag;
        c.connect(direct, ec, diag);
        CHECK(ec);
        CHECK(diag.error_class() == error_class::auth);
    }
    direct.password = new_password;
    CHECK(connection(direct).connection_id() > id_at_change);
}
