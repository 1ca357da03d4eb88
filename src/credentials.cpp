// Token caching (one fetch at a time, run apart, waited for until each caller's deadline) and
// the command-line token provider (a child process with a deadline of its own).
#include <cloudmysql/credentials.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace cloudmysql {

namespace {

using steady = std::chrono::steady_clock;
using wall_clock = std::chrono::system_clock;

std::string seconds_text(steady::duration d) {
    return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count());
}

std::string limit_text(std::chrono::milliseconds limit) {
    return fmt::format("{:g} s", static_cast<double>(limit.count()) / 1000.0);
}

// ---- the cache -------------------------------------------------------------------------------

// One cache shared by every copy of the provider and by the fetch running for it. No lock is
// held while `fetch` runs: it runs on a thread of its own (a "flight"), and callers wait for
// the flight's end on a condition variable, each until its own deadline.
struct token_cache : std::enable_shared_from_this<token_cache> {
    // One run of `fetch`. Its fields are guarded by the cache's mutex.
    struct flight {
        steady::time_point started;
        bool finished = false;
        std::optional<access_token> token; // set on success
        std::string error;                 // on failure: what the fetch's exception said
    };

    std::function<access_token()> fetch;
    token_cache_options options;
    // How messages name what runs ("its fetch", "its command") and its own limit, if any.
    std::string what_runs = "its fetch";
    std::string limit_note;

    std::mutex mutex;
    std::condition_variable flight_ended;
    std::optional<access_token> token;
    std::shared_ptr<flight> running;
    std::string last_failure; // what the last fetch that failed said; cleared by a success

    wall_clock::time_point now() const { return options.now ? options.now() : wall_clock::now(); }

    std::string get(steady::time_point deadline) {
        std::unique_lock lock(mutex);
        if (token && now() + options.refresh_before < token->expires_at)
            return token->value;
        const std::shared_ptr<flight> f = running ? running : start_flight();
        const auto finished = [&f] { return f->finished; };
        if (deadline == steady::time_point::max()) {
            flight_ended.wait(lock, finished);
        } else if (!flight_ended.wait_until(lock, deadline, finished)) {
            // A late refresh costs nothing while the old token is still good.
            if (token && now() < token->expires_at)
                return token->value;
            std::string message = fmt::format(
                "{} has run for {} and goes on{}; a later connect uses its token once it arrives",
                what_runs, seconds_text(steady::now() - f->started), limit_note);
            if (!last_failure.empty())
                message += fmt::format("; the fetch before it failed: {}", last_failure);
            throw credential_timeout(message);
        }
        // Each waiter gets an exception of its own: one object thrown on several threads would
        // be shared by them.
        if (!f->token)
            throw std::runtime_error(f->error);
        return f->token->value;
    }

    void drop() {
        const std::lock_guard lock(mutex);
        token.reset();
    }

private:
    // With the mutex held. The thread owns the cache until the fetch returns, so a fetch that
    // outlives its callers (and every copy of the provider) still fills the cache, or ends
    // quietly when nobody is left.
    std::shared_ptr<flight> start_flight() {
        auto f = std::make_shared<flight>();
        f->started = steady::now();
        std::thread(&token_cache::fly, shared_from_this(), f).detach();
        running = f;
        return f;
    }

    static void fly(const std::shared_ptr<token_cache>& self, const std::shared_ptr<flight>& f) {
        std::optional<access_token> fresh;
        std::string error;
        try {
            access_token t = self->fetch();
            if (t.value.empty())
                error = "it returned an empty token";
            else
                fresh = std::move(t);
        } catch (const std::exception& e) {
            error = e.what();
        } catch (...) {
            error = "it threw an exception that is not a std::exception";
        }
        {
            const std::lock_guard lock(self->mutex);
            f->finished = true;
            if (fresh) {
                self->token = fresh;
                self->last_failure.clear();
                f->token = std::move(fresh);
            } else {
                self->last_failure = error;
                f->error = std::move(error);
            }
            self->running.reset();
        }
        self->flight_ended.notify_all();
    }
};

credential_provider make_cached_provider(std::string name, std::function<access_token()> fetch,
                                         token_cache_options options, std::string what_runs,
                                         std::string limit_note) {
    if (!fetch)
        throw std::invalid_argument(
            fmt::format("cached_token_provider '{}': no fetch function", name));
    if (options.refresh_before < std::chrono::seconds{0})
        throw std::invalid_argument(
            fmt::format("cached_token_provider '{}': refresh_before is negative", name));
    auto cache = std::make_shared<token_cache>();
    cache->fetch = std::move(fetch);
    cache->options = std::move(options);
    cache->what_runs = std::move(what_runs);
    cache->limit_note = std::move(limit_note);
    return credential_provider(
        std::move(name),
        credential_provider::timed_fetch_function(
            [cache](steady::time_point deadline) { return cache->get(deadline); }),
        [cache] { cache->drop(); });
}

