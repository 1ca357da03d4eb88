// Internal: a server's greeting, read before any login (does it offer TLS?).
#pragma once

#include <cloudmysql/connect_options.hpp>

#include <chrono>
#include <cstdint>

namespace cloudmysql::detail {

/// A TCP connection to the server whose greeting has been read, and nothing sent yet. Owns the
/// socket (non-blocking) and closes it when it goes. Empty when the server could not be reached
/// or did not greet.
class greeted_socket {
public:
    greeted_socket() noexcept = default;
    greeted_socket(int fd, std::uint32_t capabilities) noexcept;
    greeted_socket(greeted_socket&& other) noexcept;
    greeted_socket& operator=(greeted_socket&& other) noexcept;
    ~greeted_socket();

    explicit operator bool() const noexcept { return fd_ >= 0; }
    int fd() const noexcept { return fd_; }
    /// The capability flags of the greeting (CLIENT_SSL is 0x800).
    std::uint32_t capabilities() const noexcept { return capabilities_; }

private:
    int fd_ = -1;
    std::uint32_t capabilities_ = 0;
};

/// Connects to `opts.host`:`opts.port` and reads the greeting, both before `deadline`.
greeted_socket connect_and_greet(const connect_options& opts,
                                 std::chrono::steady_clock::time_point deadline);

/// Waits until `fd` is ready for `events` (poll's POLLIN / POLLOUT), at most until `deadline`.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline);

/// What a server's greeting says of TLS: `unknown` when the server could not be reached or did
/// not greet.
enum class tls_offer { offered, not_offered, unknown };

} // namespace cloudmysql::detail
