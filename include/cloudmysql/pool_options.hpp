// The settings of a connection pool, with their defaults, units and limits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

namespace cloudmysql {

/// A lease held longer than pool_options::leak_threshold.
struct leak_report {
    std::uint64_t connection_sequence{};  ///< the pool's number for the connection
    std::chrono::milliseconds held_for{}; ///< how long it had been held when reported
    std::source_location acquired_at{};   ///< where acquire() was called
};

/// Something the pool tells the program once (pool_options::on_notice). Its message is one
/// line, in the library's terms, and never holds a password.
struct pool_notice {
    enum class kind {
        leak,     ///< a lease held past leak_threshold; `leak` says which and where
        settings, ///< one setting overrides another (e.g. two connect timeouts)
    };
    kind what = kind::settings;
    std::string message;
    std::optional<leak_report> leak{}; ///< set for kind::leak
};

/// Pool settings. validate() (called by the pool's constructor) throws std::invalid_argument
/// naming the first option outside its limits.
///
/// The defaults suit a cloud server with max_connections = 20 that kills idle sessions: Azure's
/// load balancer drops connections idle for 4 minutes, so idle connections are pinged every
/// 2 minutes and none lives longer than 30 minutes.
struct pool_options {
    /// Hard cap on connections open or opening; never exceeded. 1 to 10000. Keep it below the
    /// server's max_connections minus what other clients need.
    std::size_t max_size = 20;
    /// Idle connections the pool keeps open (and opens at warm_up()). 0 to max_size.
    std::size_t min_idle = 0;
    /// How long acquire() waits for a connection before it fails. 1 ms to 1 h.
    std::chrono::milliseconds acquire_timeout{3000};
    /// Time allowed to open one connection (TCP, TLS, login). Whole seconds: libmariadb counts
    /// in seconds. 1 s to 1 h. Unset (the default): the connect options' own connect_timeout
    /// (the URL's connect-timeout=, 3 s when not given). Set: it applies to every connection
    /// of the pool, and when the connect options name another value than the default, the
    /// pool says once, through on_notice, which value it uses.
    std::optional<std::chrono::seconds> connect_timeout{};
    /// An idle connection unused this long is closed, while more than min_idle are open.
    /// 0 keeps idle connections forever; otherwise at least 1 s.
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};
    /// No connection lives longer than this; it is retired when next idle, never while leased.
    /// Keep it below the server's wait_timeout. 0 for no limit; otherwise at least 1 s.
    std::chrono::milliseconds max_lifetime{std::chrono::minutes(30)};
    /// Each connection's lifetime is shortened by a random amount up to this, so that
    /// connections opened together do not all expire together. 0 to max_lifetime / 2.
    std::chrono::milliseconds max_lifetime_jitter{std::chrono::minutes(1)};
    /// A connection idle longer than this is pinged before it is handed out; a dead one is
    /// replaced. 0 pings every time.
    std::chrono::milliseconds validate_after_idle{std::chrono::seconds(1)};
    /// How long the pool waits for the server to answer one of its own checks (the ping before
    /// a hand-out, the keepalive ping, the reset of a returned connection) whatever the
    /// connection's read_timeout: a check without an answer by then is abandoned and its
    /// connection closed, so that a server that stopped answering (frozen, or a network path
    /// that drops everything) never holds the pool's threads. 100 ms to 1 h.
    std::chrono::milliseconds check_timeout{std::chrono::seconds(3)};
    /// Idle connections are pinged this often, so that NAT and load balancers keep them (Azure
    /// drops idle flows after 4 minutes). 0 disables; otherwise at least 1 s.
    std::chrono::milliseconds keepalive_interval{std::chrono::minutes(2)};
    /// Connects in flight at once: limits the load on a server that just came back. At least
    /// 1; more than max_size acts as max_size.
    std::size_t max_connecting = 2;
    /// After a failed connect, the next waits a random time up to min(backoff_max,
    /// backoff_initial * 2^(failures-1)) ("full jitter"). 1 ms to 1 min, initial <= max.
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{std::chrono::seconds(10)};
    /// After this many connect failures in a row, acquires fail at once with the last connect
    /// error until a probe connect succeeds. 0 disables the breaker; at most 1000.
    std::size_t breaker_threshold = 5;
    /// A lease held longer than this is reported once (on_leak, else on_notice). 0 disables.
    std::chrono::milliseconds leak_threshold{0};
    /// Called (on a pool thread) for each lease held past leak_threshold. Unset: the report
    /// goes to on_notice as a pool_notice of kind leak.
    std::function<void(const leak_report&)> on_leak{};
    /// Called with what the pool has to tell the program: a lease held past leak_threshold
    /// (when on_leak is unset), settings of which one overrides another. Called on a pool
    /// thread or, for settings, in the pool's constructor; it must not block or throw. Unset:
    /// one line on stderr, "cloudmysql pool: " and the notice's message.
    std::function<void(const pool_notice&)> on_notice{};
    /// Statements run on every new connection and after every reset (added to the
    /// connect_options' own).
    std::vector<std::string> init_statements{};
    /// Seed of the jitter's random numbers; unset: from std::random_device.
    std::optional<std::uint64_t> random_seed{};

    /// Throws std::invalid_argument naming the first option outside its limits.
    void validate() const;

    /// Gives `notice` to on_notice, or writes its message to stderr when on_notice is unset.
    void notify(const pool_notice& notice) const;
};

} // namespace cloudmysql
