// A loopback stand-in for a MySQL server that greets, takes the client's handshake response,
// then asks for another authentication plugin (an auth switch) and records what the client
// sends back: enough to see whether a client hands its password to such a request.
// Serves one connection on its own thread; the destructor unblocks and joins it.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>

#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <sys/socket.h>

namespace cloudmysql::test {

template <class Protocol>
class fake_auth_server {
public:
    /// Listens on `endpoint` (port 0 or a socket path) and, once a client has sent its
    /// handshake response, asks it to switch to `plugin` with `plugin_data`.
    fake_auth_server(const typename Protocol::endpoint& endpoint, std::string plugin,
                     std::string plugin_data)
            : acceptor_(io_, endpoint), plugin_(std::move(plugin)),
              plugin_data_(std::move(plugin_data)) {
        thread_ = std::thread([this] { serve(); });
    }
    fake_auth_server(const fake_auth_server&) = delete;
    fake_auth_server& operator=(const fake_auth_server&) = delete;
    ~fake_auth_server() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            if (fd_ >= 0)
                ::shutdown(fd_, SHUT_RDWR);
        }
        ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
        thread_.join();
    }

    typename Protocol::endpoint endpoint() const { return acceptor_.local_endpoint(); }

    /// What the client sent after the switch request; empty if it closed instead. Call once,
    /// after the client's connect attempt has returned (it waits for the server's thread).
    std::string answer() { return answer_.get_future().get(); }

private:
    using socket_type = typename Protocol::socket;

    static std::string packet(std::uint8_t sequence, const std::string& payload) {
        std::string p;
        p += static_cast<char>(payload.size() & 0xFFU);
        p += static_cast<char>((payload.size() >> 8U) & 0xFFU);
        p += static_cast<char>((payload.size() >> 16U) & 0xFFU);
        p += static_cast<char>(sequence);
        return p + payload;
    }

    // Protocol 10 greeting of a server without TLS that starts with mysql_native_password.
    static std::string greeting() {
        const std::uint32_t caps = 0x1U | 0x2U | 0x4U | 0x8U | 0x200U | 0x2000U | 0x8000U |
                                   0x10000U | 0x20000U | 0x40000U | 0x80000U | 0x200000U;
        std::string g(1, '\x0a');
        g += std::string("5.5.5-10.11.0-cloudmysql-fake") + '\0';
        g += std::string("\x01\x00\x00\x00", 4); // thread id
        g += "abcdefgh";                         // scramble, first 8 bytes
        g += '\0';                               // filler
        g += static_cast<char>(caps & 0xFFU);    // capabilities, low 16 bits
        g += static_cast<char>((caps >> 8U) & 0xFFU);
        g += '\x2d';                                   // utf8mb4
        g += std::string("\x02\x00", 2);               // status: autocommit
        g += static_cast<char>((caps >> 16U) & 0xFFU); // capabilities, high 16 bits
        g += static_cast<char>((caps >> 24U) & 0xFFU);
        g += '\x15';                             // scramble length 21
        g += std::string(10, '\0');              // reserved
        g += std::string("ijklmnopqrst") + '\0'; // scramble, last 12 bytes
        g += std::string("mysql_native_password") + '\0';
        return g;
    }

    // Reads one packet's payload and sequence number; nullopt at EOF or error.
    static std::optional<std::pair<std::uint8_t, std::string>> read_packet(socket_type& s) {
        unsigned char header[4];
        boost::system::error_code ec;
        boost::asio::read(s, boost::asio::buffer(header), ec);
        if (ec)
            return std::nullopt;
        const std::size_t length = std::size_t{header[0]} | (std::size_t{header[1]} << 8U) |
                                   (std::size_t{header[2]} << 16U);
        std::string payload(length, '\0');
        boost::asio::read(s, boost::asio::buffer(payload), ec);
        if (ec)
            return std::nullopt;
        return std::pair{header[3], std::move(payload)};
    }

    void serve() {
        std::string sent_back;
        serve_one(sent_back);
        answer_.set_value(std::move(sent_back));
    }

    void serve_one(std::string& sent_back) {
        boost::system::error_code ec;
        socket_type s(io_);
        acceptor_.accept(s, ec);
        if (ec)
            return;
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                return;
            fd_ = s.native_handle();
        }
        // Forgets the descriptor before `s` closes it, so the destructor never shuts down a
        // reused one.
        struct forget {
            fake_auth_server& self;
            ~forget() {
                std::lock_guard lock(self.mutex_);
                self.fd_ = -1;
            }
        } forget_fd{*this};
        boost::asio::write(s, boost::asio::buffer(packet(0, greeting())), ec);
        const auto response = read_packet(s);
        if (!ec && response) {
            std::string request(1, '\xfe');
            request += plugin_ + '\0' + plugin_data_;
            boost::asio::write(s,
                               boost::asio::buffer(
                                   packet(static_cast<std::uint8_t>(response->first + 1), request)),
                               ec);
            if (!ec) {
                if (auto sent = read_packet(s))
                    sent_back = std::move(sent->second);
            }
        }
    }

    boost::asio::io_context io_;
    typename Protocol::acceptor acceptor_;
    std::string plugin_;
    std::string plugin_data_;
    std::mutex mutex_;
    bool stopping_ = false;
    int fd_ = -1;
    std::promise<std::string> answer_;
    std::thread thread_;
};

} // namespace cloudmysql::test
