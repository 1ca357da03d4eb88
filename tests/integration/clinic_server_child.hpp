// examples/clinic_server as a child process of a test, and clients for it: an HTTP client
// (Boost.Beast) and a plain socket for what an HTTP library would not send.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace cloudmysql::test {

namespace clinic_detail {
namespace asio = boost::asio;
namespace http = boost::beast::http;
} // namespace clinic_detail

inline bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

/// A child process's exit: its code, or -1 when a signal ended it.
inline int exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The environment of this process, without CLOUDMYSQL_URL; with CLOUDMYSQL_URL=`url` if given.
inline std::vector<std::string> environment_with_url(const std::optional<std::string>& url) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e)
        if (!std::string_view(*e).starts_with("CLOUDMYSQL_URL="))
            env.emplace_back(*e);
    if (url)
        env.push_back("CLOUDMYSQL_URL=" + *url);
    return env;
}

/// How a child starts.
struct child_options {
    int stdout_fd = -1; ///< where its stdout goes (-1: ours)
    int stderr_fd = -1; ///< where its stderr goes (-1: ours)
    /// RLIMIT_NOFILE (soft and hard) set in the child before exec, when given.
    std::optional<rlim_t> descriptor_limit;
};

/// Runs `args` with `env` and no other descriptor of ours (the servers must not inherit the
/// test's sockets and keep them open). fork + exec rather than posix_spawn, to set the child's
/// limits; the child calls only async-signal-safe functions before exec.
inline pid_t spawn(std::vector<std::string> args, std::vector<std::string> env,
                   const child_options& how = {}) {
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    const rlimit limit{how.descriptor_limit.value_or(0), how.descriptor_limit.value_or(0)};
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(fmt::format("cannot run {}: fork failed", args[0]));
    if (pid == 0) {
        if (how.stdout_fd >= 0)
            ::dup2(how.stdout_fd, STDOUT_FILENO);
        if (how.stderr_fd >= 0)
            ::dup2(how.stderr_fd, STDERR_FILENO);
        if (how.descriptor_limit && ::setrlimit(RLIMIT_NOFILE, &limit) != 0)
            ::_exit(126);
        ::close_range(3, ~0U, 0);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    return pid;
}

inline int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return exit_code(status);
}

/// A file that a child writes (its stderr) and the test reads at any time; deleted at the end.
class output_file {
public:
    output_file() {
        char path[] = "/tmp/clinic-server-test-XXXXXX";
        fd_ = ::mkstemp(path);
        if (fd_ < 0)
            throw std::runtime_error("mkstemp failed");
        path_ = path;
    }
    output_file(const output_file&) = delete;
    output_file& operator=(const output_file&) = delete;
    ~output_file() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    int fd() const { return fd_; }
    std::string text() const {
        std::ifstream in(path_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    int fd_ = -1;
    std::string path_;
};

/// What a program printed and how it ended.
struct finished_run {
    int code = -1; ///< exit code; -1 for a signal, -2 when it did not end in time (then killed)
    std::string out;
    std::string err;
};

/// Runs clinic_server with `args` (and CLOUDMYSQL_URL=`url` when given) to its end, 60 s at most.
inline finished_run run_clinic_server(const std::optional<std::string>& url,
                                      std::vector<std::string> args) {
    output_file out, err;
    args.insert(args.begin(), CLOUDMYSQL_CLINIC_SERVER);
    const pid_t pid = spawn(args, environment_with_url(url), {out.fd(), err.fd(), {}});
    finished_run r;
    for (int i = 0; i < 600 && r.code == -1; ++i) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            r.code = exit_code(status);
            if (r.code == -1)
                break; // killed by a signal
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    if (r.code == -1 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        wait_for(pid);
        r.code = -2;
    }
    r.out = out.text();
    r.err = err.text();
    return r;
}

/// clinic_server as a child process on a port the system picked (`--port 0`, or `--port=0`
/// with `port_equals_form`). Its stderr goes to a file (errors()). Killed if still running
/// when the guard goes (a failed test).
class web_server {
public:
    web_server(const std::string& database_url, std::vector<std::string> options,
               std::optional<rlim_t> descriptor_limit = std::nullopt,
               bool port_equals_form = false) {
        int fds[2];
        if (::pipe(fds) != 0)
            throw std::runtime_error("pipe failed");
        out_ = fds[0];
        if (port_equals_form)
            options.insert(options.begin(), "--port=0");
        else
            options.insert(options.begin(), {"--port", "0"});
        options.insert(options.begin(), CLOUDMYSQL_CLINIC_SERVER);
        pid_ = spawn(std::move(options), environment_with_url(database_url),
                     {fds[1], err_.fd(), descriptor_limit});
        ::close(fds[1]);

        // The first line: "listening on http://127.0.0.1:PORT/".
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!contains(line, "\n") && std::chrono::steady_clock::now() < deadline) {
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0)
                continue;
            char chunk[256];
            const auto n = ::read(out_, chunk, sizeof chunk);
            if (n <= 0)
                break; // it exited
            line.append(chunk, static_cast<std::size_t>(n));
        }
        static const std::regex listening(R"(^listening on http://127\.0\.0\.1:(\d+)/\n)");
        std::smatch m;
        if (!std::regex_search(line, m, listening))
            throw std::runtime_error("clinic_server did not say where it listens; it printed: " +
                                     line + "; and on stderr: " + err_.text());
        port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
    }
    web_server(const web_server&) = delete;
    web_server& operator=(const web_server&) = delete;
    ~web_server() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            wait_for(pid_);
        }
        ::close(out_);
    }

    std::uint16_t port() const { return port_; }
    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
    /// What it wrote on stderr so far.
    std::string errors() const { return err_.text(); }

    /// Sends `signal` and waits (bounded) for the exit; the exit code, or nothing on a hang.
    std::optional<int> stop(int signal) {
        ::kill(pid_, signal);
        for (int i = 0; i < 600; ++i) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return exit_code(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return std::nullopt;
    }

private:
    output_file err_;
    pid_t pid_ = -1;
    int out_ = -1;
    std::uint16_t port_ = 0;
};

