// Internal: whether a server offers TLS, read from its greeting before any login.
#pragma once

#include <cloudmysql/connect_options.hpp>

namespace cloudmysql::detail {

enum class tls_offer { offered, not_offered, unknown };

/// Opens a TCP connection, reads the server's greeting and closes it again: no login, nothing
/// sent. `unknown` when the server cannot be reached or did not greet (the real connect then
/// says why). libmariadb in ssl-mode VERIFY_CA logs in without TLS when the server offers
/// none; a token must not go out that way, so the connect asks first.
tls_offer probe_tls_offer(const connect_options& opts);

} // namespace cloudmysql::detail
