// cloudmysql-doctor: what a server really runs with, and whether a deployment of pools fits it.
//
// Shows: cloudmysql::read_server_report() (version, cloud, TLS and how the certificate was
// checked, connection limits, timeouts, connections in use) and check_deployment() (does
// N instances × a pool of M fit under max_connections, does the pool ping or close an idle
// connection before wait_timeout runs out), a token command as the password, and output for people
// or for programs.
//
//   cloudmysql-doctor --url 'mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   cloudmysql-doctor --instances 3 --pool-size 8        (URL from CLOUDMYSQL_URL)
//   cloudmysql-doctor --password-command 'gcloud sql generate-login-token' --json
//
// Exit codes: 0 report made (and the verdict passes), 1 the verdict fails, 2 bad usage or the
// server could not be reached (the message says why and what to do). The password is never
// printed.
#include "../common/command_line.hpp"
#include "../common/json_string.hpp"

#include <cloudmysql/connection.hpp>
#include <cloudmysql/credentials.hpp>
#include <cloudmysql/server_report.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using cloudmysql_examples::command_line;
using cloudmysql_examples::json_string;
using cloudmysql_examples::usage_error;

struct settings {
    std::string url; // unless given: CLOUDMYSQL_URL
    bool url_given = false;
    std::string password_command;
    bool json = false;
    std::optional<std::uint64_t> instances, pool_size, max_lifetime, idle_timeout,
        keepalive_interval, min_idle, reserve;
};

void declare(command_line& cl, settings& s) {
    cl.text("--url", s.url,
            "mysql://USER:PASSWORD@HOST[:PORT]/DB?ssl-mode=...; default: the CLOUDMYSQL_URL "
            "environment variable",
            "URL");
    cl.text("--password-command", s.password_command,
            "run CMD for the password (an Azure Entra or Cloud SQL IAM token); needs "
            "ssl-mode=VERIFY_CA or VERIFY_IDENTITY, or a unix socket",
            "CMD");
    cl.number("--instances", s.instances, 1, 100000,
              "copies of the program that will run, each with its own pool");
    cl.number("--pool-size", s.pool_size, 1, 10000, "each pool's max_size", "M");
    cl.number("--idle-timeout", s.idle_timeout, 0, 604800,
              "the pools' idle_timeout (default 600; 0: kept forever)", "SECONDS");
    cl.number("--keepalive-interval", s.keepalive_interval, 0, 604800,
              "how often the pools ping idle connections (default 120; 0: off); this or "
              "--idle-timeout must be below the server's wait_timeout",
              "SECONDS");
    cl.number("--min-idle", s.min_idle, 0, 10000,
              "connections each pool keeps open however long they are idle (default 0); with "
              "more than 0, only --keepalive-interval bounds their silence",
              "N");
    cl.number("--max-lifetime", s.max_lifetime, 0, 604800,
              "the pools' max_lifetime (default 1800; 0: no limit); shown only: wait_timeout "
              "limits idle time, not a connection's age",
              "SECONDS");
    cl.number("--reserve", s.reserve, 0, 100000,
              "connections kept for admin sessions and migrations (default 3)");
    cl.flag("--json", s.json, "one JSON object instead of the report for people");
}

void check(const command_line& cl, settings& s) {
    cl.allow_positionals(0, "options only");
    s.url_given = cl.given("--url");
    if (s.instances.has_value() != s.pool_size.has_value())
        throw usage_error("a verdict needs both --instances and --pool-size");
    if (!s.instances &&
        (s.max_lifetime || s.idle_timeout || s.keepalive_interval || s.min_idle || s.reserve))
        throw usage_error("--idle-timeout, --keepalive-interval, --min-idle, --max-lifetime and "
                          "--reserve go with --instances and --pool-size");
    if (s.min_idle && s.pool_size && *s.min_idle > *s.pool_size)
        throw usage_error(
            "--min-idle is above --pool-size: a pool keeps at most its max_size open");
}

cloudmysql::connect_options target_of(const settings& cl) {
    auto opts = cl.url_given ? cloudmysql::connect_options::from_url(cl.url)
                             : cloudmysql::connect_options::from_env();
    if (!opts)
        throw usage_error("no server given: pass --url mysql://USER:PASSWORD@HOST/DB or set "
                          "CLOUDMYSQL_URL");
    if (!cl.password_command.empty())
        opts->credentials =
            cloudmysql::command_token_provider("password-command", cl.password_command);
    return *opts;
}

cloudmysql::deployment deployment_of(const settings& cl) {
    cloudmysql::deployment d;
    d.instances = static_cast<std::size_t>(*cl.instances);
    d.pool_size = static_cast<std::size_t>(*cl.pool_size);
    if (cl.max_lifetime)
        d.max_lifetime = std::chrono::seconds(*cl.max_lifetime);
    if (cl.idle_timeout)
        d.idle_timeout = std::chrono::seconds(*cl.idle_timeout);
    if (cl.keepalive_interval)
        d.keepalive_interval = std::chrono::seconds(*cl.keepalive_interval);
    if (cl.min_idle)
        d.min_idle = static_cast<std::size_t>(*cl.min_idle);
    if (cl.reserve)
        d.reserve = static_cast<std::size_t>(*cl.reserve);
    return d;
}

