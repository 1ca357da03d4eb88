// Command lines parsed by CLI11, with usage errors of our own: they name the option, never the
// value given. CLI11's own messages quote values ("The following argument was not expected:
// --url=mysql://app:PASSWORD@..."), and a value may be a password or a token.
//
// The options are added as strings and converted after parsing by parse_integer() and
// parse_seconds(), whose errors name the option and its limits only. `--opt X` and `--opt=X`
// both work (CLI11).
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace cloudmysql_examples {

/// A usage error; what() names the option and what it takes, never the value given.
class usage_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

namespace detail {

// Some option's name when `message` (a CLI11 error's) is about it; only names from the app's
// own table are ever returned, so no byte of the command line reaches the output.
inline std::optional<std::string> option_named_in(const CLI::App& app, std::string_view message) {
    for (const CLI::Option* opt : app.get_options()) {
        const std::string name = opt->get_name();
        if (name.empty())
            continue;
        const bool at_start = message.starts_with(name) &&
                              (message.size() == name.size() || message[name.size()] == ':' ||
                               message[name.size()] == ' ');
        if (at_start || message.ends_with(" " + name) ||
            message.starts_with("Could not convert: " + name + " "))
            return name;
    }
    return std::nullopt;
}

// True for text shaped like an option's name ("--url", "-x"): such a word may be shown; any
// other argument may be a value (a password typed in the wrong place) and never is.
inline bool looks_like_option_name(std::string_view word) {
    if (word.size() < 2 || word.size() > 40 || word[0] != '-')
        return false;
    for (const char c : word.substr(word[1] == '-' ? 2 : 1))
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

} // namespace detail

/// What went wrong, in words that name options only (for a CLI11 ParseError that is not a
/// request for help).
inline std::string usage_message(const CLI::App& app, const CLI::ParseError& e) {
    const std::string_view what = e.what();
    const auto name = detail::option_named_in(app, what);
    const std::string option = name ? *name : std::string("an option");
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
        if (what.find("flag override") != std::string_view::npos)
            return option + " takes no value";
        if (what.find("At Most") != std::string_view::npos)
            return option + " takes one value";
        return option + " needs a value";
    }
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr)
        return name ? option + " is required" : "a required option is missing";
    if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr ||
        dynamic_cast<const CLI::ValidationError*>(&e) != nullptr)
        return option + " has a value it does not take";
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr)
        return "unexpected arguments";
    return fmt::format("the command line cannot be read ({})", e.get_name());
}

/// Parses the command line with `app`. Prints the help and returns 0 on --help; prints
/// "PROGRAM: MESSAGE" and a pointer to --help on stderr and returns 2 on a usage error (an
/// unknown option is named when it looks like one, "--url" of "--url=VALUE"; any other
/// unexpected argument only by its position); returns nothing when the program should go on.
/// `check` runs after parsing (conversions of the values): a usage_error it throws is reported
/// the same way.
template <class Check>
std::optional<int> parse_command_line(CLI::App& app, int argc, const char* const* argv,
                                      Check check) {
    const std::string program = app.get_name();
    const auto fail = [&](const std::string& message) {
        fmt::print(stderr, "{}: {}\nrun {} --help for the options\n", program, message, program);
        return 2;
    };
    app.allow_extras();
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success&) {
        fmt::print("{}", app.help());
        return 0;
    } catch (const CLI::ParseError& e) {
        return fail(usage_message(app, e));
    }
    const auto extras = app.remaining();
    if (!extras.empty()) {
        const std::string_view first = extras.front();
        const std::string_view name = first.substr(0, first.find('='));
        if (detail::looks_like_option_name(name))
            return fail(fmt::format("unknown option {}", name));
        int position = 0;
        for (int i = 1; i < argc && position == 0; ++i)
            if (argv[i] == first)
                position = i;
        return fail(fmt::format("unexpected argument at position {} (not shown: it may be a "
                                "secret); this program takes options only",
                                position));
    }
    try {
        check();
    } catch (const usage_error& e) {
        return fail(e.what());
    }
    return std::nullopt;
}

/// `text`, the value of `option`, as an integer from `min` to `max`.
template <class Integer>
Integer parse_integer(std::string_view option, std::string_view text, Integer min, Integer max) {
    Integer value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
        value > max)
        throw usage_error(fmt::format("{} takes a whole number from {} to {}", option, min, max));
    return value;
}

/// `text`, the value of `option`, as seconds (decimals allowed) above 0 and at most `max`.
inline double parse_seconds(std::string_view option, std::string_view text, double max) {
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        !std::isfinite(value) || value <= 0 || value > max)
        throw usage_error(fmt::format(
            "{} takes seconds, more than 0 and at most {} (e.g. 10 or 0.5)", option, max));
    return value;
}

} // namespace cloudmysql_examples
