// Credential providers: the token cache (with a fake wall clock) and the command provider.
#include <cloudmysql/credentials.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using cloudmysql::access_token;
using cloudmysql::credential_provider;
using cloudmysql::token_cache_options;
using namespace std::chrono_literals;
using wall_clock = std::chrono::system_clock;

namespace {

// A token source that counts its calls and hands out "token-1", "token-2", ..., each valid for
// `lifetime` from the fake clock's now.
struct token_source {
    wall_clock::time_point now = wall_clock::time_point(std::chrono::hours(24 * 365 * 50));
    std::chrono::seconds lifetime = 3600s;
    std::atomic<int> calls = 0;

    credential_provider provider(std::chrono::seconds refresh_before = 300s) {
        token_cache_options options;
        options.refresh_before = refresh_before;
        options.now = [this] { return now; };
        return cloudmysql::cached_token_provider(
            "test-iam",
            [this] {
                const int n = ++calls;
                return access_token{"token-" + std::to_string(n), now + lifetime};
            },
            options);
    }
};

} // namespace

TEST_CASE("a cached token is reused until refresh_before its expiry, then fetched anew") {
    token_source source;
    const credential_provider p = source.provider(300s);
    CHECK(p.name() == "test-iam");
    CHECK(p() == "token-1");
    source.now += 3000s; // 600 s left: still good
    CHECK(p() == "token-1");
    source.now += 299s; // 301 s left
    CHECK(p() == "token-1");
    source.now += 1s; // exactly 300 s left: refresh
    CHECK(p() == "token-2");
    CHECK(source.calls == 2);

    // Copies share one cache.
    const credential_provider copy = p;
    CHECK(copy() == "token-2");
    CHECK(source.calls == 2);
}

TEST_CASE("a token the server refused is dropped, and the next connect fetches a new one") {
    token_source source;
    const credential_provider p = source.provider();
    CHECK(p() == "token-1");
    p.rejected();
    CHECK(p() == "token-2");
    CHECK(p() == "token-2");
}

TEST_CASE("connections opened together wait for one fetch") {
    token_source source;
    const credential_provider p = source.provider();
    std::vector<std::thread> threads;
    std::atomic<int> wrong = 0;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            if (p() != "token-1")
                ++wrong;
        });
    for (auto& t : threads)
        t.join();
    CHECK(wrong == 0);
    CHECK(source.calls == 1);
}

TEST_CASE("a failing or empty fetch is an error, and the next call tries again") {
    int calls = 0;
    const credential_provider p = cloudmysql::cached_token_provider("flaky", [&] {
        if (++calls == 1)
            throw std::runtime_error("token endpoint down");
        if (calls == 2)
            return access_token{"", wall_clock::now() + 1h};
        return access_token{"good", wall_clock::now() + 1h};
    });
    CHECK_THROWS_WITH_AS(p(), "token endpoint down", std::runtime_error);
    CHECK_THROWS_WITH_AS(p(), "it returned an empty token", std::runtime_error);
    CHECK(p() == "good");
    CHECK(p() == "good");
    CHECK(calls == 3);
}

TEST_CASE("a plain lambda is a provider named \"credentials\"") {
    const credential_provider p = [] { return std::string("pw"); };
    CHECK(static_cast<bool>(p));
    CHECK(p.name() == "credentials");
    CHECK(p() == "pw");
    p.rejected(); // nothing to drop: no effect
    CHECK_FALSE(static_cast<bool>(credential_provider{}));
}

TEST_CASE("command_token_provider reads a token and an optional expiry from a command") {
    SUBCASE("token and expiry") {
        // Expires in 2100: cached.
        const auto p =
            cloudmysql::command_token_provider("echo", "printf 'eyJ.abc.def\\t4102444800\\n'");
        CHECK(p() == "eyJ.abc.def");
        CHECK(p.name() == "echo");
    }
    SUBCASE("token only: it lives for `lifetime`; an expired one is fetched again") {
        token_cache_options options;
        wall_clock::time_point now = wall_clock::now();
        options.now = [&] { return now; };
        const auto p =
            cloudmysql::command_token_provider("counter", "echo tok-$(date +%s%N)", 600s, options);
        const std::string first = p();
        CHECK(first.rfind("tok-", 0) == 0);
        now += 200s;
        CHECK(p() == first);
        now += 100s; // 300 s left
        CHECK(p() != first);
    }
    SUBCASE("a command that fails says how") {
        const auto p = cloudmysql::command_token_provider("bad", "exit 3");
        CHECK_THROWS_WITH_AS(p(), "its command exited with status 3", std::runtime_error);
        const auto missing =
            cloudmysql::command_token_provider("missing", "no-such-command-cloudmysql 2>/dev/null");
        CHECK_THROWS_WITH_AS(missing(), "its command exited with status 127 (command not found)",
                             std::runtime_error);
        const auto silent = cloudmysql::command_token_provider("silent", "true");
        CHECK_THROWS_WITH_AS(silent(), "its command printed no token", std::runtime_error);
        const auto garbled = cloudmysql::command_token_provider("garbled", "echo tok soon");
        CHECK_THROWS_WITH_AS(garbled(),
                             "its command's second word (4 characters) is not an expiry in "
                             "seconds since the epoch: print the token, then optionally the "
                             "expiry",
                             std::runtime_error);
        // "Bearer TOKEN": the second word is the token, and no message may show it.
        const auto bearer =
            cloudmysql::command_token_provider("bearer", "echo Bearer s3cret-token-value");
        try {
            bearer();
            FAIL("a second word that is not an expiry must fail");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find("s3cret-token-value") == std::string::npos);
        }
    }
    CHECK_THROWS_AS(cloudmysql::command_token_provider("empty", ""), std::invalid_argument);
    CHECK_THROWS_AS(cloudmysql::command_token_provider("zero", "echo x", 0s),
                    std::invalid_argument);
}
