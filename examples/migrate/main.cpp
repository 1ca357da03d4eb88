// cloudmysql-migrate: apply, revert and inspect the clinic schema's migrations.
//
// Shows: cloudmysql::migrator with its options (lock timeout, history table, progress
// callback), each command it offers, errors that say what happened and what to do, and output
// for people (aligned tables, live progress on a terminal) or for programs (--json).
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic?ssl-mode=VERIFY_IDENTITY'
//   cloudmysql-migrate status          where the database stands
//   cloudmysql-migrate up              apply what is pending (resumes a half-done migration)
//   cloudmysql-migrate down --steps 1  revert the newest migration
//   cloudmysql-migrate sql --from 0    the SQL script for a DBA to review; needs no server
//
// Exit codes: 0 done, 1 failed (the message says why and what to do; verify found problems),
// 2 bad usage. Times are UTC: this program's sessions run with time_zone '+00:00'.
#include "../common/command_line.hpp"
#include "../common/json_string.hpp"

#include <cloudmysql/clinic/schema.hpp>
#include <cloudmysql/credentials.hpp>
#include <cloudmysql/migrator.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using cloudmysql_examples::command_line;
using cloudmysql_examples::usage_error;

constexpr std::string_view commands_text = R"(Commands:
  status                     each migration and where the database stands
  up [--to V]                apply pending migrations (all, or up to version V)
  down [--steps N | --to V]  revert the newest N migrations (default 1), or all above V
  history                    the rows of the history table
  sql [--from A] [--to B]    the SQL from version A (default: the database's) to B (default:
                             the latest); with --from, no server is needed
  baseline V                 record 1..V as applied without running them (existing schema)
  verify                     check the database against this program; exit 1 on problems
Exit codes: 0 done, 1 failed (the message says why), 2 bad usage.)";

struct settings {
    std::string url; // unless given: CLOUDMYSQL_URL
    bool url_given = false;
    std::string password_command;
    bool json = false;
    std::string history_table;
    std::string command;
    std::optional<std::uint64_t> lock_timeout, to, from, steps, version;
};

void declare(command_line& cl, settings& s) {
    constexpr auto any = std::numeric_limits<std::uint64_t>::max();
    cl.text("--url", s.url,
            "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE; default: the CLOUDMYSQL_URL "
            "environment variable",
            "URL");
    cl.text("--password-command", s.password_command,
            "run CMD for the password (an Azure Entra or Cloud SQL IAM token); needs "
            "ssl-mode=VERIFY_CA or VERIFY_IDENTITY, or a unix socket",
            "CMD");
    cl.flag("--json", s.json, "one JSON document on stdout instead of text for people");
    cl.number("--lock-timeout", s.lock_timeout, 0, 3600,
              "how long to wait for another migrator's lock (default 60)", "SECONDS");
    cl.text("--history-table", s.history_table,
            "the history table's name (default cloudmysql_schema_history)", "NAME");
    cl.number("--to", s.to, 0, any, "up, down or sql: the version to end at", "V");
    cl.number("--from", s.from, 0, any, "sql: the version to start from", "V");
    cl.number("--steps", s.steps, 1, any, "down: how many migrations to revert", "N");
}

// Which command takes which option and argument.
void check(const command_line& cl, settings& s) {
    const auto& args = cl.positionals();
    constexpr std::string_view commands[] = {"status", "up",       "down",  "history",
                                             "sql",    "baseline", "verify"};
    if (args.empty())
        throw usage_error("no command given");
    s.command = args.front();
    // The command is not quoted: a mistyped argument may be a password.
    if (std::find(std::begin(commands), std::end(commands), s.command) == std::end(commands))
        throw usage_error("unknown command; expected status, up, down, history, sql, baseline "
                          "or verify");
    const std::string_view c = s.command;
    cl.allow_positionals(c == "baseline" ? 2 : 1, "a command, and a version after baseline");
    if (c == "baseline") {
        if (args.size() < 2)
            throw usage_error("baseline needs a version: baseline V");
        s.version = command_line::whole_number(
            args[1], 0, std::numeric_limits<std::uint64_t>::max(), "baseline");
    }
    if (s.to && c != "up" && c != "down" && c != "sql")
        throw usage_error("--to goes with up, down or sql");
    if ((s.from && c != "sql") || (s.steps && c != "down"))
        throw usage_error("--from goes with sql, --steps with down");
    if (s.steps && s.to)
        throw usage_error("down takes --steps or --to, not both");
}

