// Credential providers: the token cache (with a fake wall clock), the command provider with real
// child processes, deadlines of callers and of commands.
#include <cloudmysql/credentials.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT(readability-redundant-declaration)

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

// ---- commands with deadlines, callers with deadlines ------------------------------------------

namespace {

using steady = std::chrono::steady_clock;

// A directory of the test's own, removed at the end.
struct scratch_dir {
    std::filesystem::path path;
    scratch_dir() {
        std::string name = (std::filesystem::temp_directory_path() / "cloudmysql-cred-XXXXXX");
        REQUIRE(::mkdtemp(name.data()) != nullptr);
        path = name;
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int line_count(const std::string& path) {
    const std::string text = read_text(path);
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The pid a command wrote to `path`, waiting for it a bounded time.
pid_t pid_in(const std::string& path) {
    for (int i = 0; i < 500; ++i) {
        const std::string text = read_text(path);
        if (!text.empty() && text.back() == '\n')
            return static_cast<pid_t>(std::stol(text));
        std::this_thread::sleep_for(10ms);
    }
    FAIL("no pid in ", path);
    return 0;
}

// True while the process exists and is not a zombie (the sandbox's init may not reap orphans).
bool running(pid_t pid) {
    const std::string stat = read_text(fmt::format("/proc/{}/stat", pid));
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size())
        return false;
    const char state = stat[paren + 2];
    return state != 'Z' && state != 'X';
}

// Waits a bounded time for the process to be gone; true when it is.
bool ends(pid_t pid) {
    for (int i = 0; i < 250 && running(pid); ++i)
        std::this_thread::sleep_for(20ms);
    return !running(pid);
}

std::size_t open_descriptors() {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                      std::filesystem::directory_iterator()));
}

// No child of this process is left to reap, nor running.
bool no_children() {
    return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

cloudmysql::command_token_options with_timeout(std::chrono::milliseconds timeout) {
    cloudmysql::command_token_options o;
    o.timeout = timeout;
    return o;
}

std::string message_of(const credential_provider& p, steady::time_point deadline) {
    try {
        p(deadline);
    } catch (const std::exception& e) {
        return e.what();
    }
    FAIL("the provider was expected to fail");
    return {};
}

} // namespace

TEST_CASE("a command past its timeout is killed with everything it started, and the fetch says "
          "so") {
    scratch_dir dir;
    const std::size_t descriptors = open_descriptors();
    const auto p = cloudmysql::command_token_provider(
        "hung-cli",
        fmt::format("echo $$ > {}; sleep 30 & echo $! > {}; echo 'still signing in' >&2; sleep 30",
                    dir.file("shell"), dir.file("child")),
        with_timeout(500ms));
    CHECK_THROWS_WITH_AS(p(),
                         "its command did not finish within 0.5 s and was killed; its standard "
                         "error ended with: still signing in",
                         std::runtime_error);
    const pid_t shell = pid_in(dir.file("shell"));
    const pid_t child = pid_in(dir.file("child"));
    CHECK(ends(shell));
    CHECK(ends(child)); // the whole process group, not just the shell
    CHECK(no_children());
    CHECK(open_descriptors() == descriptors);
}

TEST_CASE("a command that exits while a process it started holds its output open is done") {
    scratch_dir dir;
    // The background sleep inherits standard output: waiting for the end of the output would
    // wait for it. The command's timeout (10 s) would then fail the fetch.
    const auto p = cloudmysql::command_token_provider(
        "background", fmt::format("sleep 30 & echo $! > {}; echo tok", dir.file("child")),
        with_timeout(10s));
    CHECK(p() == "tok");
    CHECK(ends(pid_in(dir.file("child")))); // what it left behind is ended too
    CHECK(no_children());
}

TEST_CASE("a failing command's last line on standard error is in the message, never a token") {
    const auto p = cloudmysql::command_token_provider(
        "azure-entra", "echo 'WARNING: something' >&2; "
                       "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1");
    CHECK_THROWS_WITH_AS(p(),
                         "its command exited with status 1; its standard error ended with: "
                         "ERROR: Please run 'az login' to setup account.",
                         std::runtime_error);
    // A command that prints its token and then repeats it on standard error as it fails.
    const auto repeats = cloudmysql::command_token_provider(
        "repeats", "echo eyJ0eXAi.s3cret; echo 'refused eyJ0eXAi.s3cret' >&2; exit 2");
    try {
        repeats();
        FAIL("a command that exits with status 2 must fail");
    } catch (const std::runtime_error& e) {
        const std::string text = e.what();
        CHECK(text.find("s3cret") == std::string::npos);
        CHECK(text.find("exited with status 2") != std::string::npos);
        CHECK(text.find("standard error is not shown") != std::string::npos);
    }
    // Control characters (colours, a carriage return) are blanked; a long line is cut.
    const auto noisy = cloudmysql::command_token_provider(
        "noisy", "printf '\\033[31mfailed\\r%0300d\\n' 0 >&2; exit 4");
    const std::string text = message_of(noisy, steady::time_point::max());
    CHECK(text.find('\033') == std::string::npos);
    CHECK(text.find('\r') == std::string::npos);
    CHECK(text.find("[31mfailed") != std::string::npos);
    CHECK(text.size() < 300);
    CHECK(text.substr(text.size() - 3) == "...");
}

TEST_CASE("the command sees no descriptor of the program but its standard streams") {
    // A descriptor without close-on-exec, as libmariadb's sockets are.
    const int fd = ::open("/dev/null", O_RDONLY); // NOLINT(android-cloexec-open)
    REQUIRE(fd >= 3);
    const auto p = cloudmysql::command_token_provider(
        "descriptors",
        fmt::format("if [ -e /proc/$$/fd/{} ]; then echo leaked; else echo clean; fi", fd));
    CHECK(p() == "clean");
    ::close(fd);
}

TEST_CASE("a caller gives up at its deadline while the command goes on and fills the cache") {
    scratch_dir dir;
    const auto p = cloudmysql::command_token_provider(
        "slow-cli", fmt::format("echo run >> {}; sleep 2; echo late-token", dir.file("runs")),
        with_timeout(20s));
    // A connect with 0.3 s left: it gets a timeout that says the fetch goes on.
    try {
        p(steady::now() + 300ms);
        FAIL("the token cannot have arrived within 0.3 s");
    } catch (const cloudmysql::credential_timeout& e) {
        const std::string text = e.what();
        CAPTURE(text);
        CHECK(text.find("its command has run for") != std::string::npos);
        CHECK(text.find("goes on (it is killed if it runs longer than 20 s)") != std::string::npos);
        CHECK(text.find("a later connect uses its token once it arrives") != std::string::npos);
    }
    // A deadline already past: no wait at all, same answer.
    CHECK_THROWS_AS(p(steady::now()), cloudmysql::credential_timeout);
    // The next caller gets the token of the same run.
    CHECK(p() == "late-token");
    CHECK(p(steady::now()) == "late-token"); // cached: no deadline can be missed
    CHECK(line_count(dir.file("runs")) == 1);
    CHECK(no_children());
}

TEST_CASE("callers that need a token together start one command") {
    scratch_dir dir;
    const auto p = cloudmysql::command_token_provider(
        "shared", fmt::format("echo run >> {}; sleep 1; echo tok", dir.file("runs")));
    std::vector<std::thread> threads;
    std::atomic<int> right = 0;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            if (p(steady::now() + 30s) == "tok")
                ++right;
        });
    for (auto& t : threads)
        t.join();
    CHECK(right == 8);
    CHECK(line_count(dir.file("runs")) == 1);
}

