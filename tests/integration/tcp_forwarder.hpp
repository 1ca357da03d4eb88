// A loopback TCP forwarder the tests control: it forwards to a server, or accepts and never
// answers (a dead path); it can switch to another server and cut the connections it relays
// (a failover behind one host name), close the next connections at once, and count what it
// accepted. Runs its own thread; stops on destruction.
#pragma once

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace cloudmysql::test {

class tcp_forwarder {
public:
    enum class mode {
        forward,   ///< relay bytes both ways to the target
        blackhole, ///< accept connections, read nothing, send nothing
    };

    tcp_forwarder(const std::string& listen_address, std::string target_host,
                  std::uint16_t target_port, mode m)
            : acceptor_(io_, {boost::asio::ip::make_address(listen_address), 0}),
              target_host_(std::move(target_host)), target_port_(target_port), mode_(m) {
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    tcp_forwarder(const tcp_forwarder&) = delete;
    tcp_forwarder& operator=(const tcp_forwarder&) = delete;
    ~tcp_forwarder() {
        io_.stop();
        thread_.join();
    }

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    /// Connections accepted from now on go to host:port; those already relayed stay with the
    /// old server. Returns once the switch is in effect. Thread-safe.
    void set_target(std::string host, std::uint16_t port) {
        on_io_thread([this, host = std::move(host), port]() mutable {
            target_host_ = std::move(host);
            target_port_ = port;
        });
    }

    /// The next `count` connections go to the current target, those after them to host:port
    /// (a path that treats one connection differently from the next). Thread-safe.
    void set_target_after(std::size_t count, std::string host, std::uint16_t port) {
        on_io_thread([this, count, host = std::move(host), port]() mutable {
            switch_after_ = count;
            next_host_ = std::move(host);
            next_port_ = port;
        });
    }

    /// The next `count` connections are closed as soon as they are accepted, before any byte
    /// (a path that resets them); the ones after are served as before. Thread-safe.
    void close_next(std::size_t count) {
        on_io_thread([this, count] { close_next_ = count; });
    }

    /// How many connections it has accepted so far, closed ones included. Thread-safe.
    std::size_t accepted() const { return accepted_.load(); }

    /// From now on, what the servers send on the connections relayed so far is read and
    /// dropped, while what the clients send still arrives: a statement in flight is executed
    /// but its answer is lost, as across a network partition. Connections accepted later are
    /// not affected. Returns once in effect. Thread-safe.
    void swallow_replies() {
        on_io_thread([this] {
            for (auto& weak : sessions_)
                if (auto s = weak.lock())
                    s->swallow_replies = true;
        });
    }

    /// Closes every connection relayed so far, both ways (the client sees its server go away);
    /// new ones are accepted as before. Returns once they are closed. Thread-safe.
    void drop_connections() {
        on_io_thread([this] {
            for (auto& weak : sessions_)
                if (auto s = weak.lock())
                    s->stop();
            sessions_.clear();
            held_.clear();
        });
    }

private:
    using tcp = boost::asio::ip::tcp;

    struct session : std::enable_shared_from_this<session> {
        explicit session(tcp::socket s) : client(std::move(s)), server(client.get_executor()) {}
        tcp::socket client;
        tcp::socket server;
        std::array<char, 16384> up{};
        std::array<char, 16384> down{};
        bool swallow_replies = false; // set on the io thread only

        void start(const tcp::endpoint& target) {
            server.async_connect(target, [self = shared_from_this()](auto ec) {
                if (ec)
                    return self->stop();
                // As the client and the server do: without it, Nagle's algorithm holds a
                // small packet that follows one not yet acknowledged (COM_STMT_CLOSE, which
                // has no answer, then the next command) until the peer's delayed ACK, 40 ms.
                boost::system::error_code ignored;
                self->client.set_option(tcp::no_delay(true), ignored);
                self->server.set_option(tcp::no_delay(true), ignored);
                pump(self, self->client, self->server, self->up);
                pump(self, self->server, self->client, self->down);
            });
        }
        static void pump(const std::shared_ptr<session>& self, tcp::socket& from, tcp::socket& to,
                         std::array<char, 16384>& buffer) {
            from.async_read_some(
                boost::asio::buffer(buffer), [self, &from, &to, &buffer](auto ec, std::size_t n) {
                    if (ec)
                        return self->stop();
                    // Swallowed: the server's answer never reaches the client.
                    if (self->swallow_replies && &from == &self->server)
                        return pump(self, from, to, buffer);
                    boost::asio::async_write(to, boost::asio::buffer(buffer.data(), n),
                                             [self, &from, &to, &buffer](auto wec, std::size_t) {
                                                 if (wec)
                                                     return self->stop();
                                                 pump(self, from, to, buffer);
                                             });
                });
        }
        void stop() {
            boost::system::error_code ignored;
            client.close(ignored);
            server.close(ignored);
        }
    };

    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
            if (ec)
                return;
            ++accepted_;
            if (switch_after_.has_value() && (*switch_after_)-- == 0) {
                target_host_ = next_host_;
                target_port_ = next_port_;
                switch_after_.reset();
            }
            if (close_next_ > 0) {
                --close_next_;
                boost::system::error_code ignored;
                socket.close(ignored);
            } else if (mode_ == mode::blackhole) {
                held_.push_back(std::move(socket));
            } else {
                auto s = std::make_shared<session>(std::move(socket));
                s->start({boost::asio::ip::make_address(target_host_), target_port_});
                sessions_.remove_if([](const auto& weak) { return weak.expired(); });
                sessions_.push_back(s);
            }
            accept();
        });
    }

    // Runs `f` on the forwarder's thread, which owns the sockets and the target, and waits.
    template <class F>
    void on_io_thread(F f) {
        std::promise<void> done;
        boost::asio::post(io_, [&] {
            f();
            done.set_value();
        });
        done.get_future().wait();
    }

    boost::asio::io_context io_;
    tcp::acceptor acceptor_;
    std::string target_host_;
    std::uint16_t target_port_;
    mode mode_;
    std::size_t close_next_ = 0;                // on the io thread only, as the three below
    std::optional<std::size_t> switch_after_{}; // connections left before the switch
    std::string next_host_;
    std::uint16_t next_port_ = 0;
    std::atomic<std::size_t> accepted_{0};
    std::list<tcp::socket> held_;
    std::list<std::weak_ptr<session>> sessions_; // relayed connections, for drop_connections()
    std::thread thread_;
};

} // namespace cloudmysql::test
