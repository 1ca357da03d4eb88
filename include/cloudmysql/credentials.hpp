// Passwords that are really tokens: providers, a cache that keeps a token until shortly before
// it expires, and a provider that asks a command line tool (az, gcloud) for one.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

namespace cloudmysql {

/// Supplies the password for each new connection. Cloud access tokens (Azure Entra, Cloud SQL
/// IAM) expire, so the connection asks its provider every time it connects.
///
/// A provider has a name, which every error about it carries ("credential provider
/// 'azure-entra' failed: ..."), a fetch function, called once per connect attempt on the
/// connecting thread, and optionally a function told when the server refused what fetch
/// returned (error 1045), so that a cache can drop it. An exception from fetch, or an empty
/// result, fails the connect with client_errc::credential_provider_failed.
///
/// What a provider returns is sent only over a TLS session whose certificate was verified
/// (ssl-mode=VERIFY_CA or VERIFY_IDENTITY) or over a unix socket: connect_options::validate()
/// refuses anything else.
class credential_provider {
public:
    using fetch_function = std::function<std::string()>;
    using rejected_function = std::function<void()>;

    /// No provider: the connection uses connect_options::password.
    credential_provider() = default;
    credential_provider(std::string name, fetch_function fetch, rejected_function on_rejected = {})
            : name_(std::move(name)), fetch_(std::move(fetch)),
              on_rejected_(std::move(on_rejected)) {}
    /// Any callable returning the password, named "credentials" in messages.
    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, credential_provider> &&
             std::is_invocable_r_v<std::string, F&>)
        credential_provider(F fetch) // NOLINT(google-explicit-constructor): a lambda is a provider
            : credential_provider("credentials", fetch_function(std::move(fetch))) {}

    explicit operator bool() const noexcept { return static_cast<bool>(fetch_); }
    const std::string& name() const noexcept { return name_; }
    /// The password for a new connection.
    std::string operator()() const { return fetch_(); }
    /// Tells the provider that the server refused its last password.
    void rejected() const {
        if (on_rejected_)
            on_rejected_();
    }

private:
    std::string name_;
    fetch_function fetch_;
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
/// left, and drops its token when the server refuses it. Thread-safe: connections opened
/// together wait for one fetch instead of each making their own. Copies share the cache.
credential_provider cached_token_provider(std::string name, std::function<access_token()> fetch,
                                          token_cache_options options = {});

/// A cached provider that runs `command` with /bin/sh and reads the token from its standard
/// output: the first word is the token, an optional second word the expiry in seconds since
/// the Unix epoch; without one the token is taken to live for `lifetime`. A command that exits
/// non-zero or prints nothing fails with its exit status. For example:
///
///     az account get-access-token --resource-type oss-rdbms
///         --query "[accessToken,expires_on]" -o tsv                      (Azure Entra)
///     gcloud sql generate-login-token                                    (Cloud SQL IAM)
/// (one command line each).
credential_provider command_token_provider(std::string name, std::string command,
                                           std::chrono::seconds lifetime = std::chrono::minutes(55),
                                           token_cache_options options = {});

} // namespace cloudmysql