// ---- the command ---------------------------------------------------------------------------

class unique_fd {
public:
    explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    int get() const noexcept { return fd_; }
    void reset() noexcept {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

// The process groups of commands that may still be running. At program exit they are killed:
// nobody is left to read their token, and a hung one would otherwise run on. Never destroyed,
// as it is used from an atexit handler and from detached threads.
struct running_groups {
    std::mutex mutex;
    std::set<pid_t> groups;
};

running_groups& command_groups() {
    static auto* const instance = new running_groups; // NOLINT(cppcoreguidelines-owning-memory)
    return *instance;
}

void kill_command_groups() {
    running_groups& g = command_groups();
    const std::lock_guard lock(g.mutex);
    for (const pid_t group : g.groups)
        ::kill(-group, SIGKILL);
}

void track_group(pid_t group) {
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(kill_command_groups); });
    running_groups& g = command_groups();
    const std::lock_guard lock(g.mutex);
    g.groups.insert(group);
}

void untrack_group(pid_t group) noexcept {
    running_groups& g = command_groups();
    const std::lock_guard lock(g.mutex);
    g.groups.erase(group);
}

constexpr auto kill_grace = std::chrono::seconds(1); // between SIGTERM and SIGKILL

// After SIGTERM to what a command left in its group: SIGKILL after kill_grace to whatever
// ignored it. On a thread of its own, so that the token need not wait. The group's id stays
// taken while any of its members lives, and process ids are handed out in sequence, so the
// id is not someone else's within that second.
void end_leftovers_later(pid_t group) {
    const auto finish = [group] {
        const auto until = steady::now() + kill_grace;
        while (steady::now() < until) {
            if (::kill(-group, 0) != 0) {
                untrack_group(group);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ::kill(-group, SIGKILL);
        untrack_group(group);
    };
    try {
        std::thread(finish).detach();
    } catch (const std::system_error&) {
        ::kill(-group, SIGKILL);
        untrack_group(group);
    }
}

// The shell that runs a command, leader of a process group of its own. Whatever way the owner
// leaves, the shell is reaped and its group ended: no zombie, nothing left running.
// A descriptor that becomes readable when the process exits, or -1 where the kernel has none
// (before Linux 5.3, or a sandbox that forbids it). Through syscall(): glibc 2.36's
// <sys/pidfd.h> does not declare pidfd_open() for C++.
int open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
#else
    (void)pid;
    return -1;
#endif
}

class command_process {
public:
    explicit command_process(pid_t pid) noexcept : pid_(pid), exit_fd_(open_pidfd(pid)) {
        try {
            track_group(pid_);
        } catch (...) { // out of memory: the command still ends with its deadline
        }
    }
    command_process(const command_process&) = delete;
    command_process& operator=(const command_process&) = delete;
    ~command_process() {
        if (!reaped_)
            kill_and_reap();
    }

    /// Readable once the shell has exited (a pidfd); -1 where the kernel has none, and then
    /// exited() is asked every few milliseconds.
    int exit_fd() const noexcept { return exit_fd_.get(); }

    /// True once the shell has exited; it is not reaped, so that its group's id stays taken.
    bool exited() const noexcept {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == pid_;
    }

    /// After the shell exited: SIGTERM to what it left in its group, the shell reaped, SIGKILL
    /// a second later to what ignored SIGTERM. Returns the shell's wait status.
    int reap_and_end_leftovers() {
        ::kill(-pid_, SIGTERM);
        const int status = reap();
        if (::kill(-pid_, 0) == 0)
            end_leftovers_later(pid_);
        else
            untrack_group(pid_);
        return status;
    }

    /// The deadline passed: SIGTERM to the group, SIGKILL after kill_grace (or at once when the
    /// shell has exited), and the shell reaped.
    void kill_and_reap() noexcept {
        ::kill(-pid_, SIGTERM);
        const auto until = steady::now() + kill_grace;
        while (!exited() && steady::now() < until) {
            if (exit_fd_.get() >= 0) {
                pollfd p{exit_fd_.get(), POLLIN, 0};
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
                ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(1, left.count())));
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
        ::kill(-pid_, SIGKILL); // the shell, still a zombie, keeps the group's id taken
        reap();
        untrack_group(pid_);
    }

private:
    int reap() noexcept {
        int status = 0;
        pid_t rc = 0;
        do {
            rc = ::waitpid(pid_, &status, 0);
        } while (rc < 0 && errno == EINTR);
        reaped_ = true;
        return rc == pid_ ? status : -1;
    }

    pid_t pid_;
    unique_fd exit_fd_;
    bool reaped_ = false;
};

// What a command wrote: all of its standard output (up to a limit) and the end of its
// standard error.
struct command_output {
    static constexpr std::size_t max_output = 64 * 1024;
    static constexpr std::size_t kept_error = 4096;
    std::string out;
    std::string error_tail;
};

// Reads what is there without blocking; false once the pipe is closed (or broken).
bool drain(int fd, std::string& into, bool keep_tail, std::size_t limit) {
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            into.append(buffer, static_cast<std::size_t>(n));
            if (keep_tail && into.size() > 2 * limit)
                into.erase(0, into.size() - limit);
            else if (!keep_tail && into.size() > limit)
                into.resize(limit);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

// The last line a command wrote to standard error, fit for a message: control characters
// blanked, at most 200 bytes (cut between UTF-8 characters), and nothing at all when it holds a
// word of what the command wrote to standard output (a token printed twice).
std::string stderr_note(const command_output& output) {
    std::string_view text = output.error_tail;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.remove_suffix(1);
    const std::size_t newline = text.find_last_of('\n');
    if (newline != std::string_view::npos)
        text.remove_prefix(newline + 1);
    std::string line;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        line += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    const auto start = line.find_first_not_of(' ');
    line.erase(0, start == std::string::npos ? line.size() : start);
    if (line.empty())
        return {};
    constexpr std::string_view space = " \t\r\n";
    const std::string_view out = output.out;
    for (std::size_t pos = out.find_first_not_of(space); pos != std::string_view::npos;
         pos = out.find_first_not_of(space, pos)) {
        const std::size_t end = std::min(out.find_first_of(space, pos), out.size());
        if (end - pos >= 8 && line.find(out.substr(pos, end - pos)) != std::string::npos)
            return "; its standard error is not shown: it repeats what the command printed as "
                   "its token";
        pos = end;
    }
    constexpr std::size_t max_line = 200;
    if (line.size() > max_line) {
        std::size_t cut = max_line;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0U) == 0x80U)
            --cut;
        line.resize(cut);
        line += "...";
    }
    return fmt::format("; its standard error ended with: {}", line);
}