// The database to migrate. `sql --from` needs no server: a stand-in names the database then.
cloudmysql::connect_options target_of(const settings& cl) {
    auto opts = cl.url_given ? cloudmysql::connect_options::from_url(cl.url)
                             : cloudmysql::connect_options::from_env();
    if (opts && opts->database.empty())
        throw usage_error("the URL names no database, and migrations apply to one: add it as "
                          "the path, mysql://USER:PASSWORD@HOST/DATABASE");
    if (opts) {
        opts->init_statements.push_back("SET time_zone = '+00:00'");
        if (!cl.password_command.empty())
            opts->credentials =
                cloudmysql::command_token_provider("password-command", cl.password_command);
        return *opts;
    }
    if (cl.command != "sql" || !cl.from)
        throw usage_error("no server given: pass --url mysql://USER:PASSWORD@HOST/DATABASE or "
                          "set CLOUDMYSQL_URL");
    cloudmysql::connect_options offline;
    offline.host = "localhost";
    offline.user = "nobody";
    offline.database = "DATABASE";
    return offline;
}

// ---- output --------------------------------------------------------------------------------

std::string json(std::string_view s) {
    return cloudmysql_examples::json_string(s);
}
std::string json(const std::optional<std::uint64_t>& n) {
    return n ? std::to_string(*n) : "null";
}
// ISO 8601 in UTC, "2024-05-01T12:00:03.123456Z", or null.
std::string json(const std::optional<cloudmysql::datetime>& t) {
    if (!t)
        return "null";
    std::string s = cloudmysql::to_display_string(*t);
    std::replace(s.begin(), s.end(), ' ', 'T');
    return json(s + "Z");
}
// Prints one JSON document on a line of its own.
template <class... Args>
void print_json(fmt::format_string<Args...> format, Args&&... args) {
    fmt::print("{}\n", fmt::format(format, std::forward<Args>(args)...));
}
std::string json_list(const std::vector<std::string>& items) {
    return fmt::format("[{}]", fmt::join(items, ","));
}

// For people: "2024-05-01 12:00:03", or "-".
std::string when(const std::optional<cloudmysql::datetime>& t) {
    return t ? cloudmysql::to_display_string(
                   cloudmysql::datetime(std::chrono::floor<std::chrono::seconds>(*t)))
             : "-";
}

std::string plural(std::size_t n, std::string_view word) {
    return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// Columns two spaces apart, each as wide as its widest cell.
void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(rows.front().size());
    for (const auto& r : rows)
        for (std::size_t c = 0; c < r.size(); ++c)
            width[c] = std::max(width[c], r[c].size());
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t c = 0; c + 1 < r.size(); ++c)
            line += fmt::format("{:<{}}  ", r[c], width[c]);
        fmt::print("{}{}\n", line, r.back());
    }
}

// Shows each step of up/down as it runs. On a terminal a step's line appears when it starts
// and gets its time when it ends; otherwise the line is printed whole at the end, so that a
// log holds no half lines. With --json the steps are collected for the report instead.
class progress_printer {
public:
    explicit progress_printer(bool json) : json_(json), live_(isatty(fileno(stdout)) == 1) {}

    void operator()(const cloudmysql::migration_event& e) {
        using kind = cloudmysql::migration_event::kind;
        if (json_ && (e.what == kind::step_finished || e.what == kind::step_skipped))
            steps_.push_back(fmt::format(
                R"({{"version":{},"step":{},"steps":{},"sql":{},"skipped":{},"duration_ms":{}}})",
                e.version, e.step, e.steps, json(e.summary), e.what == kind::step_skipped,
                e.duration.count()));
        if (json_)
            return;
        if (e.what == kind::migration_started)
            fmt::print("{} {} {} ({})\n", e.down ? "reverting" : "applying", e.version, e.name,
                       plural(e.steps, "step"));
        else if (e.what == kind::step_started)
            start_line(fmt::format("  [{}/{}] {} ...", e.step, e.steps, e.summary));
        else if (e.what == kind::step_finished)
            end_line(fmt::format("{} ms", e.duration.count()));
        else if (e.what == kind::step_skipped)
            fmt::print("  [{}/{}] {} ... already done (its postcondition holds), skipped\n", e.step,
                       e.steps, e.summary);
        else
            fmt::print("  {} in {} ms\n", e.down ? "reverted" : "applied", e.duration.count());
        std::fflush(stdout);
    }

    // Ends the line of a step that an error interrupted.
    void interrupted() {
        if (!line_.empty())
            end_line("failed");
        std::fflush(stdout);
    }

    const std::vector<std::string>& steps() const { return steps_; }

private:
    void start_line(std::string line) {
        if (live_)
            fmt::print("{}", line);
        line_ = std::move(line);
    }
    void end_line(std::string_view result) {
        fmt::print("{} {}\n", live_ ? "" : line_, result);
        line_.clear();
    }

    bool json_;
    bool live_;
    std::string line_; // the running step's line
    std::vector<std::string> steps_;
};

// ---- commands ------------------------------------------------------------------------------

