// Token caching and the command-line token provider.
#include <cloudmysql/credentials.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <sys/wait.h>

namespace cloudmysql {

namespace {

// One cache shared by every copy of the provider. The mutex is held across the fetch, so
// connections opened together wait for one token instead of each asking for their own.
struct token_cache {
    std::function<access_token()> fetch;
    token_cache_options options;
    std::mutex mutex;
    std::optional<access_token> token;

    std::chrono::system_clock::time_point now() const {
        return options.now ? options.now() : std::chrono::system_clock::now();
    }

    std::string get() {
        std::lock_guard lock(mutex);
        if (token && now() + options.refresh_before < token->expires_at)
            return token->value;
        token.reset();
        access_token fresh = fetch();
        if (fresh.value.empty())
            throw std::runtime_error("it returned an empty token");
        token = std::move(fresh);
        return token->value;
    }

    void drop() {
        std::lock_guard lock(mutex);
        token.reset();
    }
};

std::string trimmed_word(std::string_view text, std::size_t& pos) {
    constexpr std::string_view space = " \t\r\n";
    const std::size_t begin = text.find_first_not_of(space, pos);
    if (begin == std::string_view::npos) {
        pos = text.size();
        return {};
    }
    std::size_t end = text.find_first_of(space, begin);
    if (end == std::string_view::npos)
        end = text.size();
    pos = end;
    return std::string(text.substr(begin, end - begin));
}

// Runs `command` through /bin/sh and returns what it printed on standard output.
std::string run_command(const std::string& command) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
    if (!pipe)
        throw std::runtime_error(fmt::format("cannot run its command: {}", std::strerror(errno)));
    std::string out;
    char buffer[4096];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe.get()))
        out.append(buffer, n);
    const int status = ::pclose(pipe.release());
    if (status == -1)
        throw std::runtime_error(fmt::format("cannot wait for it: {}", std::strerror(errno)));
    if (WIFSIGNALED(status))
        throw std::runtime_error(
            fmt::format("its command was killed by signal {}", WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0) {
        throw std::runtime_error(
            fmt::format("its command exited with status {}{}", WEXITSTATUS(status),
                        WEXITSTATUS(status) == 127 ? " (command not found)" : ""));
    }
    return out;
}

} // namespace

credential_provider cached_token_provider(std::string name, std::function<access_token()> fetch,
                                          token_cache_options options) {
    if (!fetch)
        throw std::invalid_argument(
            fmt::format("cached_token_provider '{}': no fetch function", name));
    if (options.refresh_before < std::chrono::seconds{0})
        throw std::invalid_argument(
            fmt::format("cached_token_provider '{}': refresh_before is negative", name));
    auto cache = std::make_shared<token_cache>();
    cache->fetch = std::move(fetch);
    cache->options = std::move(options);
    return credential_provider(
        std::move(name), [cache] { return cache->get(); }, [cache] { cache->drop(); });
}

credential_provider command_token_provider(std::string name, std::string command,
                                           std::chrono::seconds lifetime,
                                           token_cache_options options) {
    if (command.empty())
        throw std::invalid_argument(
            fmt::format("command_token_provider '{}': empty command", name));
    if (lifetime <= std::chrono::seconds{0})
        throw std::invalid_argument(
            fmt::format("command_token_provider '{}': lifetime must be positive", name));
    auto now = options.now;
    auto fetch = [command = std::move(command), lifetime, now] {
        const auto started = now ? now() : std::chrono::system_clock::now();
        const std::string out = run_command(command);
        std::size_t pos = 0;
        access_token token{trimmed_word(out, pos), started + lifetime};
        if (token.value.empty())
            throw std::runtime_error("its command printed no token");
        const std::string expiry = trimmed_word(out, pos);
        if (!expiry.empty()) {
            long long epoch = 0;
            const auto [end, ec] =
                std::from_chars(expiry.data(), expiry.data() + expiry.size(), epoch);
            if (ec != std::errc{} || end != expiry.data() + expiry.size() || epoch <= 0) {
                // Not quoted: a command that prints "Bearer TOKEN" would put the token here.
                throw std::runtime_error(
                    fmt::format("its command's second word ({} characters) is not an expiry in "
                                "seconds since the epoch: print the token, then optionally "
                                "the expiry",
                                expiry.size()));
            }
            token.expires_at = std::chrono::system_clock::time_point(std::chrono::seconds(epoch));
        }
        return token;
    };
    return cached_token_provider(std::move(name), std::move(fetch), std::move(options));
}

} // namespace cloudmysql
