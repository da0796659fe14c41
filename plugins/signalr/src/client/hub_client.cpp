#include "client/hub_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <Poco/Base64Encoder.h>
#include <Poco/MemoryStream.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>

#include "client/backfill.h"
#include "client/blocking_worker.h"
#include "hubflow/backoff.h"
#include "hubflow/json.h"
#include "protocol/hub_protocol.h"
#include "protocol/msgpack_protocol.h"
#include "protocol/websocket.h"

namespace hubflow::signalr {

namespace {

using steady = std::chrono::steady_clock;

// resolving: the token and the hub's address are being fetched on the blocking worker.
enum class Phase { waiting, resolving, connecting, tls, upgrading, handshaking, open };

std::string seconds_text(steady::duration d) {
    std::ostringstream s;
    s.precision(3);
    s << std::fixed << std::chrono::duration<double>(d).count() << " s";
    return s.str();
}

}  // namespace

struct HubClient::Connection {
    HubEndpoint ep;
    std::string label;  // the URL for logs, token removed
    int fd = -1;
    SSL* ssl = nullptr;
    Phase phase = Phase::waiting;
    bool watching_writes = false;
    steady::time_point next_attempt{};
    steady::time_point deadline{};  // end of the connect + upgrade + handshake allowance
    steady::time_point last_received{}, last_ping{};
    std::string response;  // HTTP response bytes while upgrading
    std::string out;       // bytes the socket has not taken yet
    std::string ws_key;
    std::string token;          // presented by this attempt
    std::uint64_t attempt = 0;  // numbers the attempts, so a late answer from the worker can be told stale
    std::optional<FrameDecoder> decoder;
    std::optional<messagepack::MessageReader> messagepack_reader;  // with protocol messagepack, once upgraded
    Backoff backoff;
    std::uint32_t consecutive_failures = 0;
    bool config_error = false;  // the last refusal was a 403/404: wait the long delay
    // The interval without a connection, from the drop (or the first failed attempt) to the next open.
    bool in_gap = false;
    std::chrono::system_clock::time_point gap_since{};
    steady::time_point gap_since_steady{};
    std::string gap_cause;

    Connection(HubEndpoint endpoint, const HubClientSettings& s, std::uint64_t seed)
        : ep(std::move(endpoint)), label(ep.display), backoff(s.reconnect_initial, s.reconnect_max, seed) {}
};

namespace {

// Everything the loop needs, so the helpers below stay free functions of one small state.
class Loop {
public:
    Loop(HubClientSettings& settings, Context& context, Poco::Net::Context::Ptr tls, TokenProvider& tokens,
         std::vector<std::unique_ptr<HubClient::Connection>>& connections)
        : s_(settings),
          context_(context),
          log_(context.log()),
          tls_(std::move(tls)),
          tokens_(tokens),
          connections_(connections),
          random_(std::random_device{}()) {
        Metrics& m = context.metrics();
        connected_ = &m.gauge("connected", "hub connections open");
        attempts_ = &m.counter("connect_attempts", "connection attempts");
        disconnects_ = &m.counter("disconnects", "open connections lost");
        disconnected_ms_ = &m.counter("disconnected_ms", "time without a connection, summed over the hubs (ms)");
        refused_ = &m.counter("upgrades_refused", "upgrade requests the hub refused (401, 403, 404, ...)");
        protocol_errors_ = &m.counter("protocol_errors", "connections dropped for bad data from the hub");
        token_fetches_ = &m.counter("token_fetches", "tokens fetched from the OAuth2 endpoint");
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &worker_;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, worker_.event_fd(), &ev);
        if (s_.backfill.enabled) {
            std::vector<HubEndpoint> endpoints;
            for (const auto& c : connections_)
                endpoints.push_back(c->ep);
            backfill_ = std::make_unique<Backfill>(s_.backfill, endpoints, s_.kind, context_, tls_, worker_, tokens_);
            ev.data.ptr = backfill_.get();
            epoll_ctl(epoll_, EPOLL_CTL_ADD, backfill_->event_fd(), &ev);
        }
    }
    ~Loop() { ::close(epoll_); }

