// The example programs' command lines: CLI11 reads them (`--name VALUE` and `--name=VALUE`,
// flags, -h/--help), and every usage error is said without any argument's value.
//
// A value can be a URL with its password (`--url=mysql://app:S3cret@...`), a password typed
// where an option was expected, or a token command; usage errors end up in terminals, CI logs
// and bug reports. CLI11's own messages quote values and unknown arguments whole, so they are
// never shown: an unknown option is named up to its '=' ("unknown option --uri"), an argument
// that is not an option is named by its position, and a bad number by its option.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cloudmysql_examples {

/// A command line that cannot be used. The message names the option or the argument's
/// position, never a value: show it, then the short usage, and exit 2.
struct usage_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// One program's options, declared with a help text each, then read from argv once. parse()
/// writes the targets given to text(), number() and flag(): they must outlive it.
class command_line {
public:
    /// `program` starts every message; `synopsis` follows it on the usage line ("[--url URL]
    /// COMMAND"); `description` heads --help; `footer` (commands, exit codes...) ends it.
    command_line(std::string program, std::string synopsis, std::string description,
                 std::string footer = {})
            : program_(std::move(program)), synopsis_(std::move(synopsis)),
              app_(std::move(description), program_) {
        app_.allow_extras(); // unknown arguments are named here, without their values
        app_.footer(std::move(footer));
        app_.formatter(std::make_shared<formatter>(fmt::format("{} {}", program_, synopsis_)));
    }

    /// `--name VALUE` (or `--name=VALUE`) into `target`; given twice, the last one counts.
    void text(const std::string& name, std::string& target, const std::string& help,
              const std::string& value_name = "TEXT") {
        app_.add_option(name, target, help)
            ->type_name(value_name)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }

    /// `--name N`: a whole number from `low` to `high`. `target` is an unsigned or signed
    /// integer (left as it is when the option is absent) or a std::optional<std::uint64_t>.
    template <class Number>
    void number(const std::string& name, Number& target, std::uint64_t low, std::uint64_t high,
                const std::string& help, const std::string& value_name = "N") {
        auto& text = numbers_.emplace_back();
        app_.add_option(name, text.value, help)
            ->type_name(value_name)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        text.convert = [this, name, &target, &text, low, high] {
            if (app_.count(name) == 0)
                return;
            const std::uint64_t n = whole_number(text.value, low, high, name);
            if constexpr (std::is_integral_v<Number>)
                target = static_cast<Number>(n);
            else
                target = n;
        };
    }

    /// `--name`, a switch.
    void flag(const std::string& name, bool& target, const std::string& help) {
        app_.add_flag(name, target, help);
    }

    /// Whether the option was given (a text option may be given empty on purpose).
    bool given(const std::string& name) const { return app_.count(name) > 0; }

    /// Reads the arguments: true to go on, false when --help was asked for and printed (exit 0
    /// then). Throws usage_error.
    bool parse(int argc, const char* const* argv) {
        try {
            app_.parse(argc, argv);
        } catch (const CLI::CallForHelp&) {
            fmt::print("{}", app_.help());
            return false;
        } catch (const CLI::ParseError& e) {
            throw usage_error(describe(e));
        }
        bool options_ended = false; // after "--" everything is an argument
        for (const std::string& arg : app_.remaining()) {
            if (!options_ended && arg == "--")
                options_ended = true;
            else if (!options_ended && arg.size() > 1 && arg[0] == '-')
                throw usage_error(fmt::format("unknown option {}", option_name(arg)));
            else
                positionals_.push_back(arg);
        }
        for (const auto& n : numbers_)
            n.convert();
        return true;
    }

    /// The arguments that are not options, in order.
    const std::vector<std::string>& positionals() const { return positionals_; }

    /// Throws usage_error when more than `allowed` arguments are not options, naming the first
    /// one too many by its position. `expected` says what the program takes ("options only").
    void allow_positionals(std::size_t allowed, std::string_view expected) const {
        if (positionals_.size() <= allowed)
            return;
        const std::size_t n = allowed + 1;
        const std::string_view suffix = n == 1 ? "st" : n == 2 ? "nd" : n == 3 ? "rd" : "th";
        throw usage_error(fmt::format("unexpected argument: the {}{} one that is not an option "
                                      "({} takes {})",
                                      n, suffix, program_, expected));
    }

    /// A whole number from `low` to `high` in `text`, or usage_error naming `what` (not the
    /// text): for numbers that come as arguments rather than options.
    static std::uint64_t whole_number(std::string_view text, std::uint64_t low, std::uint64_t high,
                                      std::string_view what) {
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && n >= low &&
            n <= high)
            return n;
        if (high == std::numeric_limits<std::uint64_t>::max())
            throw usage_error(fmt::format("{} needs a whole number, {} or more", what, low));
        throw usage_error(fmt::format("{} needs a whole number from {} to {}", what, low, high));
    }

    /// "usage: PROGRAM SYNOPSIS (--help for more)", for after a usage error.
    std::string short_usage() const {
        return fmt::format("usage: {} {} ({} --help for more)", program_, synopsis_, program_);
    }

private:
    // CLI11's usage line, in the programs' own words.
    struct formatter : CLI::Formatter {
        explicit formatter(std::string line) : line_(std::move(line)) {}
        std::string make_usage(const CLI::App*, std::string) const override {
            return fmt::format("usage: {}\n", line_);
        }
        std::string line_;
    };

    // A number option's text until parse() converts it.
    struct number_text {
        std::string value;
        std::function<void()> convert;
    };

    // "--name" or "-n" of an argument that may carry a value ("--url=mysql://...", "-pS3cret"):
    // for a long option, the name up to '='; for a short one, its first letter.
    static std::string option_name(std::string_view arg) {
        if (arg.substr(0, 2) != "--")
            return std::string(arg.substr(0, 2));
        std::size_t end = 2;
        while (end < arg.size() && end < 40 &&
               (std::isalnum(static_cast<unsigned char>(arg[end])) != 0 || arg[end] == '-' ||
                arg[end] == '_'))
            ++end;
        return std::string(arg.substr(0, end));
    }

    // CLI11's error as a message that names the option only: the option comes from this
    // program's own list, the kind of mistake from the error's type.
    std::string describe(const CLI::ParseError& e) const {
        const std::string_view what = e.what();
        for (const CLI::Option* option : app_.get_options()) {
            const std::string name = option->get_name();
            const bool named = what.substr(0, name.size() + 1) == name + ":" ||
                               what.find(name + " =") != std::string_view::npos;
            if (!named)
                continue;
            if (option->get_expected_max() == 0)
                return fmt::format("{} takes no value", name);
            if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr)
                return fmt::format("{0} needs a value: {0} VALUE or {0}=VALUE", name);
            return fmt::format("{} cannot take that value", name);
        }
        return fmt::format("the arguments cannot be read ({})", e.get_name());
    }

    std::string program_;
    std::string synopsis_;
    CLI::App app_;
    std::deque<number_text> numbers_; // a deque: the options keep pointers into it
    std::vector<std::string> positionals_;
};

} // namespace cloudmysql_examples