// ---- output ------------------------------------------------------------------------------------

std::string text(const std::optional<std::int64_t>& n) {
    return n ? std::to_string(*n) : "unknown";
}
std::string json_number(const std::optional<std::int64_t>& n) {
    return n ? std::to_string(*n) : "null";
}
std::string json_text(const std::string& s) {
    return s.empty() ? "null" : json_string(s);
}
std::string_view flavor_name(cloudmysql::server_flavor f) {
    return f == cloudmysql::server_flavor::mariadb ? "MariaDB" : "MySQL";
}

void print_report(const cloudmysql::connect_options& opts, const cloudmysql::server_report& r) {
    auto line = [](std::string_view label, const std::string& value) {
        fmt::print("{:<26}{}\n", label, value);
    };
    line("server", fmt::format("{}", opts)); // the formatter masks the password
    line("version", fmt::format("{} ({}{}{})", r.version, flavor_name(r.flavor),
                                r.version_comment.empty() ? "" : ", ", r.version_comment));
    line("cloud",
         r.cloud_evidence.empty() ? r.cloud : fmt::format("{} ({})", r.cloud, r.cloud_evidence));
    line("tls", r.tls_cipher.empty() ? std::string("not encrypted")
                                     : fmt::format("{}, {}", r.tls_version, r.tls_cipher));
    line("certificate",
         fmt::format("{} (ssl-mode={}{})", to_string(r.verification), to_string(r.ssl_mode),
                     r.verification == cloudmysql::tls_verification::ca ||
                             r.verification == cloudmysql::tls_verification::ca_and_host
                         ? ", roots from " + (r.ssl_ca.empty() ? "the system store" : r.ssl_ca)
                         : std::string()));
    line("max_connections", text(r.max_connections));
    line("max_user_connections",
         r.max_user_connections == 0 ? "0 (no per-user limit)" : text(r.max_user_connections));
    line("connect_timeout", text(r.connect_timeout));
    line("wait_timeout", text(r.wait_timeout));
    line("interactive_timeout", text(r.interactive_timeout));
    line("lock_wait_timeout", text(r.lock_wait_timeout));
    line("require_secure_transport",
         r.require_secure_transport.empty() ? "unknown" : r.require_secure_transport);
    line("connections in use", r.user_connections
                                   ? fmt::format("{} ({} of this user's, this one included)",
                                                 text(r.threads_connected), *r.user_connections)
                                   : text(r.threads_connected));
    line("max_used_connections", text(r.max_used_connections));
}

