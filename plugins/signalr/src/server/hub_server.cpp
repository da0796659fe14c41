#include "server/hub_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <Poco/MemoryStream.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/NameValueCollection.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "history/history_endpoint.h"
#include "history/history_query.h"
#include "hubflow/listening_socket.h"
#include "protocol/hub_protocol.h"
#include "protocol/msgpack_protocol.h"
#include "protocol/websocket.h"

namespace hubflow::signalr {

namespace {

using steady = std::chrono::steady_clock;
using Frame = std::shared_ptr<const std::string>;

constexpr std::size_t max_request_bytes = std::size_t{16} * 1024;
constexpr std::chrono::milliseconds tick{250};
constexpr std::chrono::seconds close_linger{2};
constexpr std::chrono::seconds broadcast_hold{1};
constexpr std::chrono::seconds slow_client_linger{10};

// Subscriptions are keyed "e|site|" (whole site) or "e|site|user"; 'e' or 'i' for the hub, 'E' or 'I' for
// MessagePack connections, which are sent frames of their own.
std::string subscription_key(Hub hub, std::string_view site, std::string_view user,
                             HubProtocol protocol = HubProtocol::json) {
    std::string key;
    key.reserve(site.size() + user.size() + 3);
    const bool json = protocol == HubProtocol::json;
    key += hub == Hub::entries ? (json ? 'e' : 'E') : (json ? 'i' : 'I');
    key += '|';
    key += site;
    key += '|';
    key += user;
    return key;
}

Frame text_frame(std::string_view payload) {
    auto frame = std::make_shared<std::string>();
    append_frame(*frame, Opcode::text, payload);
    return frame;
}

Frame binary_frame(std::string_view payload) {
    auto frame = std::make_shared<std::string>();
    append_frame(*frame, Opcode::binary, payload);
    return frame;
}

const Frame& ping_frame(HubProtocol protocol) {
    static const Frame json = [] {
        std::string record;
        append_ping(record);
        return text_frame(record);
    }();
    static const Frame messagepack = [] {
        std::string message;
        messagepack::append_ping(message);
        return binary_frame(message);
    }();
    return protocol == HubProtocol::messagepack ? messagepack : json;
}

std::string http_response(int status, const char* reason, std::string_view body, std::string_view extra = {}) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    r += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n";
    r += extra;
    r += "\r\n";
    r += body;
    return r;
}

}  // namespace

// A frame queued on a connection; `event` marks the broadcast frames, which are counted as deliveries once
// written.
struct Queued {
    Frame frame;
    bool event = false;
};

// One client connection, owned by one loop at a time: the front loop until the SignalR handshake is done, then
// a delivery loop.
struct Connection {
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    // A connection still open when it is destroyed (server stopped, or handed to a loop that had stopped).
    ~Connection() {
        if (dead) return;
        if (ssl) SSL_free(ssl);
        ::close(fd);
    }

    enum class State { http, signalr_handshake, connected, closing };
    int fd = -1;
    SSL* ssl = nullptr;      // set when the server speaks TLS
    bool tls_ready = false;  // TLS handshake done
    State state = State::http;
    std::string peer;
    std::string input;  // unparsed HTTP request bytes
    std::optional<FrameDecoder> decoder;
    std::deque<Queued> output;
    std::size_t output_offset = 0;  // into output.front()
    std::size_t output_bytes = 0;
    bool watching_writes = false;
    // In its loop's backlog_ list since backed_up_since: it had output left after a write.
    bool backed_up = false;
    steady::time_point backed_up_since;
    std::list<Connection*>::iterator backlog_entry;
    steady::time_point deadline;  // handshake deadline, or when a closing connection is dropped
    steady::time_point last_received;
    steady::time_point last_ping_sent;
    std::string key;                           // subscription key once connected
    bool dead = false;                         // closed; freed after the current batch of epoll events
    HubProtocol protocol = HubProtocol::json;  // as the handshake chose
    std::optional<messagepack::MessageReader> messagepack_reader;
    bool counted_messagepack = false;  // in the server's count of MessagePack subscribers
};

