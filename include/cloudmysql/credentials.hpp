// Passwords that are really tokens: providers, a cache that keeps a token until shortly before
// it expires, and a provider that asks a command line tool (az, gcloud) for one.
#pragma once

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace cloudmysql {

/// Thrown by a provider when the password did not arrive by the caller's deadline while the
/// fetch behind it goes on: a later call may get its result. connect() reports it as
/// client_errc::credential_provider_failed with error_class::timeout.
class credential_timeout : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Supplies the password for each new connection. Cloud access tokens (Azure Entra, Cloud SQL
/// IAM) expire, so the connection asks its provider every time it connects.
///
/// A provider has a name, which every error about it carries ("credential provider
/// 'azure-entra' failed: ..."), a fetch function, called once per connect attempt on the
/// connecting thread, and optionally a function told when the server refused what fetch
/// returned (error 1045), so that a cache can drop it. An exception from fetch, or an empty
/// result, fails the connect with client_errc::credential_provider_failed; the exception's
/// what() says what happened, and the connect adds the provider's name.
///
/// The fetch comes in two forms. A timed fetch, `std::string(deadline)`, is told when its caller
/// gives up: connect() passes the end of its connect_timeout, and the fetch returns by then or
/// throws (credential_timeout when the password may still come later). A plain fetch,
/// `std::string()`, is called as it is and connect() waits for it however long it takes, beyond
/// connect_timeout: give a source that can be slow or hang (a command, an HTTP endpoint) to
/// cached_token_provider, which runs it apart and waits for it at most until the deadline.
///
/// What a provider returns is sent only over a TLS session whose certificate was verified
/// (ssl-mode=VERIFY_CA or VERIFY_IDENTITY) or over a unix socket: connect_options::validate()
/// refuses anything else.
class credential_provider {
public:
    using clock = std::chrono::steady_clock;
    /// Returns the password, or throws, by `deadline` (clock::time_point::max(): no deadline).
    using timed_fetch_function = std::function<std::string(clock::time_point deadline)>;
    /// Returns the password; not told of any deadline.
    using fetch_function = std::function<std::string()>;
    using rejected_function = std::function<void()>;

    /// No provider: the connection uses connect_options::password.
    credential_provider() = default;
    credential_provider(std::string name, timed_fetch_function fetch,
                        rejected_function on_rejected = {})
            : name_(std::move(name)), fetch_(std::move(fetch)),
              on_rejected_(std::move(on_rejected)) {}
    credential_provider(std::string name, fetch_function fetch, rejected_function on_rejected = {})
            : credential_provider(std::move(name), untimed(std::move(fetch)),
                                  std::move(on_rejected)) {}
    /// Any callable returning the password, timed or plain, named "credentials" in messages.
    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, credential_provider> &&
             (std::is_invocable_r_v<std::string, F&> ||
              std::is_invocable_r_v<std::string, F&, clock::time_point>))
        credential_provider(F fetch) // NOLINT(google-explicit-constructor): a lambda is a provider
            : credential_provider("credentials", as_timed(std::move(fetch))) {}

    explicit operator bool() const noexcept { return static_cast<bool>(fetch_); }
    const std::string& name() const noexcept { return name_; }
    /// The password for a new connection, returned or failed by `deadline` when the fetch is
    /// timed (a plain fetch takes as long as it takes).
    std::string operator()(clock::time_point deadline) const { return fetch_(deadline); }
    /// The password for a new connection, however long it takes.
    std::string operator()() const { return fetch_(clock::time_point::max()); }
    /// Tells the provider that the server refused its last password.
    void rejected() const {
        if (on_rejected_)
            on_rejected_();
    }

private:
    static timed_fetch_function untimed(fetch_function fetch) {
        if (!fetch)
            return {};
        return [fetch = std::move(fetch)](clock::time_point) { return fetch(); };
    }
    template <class F>
    static timed_fetch_function as_timed(F fetch) {
        if constexpr (std::is_invocable_r_v<std::string, F&, clock::time_point>)
            return timed_fetch_function(std::move(fetch));
        else
            return untimed(fetch_function(std::move(fetch)));
    }

    std::string name_;
    timed_fetch_function fetch_;
    rejected_function on_rejected_;
};

/// A token and the moment it stops being accepted.
struct access_token {
    std::string value;
    std::chrono::system_clock::time_point expires_at;
};

struct token_cache_options {
    /// A cached token is fetched anew once it has less than this left to live.
    std::chrono::seconds refresh_before{std::chrono::minutes(5)};
    /// The wall clock; empty: std::chrono::system_clock::now. For tests.
    std::function<std::chrono::system_clock::time_point()> now{};
};

/// A provider that calls `fetch` only when it holds no token with more than refresh_before
/// left, and drops its token when the server refuses it. Thread-safe; copies share the cache.
///
/// Waiting: `fetch` runs on a thread of its own, one fetch at a time per cache, and no lock is
/// held while it runs. A caller that needs a token while a fetch runs waits for that fetch
/// instead of starting another, at most until its own deadline (connect(): the end of its
/// connect_timeout). When the deadline comes first, the caller gets the cached token if one is
/// still unexpired (a refresh that is late costs nothing), else credential_timeout; the fetch
/// goes on and its token is cached for the next caller. A fetch that throws (or returns an empty
/// token) fails every caller still waiting for it with a std::runtime_error carrying its
/// what(), and the next caller starts a new fetch; that message is repeated to callers that
/// time out on the next fetch.
///
/// Lifetime: a running fetch owns the cache and `fetch` until it returns, even when every
/// provider and caller is gone; whatever `fetch` refers to must live as long. A fetch that never
/// returns leaves every later caller to time out: give `fetch` a limit of its own (as
/// command_token_provider does). At program exit a fetch still running is abandoned.
credential_provider cached_token_provider(std::string name, std::function<access_token()> fetch,
                                          token_cache_options options = {});

/// How command_token_provider runs its command.
struct command_token_options {
    /// How long a token lives when the command prints no expiry. Must be positive.
    std::chrono::seconds lifetime{std::chrono::minutes(55)};
    /// How long the command may run: past it, the command and every process it started get
    /// SIGTERM, then SIGKILL a second later, and the fetch fails ("its command did not finish
    /// within 20 s and was killed"). 20 s by default: az and gcloud usually answer within a few
    /// seconds, but take longer when they first refresh their own sign-in. 100 ms to 1 h. This
    /// is the command's limit, not the connect's: a connect waits for the token at most until
    /// its own connect_timeout, and a command that finishes after that still fills the cache.
    std::chrono::milliseconds timeout{std::chrono::seconds(20)};
    /// The token cache's options (refresh_before, clock).
    token_cache_options cache{};
};

/// A cached provider (cached_token_provider: one command at a time, callers wait at most until
/// their deadline) that runs `command` with /bin/sh -c and reads the token from its standard
/// output: the first word is the token, an optional second word the expiry in seconds since
/// the Unix epoch; without one the token is taken to live for `options.lifetime`. A command
/// that exits non-zero, is killed, outlives options.timeout or prints nothing fails the fetch.
/// For example:
///
///     az account get-access-token --resource-type oss-rdbms
///         --query "[accessToken,expires_on]" -o tsv                      (Azure Entra)
///     gcloud sql generate-login-token                                    (Cloud SQL IAM)
/// (one command line each).
///
/// The command runs in a process group of its own, with standard input from /dev/null, the
/// program's environment, and no other descriptor of the program. Its standard output is never
/// shown anywhere. When it fails, the last line of its standard error goes into the message
/// (cut to 200 bytes, control characters blanked; left out when it contains what the command
/// printed as its token), since that is where az and gcloud say what to do ("Please run 'az
/// login' to setup account."); otherwise standard error is discarded. A command must never
/// print its token to standard error. When the command exits, processes it left running in
/// its group are ended too (SIGTERM, SIGKILL a second later). At program exit (std::exit or
/// return from main), commands still running are killed with their groups.
credential_provider command_token_provider(std::string name, std::string command,
                                           command_token_options options);
/// The same with `lifetime` and cache options, and the default timeout (20 s).
credential_provider command_token_provider(std::string name, std::string command,
                                           std::chrono::seconds lifetime = std::chrono::minutes(55),
                                           token_cache_options options = {});

} // namespace cloudmysql