struct spawn_setup {
    posix_spawn_file_actions_t actions{};
    posix_spawnattr_t attributes{};
    spawn_setup() {
        if (::posix_spawn_file_actions_init(&actions) != 0)
            throw std::bad_alloc();
        if (::posix_spawnattr_init(&attributes) != 0) {
            ::posix_spawn_file_actions_destroy(&actions);
            throw std::bad_alloc();
        }
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup() {
        ::posix_spawnattr_destroy(&attributes);
        ::posix_spawn_file_actions_destroy(&actions);
    }
};

[[noreturn]] void fail_to_run(const char* what, int error) {
    throw std::runtime_error(
        fmt::format("cannot run its command ({}): {}", what, std::strerror(error)));
}

// Runs `command` with /bin/sh -c in a process group of its own and returns what it wrote to
// standard output, or throws when it fails, is killed or outlives `limit`.
std::string run_command(const std::string& command, std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0)
        fail_to_run("pipe", errno);
    unique_fd out_read(out_pipe[0]);
    unique_fd out_write(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0)
        fail_to_run("pipe", errno);
    unique_fd err_read(err_pipe[0]);
    unique_fd err_write(err_pipe[1]);
    for (const int fd : {out_read.get(), err_read.get()})
        if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
            fail_to_run("fcntl", errno);