struct reply {
    unsigned status = 0;
    std::string content_type;
    std::string retry_after;
    std::string body;
};

/// One HTTP/1.1 request on a connection of its own; throws when no answer comes (60 s at most).
inline reply request(std::uint16_t port, const std::string& target,
                     clinic_detail::http::verb verb = clinic_detail::http::verb::get) {
    namespace asio = clinic_detail::asio;
    namespace http = clinic_detail::http;
    asio::io_context io;
    reply out;
    std::exception_ptr failure;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            boost::beast::tcp_stream stream(co_await asio::this_coro::executor);
            stream.expires_after(std::chrono::seconds(60)); // against a hang
            co_await stream.async_connect({asio::ip::address_v4::loopback(), port},
                                          asio::use_awaitable);
            http::request<http::empty_body> req(verb, target, 11);
            req.set(http::field::host, "127.0.0.1");
            req.keep_alive(false);
            co_await http::async_write(stream, req, asio::use_awaitable);
            boost::beast::flat_buffer buffer;
            http::response<http::string_body> res;
            co_await http::async_read(stream, buffer, res, asio::use_awaitable);
            out.status = res.result_int();
            out.content_type = std::string(res[http::field::content_type]);
            out.retry_after = std::string(res[http::field::retry_after]);
            out.body = std::move(res.body());
        },
        [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure)
        std::rethrow_exception(failure);
    return out;
}

/// Asks for `target` until the status is `wanted` (up to `tries` times, 200 ms apart; a request
/// that gets no answer counts as a try).
inline reply request_until(std::uint16_t port, const std::string& target, unsigned wanted,
                           int tries = 150) {
    reply r;
    for (int i = 0; i < tries; ++i) {
        try {
            r = request(port, target);
        } catch (const std::exception& e) {
            r = {0, "", "", e.what()};
        }
        if (r.status == wanted)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return r;
}

/// A client on a plain TCP socket to 127.0.0.1, for what an HTTP library would not send.
class raw_client {
public:
    explicit raw_client(std::uint16_t port)
            : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        if (fd_ < 0)
            throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
            const int e = errno;
            ::close(fd_);
            throw std::runtime_error(fmt::format("connect: {}", std::strerror(e)));
        }
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;
    raw_client(raw_client&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    raw_client& operator=(raw_client&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    ~raw_client() {
        if (fd_ >= 0)
            ::close(fd_);
    }

    /// Sends all of `bytes`; false when the connection refuses them (the server closed it).
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// What the server sent, read until it closes the connection (end of file or reset) or
    /// `limit` passes; `closed` says which.
    struct outcome {
        std::string data;
        bool closed = false;
    };
    outcome read_until_closed(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
        outcome out;
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            if (left.count() < 0 || ::poll(&p, 1, static_cast<int>(left.count())) < 0)
                return out;
            if (p.revents == 0)
                continue; // the deadline is checked above
            char chunk[4096];
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) {
                out.closed = n == 0 || errno == ECONNRESET || errno == EPIPE;
                return out;
            }
            out.data.append(chunk, static_cast<std::size_t>(n));
        }
    }

    /// What the server has sent so far, without waiting.
    std::string available() {
        std::string out;
        char chunk[4096];
        for (;;) {
            const auto n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
            if (n <= 0)
                return out;
            out.append(chunk, static_cast<std::size_t>(n));
        }
    }

private:
    int fd_ = -1;
};

} // namespace cloudmysql::test