TEST_CASE("no lock is held while a command runs") {
    scratch_dir dir;
    const auto hung = cloudmysql::command_token_provider(
        "hung", fmt::format("echo run >> {}; sleep 30", dir.file("runs")), with_timeout(2s));
    std::promise<std::string> first;
    std::thread caller([&] {
        try {
            hung();
            first.set_value("returned");
        } catch (const std::exception& e) {
            first.set_value(e.what());
        }
    });
    // Wait (bounded) until the command runs.
    for (int i = 0; i < 250 && line_count(dir.file("runs")) == 0; ++i)
        std::this_thread::sleep_for(10ms);
    REQUIRE(line_count(dir.file("runs")) == 1);

    // Another provider is not held up, nor is a refusal, nor a caller's own deadline.
    const auto other = cloudmysql::command_token_provider("other", "echo other-token");
    CHECK(other(steady::now() + 10s) == "other-token");
    hung.rejected();
    CHECK_THROWS_AS(hung(steady::now() + 100ms), cloudmysql::credential_timeout);

    caller.join();
    CHECK(first.get_future().get() == "its command did not finish within 2 s and was killed");
    // The next caller starts a new run, and when it gives up it hears how the last one ended.
    const std::string text = message_of(hung, steady::now() + 100ms);
    CHECK(text.find("the fetch before it failed: its command did not finish within 2 s and was "
                    "killed") != std::string::npos);
    CHECK_THROWS_WITH(hung(), "its command did not finish within 2 s and was killed");
    CHECK(line_count(dir.file("runs")) == 2);
    CHECK(no_children());
}