    void run() {
        const auto start = steady::now();
        for (auto& c : connections_)
            c->next_attempt = start;
        if (backfill_) backfill_->start();
        epoll_event events[64];
        while (!context_.stopping() && !gave_up_) {
            auto now = steady::now();
            for (auto& c : connections_)
                if (c->phase == Phase::waiting && now >= c->next_attempt) begin_attempt(*c);
            const int n = epoll_wait(epoll_, events, 64, static_cast<int>(wait_ms()));
            if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
            received_at_ = context_.clock().now();
            for (int i = 0; i < n; ++i) {
                if (events[i].data.ptr == &worker_)
                    worker_.run_finished();
                else if (backfill_ && events[i].data.ptr == backfill_.get())
                    backfill_->on_ready();
                else
                    on_ready(*static_cast<HubClient::Connection*>(events[i].data.ptr), events[i].events);
            }
            emit_staged();
            now = steady::now();
            on_timers(now);
            renew_token_ahead(now);
            if (backfill_) backfill_->poll(now);
        }
        emit_staged();
        for (auto& c : connections_) {
            say_goodbye(*c);
            end_gap_at_shutdown(*c);
        }
        if (backfill_) backfill_->stop();
    }

private:
    // ---- timing -------------------------------------------------------------------------------------------

    std::int64_t wait_ms() const {
        auto now = steady::now();
        auto next = now + std::chrono::milliseconds(250);  // stop requests are noticed within this
        for (const auto& c : connections_) {
            if (c->phase == Phase::waiting)
                next = std::min(next, c->next_attempt);
            else if (c->phase != Phase::open)
                next = std::min(next, c->deadline);
            else
                next = std::min({next, c->last_ping + s_.ping_interval, c->last_received + s_.server_timeout});
        }
        if (backfill_) next = std::min(next, backfill_->next_wake());
        return std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1);
    }

    void on_timers(steady::time_point now) {
        for (auto& cp : connections_) {
            auto& c = *cp;
            if (c.phase == Phase::waiting) continue;
            if (c.phase != Phase::open) {
                if (now >= c.deadline)
                    failed(c, "no answer within the handshake timeout (" + seconds_text(s_.handshake_timeout) + ")");
                continue;
            }
            if (now - c.last_received >= s_.server_timeout) {
                dropped(c, "no message from the hub for " + seconds_text(s_.server_timeout) + " (server timeout)");
            } else if (now - c.last_ping >= s_.ping_interval) {
                std::string record;
                if (messagepack()) {
                    messagepack::append_ping(record);
                    send_frame(c, Opcode::binary, record);
                } else {
                    append_ping(record);
                    send_frame(c, Opcode::text, record);
                }
                c.last_ping = now;
            }
        }
    }

    // OAuth2 tokens are renewed while connected, ahead of expiry, so a reconnect never waits for (or
    // presents) an expired one. The request runs on the worker, so the open hubs keep streaming meanwhile.
    void renew_token_ahead(steady::time_point now) {
        if (renewing_ || now < token_renew_at_) return;
        renewing_ = true;
        auto result = std::make_shared<TokenResult>();
        worker_.post(
            [&tokens = tokens_, result] {
                if (tokens.refresh_due()) {
                    try {
                        tokens.current();
                    } catch (const std::exception& e) {
                        result->error = e.what();
                        tokens.invalidate();
                    }
                }
                result->note(tokens);
            },
            [this, result] {
                renewing_ = false;
                note_tokens(*result);
                if (!result->error.empty())
                    log_.warn("renewing the token ahead of expiry failed: ", result->error,
                              "; will retry before the next connect");
            });
    }

    // What the loop learns of the token provider, which only the worker touches.
    struct TokenResult {
        std::string token, error;
        std::uint64_t fetches = 0;
        steady::time_point renew_at = steady::time_point::max();
        void note(const TokenProvider& tokens) {
            fetches = tokens.fetches();
            renew_at = tokens.renew_at();
        }
    };

    void note_tokens(const TokenResult& r) {
        if (r.fetches > fetches_seen_) token_fetches_->add(r.fetches - fetches_seen_);
        fetches_seen_ = std::max(fetches_seen_, r.fetches);
        token_renew_at_ = r.renew_at;
    }

    // ---- connecting ---------------------------------------------------------------------------------------