class HubServer::Loop {
public:
    // index -1 is the front loop: it accepts, upgrades, authenticates and runs the SignalR handshake, so that
    // neither a flood of new connections nor a slow key fetch delays deliveries. Loops 0.. deliver.
    Loop(HubServer& server, int index) : server_(server), index_(index) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (epoll_ < 0 || wake_ < 0) throw std::runtime_error(std::string("epoll/eventfd: ") + std::strerror(errno));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &wake_tag_;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    }

    ~Loop() {
        {
            std::lock_guard lock(inbox_mutex_);
            inbox_.clear();  // connections handed over after this loop stopped close with their tasks
        }
        connections_.clear();
        ::close(wake_);
        ::close(epoll_);
    }

    void watch_listener(int fd) {
        listen_fd_ = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &listen_tag_;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    }

    void start() {
        thread_ = std::thread([this] { run(); });
        // Named so that top and perf show which loop is busy (15 characters at most).
        std::string name = index_ < 0 ? "hub-front" : "hub-io-" + std::to_string(index_);
        pthread_setname_np(thread_.native_handle(), name.c_str());
    }

    void join() {
        if (thread_.joinable()) thread_.join();
    }

    // From any thread.
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(inbox_mutex_);
            inbox_.push_back(std::move(task));
        }
        if (!wake_armed_.exchange(true)) {
            std::uint64_t one = 1;
            [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
        }
    }

    void adopt(int fd, std::string peer) {
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->peer = std::move(peer);
        c->deadline = steady::now() + server_.settings_.handshake_timeout;
        if (server_.tls_) {
            c->ssl = SSL_new(server_.tls_->sslContext());
            SSL_set_fd(c->ssl, fd);
            SSL_set_accept_state(c->ssl);
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c.get();
        epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
        Connection* key = c.get();
        connections_.emplace(key, std::move(c));
        server_.metrics_.connections->add(1);
        connection_count_.fetch_add(1, std::memory_order_relaxed);
    }

    // A connection whose SignalR handshake the front loop completed; from now on this loop owns it.
    void adopt_connected(std::unique_ptr<Connection> owned) {
        Connection& c = *owned;
        connections_.emplace(&c, std::move(owned));
        connection_count_.fetch_add(1, std::memory_order_relaxed);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (c.output.empty() ? 0u : EPOLLOUT);
        ev.data.ptr = &c;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
        c.watching_writes = !c.output.empty();
        if (stopping_) {
            close_with(c, "", true, 1001, "server shutting down");
            return;
        }
        subscribers_[c.key].push_back(&c);
        if (c.protocol == HubProtocol::messagepack) {
            // broadcast() serialises MessagePack frames only while someone can receive them.
            c.counted_messagepack = true;
            server_.messagepack_subscribers_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // On this loop's thread: queue each frame on the connections subscribed to its key(s).
    // On this loop's thread: queue each frame on the connections subscribed to its key(s). The broadcast
    // stays unacknowledged (holding its bytes of the sink's window) until settle_broadcasts() lets it go.
    void deliver(const Broadcast& items, std::size_t bytes) {
        const std::size_t cap = server_.settings_.max_buffered_bytes;
        for (const auto& [key, frame] : items) {
            auto it = subscribers_.find(key);
            if (it == subscribers_.end()) continue;
            // A connection closed below leaves the vector (unsubscribe), so walk it by index, backwards.
            auto& subscribers = it->second;
            for (std::size_t i = subscribers.size(); i-- > 0;) {
                Connection* c = subscribers[i];
                if (c->output_bytes + frame->size() > cap) {
                    flush(*c);  // what the socket still takes does not count against the cap
                    if (!c->dead && c->output_bytes + frame->size() > cap) {
                        server_.metrics_.slow_clients_closed->add();
                        close_with(*c,
                                   "The client did not read fast enough: its outbound buffer passed " +
                                       std::to_string(cap) + " bytes.",
                                   true, 1008, "outbound buffer full");
                        server_.log_.warn("closed ", c->peer, " (", c->key, "): it did not read fast enough, ", cap,
                                          " bytes were waiting for it");
                        // Its socket is full, so the Close leaves only once the client reads again: give it
                        // at least as long as a client may stay silent, not the short linger of other closes.
                        c->deadline = steady::now() +
                                      std::max<steady::duration>(server_.settings_.client_timeout, slow_client_linger);
                    }
                    if (c->dead || c->state != Connection::State::connected) {
                        if (subscribers_.find(key) == subscribers_.end()) break;  // `subscribers` is gone
                        continue;
                    }
                }
                if (c->output.empty()) to_flush_.push_back(c);
                c->output_bytes += frame->size();
                c->output.push_back({frame, true});
            }
        }
        unacked_bytes_ += bytes;
        // Flushed by drain_inbox() once every queued broadcast is in: when the loop falls behind, several
        // batches leave in one sendmsg per connection instead of one each.
    }

    void request_stop() {
        post([this] {
            stopping_ = true;
            for (auto& [key, c] : connections_) {
                if (c->dead) continue;
                if (c->state == Connection::State::connected) {
                    close_with(*c, "", true, 1001, "server shutting down");
                } else {
                    close_now(*c);
                }
            }
        });
    }

    std::size_t connection_count() const { return connection_count_.load(std::memory_order_relaxed); }

private:
    void run() {
        epoll_event events[256];
        auto next_tick = steady::now() + tick;
        for (;;) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - steady::now()).count();
            int n = epoll_wait(epoll_, events, 256, static_cast<int>(std::max<long>(wait, 0)));
            if (n < 0 && errno != EINTR) break;
            for (int i = 0; i < n; ++i) {
                void* tag = events[i].data.ptr;
                if (tag == &wake_tag_) {
                    drain_inbox();
                } else if (tag == &listen_tag_) {
                    accept_all();
                } else {
                    handle(*static_cast<Connection*>(tag), events[i].events);
                }
            }
            hand_over();
            reap();
            settle_broadcasts();
            if (steady::now() >= next_tick) {
                on_tick();
                next_tick = steady::now() + tick;
            }
            if (stopping_ && connections_.empty()) break;
        }
    }

    void drain_inbox() {
        std::uint64_t value;
        [[maybe_unused]] auto r = ::read(wake_, &value, sizeof value);
        wake_armed_ = false;
        std::vector<std::function<void()>> tasks;
        {
            std::lock_guard lock(inbox_mutex_);
            tasks.swap(inbox_);
        }
        for (auto& t : tasks)
            t();
        for (Connection* c : to_flush_)
            flush(*c);  // closed connections are skipped: they are only freed by reap(), after this
        to_flush_.clear();
    }

    void accept_all() {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t len = sizeof addr;
            int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE)
                    server_.log_.warn("cannot accept: ", std::strerror(errno), " (raise the open-file limit)");
                break;
            }
            if (stopping_) {
                ::close(fd);
                continue;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::string peer;
            try {
                peer = Poco::Net::SocketAddress(reinterpret_cast<sockaddr*>(&addr), len).toString();
            } catch (...) {
                peer = "?";
            }
            server_.metrics_.accepted->add();
            adopt(fd, std::move(peer));
        }
    }

    // Front loop: moves the connections that finished their SignalR handshake in this round to the delivery
    // loops, round robin. Whatever is still queued on them (the handshake answer) moves with them.
    void hand_over() {
        for (Connection* c : handshaken_) {
            if (c->dead || c->state != Connection::State::connected) continue;
            epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr);
            c->watching_writes = false;
            auto node = connections_.extract(c);
            connection_count_.fetch_sub(1, std::memory_order_relaxed);
            auto& loops = server_.loops_;
            Loop& target = *loops[next_loop_++ % loops.size()];
            // std::function must be copyable; the shared holder closes the connection if the task never runs.
            auto moved = std::make_shared<std::unique_ptr<Connection>>(std::move(node.mapped()));
            target.post([&target, moved] { target.adopt_connected(std::move(*moved)); });
        }
        handshaken_.clear();
    }

    // Delivery loops: acknowledge the broadcasts queued so far, which lets the sink post more. Held back while
    // a connection has had a backlog for less than broadcast_hold: clients (or the machine) that are only
    // momentarily behind make the pipeline wait rather than fall further behind. A connection behind for
    // longer is slow; it no longer sets the pace, and its queue grows until max_buffered_bytes closes it.
    void settle_broadcasts() {
        if (unacked_bytes_ == 0) return;
        if (!backlog_.empty() && steady::now() - backlog_.back()->backed_up_since < broadcast_hold) return;
        server_.release_broadcast_bytes(unacked_bytes_);
        unacked_bytes_ = 0;
    }

    void handle(Connection& c, std::uint32_t events) {
        if (c.dead) return;
        if (events & (EPOLLERR | EPOLLHUP)) {
            close_now(c);
            return;
        }
        if (events & EPOLLOUT) flush(c);
        if (c.dead) return;
        if ((events & (EPOLLIN | EPOLLRDHUP)) || (c.ssl && !c.tls_ready)) read_from(c);
    }

    // One read from the connection, plain or TLS: bytes read, 0 at end of stream, -1 when it would block,
    // -2 on an error. A TLS handshake in progress is driven from here.
    ssize_t receive(Connection& c, char* buf, std::size_t size) {
        if (!c.ssl) {
            for (;;) {
                ssize_t n = ::recv(c.fd, buf, size, 0);
                if (n >= 0) return n;
                if (errno == EINTR) continue;
                return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
            }
        }
        ERR_clear_error();
        if (!c.tls_ready) {
            int r = SSL_do_handshake(c.ssl);
            if (r != 1) return tls_would_block(c, r) ? -1 : -2;
            c.tls_ready = true;
        }
        std::size_t n = 0;
        int r = SSL_read_ex(c.ssl, buf, size, &n);
        if (r == 1) return static_cast<ssize_t>(n);
        if (SSL_get_error(c.ssl, r) == SSL_ERROR_ZERO_RETURN) return 0;
        return tls_would_block(c, r) ? -1 : -2;
    }

    // After a failed TLS call: true when it only has to wait for the socket (watching writes if it must).
    bool tls_would_block(Connection& c, int result) {
        int e = SSL_get_error(c.ssl, result);
        if (e == SSL_ERROR_WANT_READ) {
            watch_writes(c, !c.output.empty());
            return true;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            watch_writes(c, true);
            return true;
        }
        return false;
    }

    void read_from(Connection& c) {
        char buf[16 * 1024];
        for (;;) {
            ssize_t n = receive(c, buf, sizeof buf);
            if (n == -1) return;
            if (n <= 0) {
                close_now(c);  // the peer went away (an abrupt disconnect included), or TLS failed
                return;
            }
            c.last_received = steady::now();
            std::string_view bytes(buf, static_cast<std::size_t>(n));
            if (c.state == Connection::State::http) {
                on_http_bytes(c, bytes);
            } else if (c.state != Connection::State::closing) {
                on_ws_bytes(c, bytes);
            }
            if (c.dead) return;
        }
    }

    // --- HTTP upgrade ---------------------------------------------------------------------------------

    void refuse(Connection& c, int status, const char* reason, std::string_view body, std::string_view extra = {}) {
        server_.metrics_.refused->add();
        auto frame = std::make_shared<const std::string>(http_response(status, reason, body, extra));
        enqueue(c, frame);
        c.state = Connection::State::closing;
        c.deadline = steady::now() + close_linger;
        flush(c);
        if (!c.dead && c.output.empty()) close_now(c);
    }

    void on_http_bytes(Connection& c, std::string_view bytes) {
        c.input.append(bytes);
        auto end = c.input.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c.input.size() > max_request_bytes)
                refuse(c, 431, "Request Header Fields Too Large", "request too large\n");
            return;
        }
        std::string rest = c.input.substr(end + 4);
        Poco::Net::HTTPRequest request;
        try {
            Poco::MemoryInputStream in(c.input.data(), static_cast<std::streamsize>(end + 4));
            request.read(in);
        } catch (const std::exception&) {
            refuse(c, 400, "Bad Request", "malformed HTTP request\n");
            return;
        }
        c.input.clear();
        // Poco's parser is lenient about the request line; anything that is not HTTP/1.x is refused here.
        const std::string& method = request.getMethod();
        if (method.empty() ||
            !std::all_of(method.begin(), method.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }) ||
            request.getVersion().rfind("HTTP/1.", 0) != 0) {
            refuse(c, 400, "Bad Request", "malformed HTTP request\n");
            return;
        }

        Poco::URI uri;
        try {
            uri = Poco::URI(request.getURI());
        } catch (const std::exception&) {
            refuse(c, 400, "Bad Request", "malformed request target\n");
            return;
        }
        // Routes as ASP.NET Core (and so KS) matches them: the path in any case, with or without a trailing slash.
        std::string path = uri.getPath();
        if (server_.history_ && is_history_path(path)) {
            answer_history(c, request, uri);
            return;
        }
        if (path.size() > 1 && path.back() == '/') path.pop_back();
        std::optional<Hub> hub;
        if (Poco::icompare(path, "/v1/hub/entries") == 0)
            hub = Hub::entries;
        else if (Poco::icompare(path, "/v1/hub/incidents") == 0)
            hub = Hub::incidents;
        if (!hub) {
            refuse(c, 404, "Not Found", "no such hub\n");
            return;
        }
        // Parameter names in any case, as ASP.NET Core's query collection reads them. One given twice is refused
        // rather than guessed at, so nothing in front of the hub can read another site than the hub authorizes.
        std::string site, user, query_token;
        bool has_user = false;
        int site_count = 0, user_count = 0, token_count = 0;
        for (const auto& [name, value] : uri.getQueryParameters()) {
            if (Poco::icompare(name, "site_id") == 0) {
                site = value;
                ++site_count;
            } else if (Poco::icompare(name, "user_id") == 0) {
                user = value;
                has_user = true;
                ++user_count;
            } else if (Poco::icompare(name, "access_token") == 0) {
                query_token = value;
                ++token_count;
            }
        }
        const bool upgrade = Poco::icompare(request.get("Upgrade", ""), "websocket") == 0 &&
                             Poco::toLower(request.get("Connection", "")).find("upgrade") != std::string::npos;
        if (request.getMethod() != "GET" || !upgrade) {
            refuse(c, 400, "Bad Request", "this hub accepts WebSocket upgrade requests only\n");
            return;
        }
        if (site_count > 1 || user_count > 1 || token_count > 1) {
            refuse(c, 400, "Bad Request", "site_id, user_id and access_token may each be given once\n");
            return;
        }
        if (site.empty()) {
            refuse(c, 400, "Bad Request", "the site_id query parameter is required\n");
            return;
        }
        if (has_user && user.empty()) {
            refuse(c, 400, "Bad Request", "user_id is empty\n");
            return;
        }

        std::string token = query_token;
        if (request.has("Authorization")) {
            const std::string& auth = request.get("Authorization");
            // RFC 6750 allows one or more spaces after the scheme name.
            if (auth.size() > 7 && Poco::icompare(auth.substr(0, 7), "Bearer ") == 0) {
                token = Poco::trim(auth.substr(7));
            }
        }
        if (token.empty()) {
            refuse(c, 401, "Unauthorized", "no access token\n", "WWW-Authenticate: Bearer\r\n");
            return;
        }
        VerifyResult verified = server_.verifier_->verify(token, std::chrono::system_clock::now());
        if (!verified.ok) {
            refuse(c, 401, "Unauthorized", verified.reason + "\n",
                   "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
            return;
        }
        AccessDecision access = authorize(*hub, site, has_user ? std::optional<std::string>(user) : std::nullopt,
                                          verified.principal, *server_.roles_);
        if (access.status != 0) {
            refuse(c, 403, "Forbidden", access.reason + "\n");
            return;
        }

        if (request.get("Sec-WebSocket-Version", "") != "13") {
            refuse(c, 426, "Upgrade Required", "WebSocket version 13 required\n", "Sec-WebSocket-Version: 13\r\n");
            return;
        }
        const std::string& key = request.get("Sec-WebSocket-Key", "");
        if (key.size() != 24) {
            refuse(c, 400, "Bad Request", "missing or malformed Sec-WebSocket-Key\n");
            return;
        }
        std::string response =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
            websocket_accept_key(key) + "\r\n\r\n";
        enqueue(c, std::make_shared<const std::string>(std::move(response)));
        c.state = Connection::State::signalr_handshake;
        c.key = subscription_key(*hub, site, has_user ? user : "");
        c.decoder.emplace(Endpoint::server, server_.settings_.max_message_bytes);
        flush(c);
        if (!c.dead && !rest.empty()) on_ws_bytes(c, rest);
    }

    // One page of the history, then the connection closes (the answer says so): a client pages with one
    // request per connection, which keeps the front loop free of idle keep-alive connections.
    void answer_history(Connection& c, const Poco::Net::HTTPRequest& request, const Poco::URI& uri) {
        HistoryRequestHead head;
        head.method = request.getMethod();
        const std::string& path = uri.getPath();
        const std::string& raw_query = uri.getRawQuery();
        head.path = path;
        head.raw_query = raw_query;
        if (request.has("Authorization")) head.authorization = request.get("Authorization");
        if (request.has("CLP-Continuation-Token")) head.continuation = request.get("CLP-Continuation-Token");
        HttpAnswer a = server_.history_->handle(head);
        std::string r = "HTTP/1.1 " + std::to_string(a.status) + " " + a.reason +
                        "\r\nContent-Type: " + a.content_type + "\r\nContent-Length: " + std::to_string(a.body.size()) +
                        "\r\nCache-Control: no-store\r\nConnection: close\r\n" + a.extra_headers + "\r\n";
        r += a.body;
        enqueue(c, std::make_shared<const std::string>(std::move(r)));
        c.state = Connection::State::closing;
        // A full page is up to a few hundred kilobytes: give a slow reader as long as a handshake.
        c.deadline = steady::now() + std::max<steady::duration>(server_.settings_.handshake_timeout, close_linger);
        flush(c);
    }

    // --- WebSocket and SignalR ------------------------------------------------------------------------

    void on_ws_bytes(Connection& c, std::string_view bytes) {
        std::vector<WsView> events;
        bool ok = c.decoder->feed(bytes, events);
        for (auto& e : events) {
            if (c.dead || c.state == Connection::State::closing) return;
            on_ws_event(c, e);
        }
        if (!ok && !c.dead && c.state != Connection::State::closing) {
            const auto& error = c.decoder->error();
            server_.metrics_.protocol_errors->add();
            if (c.state == Connection::State::connected) {
                // The reference server's behaviour for an oversized or malformed message.
                close_with(c, "Connection closed with an error.", true, error.close_code, error.reason);
            } else {
                close_ws(c, error.close_code, error.reason);
            }
        }
    }

    void on_ws_event(Connection& c, const WsView& e) {
        switch (e.kind) {
            case WsEvent::Kind::ping: {
                auto frame = std::make_shared<std::string>();
                append_frame(*frame, Opcode::pong, e.payload);
                enqueue(c, frame);
                flush(c);
                return;
            }
            case WsEvent::Kind::pong:
                return;
            case WsEvent::Kind::close:
                close_ws(c, 1000, "");
                return;
            case WsEvent::Kind::binary:
                if (c.state == Connection::State::connected && c.protocol == HubProtocol::messagepack) {
                    on_messagepack_bytes(c, e.payload);
                    return;
                }
                // The .NET client writes everything of a MessagePack connection in binary frames, the handshake
                // included (the JavaScript client sends it as text); ASP.NET Core reads both alike.
                if (c.state == Connection::State::signalr_handshake) break;
                server_.metrics_.protocol_errors->add();
                close_with(c, "Connection closed with an error.", true, 1003,
                           "binary frames are not JSON hub protocol");
                return;
            case WsEvent::Kind::text:
                if (c.state == Connection::State::connected && c.protocol == HubProtocol::messagepack) {
                    server_.metrics_.protocol_errors->add();
                    close_with(c, "Connection closed with an error.", true, 1003,
                               "text frames are not MessagePack hub protocol");
                    return;
                }
                break;
        }
        std::string_view message = e.payload;
        while (!message.empty() && !c.dead && c.state != Connection::State::closing) {
            if (c.protocol == HubProtocol::messagepack) {
                // What follows the handshake in its own WebSocket message is already MessagePack.
                on_messagepack_bytes(c, message);
                return;
            }
            auto sep = message.find(record_separator);
            if (sep == std::string_view::npos) {
                server_.metrics_.protocol_errors->add();
                if (c.state == Connection::State::connected)
                    close_with(c, "Connection closed with an error.", true, 1000, "");
                else
                    close_ws(c, 1002, "Message is incomplete.");
                return;
            }
            on_record(c, message.substr(0, sep));
            message.remove_prefix(sep + 1);
        }
    }

    void on_record(Connection& c, std::string_view record) {
        if (c.state == Connection::State::signalr_handshake) {
            HandshakeResult hs = check_handshake(record);
            std::string reply = handshake_response(hs.ok ? std::string_view{} : std::string_view(hs.error));
            if (!hs.ok) {
                // The reference server answers the error and closes without a Close message.
                enqueue(c, text_frame(reply));
                close_ws(c, 1000, "");
                return;
            }
            c.protocol = hs.protocol;
            if (c.protocol == HubProtocol::messagepack) {
                // ASP.NET Core switches the connection to binary frames before it answers, so a MessagePack
                // client gets even the handshake answer in a binary frame; the official clients read either.
                c.key[0] = c.key[0] == 'e' ? 'E' : 'I';
                c.messagepack_reader.emplace(server_.settings_.max_message_bytes);
                enqueue(c, binary_frame(reply));
            } else {
                enqueue(c, text_frame(reply));
            }
            c.state = Connection::State::connected;
            c.last_received = steady::now();
            c.last_ping_sent = steady::now();
            flush(c);
            handshaken_.push_back(&c);
            return;
        }
        HubMessage message;
        std::string error;
        if (!parse_message(record, message, error)) {
            server_.metrics_.protocol_errors->add();
            close_with(c, "Connection closed with an error.", true, 1000, "");
            return;
        }
        on_message(c, message);
    }

    // Binary WebSocket messages of a MessagePack connection: size-prefixed messages, which may run on from
    // one WebSocket message into the next (ASP.NET Core reads the protocol as a byte stream).
    void on_messagepack_bytes(Connection& c, std::string_view bytes) {
        auto& reader = *c.messagepack_reader;
        reader.feed(bytes);
        std::string_view body;
        HubMessage message;
        std::string error;
        while (!c.dead && c.state == Connection::State::connected && reader.next(body)) {
            if (!messagepack::parse_message(body, message, error)) {
                server_.metrics_.protocol_errors->add();
                close_with(c, "Connection closed with an error.", true, 1000, "");
                return;
            }
            on_message(c, message);
        }
        if (!reader.error().empty() && !c.dead && c.state == Connection::State::connected) {
            server_.metrics_.protocol_errors->add();
            close_with(c, "Connection closed with an error.", true, 1009, "");
        }
    }

    void on_message(Connection& c, const HubMessage& message) {
        switch (message.type) {
            case 1:  // Invocation: this hub has no server methods
            case 4:  // StreamInvocation
                if (message.has_invocation_id) {
                    std::string reply;
                    if (c.protocol == HubProtocol::messagepack) {
                        messagepack::append_completion_error(reply, message.invocation_id, "Method does not exist.");
                        enqueue(c, binary_frame(reply));
                    } else {
                        append_completion_error(reply, message.invocation_id, "Method does not exist.");
                        enqueue(c, text_frame(reply));
                    }
                    flush(c);
                }
                return;
            case 7:
                close_ws(c, 1000, "");
                return;
            default:
                return;  // pings keep the connection alive; other types are ignored
        }
    }

    // --- output -----------------------------------------------------------------------------------------

    void enqueue(Connection& c, Frame frame) {
        c.output_bytes += frame->size();
        c.output.push_back({std::move(frame), false});
    }

    // Writes as much queued output as the socket takes; watches for writability only while some is left.
    void flush(Connection& c) {
        if (c.dead) return;
        bool ok = c.ssl ? flush_tls(c) : flush_plain(c);
        if (!ok) {
            close_now(c);
            return;
        }
        watch_writes(c, !c.output.empty());
        note_backlog(c);
        if (c.output.empty() && c.state == Connection::State::closing) close_now(c);
    }

    // Keeps backlog_ current: the connected connections still holding output after a write (their socket
    // buffer is full), oldest first.
    void note_backlog(Connection& c) {
        if (index_ < 0) return;  // the front loop has no subscribers
        bool behind = !c.dead && c.state == Connection::State::connected && !c.output.empty();
        if (behind == c.backed_up) return;
        c.backed_up = behind;
        if (behind) {
            c.backed_up_since = steady::now();
            c.backlog_entry = backlog_.insert(backlog_.end(), &c);
        } else {
            backlog_.erase(c.backlog_entry);
        }
    }

    void consume_output(Connection& c, std::size_t written) {
        c.output_bytes -= written;
        std::uint64_t delivered = 0;
        while (written > 0) {
            std::size_t left = c.output.front().frame->size() - c.output_offset;
            if (written >= left) {
                written -= left;
                delivered += c.output.front().event ? 1 : 0;
                c.output.pop_front();
                c.output_offset = 0;
            } else {
                c.output_offset += written;
                written = 0;
            }
        }
        if (delivered != 0) server_.metrics_.deliveries->add(delivered);
    }

    bool flush_plain(Connection& c) {
        while (!c.output.empty()) {
            iovec iov[64];
            int count = 0;
            std::size_t offset = c.output_offset;
            for (auto it = c.output.begin(); it != c.output.end() && count < 64; ++it, ++count) {
                iov[count].iov_base = const_cast<char*>(it->frame->data()) + offset;
                iov[count].iov_len = it->frame->size() - offset;
                offset = 0;
            }
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = static_cast<std::size_t>(count);
            ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno == EAGAIN || errno == EWOULDBLOCK;
            }
            consume_output(c, static_cast<std::size_t>(n));
        }
        return true;
    }

    // Frames are immutable shared strings, so a write retried after WANT_WRITE passes the same bytes, as
    // OpenSSL requires.
    bool flush_tls(Connection& c) {
        if (!c.tls_ready) return true;  // nothing is queued before the handshake completes
        while (!c.output.empty()) {
            const std::string& head = *c.output.front().frame;
            std::size_t written = 0;
            ERR_clear_error();
            int r = SSL_write_ex(c.ssl, head.data() + c.output_offset, head.size() - c.output_offset, &written);
            if (r != 1) return tls_would_block(c, r);
            consume_output(c, written);
        }
        return true;
    }

    void watch_writes(Connection& c, bool want) {
        if (c.dead || want == c.watching_writes) return;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
        ev.data.ptr = &c;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        c.watching_writes = want;
    }

    // A SignalR Close message, then a WebSocket close, then the socket once both are out.
    void close_with(Connection& c, const std::string& error, bool allow_reconnect, std::uint16_t code,
                    const std::string& reason) {
        // Whatever was queued for a client being closed is dropped, so the Close is not stuck behind it.
        if (!c.output.empty() && c.output_offset == 0) {
            c.output.clear();
            c.output_bytes = 0;
        } else if (c.output.size() > 1) {
            Queued head = c.output.front();
            c.output.clear();
            c.output.push_back(head);
            c.output_bytes = head.frame->size() - c.output_offset;
        }
        std::string record;
        if (c.protocol == HubProtocol::messagepack) {
            messagepack::append_close(record, error, allow_reconnect);
            enqueue(c, binary_frame(record));
        } else {
            append_close(record, error, allow_reconnect);
            enqueue(c, text_frame(record));
        }
        close_ws(c, code, reason);
    }

    void close_ws(Connection& c, std::uint16_t code, const std::string& reason) {
        auto frame = std::make_shared<std::string>();
        append_frame(*frame, Opcode::close, close_payload(code, reason));
        enqueue(c, frame);
        unsubscribe(c);
        c.state = Connection::State::closing;
        c.deadline = steady::now() + close_linger;
        flush(c);
    }

    void unsubscribe(Connection& c) {
        if (c.state != Connection::State::connected) return;
        if (c.counted_messagepack) {
            c.counted_messagepack = false;
            server_.messagepack_subscribers_.fetch_sub(1, std::memory_order_relaxed);
        }
        auto it = subscribers_.find(c.key);
        if (it == subscribers_.end()) return;
        auto& v = it->second;
        auto removed = std::remove(v.begin(), v.end(), &c);
        if (removed == v.end()) return;
        v.erase(removed, v.end());
        if (v.empty()) subscribers_.erase(it);
    }

    void close_now(Connection& c) {
        if (c.dead) return;
        unsubscribe(c);
        c.dead = true;
        note_backlog(c);
        epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
        if (c.ssl) {
            SSL_shutdown(c.ssl);  // best effort close_notify; the socket goes either way
            SSL_free(c.ssl);
            c.ssl = nullptr;
        }
        ::close(c.fd);
        graveyard_.push_back(&c);
        server_.metrics_.connections->add(-1);
        connection_count_.fetch_sub(1, std::memory_order_relaxed);
    }

    // Frees connections closed during the current round. Only run() calls it, after the whole batch of epoll
    // events: an event later in the batch may still point at a connection closed earlier in it.
    void reap() {
        for (Connection* c : graveyard_)
            connections_.erase(c);
        graveyard_.clear();
    }

    void on_tick() {
        auto now = steady::now();
        const auto& s = server_.settings_;
        for (auto& [key, cp] : connections_) {
            Connection& c = *cp;
            if (c.dead) continue;
            switch (c.state) {
                case Connection::State::http:
                    if (now >= c.deadline) close_now(c);
                    break;
                case Connection::State::signalr_handshake:
                    if (now >= c.deadline) {
                        enqueue(c, text_frame(handshake_response("Handshake was canceled.")));
                        close_ws(c, 1000, "");
                    }
                    break;
                case Connection::State::connected:
                    if (now - c.last_received >= s.client_timeout) {
                        close_with(c, "Server timeout elapsed without receiving a message from the client.", true, 1000,
                                   "");
                    } else if (now - c.last_ping_sent >= s.ping_interval) {
                        enqueue(c, ping_frame(c.protocol));
                        c.last_ping_sent = now;
                        flush(c);
                    }
                    break;
                case Connection::State::closing:
                    if (now >= c.deadline) close_now(c);
                    break;
            }
        }
    }

    HubServer& server_;
    int index_;
    int epoll_ = -1;
    int wake_ = -1;
    int listen_fd_ = -1;
    char wake_tag_ = 0;
    char listen_tag_ = 0;
    std::thread thread_;
    std::mutex inbox_mutex_;
    std::vector<std::function<void()>> inbox_;
    std::atomic<bool> wake_armed_{false};
    bool stopping_ = false;
    std::size_t next_loop_ = 0;
    std::vector<Connection*> handshaken_;  // front loop: to hand over after this round
    // Delivery loops: broadcast bytes queued and not yet acknowledged to the sink, and the backlog census
    // that decides when to acknowledge them.
    std::size_t unacked_bytes_ = 0;
    std::list<Connection*> backlog_;
    // Keyed by the connection, not its fd: a closed fd can be reused by accept() before the closed connection
    // is reaped.
    std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
    std::unordered_map<std::string, std::vector<Connection*>> subscribers_;
    std::vector<Connection*> graveyard_;
    std::vector<Connection*> to_flush_;  // got broadcast frames in this round of the inbox
    std::atomic<std::size_t> connection_count_{0};
};

