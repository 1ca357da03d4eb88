// Where the integration tests find their servers, and a scratch database per test.
#pragma once

#include <cloudmysql/connect_options.hpp>
#include <cloudmysql/connection.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>

namespace cloudmysql::test {

inline std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line))
        throw std::runtime_error(fmt::format(
            "cannot read {}: run the tests through ctest, which starts the sandbox, or set "
            "CLOUDMYSQL_TEST_URL",
            path));
    return line;
}

/// The directory of the TLS sandbox, or empty when CLOUDMYSQL_TEST_URL names another server.
inline std::string sandbox_dir() {
    if (const char* url = std::getenv("CLOUDMYSQL_TEST_URL"); url && *url)
        return {};
    const char* dir = std::getenv("CLOUDMYSQL_SANDBOX_DIR");
    return dir ? dir : "";
}

/// The server under test: CLOUDMYSQL_TEST_URL when set, else the sandbox ctest started.
inline connect_options server_options() {
    if (auto env = connect_options::from_env("CLOUDMYSQL_TEST_URL"))
        return *env;
    const std::string dir = sandbox_dir();
    if (dir.empty())
        throw std::runtime_error("neither CLOUDMYSQL_TEST_URL nor CLOUDMYSQL_SANDBOX_DIR is set");
    return connect_options::from_url(read_first_line(dir + "/url"));
}

/// Root on the server under test, for what the app user may not do (KILL other sessions, read
/// every session in PROCESSLIST): CLOUDMYSQL_TEST_ROOT_URL when set, else the sandbox's root.
inline connect_options root_options() {
    if (auto env = connect_options::from_env("CLOUDMYSQL_TEST_ROOT_URL"))
        return *env;
    const std::string dir = sandbox_dir();
    if (dir.empty())
        throw std::runtime_error(
            "this test needs root: set CLOUDMYSQL_TEST_ROOT_URL along with CLOUDMYSQL_TEST_URL");
    return connect_options::from_url(read_first_line(dir + "/root-url"));
}

/// The sandbox that runs without TLS (always started by ctest).
inline connect_options plain_server_options() {
    const char* dir = std::getenv("CLOUDMYSQL_PLAIN_SANDBOX_DIR");
    if (dir == nullptr)
        throw std::runtime_error("CLOUDMYSQL_PLAIN_SANDBOX_DIR is not set: run through ctest");
    return connect_options::from_url(read_first_line(std::string(dir) + "/url"));
}

/// A database of its own for one test, dropped at the end of the test.
class scratch_database {
public:
    scratch_database() : options_(server_options()) {
        static std::atomic<int> counter{0};
        name_ = fmt::format("cm_test_{}_{}", ::getpid(), counter++);
        connection admin(options_);
        admin.query(fmt::format("DROP DATABASE IF EXISTS `{}`", name_));
        admin.query(fmt::format("CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE "
                                "utf8mb4_unicode_ci",
                                name_));
        options_.database = name_;
    }
    scratch_database(const scratch_database&) = delete;
    scratch_database& operator=(const scratch_database&) = delete;
    ~scratch_database() {
        try {
            auto opts = options_;
            opts.database.clear();
            connection admin(opts);
            admin.query(fmt::format("DROP DATABASE IF EXISTS `{}`", name_));
        } catch (const std::exception& e) {
            MESSAGE("could not drop ", name_, ": ", e.what());
        }
    }

    const connect_options& options() const { return options_; }
    const std::string& name() const { return name_; }

private:
    connect_options options_;
    std::string name_;
};

/// Whether `text` contains `part` (for checking what messages say).
inline bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

/// Connects with the error_code form; returns the error and the diagnostics.
inline std::pair<error_code, diagnostics> try_connect(const connect_options& opts) {
    connection conn;
    error_code ec;
    diagnostics diag;
    conn.connect(opts, ec, diag);
    CHECK(conn.is_open() == !ec);
    return {ec, diag};
}

} // namespace cloudmysql::test
