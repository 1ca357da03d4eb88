// read_server_report(): what a server runs with; check_deployment(): does a deployment fit it.
#include <cloudmysql/server_report.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace cloudmysql {

std::string_view to_string(tls_verification v) noexcept {
    switch (v) {
    case tls_verification::not_encrypted:
        return "not-encrypted";
    case tls_verification::unverified:
        return "encrypted-unverified";
    case tls_verification::ca:
        return "ca-verified";
    case tls_verification::ca_and_host:
        return "ca-and-host-verified";
    }
    return "unknown";
}

tls_verification tls_verification_of(const connect_options& opts, bool encrypted) noexcept {
    if (!encrypted)
        return tls_verification::not_encrypted;
    switch (opts.effective_tls_mode()) {
    case tls_mode::verify_identity:
        return tls_verification::ca_and_host;
    case tls_mode::verify_ca:
        return tls_verification::ca;
    case tls_mode::required:
        // connection.cpp hands libmariadb the CA file in this mode, and it then checks the chain.
        return opts.ssl_ca.empty() ? tls_verification::unverified : tls_verification::ca;
    case tls_mode::disabled:
    case tls_mode::preferred:
        break;
    }
    return tls_verification::unverified;
}

std::string_view to_string(deployment_check::outcome o) noexcept {
    switch (o) {
    case deployment_check::outcome::pass:
        return "pass";
    case deployment_check::outcome::fail:
        return "fail";
    case deployment_check::outcome::unknown:
        return "unknown";
    }
    return "unknown";
}

bool deployment_verdict::passed() const noexcept {
    for (const auto& c : checks)
        if (c.result == deployment_check::outcome::fail)
            return false;
    return true;
}

namespace {

std::optional<std::int64_t> to_number(std::string_view text) {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return n;
}

// The first column of a row as text: SHOW returns strings, COUNT(*) a number.
std::string text_of(const row& r, std::size_t index) {
    return r.is_null(index) ? std::string() : r.get<std::string>(index);
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size())
        return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i])
            return false;
    return true;
}

bool equals_ci(std::string_view a, std::string_view b) {
    return a.size() == b.size() && starts_with_ci(a, b);
}

// Names are lower case: starts_with_ci() compares against them as they are.
void read_variables(connection& conn, server_report& r) {
    // SHOW works on MariaDB and on MySQL 8, where information_schema.GLOBAL_VARIABLES is gone.
    // Session scope: for max_user_connections that is the account's own limit, if it has one.
    // aad_* is Azure Database for MySQL's Entra setting (aad_auth_only); cloudsql_* are Cloud
    // SQL's own flags (cloudsql_iam_authentication).
    const auto vars =
        conn.query("SHOW VARIABLES WHERE Variable_name IN ('max_connections', "
                   "'max_user_connections', 'connect_timeout', 'wait_timeout', "
                   "'interactive_timeout', 'lock_wait_timeout', 'require_secure_transport', "
                   "'version_comment') OR Variable_name LIKE 'aad\\_%' "
                   "OR Variable_name LIKE 'cloudsql\\_%'");
    const std::pair<std::string_view, std::optional<std::int64_t>*> numbers[] = {
        {"max_connections", &r.max_connections},
        {"max_user_connections", &r.max_user_connections},
        {"connect_timeout", &r.connect_timeout},
        {"wait_timeout", &r.wait_timeout},
        {"interactive_timeout", &r.interactive_timeout},
        {"lock_wait_timeout", &r.lock_wait_timeout}};
    std::string azure, cloud_sql;
    for (const auto& row : vars) {
        const std::string name = text_of(row, 0);
        const std::string value = text_of(row, 1);
        for (const auto& [wanted, target] : numbers)
            if (equals_ci(name, wanted))
                *target = to_number(value);
        if (equals_ci(name, "require_secure_transport"))
            r.require_secure_transport = value;
        else if (equals_ci(name, "version_comment"))
            r.version_comment = value;
        else if (starts_with_ci(name, "aad_") && azure.empty())
            azure = "variable " + name;
        else if (starts_with_ci(name, "cloudsql_") && cloud_sql.empty())
            cloud_sql = "variable " + name;
    }
    if (azure.empty() && r.version_comment.find("Azure") != std::string::npos)
        azure = fmt::format("version_comment '{}'", r.version_comment);
    if (!azure.empty() && cloud_sql.empty()) {
        r.cloud = "Azure Database for MySQL";
        r.cloud_evidence = azure;
    } else if (!cloud_sql.empty() && azure.empty()) {
        r.cloud = "Google Cloud SQL";
        r.cloud_evidence = cloud_sql;
    } else if (!azure.empty()) {
        r.cloud_evidence = fmt::format("conflicting signs: {} and {}", azure, cloud_sql);
    }
}

