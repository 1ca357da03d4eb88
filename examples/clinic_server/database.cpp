#include "clinic_server/database.hpp"

#include <cloudmysql/connection.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <type_traits>

namespace clinic_server {

namespace {

namespace asio = boost::asio;
using cloudmysql::clinic::medical_record;
using cloudmysql::clinic::patient;

constexpr std::size_t page_size = 25;

const std::string select_patients =
    "SELECT id, first_name, last_name, date_of_birth, gender, contact_number FROM patients ";

patient to_patient(const cloudmysql::row& r) {
    return {r.get<std::int64_t>(0), r.get<std::string>(1),
            r.get<std::string>(2),  r.get<std::chrono::year_month_day>(3),
            r.get<std::string>(4),  r.get<std::optional<std::string>>(5)};
}

// A page by id, or with a prefix by name: after the (last_name, first_name, id) of patient
// `after`. One row more than a page says whether another follows.
listing list_patients(cloudmysql::connection& conn, std::int64_t after, const std::string& q) {
    cloudmysql::result rows;
    if (q.empty()) {
        rows = conn.execute(select_patients + "WHERE id > ? ORDER BY id LIMIT ?", after,
                            page_size + 1);
    } else {
        std::string like; // the prefix with LIKE's wildcards made literal
        for (const char c : q) {
            if (c == '%' || c == '_' || c == '!')
                like += '!';
            like += c;
        }
        rows = conn.execute(
            select_patients + "WHERE last_name LIKE ? ESCAPE '!' AND (? = 0 OR (last_name, "
                              "first_name, id) > (SELECT last_name, first_name, id FROM "
                              "patients WHERE id = ?)) ORDER BY last_name, first_name, id LIMIT ?",
            like + '%', after, after, page_size + 1);
    }
    listing out;
    for (const auto& r : rows)
        out.patients.push_back(to_patient(r));
    if (out.patients.size() > page_size) {
        out.patients.pop_back();
        out.next = out.patients.back().id;
    }
    return out;
}

patient_file find_patient(cloudmysql::connection& conn, std::int64_t id) {
    patient_file out;
    const auto found = conn.execute(select_patients + "WHERE id = ?", id);
    if (found.empty())
        return out;
    out.who = to_patient(found[0]);
    for (const auto& r : conn.execute("SELECT id, patient_id, diagnosis, treatment, "
                                      "admission_date, discharge_date FROM medical_records "
                                      "WHERE patient_id = ? ORDER BY admission_date, id",
                                      id))
        out.records.push_back({r.get<std::int64_t>(0), r.get<std::int64_t>(1),
                               r.get<std::string>(2), r.get<std::string>(3),
                               r.get<std::chrono::year_month_day>(4),
                               r.get<std::optional<std::chrono::year_month_day>>(5)});
    return out;
}

// Takes a connection without holding an I/O thread (the coroutine waits in the pool's queue),
// runs `work` with it on the database threads, and gives it back; a connection that failed
// mid-session is discarded instead (the pool then retires those opened before it).
template <class Work>
asio::awaitable<std::invoke_result_t<Work&, cloudmysql::connection&>> with_connection(database& db,
                                                                                      Work work) {
    using result_type = std::invoke_result_t<Work&, cloudmysql::connection&>;
    if (db.connect_per_request) {
        // At most pool-size sessions at once: one per database thread.
        co_return co_await asio::co_spawn(
            db.threads,
            [&]() -> asio::awaitable<result_type> {
                cloudmysql::connection conn(db.pool.connection_options());
                co_return work(conn);
            },
            asio::use_awaitable);
    }
    cloudmysql::diagnostics diag;
    cloudmysql::error_code ec;
    auto conn = co_await db.pool.async_acquire(diag, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
        throw cloudmysql::database_error(ec, diag);
    try {
        co_return co_await asio::co_spawn(
            db.threads, [&]() -> asio::awaitable<result_type> { co_return work(*conn); },
            asio::use_awaitable);
    } catch (const cloudmysql::database_error& e) {
        if (e.error_class() != cloudmysql::error_class::bad_input)
            conn.discard(e.error_class());
        throw;
    }
}

asio::awaitable<answer> run(database& db, const query& q) {
    if (std::holds_alternative<metrics_text>(q))
        co_return metrics{db.pool.prometheus_text("clinic_server")};
    if (std::holds_alternative<health_check>(q)) {
        const auto started = std::chrono::steady_clock::now();
        co_await with_connection(db, [](cloudmysql::connection& c) {
            c.ping();
            return true;
        });
        const std::chrono::duration<double, std::milli> took =
            std::chrono::steady_clock::now() - started;
        co_return health{took.count()};
    }
    if (const auto* list = std::get_if<patient_list>(&q))
        co_return co_await with_connection(
            db, [&](cloudmysql::connection& c) { return list_patients(c, list->after, list->q); });
    const auto id = std::get<patient_page>(q).id;
    co_return co_await with_connection(
        db, [&](cloudmysql::connection& c) { return find_patient(c, id); });
}

} // namespace

asio::awaitable<response> respond(database& db, const request& req) {
    route r = route_for(req);
    if (auto* now = std::get_if<response>(&r.action))
        co_return std::move(*now);
    const query& q = std::get<query>(r.action);
    std::string failure;
    http::status status = http::status::service_unavailable;
    try {
        co_return render(r.form, q, co_await run(db, q));
    } catch (const cloudmysql::database_error& e) {
        failure = fmt::format("database unavailable: {}", e.what());
    } catch (const std::exception& e) {
        failure = e.what();
        status = http::status::internal_server_error;
    }
    fmt::print(stderr, "clinic_server: {}\n", failure);
    co_return error_page(status, r.form, failure);
}

std::optional<std::string> check_at_start(const cloudmysql::connect_options& options) {
    try {
        cloudmysql::connection probe(options);
        return std::nullopt;
    } catch (const cloudmysql::database_error& e) {
        switch (e.error_class()) {
        case cloudmysql::error_class::auth:      // a wrong user or password
        case cloudmysql::error_class::tls:       // a certificate, CA or ssl-mode that cannot work
        case cloudmysql::error_class::bad_input: // no such database
            throw configuration_error(e.what());
        default: // down, unreachable, full, slow: it may pass
            return e.what();
        }
    }
}

} // namespace clinic_server