    // The child gets /dev/null, the two pipes, and no other descriptor of ours (libmariadb's
    // sockets are not close-on-exec); default handling of the signals a program often ignores
    // or blocks; a process group of its own, so that the deadline can end all it starts.
    spawn_setup setup;
    int rc = ::posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = ::posix_spawn_file_actions_adddup2(&setup.actions, out_write.get(), 1);
    if (rc == 0)
        rc = ::posix_spawn_file_actions_adddup2(&setup.actions, err_write.get(), 2);
    if (rc == 0)
        rc = ::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
    sigset_t no_signals;
    sigemptyset(&no_signals);
    sigset_t default_signals;
    sigemptyset(&default_signals);
    for (const int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM})
        sigaddset(&default_signals, sig);
    if (rc == 0)
        rc = ::posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETPGROUP |
                                                               POSIX_SPAWN_SETSIGMASK |
                                                               POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = ::posix_spawnattr_setpgroup(&setup.attributes, 0);
    if (rc == 0)
        rc = ::posix_spawnattr_setsigmask(&setup.attributes, &no_signals);
    if (rc == 0)
        rc = ::posix_spawnattr_setsigdefault(&setup.attributes, &default_signals);
    if (rc != 0)
        fail_to_run("posix_spawn set-up", rc);

    std::string shell = "sh";
    std::string dash_c = "-c";
    std::string text = command;
    char* argv[] = {shell.data(), dash_c.data(), text.data(), nullptr};
    pid_t pid = 0;
    rc = ::posix_spawn(&pid, "/bin/sh", &setup.actions, &setup.attributes, argv, environ);
    if (rc != 0)
        fail_to_run("/bin/sh", rc);
    command_process process(pid);
    out_write.reset();
    err_write.reset();

    command_output output;
    bool out_open = true;
    bool err_open = true;
    bool exited = false;
    while (!exited) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0)
            break;
        pollfd fds[3];
        nfds_t count = 0;
        int out_at = -1;
        int err_at = -1;
        int exit_at = -1;
        if (out_open) {
            out_at = static_cast<int>(count);
            fds[count++] = {out_read.get(), POLLIN, 0};
        }
        if (err_open) {
            err_at = static_cast<int>(count);
            fds[count++] = {err_read.get(), POLLIN, 0};
        }
        if (process.exit_fd() >= 0) {
            exit_at = static_cast<int>(count);
            fds[count++] = {process.exit_fd(), POLLIN, 0};
        }
        // Without a pidfd, look at the shell every 20 ms.
        const auto wait =
            process.exit_fd() >= 0 ? left.count() : std::min<long long>(left.count(), 20);
        if (::poll(fds, count, static_cast<int>(wait)) < 0) {
            if (errno == EINTR)
                continue;
            fail_to_run("poll", errno);
        }
        if (out_at >= 0 && fds[out_at].revents != 0)
            out_open = drain(out_read.get(), output.out, false, command_output::max_output);
        if (err_at >= 0 && fds[err_at].revents != 0)
            err_open = drain(err_read.get(), output.error_tail, true, command_output::kept_error);
        if (exit_at < 0)
            exited = process.exited();
        else if (fds[exit_at].revents != 0)
            exited = (fds[exit_at].revents & POLLIN) != 0 || process.exited();
    }
    if (!exited) {
        process.kill_and_reap();
        if (err_open)
            drain(err_read.get(), output.error_tail, true, command_output::kept_error);
        throw std::runtime_error(
            fmt::format("its command did not finish within {} and was killed{}", limit_text(limit),
                        stderr_note(output)));
    }
    // What it wrote before it exited is in the pipes; a process it left behind may hold them
    // open, so read what is there and stop.
    if (out_open)
        drain(out_read.get(), output.out, false, command_output::max_output);
    if (err_open)
        drain(err_read.get(), output.error_tail, true, command_output::kept_error);
    const int status = process.reap_and_end_leftovers();
    if (status == -1)
        throw std::runtime_error(
            "its command ran but its exit status could not be read (is SIGCHLD ignored?)");
    if (WIFSIGNALED(status))
        throw std::runtime_error(fmt::format("its command was killed by signal {}{}",
                                             WTERMSIG(status), stderr_note(output)));
    if (WEXITSTATUS(status) != 0) {
        throw std::runtime_error(fmt::format(
            "its command exited with status {}{}{}", WEXITSTATUS(status),
            WEXITSTATUS(status) == 127 ? " (command not found)" : "", stderr_note(output)));
    }
    return std::move(output.out);
}

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

} // namespace

credential_provider cached_token_provider(std::string name, std::function<access_token()> fetch,
                                          token_cache_options options) {
    return make_cached_provider(std::move(name), std::move(fetch), std::move(options), "its fetch",
                                "");
}

credential_provider command_token_provider(std::string name, std::string command,
                                           command_token_options options) {
    if (command.empty())
        throw std::invalid_argument(
            fmt::format("command_token_provider '{}': empty command", name));
    if (options.lifetime <= std::chrono::seconds{0})
        throw std::invalid_argument(
            fmt::format("command_token_provider '{}': lifetime must be positive", name));
    if (options.timeout < std::chrono::milliseconds(100) || options.timeout > std::chrono::hours(1))
        throw std::invalid_argument(
            fmt::format("command_token_provider '{}': timeout is {} ms; expected 100 ms to 1 h",
                        name, options.timeout.count()));
    auto now = options.cache.now;
    auto fetch = [command = std::move(command), lifetime = options.lifetime,
                  limit = options.timeout, now] {
        const auto started = now ? now() : wall_clock::now();
        const std::string out = run_command(command, limit);
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
            token.expires_at = wall_clock::time_point(std::chrono::seconds(epoch));
        }
        return token;
    };
    const std::string limit_note =
        fmt::format(" (it is killed if it runs longer than {})", limit_text(options.timeout));
    return make_cached_provider(std::move(name), std::move(fetch), std::move(options.cache),
                                "its command", limit_note);
}

credential_provider command_token_provider(std::string name, std::string command,
                                           std::chrono::seconds lifetime,
                                           token_cache_options options) {
    command_token_options o;
    o.lifetime = lifetime;
    o.cache = std::move(options);
    return command_token_provider(std::move(name), std::move(command), std::move(o));
}

} // namespace cloudmysql
