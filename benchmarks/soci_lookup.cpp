#include "soci_lookup.hpp"

#include <soci/connection-pool.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>

#include <fmt/format.h>

#include <ctime>
#include <memory>
#include <stdexcept>

namespace cloudmysql::bench::soci_baseline {
namespace {

std::unique_ptr<soci::connection_pool> shared_pool;

// A value as SOCI's connection-string parser reads it: in single quotes, with '\' escaping
// the next character (passwords may hold spaces and quotes).
std::string quoted(std::string_view value) {
    std::string out = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\')
            out += '\\';
        out += c;
    }
    out += '\'';
    return out;
}

} // namespace

std::string connect_string(const connect_options& server) {
    std::string s;
    if (!server.unix_socket.empty())
        s += "unix_socket=" + quoted(server.unix_socket);
    else
        s += fmt::format("host={} port={}", quoted(server.host), server.port);
    s += " user=" + quoted(server.user);
    if (!server.password.empty())
        s += " password=" + quoted(server.password);
    if (!server.database.empty())
        s += " dbname=" + quoted(server.database);
    s += fmt::format(" connect_timeout={}", server.connect_timeout.count());
    // SOCI 4.0.3 turns TLS on only through a CA file (mysql_ssl_set); libmariadb then
    // verifies the chain.
    if (server.effective_tls_mode() >= tls_mode::required) {
        if (server.ssl_ca.empty())
            throw std::invalid_argument("SOCI's mysql backend turns TLS on only with a CA file "
                                        "(its sslca option): add ssl-ca=FILE to the URL");
        s += " sslca=" + quoted(server.ssl_ca);
    }
    return s;
}

std::string open_pool(const connect_options& server, std::size_t size) {
    try {
        const std::string params = connect_string(server);
        retry_when_full([&] {
            shared_pool.reset();
            shared_pool = std::make_unique<soci::connection_pool>(size);
            for (std::size_t i = 0; i < size; ++i)
                shared_pool->at(i).open(soci::mysql, params);
        });
        if (server.effective_tls_mode() >= tls_mode::required) {
            for (std::size_t i = 0; i < size; ++i) {
                auto* backend =
                    static_cast<soci::mysql_session_backend*>(shared_pool->at(i).get_backend());
                if (mysql_get_ssl_cipher(backend->conn_) == nullptr)
                    throw std::runtime_error("TLS required but a SOCI session is not encrypted");
            }
        }
        return {};
    } catch (const std::exception& e) {
        shared_pool.reset();
        // SOCI's messages quote neither the connection string nor the password.
        return fmt::format("cannot open the SOCI pool: {}", e.what());
    }
}

void close_pool() noexcept {
    shared_pool.reset();
}

void lookups(benchmark::State& state, id_range ids) {
    if (!shared_pool)
        return fail(state, "the SOCI pool is not open");
    try {
        id_picker pick(ids, static_cast<std::uint64_t>(state.thread_index()) + 1);
        long long id = 0;
        int found_id = 0;
        std::string first, last, gender, contact;
        std::tm born{};
        soci::indicator contact_null = soci::i_ok;
        std::int64_t found = 0;
        for (auto _ : state) {
            id = pick.next();
            soci::session sql(*shared_pool);
            sql << lookup_sql, soci::use(id), soci::into(found_id), soci::into(first),
                soci::into(last), soci::into(born), soci::into(gender),
                soci::into(contact, contact_null);
            found += sql.got_data() && found_id == id ? 1 : 0;
            benchmark::DoNotOptimize(found_id);
        }
        // The ids lie between the first and the last patient: a run that found none read
        // nothing, whatever its speed.
        if (state.iterations() > 0 && found == 0)
            return fail(state, "the SOCI lookups found no patient: check the patients table");
        state.SetItemsProcessed(state.iterations());
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

} // namespace cloudmysql::bench::soci_baseline
