// Limits of the pool's settings.
#include <cloudmysql/pool_options.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <stdexcept>

namespace cloudmysql {
namespace {

[[noreturn]] void reject(std::string what) {
    throw std::invalid_argument("pool_options: " + std::move(what));
}

template <class Rep, class Period>
long long ms(std::chrono::duration<Rep, Period> d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

} // namespace

void pool_options::validate() const {
    using namespace std::chrono;
    constexpr std::size_t largest_pool = 10000;
    constexpr milliseconds hour = hours(1);

    if (max_size < 1 || max_size > largest_pool)
        reject(fmt::format("max_size is {}; expected 1 to {}", max_size, largest_pool));
    if (min_idle > max_size)
        reject(fmt::format("min_idle is {}; expected 0 to max_size ({})", min_idle, max_size));
    if (acquire_timeout < milliseconds(1) || acquire_timeout > hour)
        reject(fmt::format("acquire_timeout is {} ms; expected 1 ms to 1 h", ms(acquire_timeout)));
    if (connect_timeout && (*connect_timeout < seconds(1) || *connect_timeout > hour))
        reject(fmt::format("connect_timeout is {} s; expected 1 s to 1 h (or unset: the connect "
                           "options' own)",
                           connect_timeout->count()));
    if (idle_timeout.count() != 0 && idle_timeout < seconds(1))
        reject(fmt::format("idle_timeout is {} ms; expected 0 (keep forever) or at least 1 s",
                           ms(idle_timeout)));
    if (max_lifetime.count() != 0 && max_lifetime < seconds(1))
        reject(fmt::format("max_lifetime is {} ms; expected 0 (no limit) or at least 1 s",
                           ms(max_lifetime)));
    if (max_lifetime_jitter.count() < 0 || max_lifetime_jitter > max_lifetime / 2)
        reject(fmt::format("max_lifetime_jitter is {} ms; expected 0 to max_lifetime / 2 ({} ms)",
                           ms(max_lifetime_jitter), ms(max_lifetime / 2)));
    if (validate_after_idle.count() < 0)
        reject("validate_after_idle is negative; expected 0 (always) or more");
    if (check_timeout < milliseconds(100) || check_timeout > hour)
        reject(fmt::format("check_timeout is {} ms; expected 100 ms to 1 h", ms(check_timeout)));
    if (keepalive_interval.count() != 0 && keepalive_interval < seconds(1))
        reject(fmt::format("keepalive_interval is {} ms; expected 0 (off) or at least 1 s",
                           ms(keepalive_interval)));
    if (max_connecting < 1 || max_connecting > largest_pool)
        reject(fmt::format("max_connecting is {}; expected 1 to {}", max_connecting, largest_pool));
    if (backoff_initial < milliseconds(1) || backoff_initial > minutes(1))
        reject(
            fmt::format("backoff_initial is {} ms; expected 1 ms to 1 min", ms(backoff_initial)));
    if (backoff_max < backoff_initial || backoff_max > minutes(1))
        reject(fmt::format("backoff_max is {} ms; expected backoff_initial ({} ms) to 1 min",
                           ms(backoff_max), ms(backoff_initial)));
    if (breaker_threshold > 1000)
        reject(fmt::format("breaker_threshold is {}; expected 0 (off) to 1000", breaker_threshold));
    if (leak_threshold.count() < 0)
        reject("leak_threshold is negative; expected 0 (off) or more");
}

void pool_options::notify(const pool_notice& notice) const {
    if (on_notice)
        on_notice(notice);
    else
        std::fprintf(stderr, "cloudmysql pool: %s\n", notice.message.c_str());
}

} // namespace cloudmysql