    // The token and the hub's address come from the worker (an OAuth2 request or a DNS lookup can take
    // seconds); the connect starts when both are there.
    void begin_attempt(HubClient::Connection& c) {
        attempts_->add();
        c.response.clear();
        c.out.clear();
        c.decoder.reset();
        c.phase = Phase::resolving;
        c.deadline = steady::time_point::max();  // each blocking call has a timeout of its own
        const std::uint64_t attempt = ++c.attempt;
        auto result = std::make_shared<Resolved>();
        worker_.post(
            [&tokens = tokens_, host = c.ep.host, port = std::to_string(c.ep.port), result] {
                try {
                    result->token.token = tokens.current();
                } catch (const std::exception& e) {
                    result->token.error = std::string("no token: ") + e.what();
                }
                result->token.note(tokens);
                if (!result->token.error.empty()) return;
                addrinfo hints{};
                hints.ai_family = AF_UNSPEC;
                hints.ai_socktype = SOCK_STREAM;
                addrinfo* found = nullptr;
                if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
                    result->token.error = "cannot resolve " + host + ": " + gai_strerror(rc);
                    return;
                }
                std::memcpy(&result->address, found->ai_addr, found->ai_addrlen);
                result->address_length = found->ai_addrlen;
                freeaddrinfo(found);
            },
            [this, &c, attempt, result] {
                note_tokens(result->token);
                if (c.attempt != attempt || c.phase != Phase::resolving) return;  // given up or stopped since
                if (!result->token.error.empty()) return failed(c, result->token.error);
                c.token = std::move(result->token.token);
                connect_to(c, *result);
            });
    }

    struct Resolved {
        TokenResult token;
        sockaddr_storage address{};
        socklen_t address_length = 0;
    };

    void connect_to(HubClient::Connection& c, const Resolved& r) {
        c.deadline = steady::now() + s_.handshake_timeout;
        c.fd = ::socket(r.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int rc = c.fd < 0 ? -1 : ::connect(c.fd, reinterpret_cast<const sockaddr*>(&r.address), r.address_length);
        const int err = errno;
        if (c.fd < 0) return failed(c, std::string("socket: ") + std::strerror(err));
        if (rc != 0 && err != EINPROGRESS) return failed(c, std::string("connect: ") + std::strerror(err));
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c.phase = Phase::connecting;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.ptr = &c;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
        c.watching_writes = true;
    }

    void on_ready(HubClient::Connection& c, std::uint32_t events) {
        if (c.phase == Phase::waiting) return;  // closed earlier in this round
        if (c.phase == Phase::connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) return failed(c, std::string("connect: ") + std::strerror(err));
            if (!(events & EPOLLOUT)) return;
            if (c.ep.tls) {
                if (!start_tls(c)) return;
            } else {
                send_upgrade(c);
            }
            if (c.phase == Phase::waiting) return;
        }
        if (c.phase == Phase::tls) {
            drive_tls(c);
            return;
        }
        if (events & EPOLLOUT) flush(c);
        if (c.phase == Phase::waiting) return;
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_from(c);
    }

    bool start_tls(HubClient::Connection& c) {
        c.ssl = SSL_new(tls_->sslContext());
        SSL_set_fd(c.ssl, c.fd);
        SSL_set_connect_state(c.ssl);
        // An IP literal is matched against the certificate's IP addresses and sent without SNI (RFC 6066);
        // a name against its DNS names.
        in6_addr ip{};
        const bool ip_literal =
            inet_pton(AF_INET, c.ep.host.c_str(), &ip) == 1 || inet_pton(AF_INET6, c.ep.host.c_str(), &ip) == 1;
        if (!ip_literal) SSL_set_tlsext_host_name(c.ssl, c.ep.host.c_str());
        if (!s_.insecure) {
            // The chain is checked against the CAs by OpenSSL; the name must match the URL's host.
            SSL_set_verify(c.ssl, SSL_VERIFY_PEER, nullptr);
            if (ip_literal)
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), c.ep.host.c_str());
            else
                SSL_set1_host(c.ssl, c.ep.host.c_str());
        }
        c.phase = Phase::tls;
        drive_tls(c);
        return c.phase != Phase::waiting;
    }

    void drive_tls(HubClient::Connection& c) {
        ERR_clear_error();
        int r = SSL_do_handshake(c.ssl);
        if (r == 1) {
            send_upgrade(c);
            return;
        }
        int e = SSL_get_error(c.ssl, r);
        if (e == SSL_ERROR_WANT_READ) return watch_writes(c, false);
        if (e == SSL_ERROR_WANT_WRITE) return watch_writes(c, true);
        long verify = SSL_get_verify_result(c.ssl);
        std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify) : tls_error();
        failed(c, "TLS handshake with " + c.ep.host + " failed: " + why);
    }

    static std::string tls_error() {
        unsigned long code = ERR_get_error();
        if (code == 0) return "connection closed during the handshake";
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        return text;
    }

    void send_upgrade(HubClient::Connection& c) {
        std::array<unsigned char, 16> nonce{};
        for (auto& b : nonce)
            b = static_cast<unsigned char>(random_());
        std::ostringstream key;
        Poco::Base64Encoder encoder(key);
        encoder.write(reinterpret_cast<const char*>(nonce.data()), nonce.size());
        encoder.close();
        c.ws_key = key.str();
        std::string target = c.ep.target;
        if (s_.token_in_query && !c.token.empty()) {
            std::string encoded;
            Poco::URI::encode(c.token, "!#$&'()*+,/:;=?@[]", encoded);
            target += (target.find('?') == std::string::npos ? "?" : "&") + std::string("access_token=") + encoded;
        }
        const bool default_port = c.ep.port == (c.ep.tls ? 443 : 80);
        std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + c.ep.host +
                              (default_port ? "" : ":" + std::to_string(c.ep.port)) +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: " +
                              c.ws_key + "\r\nUser-Agent: hubflow\r\n";
        if (!s_.token_in_query && !c.token.empty()) request += "Authorization: Bearer " + c.token + "\r\n";
        request += "\r\n";
        c.phase = Phase::upgrading;
        send_bytes(c, request);
    }

    // ---- reading --------------------------------------------------------------------------------------------

    // Bytes read, 0 at the end of the stream, -1 when it would block, -2 on an error (errno_text set).
    ssize_t receive(HubClient::Connection& c, char* buf, std::size_t size) {
        if (!c.ssl) {
            for (;;) {
                ssize_t n = ::recv(c.fd, buf, size, 0);
                if (n >= 0) return n;
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
                error_text_ = std::strerror(errno);
                return -2;
            }
        }
        ERR_clear_error();
        std::size_t n = 0;
        int r = SSL_read_ex(c.ssl, buf, size, &n);
        if (r == 1) return static_cast<ssize_t>(n);
        int e = SSL_get_error(c.ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_WANT_READ) return -1;
        if (e == SSL_ERROR_WANT_WRITE) {
            watch_writes(c, true);
            return -1;
        }
        error_text_ = e == SSL_ERROR_SYSCALL && errno ? std::strerror(errno) : tls_error();
        if (e == SSL_ERROR_SYSCALL && errno == 0) return 0;  // the peer closed without close_notify
        return -2;
    }

    void read_from(HubClient::Connection& c) {
        // A few reads per wake-up, so that one busy hub does not starve the others.
        for (int round = 0; round < 8 && c.phase != Phase::waiting; ++round) {
            ssize_t n = receive(c, buffer_, sizeof buffer_);
            if (n == -1) return;
            if (n == 0) return lost(c, "the hub closed the connection without a Close message");
            if (n == -2) return lost(c, "connection error: " + error_text_);
            c.last_received = steady::now();
            std::string_view bytes(buffer_, static_cast<std::size_t>(n));
            if (c.phase == Phase::upgrading) {
                c.response.append(bytes);
                on_response(c);
            } else {
                on_ws_bytes(c, bytes);
            }
        }
    }

    // A connection ends: before the handshake completed it is a failed attempt, after it a drop.
    void lost(HubClient::Connection& c, const std::string& why) {
        if (c.phase == Phase::open)
            dropped(c, why);
        else
            failed(c, why);
    }

    void on_response(HubClient::Connection& c) {
        auto end = c.response.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c.response.size() > std::size_t{16} * 1024) failed(c, "the upgrade response is longer than 16 KiB");
            return;
        }
        // Poco reads the status line and headers, as the hub server reads requests.
        Poco::Net::HTTPResponse head;
        int status = 0;
        try {
            Poco::MemoryInputStream in(c.response.data(), static_cast<std::streamsize>(end + 4));
            head.read(in);
            status = static_cast<int>(head.getStatus());
        } catch (const Poco::Exception&) {
            status = 0;  // reported below as not an HTTP response
        }
        if (status == 101) {
            if (head.get("Sec-WebSocket-Accept", "") != websocket_accept_key(c.ws_key))
                return failed(c, "the hub's Sec-WebSocket-Accept does not match the key sent");
            std::string rest = c.response.substr(end + 4);
            c.response.clear();
            c.phase = Phase::handshaking;
            c.decoder.emplace(Endpoint::client, s_.max_message_bytes);
            if (messagepack()) c.messagepack_reader.emplace(s_.max_message_bytes);
            // The handshake is JSON text whatever the protocol.
            send_frame(c, Opcode::text, handshake_request(s_.protocol));
            if (!rest.empty() && c.phase == Phase::handshaking) on_ws_bytes(c, rest);
            return;
        }
        refused_->add();
        std::string body = c.response.substr(end + 4, 200);
        body.erase(std::remove_if(body.begin(), body.end(), [](char ch) { return ch == '\r' || ch == '\n'; }),
                   body.end());
        std::string what = status ? "HTTP " + std::to_string(status) : "not an HTTP response";
        if (!body.empty()) what += " (" + body + ")";
        if (status == 401) {
            worker_.post([&tokens = tokens_] { tokens.invalidate(); });  // the next attempt gets a new token
            return failed(c, "the hub refused the token: " + what + "; a new token is fetched before the next try");
        }
        if (status == 403 || status == 404) {
            c.config_error = true;
            return failed(c, "configuration error: the hub answered " + what +
                                 (status == 403 ? "; the token lacks the scope or the site role for this hub"
                                                : "; check the URL's path"));
        }
        failed(c, "the upgrade was refused: " + what);
    }

    void on_ws_bytes(HubClient::Connection& c, std::string_view bytes) {
        frames_.clear();
        const bool ok = c.decoder->feed(bytes, frames_);
        for (WsView& e : frames_) {
            if (c.phase == Phase::waiting) return;
            on_frame(c, e);
        }
        if (!ok && c.phase != Phase::waiting) {
            protocol_errors_->add();
            send_frame(c, Opcode::close, close_payload(c.decoder->error().close_code, c.decoder->error().reason));
            flush(c);
            lost(c, "WebSocket protocol error from the hub: " + c.decoder->error().reason);
        }
    }

    void on_frame(HubClient::Connection& c, const WsView& e) {
        switch (e.kind) {
            case WsEvent::ping:
                send_frame(c, Opcode::pong, e.payload);
                return;
            case WsEvent::pong:
                return;
            case WsEvent::close:
                send_frame(c, Opcode::close, close_payload(close_code::normal, ""));
                flush(c);
                return lost(c, "the hub closed the WebSocket (code " + std::to_string(e.close_code) +
                                   (e.payload.empty() ? "" : ", " + std::string(e.payload)) + ")");
            case WsEvent::binary:
                if (messagepack()) return on_messagepack_frame(c, e.payload);
                protocol_errors_->add();
                return lost(c, "the hub sent a binary frame, which the JSON hub protocol never uses");
            case WsEvent::text:
                if (!messagepack()) break;
                // A refusal of the handshake comes as text (the reference server answers it before it
                // switches to binary); after the handshake, text has no place in this protocol.
                if (c.phase == Phase::handshaking) return on_messagepack_frame(c, e.payload);
                protocol_errors_->add();
                return lost(c, "the hub sent a text frame, which the MessagePack hub protocol never uses");
        }
        RecordSplitter records(e.payload);
        std::string_view record;
        while (c.phase != Phase::waiting && records.next(record)) {
            if (c.phase == Phase::handshaking) {
                HandshakeResult hs = parse_handshake_response(record);
                if (!hs.ok) return failed(c, "the hub refused the SignalR handshake: " + hs.error);
                opened(c);
                continue;
            }
            on_record(c, record);
        }
        if (c.phase != Phase::waiting && !records.error().empty()) {
            protocol_errors_->add();
            lost(c, "bad message from the hub: " + std::string(records.error()));
        }
    }

    bool messagepack() const { return s_.protocol == HubProtocol::messagepack; }

    // A WebSocket message of a MessagePack connection: the handshake answer ({} and 0x1E, which may be
    // followed by messages), then size-prefixed MessagePack messages, which may run on from one WebSocket
    // message into the next.
    void on_messagepack_frame(HubClient::Connection& c, std::string_view bytes) {
        if (c.phase == Phase::handshaking) {
            const auto end = bytes.find(record_separator);
            if (end == std::string_view::npos) {
                protocol_errors_->add();
                return lost(c, "bad message from the hub: Message is incomplete.");
            }
            HandshakeResult hs = parse_handshake_response(bytes.substr(0, end));
            if (!hs.ok) return failed(c, "the hub refused the SignalR handshake: " + hs.error);
            opened(c);
            bytes.remove_prefix(end + 1);
        }
        auto& reader = *c.messagepack_reader;
        reader.feed(bytes);
        std::string_view body;
        while (c.phase == Phase::open && reader.next(body)) {
            if (!messagepack::parse_message(body, message_, parse_error_)) {
                protocol_errors_->add();
                return dropped(c, "invalid message from the hub: " + parse_error_);
            }
            on_message(c);
        }
        if (c.phase == Phase::open && !reader.error().empty()) {
            protocol_errors_->add();
            dropped(c, "invalid message from the hub: " + reader.error());
        }
    }

    void on_record(HubClient::Connection& c, std::string_view record) {
        if (!parse_message(record, message_, parse_error_)) {
            protocol_errors_->add();
            return dropped(c, "invalid message from the hub: " + parse_error_);
        }
        on_message(c);
    }

    // message_, parsed from either protocol.
    void on_message(HubClient::Connection& c) {
        switch (message_.type) {
            case message_type::invocation:
                if (Poco::icompare(message_.target, s_.method) == 0) stage(c);
                return;
            case message_type::close:
                return dropped(c, "the hub sent Close" +
                                      (message_.has_error ? " with error \"" + message_.error + "\"" : std::string()) +
                                      (message_.allow_reconnect ? " (allowReconnect)" : ""));
            default:
                return;  // pings, completions and anything newer are not for a source
        }
    }

    // ---- events -----------------------------------------------------------------------------------------------

    void stage(HubClient::Connection& c) {
        if (message_.arguments.empty()) return;
        if (staged_count_ == staged_.size()) staged_.emplace_back();
        Event& e = staged_[staged_count_++];
        // Swapping hands the parser the old payload's buffer for the next message: no allocation per event.
        std::swap(e.payload, message_.arguments[0]);
        e.meta.kind = s_.kind.empty() ? c.ep.kind : s_.kind;
        e.meta.site_id = c.ep.site_id;
        e.meta.user_id.clear();
        e.meta.id.clear();
        // A string argument holds the event's JSON text; an object argument is that JSON text already.
        e.meta.received_at = received_at_;
        if (!backfill_) {
            const JsonMember ids[] = {{"id", &e.meta.id}, {"user_id", &e.meta.user_id}};
            find_json_members(e.payload, ids);
            return;
        }
        // The backfill learns each live event's time and id: where a gap ends, and what not to emit twice.
        event_time_.clear();
        const JsonMember ids[] = {{"id", &e.meta.id}, {"user_id", &e.meta.user_id}, {"utc_date_time", &event_time_}};
        find_json_members(e.payload, ids);
        const std::size_t site = index_of(c);
        if (staged_sites_.size() < staged_count_) staged_sites_.resize(staged_count_);
        staged_sites_[staged_count_ - 1] = site;
        backfill_->on_live(site, event_time_, e.meta.id);
    }

    std::size_t index_of(const HubClient::Connection& c) const {
        for (std::size_t i = 0; i < connections_.size(); ++i)
            if (connections_[i].get() == &c) return i;
        return 0;
    }

    void emit_staged() {
        if (staged_count_ == 0) return;
        EventBatch batch = context_.reusable_batch(staged_count_);
        for (std::size_t i = 0; i < staged_count_; ++i) {
            std::swap(batch[i].payload, staged_[i].payload);
            std::swap(batch[i].meta, staged_[i].meta);
        }
        if (backfill_) {
            staged_sites_.resize(staged_count_);
            staged_count_ = 0;
            return backfill_->emit_live(std::move(batch), staged_sites_);
        }
        staged_count_ = 0;
        context_.emit(std::move(batch));
    }

    // ---- writing ----------------------------------------------------------------------------------------------

    void send_frame(HubClient::Connection& c, Opcode op, std::string_view payload) {
        std::array<std::uint8_t, 4> mask{};
        const std::uint32_t r = static_cast<std::uint32_t>(random_());
        std::memcpy(mask.data(), &r, 4);
        frame_.clear();
        append_frame(frame_, op, payload, &mask);
        send_bytes(c, frame_);
    }

    void send_bytes(HubClient::Connection& c, std::string_view bytes) {
        c.out.append(bytes);
        flush(c);
    }

    void flush(HubClient::Connection& c) {
        while (!c.out.empty() && c.phase != Phase::waiting) {
            ssize_t n;
            if (c.ssl) {
                ERR_clear_error();
                std::size_t written = 0;
                int r = SSL_write_ex(c.ssl, c.out.data(), c.out.size(), &written);
                if (r != 1) {
                    int e = SSL_get_error(c.ssl, r);
                    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return watch_writes(c, true);
                    return lost(c, "TLS write failed: " + tls_error());
                }
                n = static_cast<ssize_t>(written);
            } else {
                n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK) return watch_writes(c, true);
                    return lost(c, std::string("send: ") + std::strerror(errno));
                }
            }
            c.out.erase(0, static_cast<std::size_t>(n));
        }
        watch_writes(c, false);
    }

    void watch_writes(HubClient::Connection& c, bool want) {
        if (c.fd < 0 || want == c.watching_writes) return;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
        ev.data.ptr = &c;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        c.watching_writes = want;
    }

    // ---- state changes ----------------------------------------------------------------------------------------

    void close_socket(HubClient::Connection& c) {
        if (c.ssl) {
            SSL_free(c.ssl);
            c.ssl = nullptr;
        }
        if (c.fd >= 0) {
            epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
            ::close(c.fd);
            c.fd = -1;
        }
        c.watching_writes = false;
        c.decoder.reset();
        c.messagepack_reader.reset();
        c.out.clear();
        c.phase = Phase::waiting;
    }

    void opened(HubClient::Connection& c) {
        const auto now = steady::now();
        c.phase = Phase::open;
        c.last_received = c.last_ping = now;
        if (backfill_) backfill_->on_open(index_of(c));
        c.backoff.reset();
        c.consecutive_failures = 0;
        c.config_error = false;
        connected_->add(1);
        if (!c.in_gap) {
            log_.info("connected to ", c.label);
            return;
        }
        c.in_gap = false;
        const auto gap = now - c.gap_since_steady;
        disconnected_ms_->add(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(gap).count()));
        log_.warn("reconnected to ", c.label, "; disconnected from ", format_utc(c.gap_since), " to ",
                  format_utc(context_.clock().now()), " (", seconds_text(gap), ", cause: ", c.gap_cause,
                  backfill_ ? "); backfilling that interval from the history"
                            : "); events the hub sent in that interval were not received");
    }

    // A gap still open when the source stops is reported too, or its events would go missing without a trace.
    void end_gap_at_shutdown(HubClient::Connection& c) {
        if (!c.in_gap) return;
        c.in_gap = false;
        const auto gap = steady::now() - c.gap_since_steady;
        disconnected_ms_->add(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(gap).count()));
        log_.warn("stopping while disconnected from ", c.label, " since ", format_utc(c.gap_since), " (",
                  seconds_text(gap), ", cause: ", c.gap_cause,
                  backfill_ ? "); the next start backfills that interval from the history"
                            : "); events the hub sent in that interval were not received");
    }

    void start_gap(HubClient::Connection& c, const std::string& cause) {
        if (c.in_gap) return;
        c.in_gap = true;
        c.gap_since = context_.clock().now();
        c.gap_since_steady = steady::now();
        c.gap_cause = cause;
        if (backfill_) backfill_->on_disconnected(index_of(c), cause);
    }

    // An open connection was lost: reconnect soon (the backoff was reset when it opened).
    void dropped(HubClient::Connection& c, const std::string& why) {
        close_socket(c);
        connected_->add(-1);
        disconnects_->add();
        start_gap(c, why);
        const auto delay = c.backoff.next();
        c.next_attempt = steady::now() + delay;
        log_.warn("disconnected from ", c.label, ": ", why, "; reconnecting in ", delay.count(), " ms");
    }

    // An attempt failed before the hub was reached.
    void failed(HubClient::Connection& c, const std::string& why) {
        close_socket(c);
        start_gap(c, why);
        ++c.consecutive_failures;
        if (s_.max_attempts != 0 && c.consecutive_failures >= s_.max_attempts) {
            gave_up_ = true;
            context_.fail("gave up on " + c.label + " after " + std::to_string(c.consecutive_failures) +
                          " failed attempts; last: " + why);
            return;
        }
        auto delay = c.backoff.next();
        if (c.config_error) delay = std::max(delay, s_.config_error_delay);
        c.next_attempt = steady::now() + delay;
        const std::string message = "cannot connect to " + c.label + ": " + why + "; attempt " +
                                    std::to_string(c.consecutive_failures) + ", next in " +
                                    std::to_string(delay.count()) + " ms";
        if (c.config_error)
            log_.error(message);
        else
            log_.warn(message);
    }

    // Shutdown: a SignalR Close and a WebSocket close to every open hub, sent within a short grace.
    void say_goodbye(HubClient::Connection& c) {
        if (c.phase == Phase::open) {
            std::string record;
            if (messagepack()) {
                messagepack::append_close(record, "", false);
                send_frame(c, Opcode::binary, record);
            } else {
                append_close(record, "", false);
                send_frame(c, Opcode::text, record);
            }
            send_frame(c, Opcode::close, close_payload(close_code::normal, ""));
            const auto until = steady::now() + std::chrono::milliseconds(500);
            while (!c.out.empty() && c.phase == Phase::open && steady::now() < until) {
                pollfd p{c.fd, POLLOUT, 0};
                ::poll(&p, 1, 50);
                flush(c);
            }
            if (c.phase == Phase::open) {
                connected_->add(-1);
                if (c.ssl) SSL_shutdown(c.ssl);
            }
            log_.info("closed ", c.label);
        }
        close_socket(c);
    }

    HubClientSettings& s_;
    Context& context_;
    Logger& log_;
    Poco::Net::Context::Ptr tls_;
    TokenProvider& tokens_;
    std::vector<std::unique_ptr<HubClient::Connection>>& connections_;
    std::mt19937_64 random_;
    int epoll_ = -1;
    bool gave_up_ = false;
    std::uint64_t fetches_seen_ = 0;
    steady::time_point token_renew_at_ = steady::time_point::max();  // as the worker last saw it
    bool renewing_ = false;
    std::string error_text_;
    char buffer_[256 * 1024];
    std::vector<WsView> frames_;
    HubMessage message_;
    std::string parse_error_;
    std::string frame_;
    std::vector<Event> staged_;
    std::size_t staged_count_ = 0;
    std::vector<std::size_t> staged_sites_;  // with backfill: the connection of each staged event
    std::string event_time_;
    std::chrono::system_clock::time_point received_at_{};
    Gauge* connected_;
    Counter *attempts_, *disconnects_, *disconnected_ms_, *refused_, *protocol_errors_, *token_fetches_;
    // Before the worker: the backfill's follow-ups run on it.
    std::unique_ptr<Backfill> backfill_;
    // Last, so that it stops (waiting for a call in progress) before anything a call might use goes away.
    BlockingWorker worker_;
};

}  // namespace