// Counts are extras: a server that refuses these queries (a missing privilege, no
// performance_schema) leaves them unknown. A lost session still throws.
void rethrow_if_lost(const connection& conn, const error_code& ec, const diagnostics& diag) {
    if (ec && conn.fault() != error_class::none)
        throw database_error(ec, diag);
}

void read_status(connection& conn, server_report& r) {
    error_code ec;
    diagnostics diag;
    const auto status = conn.query("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                   "('Threads_connected', 'Max_used_connections')",
                                   ec, diag);
    rethrow_if_lost(conn, ec, diag);
    for (const auto& row : status) {
        const std::string name = text_of(row, 0);
        if (equals_ci(name, "threads_connected"))
            r.threads_connected = to_number(text_of(row, 1));
        else if (equals_ci(name, "max_used_connections"))
            r.max_used_connections = to_number(text_of(row, 1));
    }
    // Without the PROCESS privilege the list holds only this user's sessions, which is what is
    // counted anyway.
    ec.clear();
    const auto mine = conn.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                 "WHERE USER = SUBSTRING_INDEX(USER(), '@', 1)",
                                 ec, diag);
    rethrow_if_lost(conn, ec, diag);
    if (!ec && !mine.empty() && !mine[0].is_null(0))
        r.user_connections = mine[0].get<std::int64_t>(0);
}

} // namespace

server_report read_server_report(connection& conn) {
    server_report r;
    r.version = conn.server_version();
    r.flavor = conn.flavor();
    r.tls_version = conn.tls_version();
    r.tls_cipher = conn.tls_cipher();
    r.ssl_mode = conn.options().effective_tls_mode();
    r.verification = tls_verification_of(conn.options(), !r.tls_cipher.empty());
    r.ssl_ca = conn.options().ssl_ca;
    read_variables(conn, r);
    read_status(conn, r);
    return r;
}

// ---- check_deployment --------------------------------------------------------------------------

namespace {

using outcome = deployment_check::outcome;

// "1800 s", or "1.5 s" for a duration that is not whole seconds.
std::string seconds_text(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0)
        return fmt::format("{} s", d.count() / 1000);
    return fmt::format("{:.3g} s", static_cast<double>(d.count()) / 1000.0);
}

// a × b + c, saturating instead of wrapping on absurd inputs.
std::uint64_t demand(std::size_t instances, std::size_t pool_size, std::size_t reserve) {
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t a = instances, b = pool_size, c = reserve;
    if (b != 0 && a > max / b)
        return max;
    const std::uint64_t product = a * b;
    return product > max - c ? max : product + c;
}

// instances × pool_size + reserve against one server limit.
deployment_check fits_under(std::string_view limit_name, std::optional<std::int64_t> limit,
                            const deployment& d) {
    deployment_check c{std::string(limit_name), outcome::unknown, {}};
    const std::uint64_t need = demand(d.instances, d.pool_size, d.reserve);
    const std::string sum =
        fmt::format("{} × {} + {} reserved = {}", d.instances, d.pool_size, d.reserve, need);
    if (!limit) {
        c.reason = fmt::format("{}; the server did not show {}: check it by hand", sum, limit_name);
        return c;
    }
    const auto allowed = static_cast<std::uint64_t>(*limit < 0 ? 0 : *limit);
    if (need <= allowed) {
        c.result = outcome::pass;
        c.reason = fmt::format("{} ≤ {} {}", sum, limit_name, allowed);
        return c;
    }
    c.result = outcome::fail;
    const std::string raise = fmt::format("raise {} to {}", limit_name, need);
    std::string fix;
    if (allowed <= d.reserve)
        fix = fmt::format("{} leaves nothing beyond the {} reserved: {}", limit_name, d.reserve,
                          raise);
    else if (const std::uint64_t fit = (allowed - d.reserve) / d.instances; fit >= 1)
        fix = fmt::format("lower pool_size to {} or {}", fit, raise);
    else
        fix = fmt::format("run at most {} instances with pool_size 1, or {}", allowed - d.reserve,
                          raise);
    c.reason = fmt::format("{} > {} {}: {}", sum, limit_name, allowed, fix);
    return c;
}