// "1800 s", or what 0 means for the setting.
std::string seconds_or(std::chrono::milliseconds d, std::string_view zero) {
    return d.count() == 0
               ? std::string(zero)
               : fmt::format("{} s", std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

// The library names a deployment's settings as its fields do (pool_size, idle_timeout, ...);
// in what a failed check says to do, this program names its flags instead.
std::string with_flags(std::string reason) {
    static constexpr std::pair<std::string_view, std::string_view> flags[] = {
        {"pool_size", "--pool-size"},
        {"idle_timeout", "--idle-timeout"},
        {"keepalive_interval", "--keepalive-interval"},
        {"min_idle", "--min-idle"},
        {"max_lifetime", "--max-lifetime"}};
    const auto advice = reason.rfind(": "); // "the numbers: what to do"
    if (advice == std::string::npos)
        return reason;
    for (const auto& [name, flag] : flags)
        for (auto at = reason.find(name, advice); at != std::string::npos;
             at = reason.find(name, at + flag.size()))
            reason.replace(at, name.size(), flag);
    return reason;
}

void print_verdict(const cloudmysql::deployment& d, const cloudmysql::deployment_verdict& v) {
    fmt::print("\ndeployment: {} instances × pool of {}, {} reserved, idle_timeout {}, "
               "keepalive_interval {}{}, max_lifetime {}\n",
               d.instances, d.pool_size, d.reserve,
               seconds_or(d.idle_timeout, "none (kept forever)"),
               seconds_or(d.keepalive_interval, "none (off)"),
               d.min_idle > 0 ? fmt::format(", min_idle {}", d.min_idle) : std::string(),
               seconds_or(d.max_lifetime, "none"));
    for (const auto& c : v.checks)
        fmt::print("  {:<8} {:<21} {}\n", to_string(c.result), c.name,
                   c.result == cloudmysql::deployment_check::outcome::fail ? with_flags(c.reason)
                                                                           : c.reason);
    fmt::print("verdict: {}\n", v.passed() ? "pass" : "fail");
}

std::string report_json(const cloudmysql::connect_options& opts,
                        const cloudmysql::server_report& r) {
    return fmt::format(
        R"("server":{},"version":{},"flavor":"{}","version_comment":{},"cloud":{},)"
        R"("cloud_evidence":{},"tls":{{"version":{},"cipher":{},"ssl_mode":"{}",)"
        R"("verification":"{}","ssl_ca":{}}},"variables":{{"max_connections":{},)"
        R"("max_user_connections":{},"connect_timeout":{},"wait_timeout":{},)"
        R"("interactive_timeout":{},"lock_wait_timeout":{},"require_secure_transport":{}}},)"
        R"("connections":{{"threads_connected":{},"user_connections":{},)"
        R"("max_used_connections":{}}})",
        json_string(opts.to_url()), json_string(r.version), flavor_name(r.flavor),
        json_text(r.version_comment), json_string(r.cloud), json_text(r.cloud_evidence),
        json_text(r.tls_version), json_text(r.tls_cipher), to_string(r.ssl_mode),
        to_string(r.verification), json_text(r.ssl_ca), json_number(r.max_connections),
        json_number(r.max_user_connections), json_number(r.connect_timeout),
        json_number(r.wait_timeout), json_number(r.interactive_timeout),
        json_number(r.lock_wait_timeout), json_text(r.require_secure_transport),
        json_number(r.threads_connected), json_number(r.user_connections),
        json_number(r.max_used_connections));
}

std::string verdict_json(const cloudmysql::deployment& d, const cloudmysql::deployment_verdict& v) {
    std::vector<std::string> checks;
    for (const auto& c : v.checks)
        checks.push_back(fmt::format(R"({{"name":{},"result":"{}","reason":{}}})",
                                     json_string(c.name), to_string(c.result),
                                     json_string(c.reason)));
    return fmt::format(R"("deployment":{{"instances":{},"pool_size":{},"reserve":{},)"
                       R"("max_lifetime_ms":{},"idle_timeout_ms":{},"keepalive_interval_ms":{},)"
                       R"("min_idle":{},"checks":[{}],"passed":{}}})",
                       d.instances, d.pool_size, d.reserve, d.max_lifetime.count(),
                       d.idle_timeout.count(), d.keepalive_interval.count(), d.min_idle,
                       fmt::join(checks, ","), v.passed());
}

// On stderr for people (with `hint` on a line of its own); with --json, also a JSON object on
// stdout.
int failure(bool as_json, std::string_view message, std::string_view cls,
            std::string_view hint = {}) {
    fmt::print(stderr, "cloudmysql-doctor: {}\n", message);
    if (!hint.empty())
        fmt::print(stderr, "{}\n", hint);
    if (as_json)
        fmt::print(R"({{"error":{{"message":{},"class":"{}"}}}})"
                   "\n",
                   json_string(message), cls);
    return 2;
}

int run(int argc, char** argv, bool as_json) {
    settings cl;
    command_line args("cloudmysql-doctor", "[OPTIONS]",
                      "cloudmysql-doctor: what a server really runs with, and whether a "
                      "deployment of pools fits it",
                      "Exit codes: 0 ok (the verdict passes), 1 the verdict fails, 2 bad usage or "
                      "no connection.");
    declare(args, cl);
    cloudmysql::connect_options opts;
    try {
        if (!args.parse(argc, argv))
            return 0; // --help
        check(args, cl);
        opts = target_of(cl);
    } catch (const std::invalid_argument& e) { // usage_error, or a URL that does not parse
        return failure(as_json, e.what(), "usage", args.short_usage());
    }

    try {
        cloudmysql::connection conn(opts);
        const auto report = cloudmysql::read_server_report(conn);
        std::optional<cloudmysql::deployment> d;
        std::optional<cloudmysql::deployment_verdict> verdict;
        if (cl.instances) {
            d = deployment_of(cl);
            verdict = cloudmysql::check_deployment(report, *d);
        }
        // Not `"," + verdict_json(...)`: prepending to a temporary string makes GCC 12 at -O3
        // warn that the copy may overlap (-Wrestrict, a false positive: GCC bug 105651).
        if (cl.json)
            fmt::print("{{{}{}{}}}\n", report_json(opts, report), verdict ? "," : "",
                       verdict ? verdict_json(*d, *verdict) : std::string());
        else {
            print_report(opts, report);
            if (verdict)
                print_verdict(*d, *verdict);
        }
        return verdict && !verdict->passed() ? 1 : 0;
    } catch (const cloudmysql::database_error& e) {
        return failure(cl.json, e.what(), to_string(e.error_class()));
    } catch (const std::invalid_argument& e) { // options that connect_options::validate() refuses
        return failure(cl.json, e.what(), "bad_input");
    }
}

} // namespace

int main(int argc, char** argv) {
    // --json is looked for first, so that a usage error is a JSON object on stdout too.
    bool as_json = false;
    for (int i = 1; i < argc; ++i)
        as_json = as_json || std::string_view(argv[i]) == "--json";
    try {
        return run(argc, argv, as_json);
    } catch (const std::exception& e) { // anything else (out of memory, a bug): no abort
        return failure(as_json, e.what(), "unexpected");
    }
}