// What to do next, after the status table.
void print_advice(const cloudmysql::status_report& r, std::uint64_t latest) {
    using cloudmysql::migration_state;
    std::vector<std::string> pending;
    for (const auto& m : r.migrations) {
        if (m.state == migration_state::pending)
            pending.push_back(fmt::format("{} {}", m.version, m.name));
        else if (m.state != migration_state::applied)
            fmt::print("migration {} {} is half-done ({} after {} of {} steps): run `up` to "
                       "finish it, or `down` to undo it\n",
                       m.version, m.name, to_string(m.state), m.history->steps_done,
                       m.history->steps_total);
        if (m.checksum_changed)
            fmt::print("migration {} {} was changed after it was applied: restore it and put "
                       "the change in a new migration\n",
                       m.version, m.name);
    }
    for (const auto& u : r.unknown)
        fmt::print("version {} {} ({}) is in the database but not in this program: deploy the "
                   "newer program\n",
                   u.version, u.name, to_string(u.state));
    fmt::print("database at version {} of {}", r.current_version, latest);
    if (r.up_to_date())
        fmt::print(", up to date\n");
    else if (!pending.empty())
        fmt::print(": {} pending ({}); run `up` to apply\n", pending.size(),
                   fmt::join(pending, ", "));
    else
        fmt::print(", not up to date (see above)\n");
}

int status(cloudmysql::migrator& mig, bool as_json) {
    const auto r = mig.status();
    std::vector<std::vector<std::string>> rows = {
        {"VERSION", "NAME", "STATE", "STEPS", "APPLIED AT (UTC)", "BY", "TIME ms"}};
    std::vector<std::string> items, unknown;
    for (std::size_t i = 0; i < r.migrations.size(); ++i) {
        const auto& m = r.migrations[i];
        const auto& h = m.history;
        const bool applied = m.state == cloudmysql::migration_state::applied;
        const std::string took =
            applied && h->duration_ms ? std::to_string(*h->duration_ms) : std::string();
        const std::uint64_t done = h ? h->steps_done : 0;
        const std::uint64_t total = h ? h->steps_total : mig.migrations()[i].up.size();
        rows.push_back(
            {std::to_string(m.version), m.name,
             fmt::format("{}{}", to_string(m.state), m.checksum_changed ? ", changed" : ""),
             fmt::format("{}/{}", done, total), applied ? when(h->applied_at) : "-",
             h ? h->applied_by : "-", took.empty() ? "-" : took});
        items.push_back(fmt::format(
            R"({{"version":{},"name":{},"state":"{}","steps_done":{},"steps_total":{},)"
            R"("checksum_changed":{},"applied_at":{},"applied_by":{},"duration_ms":{}}})",
            m.version, json(m.name), to_string(m.state), done, total, m.checksum_changed,
            applied ? json(h->applied_at) : "null", h ? json(h->applied_by) : "null",
            took.empty() ? "null" : took));
    }
    for (const auto& u : r.unknown)
        unknown.push_back(fmt::format(R"({{"version":{},"name":{},"state":"{}"}})", u.version,
                                      json(u.name), to_string(u.state)));
    if (as_json) {
        print_json(R"({{"current_version":{},"latest_version":{},"up_to_date":{},)"
                   R"("migrations":{},"unknown":{}}})",
                   r.current_version, mig.latest_version(), r.up_to_date(), json_list(items),
                   json_list(unknown));
        return 0;
    }
    print_table(rows);
    print_advice(r, mig.latest_version());
    return 0;
}

int history(cloudmysql::migrator& mig, bool as_json) {
    const auto entries = mig.history();
    std::vector<std::vector<std::string>> rows = {{"VERSION", "NAME", "STATE", "STEPS",
                                                   "STARTED AT (UTC)", "APPLIED AT (UTC)", "BY",
                                                   "TIME ms", "CHECKSUM"}};
    std::vector<std::string> items;
    for (const auto& h : entries) {
        rows.push_back({std::to_string(h.version), h.name, std::string(to_string(h.state)),
                        fmt::format("{}/{}", h.steps_done, h.steps_total), when(h.started_at),
                        when(h.applied_at), h.applied_by,
                        h.duration_ms ? std::to_string(*h.duration_ms) : "-",
                        h.checksum.substr(0, 12)});
        items.push_back(fmt::format(
            R"({{"version":{},"name":{},"state":"{}","steps_done":{},"steps_total":{},)"
            R"("checksum":{},"started_at":{},"applied_at":{},"applied_by":{},"duration_ms":{},)"
            R"("last_error":{}}})",
            h.version, json(h.name), to_string(h.state), h.steps_done, h.steps_total,
            json(h.checksum), json(h.started_at), json(h.applied_at), json(h.applied_by),
            json(h.duration_ms), h.last_error.empty() ? "null" : json(h.last_error)));
    }
    if (as_json)
        print_json(R"({{"history":{}}})", json_list(items));
    else if (entries.empty())
        fmt::print("the history is empty: no migration was applied to this database yet\n");
    else
        print_table(rows);
    for (const auto& h : entries)
        if (!as_json && !h.last_error.empty())
            fmt::print("version {} last error: {}\n", h.version, h.last_error);
    return 0;
}

