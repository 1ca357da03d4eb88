#include "clinic_server/connections.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace clinic_server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

auto awaitable_with(beast::error_code& ec) {
    return asio::redirect_error(asio::use_awaitable, ec);
}

// Counts while it lives: a request in flight.
class counted {
public:
    explicit counted(std::atomic<int>& n) : n_(n) { ++n_; }
    counted(const counted&) = delete;
    counted& operator=(const counted&) = delete;
    ~counted() { --n_; }

private:
    std::atomic<int>& n_;
};

// After a refusal the client may still be sending what was never read; reading it for a moment
// (up to 2 s and 64 KiB) before closing lets the answer arrive rather than a reset.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    char sink[4096];
    stream.expires_after(2s);
    for (std::size_t total = 0; !ec && total < 65536;)
        total += co_await stream.async_read_some(asio::buffer(sink), awaitable_with(ec));
}

// One client connection: requests in turn (HTTP/1.1 keep-alive), on a strand of its own. The
// accept loop counted it in s.open.
asio::awaitable<void> serve(server& s, tcp::socket socket) {
    struct leaving {
        std::atomic<std::size_t>& open;
        ~leaving() { --open; }
    } const counted_open{s.open};
    const connection_settings& cfg = s.settings;
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool refused = false;
    for (;;) {
        beast::error_code ec;
        if (buffer.size() == 0) { // between requests: the keep-alive idle timeout
            stream.expires_after(cfg.idle_timeout);
            const std::size_t n =
                co_await stream.async_read_some(buffer.prepare(1024), awaitable_with(ec));
            if (ec)
                break;
            buffer.commit(n);
        }
        request_parser parser; // from the first byte: the header deadline, then the body's
        apply(cfg.limits, parser);
        stream.expires_after(cfg.header_timeout);
        co_await http::async_read_header(stream, buffer, parser, awaitable_with(ec));
        if (!ec && !parser.is_done()) {
            stream.expires_after(cfg.body_timeout);
            co_await http::async_read(stream, buffer, parser, awaitable_with(ec));
        }
        if (ec) {
            auto answer = refusal(ec, cfg.limits);
            if (!answer)
                break; // the client closed, a deadline passed or the connection failed
            finish(*answer, false);
            stream.expires_after(cfg.write_timeout);
            co_await http::async_write(stream, *answer, awaitable_with(ec));
            refused = !ec;
            break;
        }
        const counted in_flight(s.in_flight);
        response res = co_await respond(s.db, parser.get());
        finish(res, parser.get().keep_alive() && !s.stopping);
        stream.expires_after(cfg.write_timeout);
        co_await http::async_write(stream, res, awaitable_with(ec));
        if (ec || !res.keep_alive())
            break;
    }
    if (refused)
        co_await linger(stream);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// Tells a client at once that it came at a bad time, waiting for nothing: what it already sent
// is read (so that the close ends the connection rather than resetting it), the 503 goes into
// the socket's empty send buffer, and the caller closes `fd`.
void turn_away(int fd, std::string_view busy) {
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    [[maybe_unused]] const auto sent =
        ::send(fd, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// A descriptor kept open on /dev/null, given up when accepting fails for want of descriptors:
// then clients waiting in the listen backlog can still be accepted, told 503 and closed,
// instead of waiting there for an answer that does not come.
class spare_descriptor {
public:
    spare_descriptor() : fd_(open_one()) {}
    spare_descriptor(const spare_descriptor&) = delete;
    spare_descriptor& operator=(const spare_descriptor&) = delete;
    ~spare_descriptor() {
        if (fd_ >= 0)
            ::close(fd_);
    }

    // Turns away up to 64 clients waiting on `listener` (non-blocking), with the spare.
    void turn_away_waiting(int listener, std::string_view busy) {
        if (fd_ >= 0)
            ::close(fd_);
        for (int i = 0; i < 64; ++i) {
            const int client = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (client < 0)
                break;
            turn_away(client, busy);
            ::close(client);
        }
        fd_ = open_one(); // -1 if another thread took it meanwhile: tried again next time
    }

private:
    static int open_one() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
    int fd_;
};

bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == boost::system::error_code(EMFILE, boost::system::system_category()) ||
           ec == boost::system::error_code(ENFILE, boost::system::system_category());
}

std::size_t open_descriptors() {
    std::error_code ec;
    std::size_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
        ++n;
    return ec || n == 0 ? 16 : n - 1; // less the iterator's own
}

} // namespace

asio::awaitable<void> accept_loop(server& s, tcp::acceptor& acceptor) {
    spare_descriptor spare;
    asio::steady_timer pause(co_await asio::this_coro::executor);
    std::chrono::milliseconds delay = 10ms;
    std::size_t failures = 0;
    acceptor.non_blocking(true); // for the spare's accept4(); async_accept works either way
    while (acceptor.is_open()) {
        beast::error_code ec;
        auto socket = co_await acceptor.async_accept(asio::make_strand(acceptor.get_executor()),
                                                     awaitable_with(ec));
        if (ec == asio::error::operation_aborted || !acceptor.is_open())
            break;
        if (ec) {
            // Out of descriptors or memory, or a client that went away: waiting cures the
            // first two, and retrying at once would spin.
            if (failures++ == 0)
                fmt::print(stderr,
                           "clinic_server: accepting a connection failed: {}; retrying with "
                           "back-off (10 ms doubling to 1 s){}\n",
                           ec.message(),
                           out_of_descriptors(ec) ? ", clients are turned away meanwhile" : "");
            if (out_of_descriptors(ec))
                spare.turn_away_waiting(acceptor.native_handle(), s.out_of_descriptors);
            pause.expires_after(delay);
            co_await pause.async_wait(awaitable_with(ec));
            delay = std::min<std::chrono::milliseconds>(delay * 2, 1s);
            continue;
        }
        if (failures > 0) {
            fmt::print(stderr, "clinic_server: accepting again after {} failed attempts\n",
                       failures);
            failures = 0;
            delay = 10ms;
        }
        if (s.open >= s.settings.max_connections) {
            turn_away(socket.native_handle(), s.at_cap);
            continue; // the socket closes here
        }
        ++s.open;
        const auto strand = socket.get_executor();
        asio::co_spawn(strand, serve(s, tcp::socket(std::move(socket))), asio::detached);
    }
}

asio::awaitable<void> stop_on_signal(server& s, asio::signal_set& signals, tcp::acceptor& acceptor,
                                     asio::io_context& io) {
    const int number = co_await signals.async_wait(asio::use_awaitable);
    fmt::print(stderr, "clinic_server: signal {}, finishing {} requests\n", number,
               s.in_flight.load());
    s.stopping = true;
    acceptor.close();
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (int i = 0; i < 500 && s.in_flight > 0; ++i) {
        pause.expires_after(20ms);
        co_await pause.async_wait(asio::use_awaitable);
    }
    io.stop();
}

descriptor_budget budget_descriptors(std::size_t wanted, std::size_t database_sessions) {
    descriptor_budget b;
    // The spare descriptor and one client being turned away: 2.
    b.reserved = open_descriptors() + 2 * database_sessions + 2 + 32;
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        b.limit = 1024;
    } else {
        const rlim_t needed = static_cast<rlim_t>(wanted + b.reserved);
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? needed : std::min(rl.rlim_max, needed);
            ::setrlimit(RLIMIT_NOFILE, &rl);
            ::getrlimit(RLIMIT_NOFILE, &rl);
        }
        b.limit = rl.rlim_cur == RLIM_INFINITY ? std::numeric_limits<std::size_t>::max()
                                               : static_cast<std::size_t>(rl.rlim_cur);
    }
    b.fits = b.limit > b.reserved ? b.limit - b.reserved : 0;
    return b;
}

} // namespace clinic_server