HubClient::HubClient(HubClientSettings settings, TokenSettings tokens, Context& context)
    : settings_(std::move(settings)), context_(context) {
    bool any_tls =
        std::any_of(settings_.endpoints.begin(), settings_.endpoints.end(), [](const auto& e) { return e.tls; }) ||
        tokens.oauth.token_url.rfind("https:", 0) == 0 || settings_.backfill.url.rfind("https:", 0) == 0;
    if (any_tls) {
        Poco::Net::initializeSSL();
        Poco::Net::Context::Params params;
        params.verificationMode =
            settings_.insecure ? Poco::Net::Context::VERIFY_NONE : Poco::Net::Context::VERIFY_RELAXED;
        params.loadDefaultCAs = true;
        params.caLocation = settings_.ca_file;
        tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
        tls_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        SSL_CTX_set_mode(tls_->sslContext(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    tokens_ = std::make_unique<TokenProvider>(std::move(tokens), tls_, [] { return steady::now(); });
    std::random_device seed;
    for (const auto& ep : settings_.endpoints)
        connections_.push_back(std::make_unique<Connection>(ep, settings_, (std::uint64_t{seed()} << 32) | seed()));
}

HubClient::~HubClient() = default;

void HubClient::run() {
    // On the heap: the loop holds its read buffer.
    auto loop = std::make_unique<Loop>(settings_, context_, tls_, *tokens_, connections_);
    loop->run();
}

}  // namespace hubflow::signalr
