// A MariaDB of a test's own, for tests that stop and restart their server: the shared
// sandbox must stay up for the other tests.
#pragma once

#include "test_server.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace cloudmysql::test {

/// Starts a sandbox with scripts/mariadb-sandbox (the path in CLOUDMYSQL_SANDBOX_SCRIPT) in the
/// directory named by the environment variable `dir_variable` (ctest sets both), and stops and
/// deletes it when the guard goes, also when the test fails.
class own_sandbox {
public:
    /// `start_args` go to `mariadb-sandbox start` after the directory (e.g. "--no-tls").
    explicit own_sandbox(const char* dir_variable,
                         const std::vector<std::string>& start_args = {}) {
        const char* script = std::getenv("CLOUDMYSQL_SANDBOX_SCRIPT");
        const char* dir = std::getenv(dir_variable);
        if (script == nullptr || dir == nullptr)
            throw std::runtime_error(std::string("CLOUDMYSQL_SANDBOX_SCRIPT and ") + dir_variable +
                                     " are not set: run the test through ctest");
        script_ = script;
        dir_ = dir;
        std::vector<std::string> args{"start", dir_, "--ttl", "900"};
        args.insert(args.end(), start_args.begin(), start_args.end());
        if (run(args) != 0)
            throw std::runtime_error("could not start the sandbox in " + dir_);
        started_ = true;
    }
    own_sandbox(const own_sandbox&) = delete;
    own_sandbox& operator=(const own_sandbox&) = delete;
    ~own_sandbox() {
        if (frozen_)
            thaw_server(); // a stopped process would not hear the stop
        if (started_ && run({"stop", dir_}) != 0)
            MESSAGE("could not stop the sandbox in ", dir_);
    }

    std::string url() const { return read_first_line(dir_ + "/url"); }
    connect_options options() const { return connect_options::from_url(url()); }
    /// Root over TCP (TLS like the app user's URL), for what the app user may not do.
    connect_options root_options() const {
        return connect_options::from_url(read_first_line(dir_ + "/root-url"));
    }
    /// The sandbox's directory (TLS material in tls/, the port in port).
    const std::string& dir() const { return dir_; }

    /// Stops mariadbd (SIGTERM) and waits until it has exited (30 s at most); the data stays.
    void stop_server() {
        const pid_t pid = server_pid();
        REQUIRE(::kill(pid, SIGTERM) == 0);
        bool gone = false;
        for (int i = 0; i < 600 && !gone; ++i) {
            gone = !alive(pid);
            if (!gone)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        REQUIRE_MESSAGE(gone, "mariadbd ", pid, " did not exit after SIGTERM");
    }

    /// Starts the same server again: same port, data and passwords.
    void restart_server() { REQUIRE(run({"restart", dir_}) == 0); }

    /// Freezes mariadbd (SIGSTOP): its sockets stay open and the kernel still accepts
    /// connections and acknowledges what is sent, but nothing answers, as with a server that
    /// hangs or a path that drops everything after the handshake.
    void freeze_server() {
        REQUIRE(::kill(server_pid(), SIGSTOP) == 0);
        frozen_ = true;
    }
    /// Lets a frozen server go on (SIGCONT).
    void thaw_server() {
        ::kill(server_pid(), SIGCONT);
        frozen_ = false;
    }

private:
    pid_t server_pid() const { return std::stoi(read_first_line(dir_ + "/mysqld.pid")); }

    // The server is not our child (the script detaches it), so no waitpid: a zombie counts
    // as gone.
    static bool alive(pid_t pid) {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (!std::getline(stat, line))
            return false;
        const auto close = line.rfind(')');
        return close == std::string::npos || close + 2 >= line.size() ||
               (line[close + 2] != 'Z' && line[close + 2] != 'X');
    }

    // posix_spawn rather than system(): the server the script starts must not inherit this
    // process's sockets (a pool's connections) and keep them open.
    int run(std::vector<std::string> args) const {
        args.insert(args.begin(), script_);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addclosefrom_np(&actions, 3);
        pid_t pid = 0;
        const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0)
            return -1;
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

    std::string script_;
    std::string dir_;
    bool started_ = false;
    bool frozen_ = false;
};

} // namespace cloudmysql::test