TEST_CASE("a fetch that outlives its caller: it fills the cache, or its error goes to whoever "
          "still waits") {
    using namespace std::chrono;
    std::mutex mutex;
    std::condition_variable cv;
    bool release = false;
    std::atomic<int> calls = 0;
    wall_clock::time_point now = wall_clock::now();
    token_cache_options options;
    options.now = [&] {
        const std::lock_guard lock(mutex);
        return now;
    };
    const auto wait_for_release = [&] {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return release; });
        release = false;
    };
    const auto let_go = [&] {
        {
            const std::lock_guard lock(mutex);
            release = true;
        }
        cv.notify_all();
    };
    const credential_provider p = cloudmysql::cached_token_provider(
        "slow-endpoint",
        [&]() -> access_token {
            const int n = ++calls;
            wait_for_release();
            if (n == 1)
                throw std::runtime_error("endpoint said 503");
            return {"token-" + std::to_string(n), options.now() + 3600s};
        },
        options);

    // The caller gives up; the fetch fails later with nobody waiting; the next caller starts
    // a new fetch, and its own timeout says what the last one said.
    CHECK_THROWS_AS(p(steady::now() + 50ms), cloudmysql::credential_timeout);
    let_go();
    std::string text;
    for (int i = 0; i < 500 && calls < 2; ++i)
        text = message_of(p, steady::now() + 10ms);
    CAPTURE(text);
    CHECK(text.find("its fetch has run for") != std::string::npos);
    CHECK(text.find("the fetch before it failed: endpoint said 503") != std::string::npos);
    CHECK(calls == 2);
    let_go();
    CHECK(p() == "token-2");

    // A refresh that is late: the old token, still unexpired, serves the caller meanwhile.
    {
        const std::lock_guard lock(mutex);
        now += 3400s; // 200 s left: inside refresh_before (300 s)
    }
    CHECK(p(steady::now() + 50ms) == "token-2");
    let_go();
    CHECK(p() == "token-3");
    CHECK(calls == 3);
}

TEST_CASE("a provider can take the caller's deadline") {
    const credential_provider timed = [](steady::time_point deadline) {
        return std::string(deadline == steady::time_point::max() ? "no deadline" : "deadline");
    };
    CHECK(timed.name() == "credentials");
    CHECK(timed() == "no deadline");
    CHECK(timed(steady::now() + 1s) == "deadline");
    const credential_provider named("named",
                                    credential_provider::timed_fetch_function(
                                        [](steady::time_point) { return std::string("pw"); }));
    CHECK(named(steady::now()) == "pw");
    // A plain function ignores the deadline.
    const credential_provider plain("plain", [] { return std::string("pw"); });
    CHECK(plain(steady::now()) == "pw");
}

TEST_CASE("command_token_provider's timeout has limits") {
    CHECK_THROWS_AS(cloudmysql::command_token_provider("short", "echo x", with_timeout(50ms)),
                    std::invalid_argument);
    CHECK_THROWS_AS(cloudmysql::command_token_provider("long", "echo x", with_timeout(2h)),
                    std::invalid_argument);
    CHECK(cloudmysql::command_token_options{}.timeout == 20s);
}

TEST_CASE("at program exit, a command still running is killed") {
    scratch_dir dir;
    const std::string pid_file = dir.file("pid");
    std::string helper = CLOUDMYSQL_COMMAND_EXIT_HELPER;
    char* argv[] = {helper.data(), const_cast<char*>(pid_file.c_str()), nullptr};
    pid_t pid = 0;
    REQUIRE(::posix_spawn(&pid, helper.c_str(), nullptr, nullptr, argv, environ) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(ends(pid_in(pid_file)));
}
