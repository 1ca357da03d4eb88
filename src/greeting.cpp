// Reads a MySQL server's greeting (does it offer TLS?) without logging in.
#include "greeting.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cloudmysql::detail {

namespace {

class socket_guard {
public:
    explicit socket_guard(int fd) noexcept : fd_(fd) {}
    socket_guard(const socket_guard&) = delete;
    socket_guard& operator=(const socket_guard&) = delete;
    ~socket_guard() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

using steady = std::chrono::steady_clock;

int remaining_ms(steady::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A non-blocking connect to one address, finished within the deadline.
int connect_to(const addrinfo& ai, steady::time_point deadline) {
    const int fd =
        ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
    if (fd < 0)
        return -1;
    socket_guard guard(fd);
    if (::connect(fd, ai.ai_addr, ai.ai_addrlen) != 0) {
        if (errno != EINPROGRESS || !wait_for(fd, POLLOUT, deadline))
            return -1;
        int error = 0;
        socklen_t size = sizeof error;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0 || error != 0)
            return -1;
    }
    return guard.release();
}

bool read_exactly(int fd, unsigned char* out, std::size_t size, steady::time_point deadline) {
    std::size_t got = 0;
    while (got < size) {
        if (!wait_for(fd, POLLIN, deadline))
            return false;
        const ssize_t n = ::recv(fd, out + got, size - got, 0);
        if (n <= 0)
            return false;
        got += static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

greeted_socket::greeted_socket(int fd, std::uint32_t capabilities) noexcept
        : fd_(fd), capabilities_(capabilities) {
}

greeted_socket::greeted_socket(greeted_socket&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), capabilities_(other.capabilities_) {
}

greeted_socket& greeted_socket::operator=(greeted_socket&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        capabilities_ = other.capabilities_;
    }
    return *this;
}

greeted_socket::~greeted_socket() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool wait_for(int fd, short events, steady::time_point deadline) {
    pollfd p{fd, events, 0};
    int rc = 0;
    do {
        rc = ::poll(&p, 1, remaining_ms(deadline));
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

greeted_socket connect_and_greet(const connect_options& opts, steady::time_point deadline) {
    if (!opts.unix_socket.empty())
        return {};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(opts.port);
    if (::getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &found) != 0)
        return {};
    int fd = -1;
    for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next)
        fd = connect_to(*ai, deadline);
    ::freeaddrinfo(found);
    if (fd < 0)
        return {};
    socket_guard guard(fd);

    // Packet header: 3 bytes of length, 1 of sequence. Then the greeting (protocol 10):
    // version byte, server version (NUL-terminated), thread id (4), scramble part (8),
    // filler (1), capability flags, low 16 bits.
    unsigned char header[4];
    if (!read_exactly(fd, header, sizeof header, deadline))
        return {};
    const std::size_t length =
        std::size_t{header[0]} | (std::size_t{header[1]} << 8U) | (std::size_t{header[2]} << 16U);
    if (length == 0 || length > 4096)
        return {};
    std::string body(length, '\0');
    if (!read_exactly(fd, reinterpret_cast<unsigned char*>(body.data()), length, deadline))
        return {};
    if (static_cast<unsigned char>(body[0]) != 10)
        return {}; // an error packet (e.g. too many connections) or not MySQL
    const std::size_t version_end = body.find('\0', 1);
    const std::size_t flags_at = version_end + 1 + 4 + 8 + 1;
    if (version_end == std::string::npos || flags_at + 2 > body.size())
        return {};
    const auto byte = [&body](std::size_t i) {
        return std::uint32_t{static_cast<unsigned char>(body[i])};
    };
    const std::uint32_t flags = byte(flags_at) | (byte(flags_at + 1) << 8U);
    return {guard.release(), flags};
}

} // namespace cloudmysql::detail
