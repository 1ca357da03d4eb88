// Fetches the server's certificate the way a MySQL client starts TLS: to explain why libmariadb
// refused it, and to learn the fingerprint that connect() pins under VERIFY_CA.
#include "peer_certificate.hpp"

#include "greeting.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

namespace cloudmysql::detail {

namespace {

using steady = std::chrono::steady_clock;

// Capability flags of the SSL request: CLIENT_LONG_PASSWORD, CLIENT_PROTOCOL_41, CLIENT_SSL,
// CLIENT_SECURE_CONNECTION: enough for the server to start the TLS handshake.
constexpr std::uint32_t ssl_request_flags = 0x1 | 0x200 | 0x800 | 0x8000;
constexpr std::uint32_t client_ssl = 0x800;
constexpr std::uint32_t max_packet_size = 16U << 20U;
constexpr unsigned char utf8mb4_general_ci = 45;

bool send_all(int fd, const unsigned char* data, std::size_t size, steady::time_point deadline) {
    std::size_t sent = 0;
    while (sent < size) {
        if (!wait_for(fd, POLLOUT, deadline))
            return false;
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

// The SSL request packet (sequence 1, after the server's greeting): flags, maximum packet
// size, character set and 23 reserved bytes.
bool send_ssl_request(int fd, steady::time_point deadline) {
    std::array<unsigned char, 4 + 32> packet{};
    packet[0] = 32; // payload length, 3 bytes little-endian
    packet[3] = 1;  // sequence number
    for (unsigned i = 0; i < 4; ++i) {
        packet[4 + i] = static_cast<unsigned char>(ssl_request_flags >> (8U * i));
        packet[8 + i] = static_cast<unsigned char>(max_packet_size >> (8U * i));
    }
    packet[12] = utf8mb4_general_ci;
    return send_all(fd, packet.data(), packet.size(), deadline);
}

struct ssl_ctx_free {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_free {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
struct x509_free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct general_names_free {
    void operator()(GENERAL_NAMES* p) const noexcept { GENERAL_NAMES_free(p); }
};

std::string rfc2253(const X509_NAME* name) {
    const std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0)
        return {};
    char* data = nullptr;
    const long size = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
    return size > 0 && data != nullptr ? std::string(data, static_cast<std::size_t>(size))
                                       : std::string();
}

std::string utf8_of(const ASN1_STRING* text) {
    unsigned char* out = nullptr;
    const int size = ASN1_STRING_to_UTF8(&out, text);
    if (size < 0)
        return {};
    std::string result(reinterpret_cast<const char*>(out), static_cast<std::size_t>(size));
    OPENSSL_free(out);
    return result;
}

std::string common_name_of(const X509_NAME* name) {
    const int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (at < 0)
        return {};
    return utf8_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
}

void read_alt_names(X509* cert, peer_certificate& out) {
    const std::unique_ptr<GENERAL_NAMES, general_names_free> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        if (name->type == GEN_DNS) {
            // Only names that read as host names go into messages: the server chose these
            // bytes (control characters, escape sequences); the others are left out.
            std::string dns = utf8_of(name->d.dNSName);
            if (looks_like_host_name(dns))
                out.dns_names.push_back(std::move(dns));
        } else if (name->type == GEN_IPADD) {
            const int size = ASN1_STRING_length(name->d.iPAddress);
            const unsigned char* bytes = ASN1_STRING_get0_data(name->d.iPAddress);
            std::array<char, INET6_ADDRSTRLEN> text{};
            const int family = size == 4 ? AF_INET : size == 16 ? AF_INET6 : 0;
            if (family != 0 && ::inet_ntop(family, bytes, text.data(), text.size()) != nullptr)
                out.ip_addresses.emplace_back(text.data());
        }
    }
}

bool is_ip_literal(const std::string& host) {
    std::array<unsigned char, 16> buffer{};
    return ::inet_pton(AF_INET, host.c_str(), buffer.data()) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), buffer.data()) == 1;
}

// The client side of the handshake on a non-blocking socket, within the deadline. No
// verification: the point is to see the certificate libmariadb refused.
bool handshake(SSL* ssl, int fd, steady::time_point deadline) {
    for (;;) {
        ERR_clear_error();
        const int rc = SSL_connect(ssl);
        if (rc == 1)
            return true;
        const int error = SSL_get_error(ssl, rc);
        const short events = error == SSL_ERROR_WANT_READ    ? POLLIN
                             : error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                             : 0;
        if (events == 0 || !wait_for(fd, events, deadline))
            return false;
    }
}

} // namespace

bool looks_like_host_name(std::string_view name) {
    if (name.empty() || name.size() > 253)
        return false;
    if (is_ip_literal(std::string(name)))
        return true;
    if (name.substr(0, 2) == "*.")
        name.remove_prefix(2);
    std::size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!allowed || ++label > 63)
            return false;
    }
    return label > 0;
}

std::vector<std::string> peer_certificate::host_names() const {
    std::vector<std::string> names = dns_names;
    names.insert(names.end(), ip_addresses.begin(), ip_addresses.end());
    if (names.empty() && looks_like_host_name(common_name))
        names.push_back(common_name);
    return names;
}

tls_probe probe_tls(const connect_options& opts, steady::time_point deadline) {
    // Leaves OpenSSL's per-thread error queue empty on every way out, so that libmariadb does
    // not report one of these errors for a later failure of its own on this thread.
    struct clear_openssl_errors {
        ~clear_openssl_errors() { ERR_clear_error(); }
    } const clear_errors;
    tls_probe probe;
    const greeted_socket server = connect_and_greet(opts, deadline);
    if (!server)
        return probe;
    if ((server.capabilities() & client_ssl) == 0) {
        probe.offer = tls_offer::not_offered;
        return probe;
    }
    probe.offer = tls_offer::offered;
    if (!send_ssl_request(server.fd(), deadline))
        return probe;

    const std::unique_ptr<SSL_CTX, ssl_ctx_free> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx)
        return probe;
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    const std::unique_ptr<SSL, ssl_free> ssl(SSL_new(ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), server.fd()) != 1)
        return probe;
    if (!is_ip_literal(opts.host)) // server name indication, as a browser would send it
        SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(opts.host.c_str()));
    if (!handshake(ssl.get(), server.fd(), deadline))
        return probe;
    const std::unique_ptr<X509, x509_free> cert(SSL_get1_peer_certificate(ssl.get()));
    if (!cert)
        return probe;

    peer_certificate out;
    out.subject = rfc2253(X509_get_subject_name(cert.get()));
    out.issuer = rfc2253(X509_get_issuer_name(cert.get()));
    out.common_name = common_name_of(X509_get_subject_name(cert.get()));
    read_alt_names(cert.get(), out);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (X509_digest(cert.get(), EVP_sha1(), digest.data(), &size) == 1) {
        constexpr char hex[] = "0123456789ABCDEF";
        for (unsigned i = 0; i < size; ++i) {
            out.sha1_fingerprint += hex[digest[i] >> 4U];
            out.sha1_fingerprint += hex[digest[i] & 0xFU];
        }
    }
    probe.certificate = std::move(out);
    return probe;
}

std::optional<peer_certificate> fetch_peer_certificate(const connect_options& opts,
                                                       steady::time_point deadline) {
    return probe_tls(opts, deadline).certificate;
}

} // namespace cloudmysql::detail