int report(const cloudmysql::run_report& r, bool down, const progress_printer& progress,
           bool as_json) {
    if (as_json)
        print_json(R"({{"{}":[{}],"steps_run":{},"steps_skipped":{},"version_before":{},)"
                   R"("version_after":{},"steps":{}}})",
                   down ? "reverted" : "applied", fmt::join(r.applied, ","), r.steps_run,
                   r.steps_skipped, r.version_before, r.version_after, json_list(progress.steps()));
    else if (r.applied.empty())
        fmt::print("nothing to {}: the database stays at version {}\n", down ? "revert" : "apply",
                   r.version_after);
    else
        fmt::print("{} {} ({} run, {} skipped): version {} -> {}\n", down ? "reverted" : "applied",
                   plural(r.applied.size(), "migration"), plural(r.steps_run, "step"),
                   r.steps_skipped, r.version_before, r.version_after);
    return 0;
}

int verify(cloudmysql::migrator& mig, bool as_json) {
    const auto problems = mig.verify();
    std::vector<std::string> items;
    for (const auto& p : problems)
        items.push_back(json(p));
    if (as_json)
        print_json(R"({{"ok":{},"problems":{}}})", problems.empty(), json_list(items));
    else if (problems.empty())
        fmt::print("ok\n");
    for (const auto& p : problems)
        if (!as_json)
            fmt::print("problem: {}\n", p);
    return problems.empty() ? 0 : 1;
}

int dispatch(const settings& cl, cloudmysql::migrator& mig, progress_printer& progress) {
    const std::string& c = cl.command;
    if (c == "status")
        return status(mig, cl.json);
    if (c == "history")
        return history(mig, cl.json);
    if (c == "verify")
        return verify(mig, cl.json);
    if (c == "up")
        return report(mig.up(cl.to), false, progress, cl.json);
    if (c == "down")
        return report(cl.to ? mig.down_to(*cl.to) : mig.down(cl.steps.value_or(1)), true, progress,
                      cl.json);
    if (c == "sql") {
        const std::uint64_t from = cl.from ? *cl.from : mig.status().current_version;
        const std::uint64_t to = cl.to.value_or(mig.latest_version());
        const std::string script = mig.plan(from, to);
        if (cl.json)
            print_json(R"({{"from":{},"to":{},"sql":{}}})", from, to, json(script));
        else
            fmt::print("{}", script);
        return 0;
    }
    mig.baseline(*cl.version);
    if (cl.json)
        print_json(R"({{"baseline":{}}})", *cl.version);
    else
        fmt::print("recorded versions up to {} as applied, without running them\n", *cl.version);
    return 0;
}

// On stderr for people; with --json, a JSON document on stdout.
int failure(bool as_json, std::string_view message, std::string_view cls, int code) {
    if (as_json)
        print_json(R"({{"error":{{"message":{},"class":"{}","code":{}}}}})", json(message), cls,
                   code);
    else
        fmt::print(stderr, "cloudmysql-migrate: {}\n", message);
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    command_line cl("cloudmysql-migrate", "[OPTIONS] COMMAND [ARGS]",
                    "cloudmysql-migrate: apply, revert and inspect the clinic schema's migrations",
                    std::string(commands_text));
    declare(cl, s);
    std::optional<cloudmysql::migrator> mig;
    progress_printer progress(false);
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        check(cl, s);
        s.url_given = cl.given("--url");
        progress = progress_printer(s.json);
        cloudmysql::migrator_options options;
        if (!s.history_table.empty())
            options.history_table = s.history_table;
        if (s.lock_timeout)
            options.lock_timeout = std::chrono::seconds(*s.lock_timeout);
        options.on_progress = [&progress](const cloudmysql::migration_event& e) { progress(e); };
        mig.emplace(target_of(s), cloudmysql::clinic::migrations(), std::move(options));
    } catch (const std::invalid_argument& e) { // usage_error, or a bad URL or option value
        fmt::print(stderr, "cloudmysql-migrate: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }

    try {
        return dispatch(s, *mig, progress);
    } catch (const cloudmysql::database_error& e) {
        progress.interrupted();
        return failure(s.json, e.what(), to_string(e.error_class()), e.get_error_code().value());
    } catch (const std::invalid_argument& e) { // a version that no migration has
        progress.interrupted();
        return failure(s.json, e.what(), "bad_input", 0);
    }
}