// "120 s", or what 0 means for the setting.
std::string setting_text(std::chrono::milliseconds value, std::string_view zero_means) {
    return value.count() == 0 ? fmt::format("0 ({})", zero_means) : seconds_text(value);
}

// An idle pooled connection must hear from the pool (a ping, or its close) before the server's
// wait_timeout runs out.
deployment_check idle_below_wait_timeout(const deployment& d, std::optional<std::int64_t> wait) {
    deployment_check c{"wait_timeout", outcome::unknown, {}};
    const std::chrono::milliseconds silence =
        longest_idle_silence(d.idle_timeout, d.keepalive_interval, d.min_idle);
    const std::string settings = fmt::format(
        "idle_timeout {}, keepalive_interval {}{}", setting_text(d.idle_timeout, "kept forever"),
        setting_text(d.keepalive_interval, "off"),
        d.min_idle > 0 ? fmt::format(", min_idle {} kept open", d.min_idle) : "");
    const std::string idle =
        silence.count() == 0
            ? fmt::format("an idle connection is never pinged or closed ({})", settings)
            : fmt::format("an idle connection is pinged or closed after {} "
                          "({})",
                          seconds_text(silence), settings);
    if (!wait || *wait <= 0) {
        c.reason = fmt::format("{}; the server did not show wait_timeout: check it by hand", idle);
        return c;
    }
    if (silence.count() != 0 && silence < std::chrono::seconds(*wait)) {
        c.result = outcome::pass;
        c.reason = fmt::format("{} < wait_timeout {} s", idle, *wait);
        return c;
    }
    c.result = outcome::fail;
    // idle_timeout never closes the min_idle connections: only the keepalive bounds them.
    const std::string lower =
        d.min_idle > 0 ? fmt::format("lower keepalive_interval below wait_timeout {} (idle_timeout "
                                     "does not close the min_idle connections), or set min_idle "
                                     "to 0",
                                     *wait)
                       : fmt::format("lower keepalive_interval or idle_timeout below "
                                     "wait_timeout {}",
                                     *wait);
    c.reason =
        fmt::format("{}, not below wait_timeout {} s: the server drops idle sessions the "
                    "pool still holds; {}{}",
                    idle, *wait, lower, silence.count() == 0 ? "" : ", or raise wait_timeout");
    return c;
}

} // namespace

std::chrono::milliseconds longest_idle_silence(std::chrono::milliseconds idle_timeout,
                                               std::chrono::milliseconds keepalive_interval,
                                               std::size_t min_idle) noexcept {
    if (idle_timeout.count() == 0 || min_idle > 0)
        return keepalive_interval;
    if (keepalive_interval.count() == 0)
        return idle_timeout;
    return std::min(idle_timeout, keepalive_interval);
}

deployment_verdict check_deployment(const server_report& report, const deployment& d) {
    if (d.instances == 0 || d.pool_size == 0)
        throw std::invalid_argument(
            fmt::format("check_deployment: instances ({}) and pool_size ({}) must be at least 1",
                        d.instances, d.pool_size));
    deployment_verdict v;
    v.checks.push_back(fits_under("max_connections", report.max_connections, d));
    if (report.max_user_connections.value_or(0) > 0)
        v.checks.push_back(fits_under("max_user_connections", report.max_user_connections, d));
    // No check of max_lifetime: wait_timeout counts idle time, not a session's age.
    v.checks.push_back(idle_below_wait_timeout(d, report.wait_timeout));
    return v;
}

} // namespace cloudmysql
