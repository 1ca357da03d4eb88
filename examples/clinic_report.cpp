// clinic_report: the clinic's patients and their medical records, a page at a time, as aligned
// tables in the terminal and, on request, as a self-contained HTML page. Exit codes: 0 shown,
// 1 failed (the server's message says why), 2 bad usage.
//
// Shows: clinic::repository (keyset pages of patients, their records), typed rows (dates, a NULL
// discharge as std::optional), accented names aligned by characters rather than bytes, and
// every value HTML-escaped on its way into a page.
//
//   export CLOUDMYSQL_URL='mysql://app:secret@db.example.com/clinic'
//   clinic_report --page-size 20 --pages 2
//   clinic_report --all --html clinic.html
#include "common/command_line.hpp"

#include <cloudmysql/clinic/repository.hpp>
#include <cloudmysql/value.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace cloudmysql::clinic;
using cloudmysql::to_display_string;                 // dates as ISO 8601
using table = std::vector<std::vector<std::string>>; // the first row holds the headings

struct settings {
    std::size_t page_size = 20;
    std::size_t pages = 1;
    bool all = false;
    std::string html; // empty: no HTML page
};

void declare(cloudmysql_examples::command_line& cl, settings& s) {
    cl.number("--page-size", s.page_size, 1, 1000, "patients per page (default 20)");
    cl.number("--pages", s.pages, 1, 1'000'000, "pages to show (default 1)", "P");
    cl.flag("--all", s.all, "every page");
    cl.text("--html", s.html, "also write the pages as one HTML page to FILE", "FILE");
}

// Columns on a terminal: one character of UTF-8 text is one code point, whatever its bytes.
std::size_t display_width(std::string_view text) {
    return utf8_length(text).value_or(text.size());
}

// A title and the table: columns as wide as their widest cell, the first (numbers) to the right.
void print_table(std::string_view title, table t) {
    fmt::print("\n{}\n", title);
    std::vector<std::size_t> widths(t[0].size(), 0);
    for (const auto& row : t)
        for (std::size_t c = 0; c < row.size(); ++c)
            widths[c] = std::max(widths[c], display_width(row[c]));
    t.insert(t.begin() + 1, std::vector<std::string>{});
    for (auto w : widths)
        t[1].emplace_back(w, '-');
    for (const auto& row : t) {
        std::string out;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const std::string pad(widths[c] - display_width(row[c]), ' ');
            out += c == 0 ? "  " + pad + row[c] : "  " + row[c] + (c + 1 < row.size() ? pad : "");
        }
        fmt::print("{}\n", out);
    }
}

// Text as HTML: the five characters that mean something there become entities.
std::string escape(std::string_view text) {
    static constexpr std::string_view special = "&<>\"'";
    static constexpr std::string_view entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    std::string out;
    for (const char c : text) {
        const auto i = special.find(c);
        out += i == std::string_view::npos ? std::string_view(&c, 1) : entities[i];
    }
    return out;
}

// The cells from column `skip` on (records under their patient skip its columns), as <td>, or
// <th> for headings.
std::string html_row(const auto& cells, std::string_view tag, std::size_t skip) {
    std::string out = "<tr>";
    for (auto c = skip; c < cells.size(); ++c)
        out += fmt::format("<{0}>{1}</{0}>", tag, escape(cells[c]));
    return out + "</tr>\n";
}

std::string html_table(const table& t, std::string_view css_class, std::size_t skip) {
    std::string out = fmt::format("<table class=\"{}\">\n", css_class) + html_row(t[0], "th", skip);
    for (std::size_t r = 1; r < t.size(); ++r)
        out += html_row(t[r], "td", skip);
    return out + "</table>\n";
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    cloudmysql_examples::command_line cl(
        "clinic_report", "[--page-size N] [--pages P | --all] [--html FILE]",
        "clinic_report: the clinic's patients and their medical records, a page at a time",
        "The server comes from CLOUDMYSQL_URL=mysql://USER:PASSWORD@HOST[:PORT]/DATABASE\n"
        "Exit codes: 0 shown, 1 failed, 2 bad usage.");
    declare(cl, s);
    std::optional<cloudmysql::connect_options> url;
    try {
        if (!cl.parse(argc, argv))
            return 0; // --help
        cl.allow_positionals(0, "options only");
        if (s.all)
            s.pages = 0; // no limit
        url = cloudmysql::connect_options::from_env();
        if (!url)
            throw std::invalid_argument("set CLOUDMYSQL_URL to mysql://USER:PASSWORD@HOST/DB");
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "clinic_report: {}\n{}\n", e.what(), cl.short_usage());
        return 2;
    }

    try {
        cloudmysql::pool pool(*url, {.max_size = 2});
        repository repo(pool);
        const auto patients = repo.count_patients();
        const auto counts = fmt::format("{} patients, {} records", patients, repo.count_records());
        std::string body; // the HTML page's tables
        if (patients == 0)
            fmt::print("no patients yet: load some with clinic_load\n");
        std::optional<std::int64_t> after = 0; // where the next page starts
        std::size_t shown = 0;
        for (std::size_t n = 1; after && shown < patients && (s.pages == 0 || n <= s.pages); ++n) {
            auto page = repo.list_patients(*after, s.page_size);
            after = page.next;
            table people{{"id", "first name", "last name", "born", "gender", "contact"}};
            table stays{{"patient", "name", "diagnosis", "treatment", "admitted", "discharged"}};
            std::string nested;
            for (const auto& p : page.rows) {
                const auto id = std::to_string(p.id);
                people.push_back({id, p.first_name, p.last_name, to_display_string(p.date_of_birth),
                                  p.gender, p.contact_number.value_or("not given")});
                table own{stays.front()};
                for (const auto& r : repo.records_of(p.id))
                    own.push_back({id, p.first_name + " " + p.last_name, r.diagnosis, r.treatment,
                                   to_display_string(r.admission_date),
                                   r.discharge_date ? to_display_string(*r.discharge_date)
                                                    : "still admitted"});
                stays.insert(stays.end(), own.begin() + 1, own.end());
                nested += html_row(people.back(), "td", 0) +
                          "<tr class=\"records\"><td colspan=\"6\">" +
                          (own.size() > 1 ? html_table(own, "records", 2) : "no records") +
                          "</td></tr>\n";
            }
            const auto title = fmt::format("Page {}: patients {} to {} of {}", n, shown + 1,
                                           shown + page.rows.size(), patients);
            shown += page.rows.size();
            print_table(title, people);
            print_table("Their medical records", stays);
            body += "<h2>" + escape(title) + "</h2>\n<table class=\"patients\">\n" +
                    html_row(people[0], "th", 0) + nested + "</table>\n";
        }
        fmt::print("\n{}; shown {} patients\n", counts, shown);

        if (!s.html.empty()) {
            std::ofstream out(s.html, std::ios::binary | std::ios::trunc);
            out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>Clinic report</title>\n<style>body{font-family:system-ui,sans-serif;"
                   "margin:2em}table{border-collapse:collapse;margin:.5em 0}th,td{border:1px "
                   "solid #ccc;padding:.2em .6em;text-align:left}th{background:#eef}"
                   "tr.records>td{padding-left:2em;background:#fafafa}"
                   "tr.records td:nth-last-child(-n+2){white-space:nowrap}</style></head><body>\n"
                << "<h1>Clinic report</h1>\n<p>" << escape(counts) << "; shown " << shown
                << " patients.</p>\n"
                << body << "</body></html>\n";
            if (!out.flush())
                throw std::runtime_error(fmt::format("cannot write {}", s.html));
        }
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "clinic_report: {}\n", e.what());
        return 1;
    }
}