HubServer::HubServer(HubServerSettings settings, std::shared_ptr<TokenVerifier> verifier,
                     std::shared_ptr<RoleDirectory> roles, Logger& log, HubServerMetrics metrics)
    : settings_(std::move(settings)),
      verifier_(std::move(verifier)),
      roles_(std::move(roles)),
      log_(log),
      metrics_(metrics) {}

HubServer::~HubServer() {
    stop();
}

void HubServer::start(int listen_fd) {
    if (!settings_.tls_cert.empty()) {
        // Poco's Context loads and checks the certificate chain and key; the loops drive OpenSSL directly on
        // their non-blocking sockets (Poco 1.11's SecureStreamSocket cannot be used non-blocking on a server).
        try {
            Poco::Net::initializeSSL();
            tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, settings_.tls_key, settings_.tls_cert, "",
                                          Poco::Net::Context::VERIFY_NONE);
            tls_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
            SSL_CTX_set_mode(tls_->sslContext(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                                     SSL_MODE_RELEASE_BUFFERS);
        } catch (const Poco::Exception& e) {
            throw std::runtime_error("tls: cannot load the certificate '" + settings_.tls_cert + "' and key '" +
                                     settings_.tls_key + "': " + e.displayText());
        }
    }
    listen_fd_ = listen_fd >= 0 ? listen_fd : bind_listening_socket(settings_.listen);
    // The loops accept until they would block (the descriptor may be shared with the host's copy, which
    // never accepts).
    ::fcntl(listen_fd_, F_SETFL, ::fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    bound_address_ = Poco::Net::SocketAddress(reinterpret_cast<sockaddr*>(&bound), len).toString();

    front_ = std::make_unique<Loop>(*this, -1);
    front_->watch_listener(listen_fd_);
    for (int i = 0; i < std::max(1, settings_.io_threads); ++i)
        loops_.push_back(std::make_unique<Loop>(*this, i));
    for (auto& l : loops_)
        l->start();
    front_->start();
    // Enough for a few batches in flight; small enough that a connection a window behind the others is still
    // far from max_buffered_bytes.
    broadcast_window_ = std::max<std::size_t>(settings_.max_buffered_bytes / 4, std::size_t{64} * 1024);
    started_ = true;
}

void HubServer::broadcast(const EventBatch& batch) {
    if (!started_) return;
    Broadcast items;
    std::size_t bytes = 0;
    std::string record;
    // Each event is serialised once per protocol in use; with no MessagePack subscriber, the JSON frames are
    // all the work there is.
    const bool messagepack_wanted = messagepack_subscribers_.load(std::memory_order_relaxed) > 0;
    std::string messagepack_record;
    for (const Event& e : batch) {
        const std::optional<Hub> found = hub_of(e.meta.kind, e.meta.site_id);
        if (!found) continue;
        const Hub hub = *found;
        record.clear();
        append_invocation(record, settings_.method, e.payload);
        Frame frame = text_frame(record);
        bytes += frame->size();
        items.emplace_back(subscription_key(hub, e.meta.site_id, ""), frame);
        if (!e.meta.user_id.empty()) items.emplace_back(subscription_key(hub, e.meta.site_id, e.meta.user_id), frame);
        if (messagepack_wanted) {
            messagepack_record.clear();
            messagepack::append_invocation(messagepack_record, settings_.method, e.payload);
            Frame binary = binary_frame(messagepack_record);
            bytes += binary->size();
            const auto mp = HubProtocol::messagepack;
            items.emplace_back(subscription_key(hub, e.meta.site_id, "", mp), binary);
            if (!e.meta.user_id.empty())
                items.emplace_back(subscription_key(hub, e.meta.site_id, e.meta.user_id, mp), binary);
        }
        // A large batch goes out in window-sized parts, so that no connection ever has more than a window
        // of one broadcast queued at once.
        if (bytes >= broadcast_window_) {
            post_broadcast(std::move(items), bytes);
            items = {};
            bytes = 0;
        }
    }
    if (!items.empty()) post_broadcast(std::move(items), bytes);
}

void HubServer::post_broadcast(Broadcast items, std::size_t bytes) {
    auto shared = std::make_shared<const Broadcast>(std::move(items));
    // Backpressure: at most broadcast_window_ bytes per loop are posted and not yet acknowledged (see
    // Loop::settle_broadcasts); past it the sink, and so the pipeline, waits instead of the loops' queues
    // growing without bound.
    const std::size_t all_loops = bytes * loops_.size();
    {
        std::unique_lock lock(broadcast_mutex_);
        broadcast_room_.wait(lock, [&] {
            return broadcast_bytes_in_flight_ == 0 ||
                   broadcast_bytes_in_flight_ + all_loops <= broadcast_window_ * loops_.size();
        });
        broadcast_bytes_in_flight_ += all_loops;
    }
    for (auto& loop : loops_) {
        Loop* l = loop.get();
        l->post([l, shared, bytes] { l->deliver(*shared, bytes); });
    }
}

void HubServer::release_broadcast_bytes(std::size_t bytes) {
    {
        std::lock_guard lock(broadcast_mutex_);
        broadcast_bytes_in_flight_ -= bytes;
    }
    broadcast_room_.notify_one();
}

void HubServer::stop() {
    if (!started_) return;
    started_ = false;
    // The front loop first: connections it hands over before it ends reach the delivery loops' inboxes ahead
    // of their stop requests, so they get the same Close as everyone else.
    front_->request_stop();
    front_->join();
    for (auto& l : loops_)
        l->request_stop();
    for (auto& l : loops_)
        l->join();
    front_.reset();
    loops_.clear();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
}

std::size_t HubServer::connection_count() const {
    std::size_t n = front_ ? front_->connection_count() : 0;
    for (const auto& l : loops_)
        n += l->connection_count();
    return n;
}

}  // namespace hubflow::signalr
