// hub_load_client: N WebSocket/SignalR connections to a signalr_hub in one process, one epoll loop; or, with
// --protocol nats, N WebSocket connections to a nats-server's WebSocket listener, each subscribed to --subject.
// Both protocols share every line of this file except their framing: the upgrade, the frame decoder, the
// delivery bookkeeping and the report are the same.
//
// Opens N connections (at most --max-pending upgrades in flight, source addresses 127.0.0.1, .2, ... with
// --per-address connections each so a large N does not run out of ephemeral ports), does the HTTP upgrade
// and the SignalR JSON handshake on each, then measures a window of --duration seconds:
//   - ReceiveMessage records received, per connection and in all, and bytes;
//   - fan-out spread: for each event id, the time between its arrival on the first and on the last
//     connection (p50/p99/max). Events seen by fewer connections than were open (the window's edges, a
//     dropped connection) are counted as incomplete and left out;
//   - the client's CPU (getrusage), and with --server-pid the server's CPU per thread and its RSS from /proc;
//   - with --schedule IDS --schedule-rate R: latency from publish to receipt. The server publishes known events
//     on a known schedule (IDS: their ids in order, one a line; event i leaves in the batch of floor(R/100)
//     events, 1..512, that is due when its last event is, at t0 + i/R: hubflow's generator and the bench's
//     ASP.NET Core replay both do so; --schedule-batch 1 for a publisher that sends each event when due). t0 is not
//     visible from here, so it is taken as the moment that makes the fastest delivery of the window take no time: the
//     figures are latency above that floor.
// Answers WebSocket pings, sends a SignalR ping record right after the handshake and every --ping-interval
// seconds (the server drops a client silent for 30 s). Frames are decoded here with a few lines of code:
// unmasked server frames, masked client frames, fragmentation tolerated.
//
// Prints one JSON object on stdout; progress and problems go to stderr. A benchmark tool: no TLS, no
// Sec-WebSocket-Accept check, assumes the server's record layout {"type":1,"target":...,"arguments":[...]}
// only to find the event id quickly (falls back to a search).
//
// NATS: after the upgrade the client sends CONNECT, SUB and PING in one binary frame; the PONG plays the part of
// the SignalR handshake answer. Each MSG is a delivery. Server PINGs are answered.
//
//   hub_load_client --port P [--host 127.0.0.1] --path '/v1/hub/entries?site_id=S' --token JWT -n N
//                   [--protocol signalr|nats] [--subject ks.entries]
//                   [--duration 10] [--settle 1] [--server-pid PID] [--per-address 5000]
//                   [--max-pending 512] [--ping-interval 10] [--connect-timeout 60] [--rss-limit-mb 0]
//                   [--schedule IDS --schedule-rate R [--schedule-batch B]]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

// ---- time ------------------------------------------------------------------------------------------------

std::int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double cpu_self_s() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

// ---- options ---------------------------------------------------------------------------------------------

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string path = "/v1/hub/entries?site_id=site";
    std::string token;
    int n = 100;
    double duration = 10;
    double settle = 1;
    int server_pid = 0;
    int per_address = 5000;
    int max_pending = 512;
    double ping_interval = 10;
    double connect_timeout = 60;
    long rss_limit_mb = 0;  // end the window early when the server's RSS passes this (0 = no limit)
    bool nats = false;
    std::string subject = "ks.entries";
    std::string schedule;  // file of event ids in publish order (latency from publish to receipt)
    double schedule_rate = 0;
    int schedule_batch = 0;  // 0: the generator's, floor(rate/100) in 1..512
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "hub_load_client: %s\nusage: hub_load_client --port P --token JWT [--host H] [--path P] [-n N] "
                 "[--duration S] [--settle S] [--server-pid PID] [--per-address K] [--max-pending K] "
                 "[--ping-interval S] [--connect-timeout S] [--rss-limit-mb MB] [--protocol signalr|nats] "
                 "[--subject S] [--schedule IDS --schedule-rate R [--schedule-batch B]]\n",
                 why);
    std::exit(2);
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--host")
            o.host = value();
        else if (a == "--port")
            o.port = std::stoi(value());
        else if (a == "--path")
            o.path = value();
        else if (a == "--token")
            o.token = value();
        else if (a == "-n" || a == "--connections")
            o.n = std::stoi(value());
        else if (a == "--duration")
            o.duration = std::stod(value());
        else if (a == "--settle")
            o.settle = std::stod(value());
        else if (a == "--server-pid")
            o.server_pid = std::stoi(value());
        else if (a == "--per-address")
            o.per_address = std::stoi(value());
        else if (a == "--max-pending")
            o.max_pending = std::stoi(value());
        else if (a == "--ping-interval")
            o.ping_interval = std::stod(value());
        else if (a == "--connect-timeout")
            o.connect_timeout = std::stod(value());
        else if (a == "--rss-limit-mb")
            o.rss_limit_mb = std::stol(value());
        else if (a == "--subject")
            o.subject = value();
        else if (a == "--schedule")
            o.schedule = value();
        else if (a == "--schedule-rate")
            o.schedule_rate = std::stod(value());
        else if (a == "--schedule-batch")
            o.schedule_batch = std::stoi(value());
        else if (a == "--protocol") {
            std::string p = value();
            if (p != "signalr" && p != "nats") usage("--protocol is signalr or nats");
            o.nats = p == "nats";
        } else
            usage(("unknown option " + a).c_str());
    }
    if (o.port <= 0) usage("--port is required");
    if (o.nats && o.path == Options{}.path) o.path = "/";
    if (o.n <= 0 || o.per_address <= 0 || o.max_pending <= 0) usage("-n, --per-address, --max-pending must be > 0");
    if (!o.schedule.empty() && o.schedule_rate <= 0) usage("--schedule needs --schedule-rate > 0");
    return o;
}

// ---- the server process, from /proc -----------------------------------------------------------------------

struct ProcSample {
    bool ok = false;
    double cpu_s = 0;
    std::map<std::string, double> thread_cpu_s;  // by "name/tid"
    long rss_kb = 0, hwm_kb = 0;
};

// utime + stime of a /proc/.../stat line, in seconds. The command name may hold spaces: parse after ')'.
bool stat_cpu(const std::string& path, double& cpu, std::string* comm = nullptr) {
    std::ifstream f(path);
    std::string line;
    if (!std::getline(f, line)) return false;
    auto open = line.find('(');
    auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) return false;
    if (comm) *comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long ut = 0, st = 0;
    // Fields after the name start at 3 (state); utime is field 14, stime 15.
    for (int k = 3; k <= 15 && rest >> field; ++k) {
        if (k == 14) ut = std::strtoull(field.c_str(), nullptr, 10);
        if (k == 15) st = std::strtoull(field.c_str(), nullptr, 10);
    }
    static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    cpu = static_cast<double>(ut + st) / tick;
    return true;
}

ProcSample sample_process(int pid) {
    ProcSample s;
    if (pid <= 0) return s;
    std::string base = "/proc/" + std::to_string(pid);
    if (!stat_cpu(base + "/stat", s.cpu_s)) return s;
    s.ok = true;
    if (DIR* d = opendir((base + "/task").c_str())) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            double c = 0;
            std::string comm;
            if (stat_cpu(base + "/task/" + e->d_name + "/stat", c, &comm)) s.thread_cpu_s[comm + "/" + e->d_name] += c;
        }
        closedir(d);
    }
    std::ifstream st(base + "/status");
    std::string line;
    while (std::getline(st, line)) {
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::atol(line.c_str() + 6);
        if (line.rfind("VmHWM:", 0) == 0) s.hwm_kb = std::atol(line.c_str() + 6);
    }
    return s;
}

// Busy CPU seconds of the whole machine (all cores) from /proc/stat: everything but idle and iowait.
double machine_busy_s() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    unsigned long long v[10] = {};
    if (!(f >> cpu) || cpu != "cpu") return 0;
    for (auto& x : v)
        f >> x;
    static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    return static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
}

// ---- WebSocket client frames -------------------------------------------------------------------------------

std::uint64_t rng_state = 0x9E3779B97F4A7C15ull ^ static_cast<std::uint64_t>(now_ns());
std::uint32_t rng32() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return static_cast<std::uint32_t>(rng_state >> 16);
}

// A client frame: FIN, opcode, MASK bit, length, masking key, masked payload.
void append_client_frame(std::string& out, std::uint8_t opcode, std::string_view payload) {
    out.push_back(static_cast<char>(0x80 | opcode));
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xff));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int s = 56; s >= 0; s -= 8)
            out.push_back(static_cast<char>((std::uint64_t{n} >> s) & 0xff));
    }
    std::uint32_t key = rng32();
    char k[4];
    std::memcpy(k, &key, 4);
    out.append(k, 4);
    const std::size_t at = out.size();
    out.append(payload);
    for (std::size_t i = 0; i < n; ++i)
        out[at + i] = static_cast<char>(out[at + i] ^ k[i & 3]);
}

// ---- fan-out spread bookkeeping ---------------------------------------------------------------------------

struct EventKey {
    std::uint64_t hi = 0, lo = 0;
    bool operator==(const EventKey&) const = default;
};
struct EventKeyHash {
    std::size_t operator()(const EventKey& k) const noexcept { return k.hi * 0x9E3779B97F4A7C15ull ^ k.lo; }
};
struct Spread {
    std::int64_t first_ns = 0, last_ns = 0;
    std::uint32_t count = 0;
};

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The id as it appears in the escaped argument: \"id\":\"xxxxxxxx-xxxx-...\" -> 128 bits (any 32 hex digits
// among the next 36 characters; other id shapes are hashed).
// A raw payload (NATS) has the id unescaped: "id":"...".
bool event_key(std::string_view record, EventKey& key, bool escaped) {
    const std::string_view marker = escaped ? std::string_view(R"(\"id\":\")") : std::string_view(R"("id":")");
    auto pos = record.find(marker);
    if (pos == std::string_view::npos) return false;
    pos += marker.size();
    auto end = record.find(escaped ? '\\' : '"', pos);
    if (end == std::string_view::npos) return false;
    std::string_view id = record.substr(pos, end - pos);
    std::uint64_t parts[2] = {0, 0};
    int digits = 0;
    bool hex = true;
    for (char c : id) {
        if (c == '-') continue;
        int v = hexval(c);
        if (v < 0 || digits >= 32) {
            hex = false;
            break;
        }
        parts[digits / 16] = parts[digits / 16] << 4 | static_cast<std::uint64_t>(v);
        ++digits;
    }
    if (!hex || digits != 32) {
        std::uint64_t h = 1469598103934665603ull, h2 = 0x12345;
        for (char c : id) {
            h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
            h2 = h2 * 31 + static_cast<unsigned char>(c);
        }
        parts[0] = h;
        parts[1] = h2;
    }
    key.hi = parts[0];
    key.lo = parts[1];
    return true;
}

// ---- connections -----------------------------------------------------------------------------------------

enum class State : std::uint8_t { connecting, upgrading, handshaking, open, closed };

struct Conn {
    int fd = -1;
    State state = State::connecting;
    std::int64_t started_ns = 0;  // connect() called
    std::int64_t opened_ns = 0;   // handshake answer received
    std::int64_t next_ping_ns = 0;
    std::string in;       // bytes of an incomplete frame (or of the HTTP response)
    std::string message;  // a fragmented message being assembled
    std::uint8_t message_opcode = 0;
    std::string out;               // bytes the socket did not take yet
    std::string nats_in;           // NATS: protocol bytes of an incomplete line or MSG
    std::size_t nats_payload = 0;  // NATS: payload bytes (+ CRLF) the MSG being read still needs; 0 = a line
    bool watching_out = false;
    std::uint64_t deliveries = 0;  // in the window
};

struct Stats {
    std::uint64_t deliveries = 0, bytes = 0, pings = 0, ws_pings = 0, other_records = 0;
    std::uint64_t closed_by_server = 0, closed_by_peer_eof = 0, errors_after_open = 0;
    std::string first_close_reason;
    std::uint64_t events_seen = 0, events_complete = 0, events_incomplete = 0;
};

class Client {
public:
    explicit Client(Options o) : o_(std::move(o)) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die("epoll_create1");
        conns_.resize(static_cast<std::size_t>(o_.n));
        request_ = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
                   (o_.token.empty() ? std::string() : "Authorization: Bearer " + o_.token + "\r\n") +
                   "User-Agent: hub_load_client\r\n\r\n";
        if (o_.nats) {
            append_client_frame(handshake_, 0x2,
                                "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nSUB " + o_.subject +
                                    " 1\r\nPING\r\n");
            append_client_frame(ping_, 0x2, std::string_view("PING\r\n"));
            append_client_frame(pong_, 0x2, std::string_view("PONG\r\n"));
        } else {
            append_client_frame(handshake_, 0x1, std::string_view("{\"protocol\":\"json\",\"version\":1}\x1e"));
            append_client_frame(ping_, 0x1, std::string_view("{\"type\":6}\x1e"));
        }
        if (inet_pton(AF_INET, o_.host.c_str(), &server_.sin_addr) != 1) usage("--host must be an IPv4 address");
        if (!o_.schedule.empty()) load_schedule();
        server_.sin_family = AF_INET;
        server_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    }

    int run() {
        ProcSample server_before = sample_process(o_.server_pid);
        const std::int64_t t0 = now_ns();
        const double cpu0 = cpu_self_s();
        connect_phase(t0);
        const std::int64_t t_connected = now_ns();
        const double connect_cpu = cpu_self_s() - cpu0;
        ProcSample server_connected = sample_process(o_.server_pid);

        // Settle: keep serving, count nothing.
        loop_until(now_ns() + static_cast<std::int64_t>(o_.settle * 1e9), false);

        // The window.
        stats_ = Stats{};
        spreads_.clear();
        spread_samples_.clear();
        latency_samples_.clear();
        unscheduled_ = 0;
        for (auto& c : conns_)
            c.deliveries = 0;
        open_at_window_ = open_;
        ProcSample server_w0 = sample_process(o_.server_pid);
        const double cpu_w0 = cpu_self_s();
        const double busy_w0 = machine_busy_s();
        const std::int64_t w0 = now_ns();
        measuring_ = true;
        const std::int64_t w_end = loop_until(w0 + static_cast<std::int64_t>(o_.duration * 1e9), true);
        measuring_ = false;
        const std::int64_t w1 = now_ns();
        const double cpu_w1 = cpu_self_s();
        machine_busy_window_s_ = machine_busy_s() - busy_w0;
        ProcSample server_w1 = sample_process(o_.server_pid);
        (void)w_end;
        // What is still being tracked did not reach every connection within the window.
        stats_.events_incomplete += spreads_.size();

        report(t0, t_connected, connect_cpu, w0, w1, cpu_w1 - cpu_w0, server_before, server_connected, server_w0,
               server_w1);
        return 0;
    }

private:
    [[noreturn]] static void die(const char* what) {
        std::fprintf(stderr, "hub_load_client: %s: %s\n", what, std::strerror(errno));
        std::exit(1);
    }

    // ---- connect ---------------------------------------------------------------------------------------

    bool start_connect(std::size_t i) {
        Conn& c = conns_[i];
        c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0) {
            fail(i, std::string("socket: ") + std::strerror(errno));
            return false;
        }
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        // Source address 127.0.0.(1 + i / per_address); the port is chosen at connect() time against the whole
        // 4-tuple (IP_BIND_ADDRESS_NO_PORT), so each source address has the full ephemeral range.
        setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr =
            htonl(0x7f000001u + static_cast<std::uint32_t>(i / static_cast<std::size_t>(o_.per_address)));
        if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
            fail(i, std::string("bind: ") + std::strerror(errno));
            return false;
        }
        c.started_ns = now_ns();
        c.state = State::connecting;
        int r = ::connect(c.fd, reinterpret_cast<sockaddr*>(&server_), sizeof server_);
        if (r != 0 && errno != EINPROGRESS) {
            fail(i, std::string("connect: ") + std::strerror(errno));
            return false;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.u64 = i;
        c.watching_out = true;
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
        ++pending_;
        return true;
    }

    void fail(std::size_t i, const std::string& why) {
        Conn& c = conns_[i];
        if (c.state == State::closed) return;
        bool was_pending = c.state != State::open && c.fd >= 0;
        if (c.fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            ::close(c.fd);
        }
        if (c.state == State::open) {
            --open_;
            ++lost_total_;
            if (measuring_) ++stats_.errors_after_open;
        } else {
            ++failed_;
            if (was_pending) --pending_;
            if (failures_.size() < 5) failures_.push_back(why);
        }
        c.fd = -1;
        c.state = State::closed;
    }

    void connect_phase(std::int64_t t0) {
        std::size_t next = 0;
        const std::int64_t deadline = t0 + static_cast<std::int64_t>(o_.connect_timeout * 1e9);
        std::int64_t last_progress = t0;
        while (open_ + failed_ + lost_total_ < conns_.size()) {
            while (next < conns_.size() && pending_ < static_cast<std::size_t>(o_.max_pending))
                start_connect(next++);
            const std::int64_t now = now_ns();
            if (now > deadline) {
                std::fprintf(stderr, "hub_load_client: connect timeout: %zu open, %zu failed, %zu pending\n", open_,
                             failed_, pending_);
                for (std::size_t i = 0; i < conns_.size(); ++i)
                    if (conns_[i].state != State::open && conns_[i].state != State::closed) fail(i, "timeout");
                for (; next < conns_.size(); ++next)
                    fail(next, "not started (timeout)");
                break;
            }
            poll_once(100);
            if (now - last_progress > 2'000'000'000) {
                std::fprintf(stderr, "hub_load_client: %zu open, %zu failed, %zu pending, %zu lost\n", open_, failed_,
                             pending_, lost_total_);
                last_progress = now;
            }
        }
    }

    // ---- the loop ----------------------------------------------------------------------------------------

    std::int64_t loop_until(std::int64_t end, bool window) {
        std::int64_t next_sweep = now_ns() + 1'000'000'000;
        for (;;) {
            std::int64_t now = now_ns();
            if (now >= end) return now;
            int timeout_ms = static_cast<int>(std::min<std::int64_t>((end - now) / 1'000'000 + 1, 100));
            poll_once(timeout_ms);
            now = now_ns();
            if (now >= next_sweep) {
                next_sweep = now + 1'000'000'000;
                if (window) sweep(now);
                if (o_.rss_limit_mb > 0 && o_.server_pid > 0) {
                    ProcSample s = sample_process(o_.server_pid);
                    if (s.ok && s.rss_kb / 1024 > o_.rss_limit_mb) {
                        std::fprintf(stderr, "hub_load_client: server RSS %ld MB over the limit; window ends early\n",
                                     s.rss_kb / 1024);
                        rss_limit_hit_ = true;
                        return now;
                    }
                }
            }
        }
    }

    void poll_once(int timeout_ms) {
        epoll_event events[1024];
        int n = epoll_wait(ep_, events, 1024, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) return;
            die("epoll_wait");
        }
        const std::int64_t now = now_ns();
        for (int k = 0; k < n; ++k)
            handle(events[k].data.u64, events[k].events, now);
        send_pings(now);
    }

    void send_pings(std::int64_t now) {
        if (now < next_ping_scan_) return;
        next_ping_scan_ = now + 200'000'000;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            Conn& c = conns_[i];
            if (c.state == State::open && now >= c.next_ping_ns) {
                c.next_ping_ns = now + static_cast<std::int64_t>(o_.ping_interval * 1e9);
                send(i, ping_);
            }
        }
    }

    void handle(std::size_t i, std::uint32_t events, std::int64_t now) {
        Conn& c = conns_[i];
        if (c.state == State::closed) return;
        if (c.state == State::connecting) {
            if (events & (EPOLLERR | EPOLLHUP)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                fail(i, std::string("connect: ") + std::strerror(err ? err : ECONNRESET));
                return;
            }
            if (events & EPOLLOUT) {
                c.state = State::upgrading;
                watch_out(i, false);
                send(i, request_);
            }
            return;
        }
        if (events & EPOLLOUT) flush(i);
        if (c.state == State::closed) return;
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) read_from(i, now);
    }

    void watch_out(std::size_t i, bool want) {
        Conn& c = conns_[i];
        if (c.watching_out == want) return;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
        ev.data.u64 = i;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
        c.watching_out = want;
    }

    void send(std::size_t i, std::string_view bytes) {
        Conn& c = conns_[i];
        if (c.state == State::closed) return;
        if (!c.out.empty()) {
            c.out.append(bytes);
            return;
        }
        ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                lost(i, std::string("send: ") + std::strerror(errno));
                return;
            }
            n = 0;
        }
        if (static_cast<std::size_t>(n) < bytes.size()) {
            c.out.assign(bytes.substr(static_cast<std::size_t>(n)));
            watch_out(i, true);
        }
    }

    void flush(std::size_t i) {
        Conn& c = conns_[i];
        while (!c.out.empty()) {
            ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                lost(i, std::string("send: ") + std::strerror(errno));
                return;
            }
            c.out.erase(0, static_cast<std::size_t>(n));
        }
        watch_out(i, false);
    }

    // A connection that ends: before it was open it is a failure, after it a loss.
    void lost(std::size_t i, const std::string& why) {
        Conn& c = conns_[i];
        if (c.state == State::open) {
            if (stats_.first_close_reason.empty()) stats_.first_close_reason = why;
            if (first_loss_reason_.empty()) first_loss_reason_ = why;
            if (!warned_loss_) {
                std::fprintf(stderr, "hub_load_client: connection %zu lost: %s\n", i, why.c_str());
                warned_loss_ = true;
            }
        }
        fail(i, why);
    }

    void read_from(std::size_t i, std::int64_t now) {
        Conn& c = conns_[i];
        // One read per readiness report: level-triggered epoll comes back for the rest, so connections are
        // served in turn.
        ssize_t n = ::recv(c.fd, buf_, sizeof buf_, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            lost(i, std::string("recv: ") + std::strerror(errno));
            return;
        }
        if (n == 0) {
            if (c.state == State::open && measuring_) ++stats_.closed_by_peer_eof;
            lost(i, "end of stream from the server");
            return;
        }
        if (measuring_) stats_.bytes += static_cast<std::uint64_t>(n);
        std::string_view data(buf_, static_cast<std::size_t>(n));
        if (c.state == State::upgrading) {
            c.in.append(data);
            auto end = c.in.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (c.in.size() > 16384) lost(i, "HTTP response too long");
                return;
            }
            if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) {
                lost(i, "upgrade refused: " + c.in.substr(0, c.in.find("\r\n")));
                return;
            }
            c.in.erase(0, end + 4);
            c.state = State::handshaking;
            send(i, handshake_);
            if (c.in.empty()) return;
            std::string rest;
            rest.swap(c.in);
            on_bytes(i, rest, now);
            return;
        }
        if (c.in.empty()) {
            on_bytes(i, data, now);
        } else {
            c.in.append(data);
            std::string all;
            all.swap(c.in);
            on_bytes(i, all, now);
        }
    }

    // Decodes whole frames from `data`; keeps an incomplete tail in c.in.
    void on_bytes(std::size_t i, std::string_view data, std::int64_t now) {
        Conn& c = conns_[i];
        std::size_t p = 0;
        while (c.state != State::closed) {
            const std::size_t left = data.size() - p;
            if (left < 2) break;
            const auto* b = reinterpret_cast<const unsigned char*>(data.data() + p);
            const bool fin = b[0] & 0x80;
            const std::uint8_t opcode = b[0] & 0x0f;
            const bool masked = b[1] & 0x80;
            std::uint64_t len = b[1] & 0x7f;
            std::size_t header = 2;
            if (len == 126) {
                if (left < 4) break;
                len = std::uint64_t{b[2]} << 8 | b[3];
                header = 4;
            } else if (len == 127) {
                if (left < 10) break;
                len = 0;
                for (int k = 0; k < 8; ++k)
                    len = len << 8 | b[2 + k];
                header = 10;
            }
            if (masked) {
                lost(i, "masked frame from the server");
                return;
            }
            if (len > (64u << 20)) {
                lost(i, "frame over 64 MiB");
                return;
            }
            if (left < header + len) break;
            std::string_view payload = data.substr(p + header, static_cast<std::size_t>(len));
            p += header + static_cast<std::size_t>(len);
            on_frame(i, fin, opcode, payload, now);
        }
        if (c.state != State::closed && p < data.size()) c.in.assign(data.substr(p));
    }

    void on_frame(std::size_t i, bool fin, std::uint8_t opcode, std::string_view payload, std::int64_t now) {
        Conn& c = conns_[i];
        switch (opcode) {
            case 0x9: {  // ping: answer with the same payload
                if (measuring_) ++stats_.ws_pings;
                std::string pong;
                append_client_frame(pong, 0xA, payload);
                send(i, pong);
                return;
            }
            case 0xA:
                return;
            case 0x8: {
                std::string why = "WebSocket close";
                if (payload.size() >= 2) {
                    why += " " + std::to_string((static_cast<unsigned char>(payload[0]) << 8) |
                                                static_cast<unsigned char>(payload[1]));
                    if (payload.size() > 2) why += " " + std::string(payload.substr(2));
                }
                if (c.state == State::open && measuring_) ++stats_.closed_by_server;
                std::string close;
                append_client_frame(close, 0x8, payload.substr(0, std::min<std::size_t>(2, payload.size())));
                send(i, close);
                lost(i, why);
                return;
            }
            case 0x0:
                c.message.append(payload);
                if (!fin) return;
                {
                    std::string whole;
                    whole.swap(c.message);
                    on_message(i, whole, now);
                }
                return;
            case 0x1:
            case 0x2:
                if (!fin) {
                    c.message.assign(payload);
                    c.message_opcode = opcode;
                    return;
                }
                on_message(i, payload, now);
                return;
            default:
                lost(i, "unknown opcode " + std::to_string(opcode));
                return;
        }
    }

    // A whole text message: records separated by 0x1E (SignalR), or a piece of the NATS byte stream.
    void on_message(std::size_t i, std::string_view message, std::int64_t now) {
        if (o_.nats) {
            on_nats_bytes(i, message, now);
            return;
        }
        Conn& c = conns_[i];
        while (!message.empty() && c.state != State::closed) {
            auto sep = message.find('\x1e');
            if (sep == std::string_view::npos) {
                lost(i, "record without a separator");
                return;
            }
            on_record(i, message.substr(0, sep), now);
            message.remove_prefix(sep + 1);
        }
    }

    static int record_type(std::string_view r) {
        static constexpr std::string_view t = "\"type\":";
        std::size_t pos = r.compare(1, t.size(), t) == 0 ? 1 : r.find(t);
        if (pos == std::string_view::npos) return -1;
        pos += t.size();
        int v = 0;
        bool any = false;
        while (pos < r.size() && r[pos] >= '0' && r[pos] <= '9') {
            v = v * 10 + (r[pos++] - '0');
            any = true;
        }
        return any ? v : -1;
    }

    // The handshake answer (SignalR) or the PONG after SUB (NATS): the connection counts as open.
    void opened(std::size_t i, std::int64_t now) {
        Conn& c = conns_[i];
        c.state = State::open;
        c.opened_ns = now;
        connect_latencies_ns_.push_back(now - c.started_ns);
        --pending_;
        ++open_;
        // The official clients ping right after the handshake; the server's 30 s timeout counts from here.
        c.next_ping_ns = now;
        send(i, ping_);
        c.next_ping_ns = now + static_cast<std::int64_t>(o_.ping_interval * 1e9);
    }

    // One event received on connection i: counted, and its arrival time kept for the fan-out spread.
    void delivered(std::size_t i, std::string_view record, std::int64_t now) {
        if (!measuring_) return;
        ++stats_.deliveries;
        ++conns_[i].deliveries;
        EventKey key;
        if (!event_key(record, key, !o_.nats)) return;
        if (!schedule_.empty()) {
            auto due = schedule_.find(key);
            if (due == schedule_.end())
                ++unscheduled_;
            else
                latency_samples_.push_back(now - due->second);
        }
        auto [it, inserted] = spreads_.try_emplace(key);
        Spread& s = it->second;
        if (inserted) {
            s.first_ns = now;
            ++stats_.events_seen;
        }
        s.last_ns = now;
        if (++s.count >= open_) {
            spread_samples_.push_back(s.last_ns - s.first_ns);
            ++stats_.events_complete;
            spreads_.erase(it);
        }
    }

    // NATS protocol bytes: control lines, and MSG lines followed by their payload. Parsed in place when a
    // frame holds whole operations (the usual case); an incomplete tail waits in nats_in.
    void on_nats_bytes(std::size_t i, std::string_view data, std::int64_t now) {
        Conn& c = conns_[i];
        std::string joined;
        if (!c.nats_in.empty()) {
            joined.swap(c.nats_in);
            joined.append(data);
            data = joined;
        }
        std::size_t p = 0;
        while (c.state != State::closed) {
            if (c.nats_payload > 0) {
                if (data.size() - p < c.nats_payload) break;
                delivered(i, data.substr(p, c.nats_payload - 2), now);
                p += c.nats_payload;
                c.nats_payload = 0;
                continue;
            }
            auto eol = data.find("\r\n", p);
            if (eol == std::string_view::npos) break;
            std::string_view line = data.substr(p, eol - p);
            p = eol + 2;
            if (line.rfind("MSG ", 0) == 0) {
                // MSG <subject> <sid> [reply-to] <#bytes>
                auto sp = line.rfind(' ');
                c.nats_payload =
                    static_cast<std::size_t>(std::strtoull(std::string(line.substr(sp + 1)).c_str(), nullptr, 10)) + 2;
            } else if (line == "PING") {
                send(i, pong_);
            } else if (line == "PONG") {
                if (c.state == State::handshaking) opened(i, now);
            } else if (line.rfind("-ERR", 0) == 0) {
                if (c.state == State::open && measuring_) ++stats_.closed_by_server;
                lost(i, "NATS " + std::string(line.substr(0, 200)));
            } else if (measuring_ && line.rfind("INFO", 0) != 0 && line != "+OK") {
                ++stats_.other_records;
            }
        }
        if (c.state != State::closed && p < data.size()) c.nats_in.assign(data.substr(p));
    }

    void on_record(std::size_t i, std::string_view r, std::int64_t now) {
        Conn& c = conns_[i];
        if (c.state == State::handshaking) {
            if (r == "{}") {
                opened(i, now);
                return;
            }
            lost(i, "handshake refused: " + std::string(r.substr(0, 200)));
            return;
        }
        const int type = record_type(r);
        if (type == 1) {
            if (r.find("\"ReceiveMessage\"") == std::string_view::npos) {
                if (measuring_) ++stats_.other_records;
                return;
            }
            delivered(i, r, now);
        } else if (type == 6) {
            if (measuring_) ++stats_.pings;
        } else if (type == 7) {
            if (measuring_) ++stats_.closed_by_server;
            lost(i, "SignalR close: " + std::string(r.substr(0, 300)));
        } else {
            if (measuring_) ++stats_.other_records;
        }
    }

    // Events first seen over 5 s ago that some connection never got: incomplete.
    void sweep(std::int64_t now) {
        for (auto it = spreads_.begin(); it != spreads_.end();) {
            if (now - it->second.first_ns > 5'000'000'000) {
                ++stats_.events_incomplete;
                it = spreads_.erase(it);
            } else {
                ++it;
            }
        }
    }

    // ---- report ------------------------------------------------------------------------------------------

    // Event i of the schedule is due (relative to the unknown t0) when the last event of its batch is.
    void load_schedule() {
        std::ifstream f(o_.schedule);
        if (!f) usage(("--schedule: cannot read " + o_.schedule).c_str());
        const double r = o_.schedule_rate;
        const std::uint64_t batch = o_.schedule_batch > 0
                                        ? static_cast<std::uint64_t>(o_.schedule_batch)
                                        : static_cast<std::uint64_t>(std::clamp(std::floor(r / 100.0), 1.0, 512.0));
        std::string line;
        std::uint64_t i = 0;
        while (std::getline(f, line)) {
            if (line.empty()) continue;
            std::string quoted = "\"id\":\"" + line + "\"";
            EventKey key;
            if (!event_key(quoted, key, false)) continue;
            const std::uint64_t last = i / batch * batch + batch - 1;
            schedule_.try_emplace(key, static_cast<std::int64_t>(static_cast<double>(last) / r * 1e9));
            ++i;
        }
        if (schedule_.empty()) usage(("--schedule: no ids in " + o_.schedule).c_str());
    }

    static double pct(std::vector<std::int64_t>& v, double q) {
        if (v.empty()) return std::nan("");
        std::size_t k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
        std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
        return static_cast<double>(v[k]);
    }

    static std::string num(double v, int digits = 3) {
        if (std::isnan(v)) return "null";
        char b[64];
        std::snprintf(b, sizeof b, "%.*f", digits, v);
        return b;
    }

    static std::string json_string(std::string_view s) {
        std::string out = "\"";
        for (char ch : s) {
            auto u = static_cast<unsigned char>(ch);
            if (ch == '"' || ch == '\\') {
                out += '\\';
                out += ch;
            } else if (u < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", u);
                out += b;
            } else {
                out += ch;
            }
        }
        return out + "\"";
    }

    static std::string proc_json(const ProcSample& s) {
        if (!s.ok) return "null";
        return "{\"cpu_s\":" + num(s.cpu_s, 2) + ",\"rss_kb\":" + std::to_string(s.rss_kb) +
               ",\"hwm_kb\":" + std::to_string(s.hwm_kb) + "}";
    }

    void report(std::int64_t t0, std::int64_t t_connected, double connect_cpu, std::int64_t w0, std::int64_t w1,
                double client_cpu, const ProcSample& before, const ProcSample& connected, const ProcSample& sw0,
                const ProcSample& sw1) {
        const double wall = static_cast<double>(w1 - w0) / 1e9;
        std::uint64_t min_d = UINT64_MAX, max_d = 0;
        std::size_t counted = 0;
        for (const auto& c : conns_) {
            if (c.state != State::open) continue;
            min_d = std::min(min_d, c.deliveries);
            max_d = std::max(max_d, c.deliveries);
            ++counted;
        }
        if (counted == 0) min_d = 0;
        std::string j = "{";
        j += "\"connections_requested\":" + std::to_string(o_.n);
        j += ",\"connections_open_at_window\":" + std::to_string(open_at_window_);
        j += ",\"connections_open_at_end\":" + std::to_string(open_);
        j += ",\"connections_failed\":" + std::to_string(failed_);
        j += ",\"connections_lost_total\":" + std::to_string(lost_total_);
        j += ",\"failures\":[";
        for (std::size_t k = 0; k < failures_.size(); ++k)
            j += (k ? "," : "") + json_string(failures_[k]);
        j += "]";
        j += ",\"source_addresses\":" + std::to_string((o_.n + o_.per_address - 1) / o_.per_address);
        j += ",\"connect_s\":" + num(static_cast<double>(t_connected - t0) / 1e9, 3);
        j += ",\"connect_client_cpu_s\":" + num(connect_cpu, 3);
        j += ",\"connect_latency_ms\":{\"p50\":" + num(pct(connect_latencies_ns_, 0.5) / 1e6) +
             ",\"p99\":" + num(pct(connect_latencies_ns_, 0.99) / 1e6) +
             ",\"max\":" + num(pct(connect_latencies_ns_, 1.0) / 1e6) + "}";
        j += ",\"window_s\":" + num(wall, 3);
        j += ",\"window_ended_early_rss_limit\":" + std::string(rss_limit_hit_ ? "true" : "false");
        j += ",\"deliveries\":" + std::to_string(stats_.deliveries);
        j += ",\"deliveries_per_s\":" + num(static_cast<double>(stats_.deliveries) / wall, 1);
        j += ",\"events_per_s\":" + num(static_cast<double>(stats_.events_seen) / wall, 1);
        j += ",\"mbytes_per_s\":" + num(static_cast<double>(stats_.bytes) / wall / 1e6, 2);
        j += ",\"per_connection_deliveries\":{\"min\":" + std::to_string(min_d) + ",\"max\":" + std::to_string(max_d) +
             "}";
        j += ",\"signalr_pings\":" + std::to_string(stats_.pings);
        j += ",\"ws_pings\":" + std::to_string(stats_.ws_pings);
        j += ",\"closed_by_server\":" + std::to_string(stats_.closed_by_server);
        j += ",\"lost_connections\":" + std::to_string(stats_.errors_after_open);
        j += ",\"first_close_reason\":" + json_string(stats_.first_close_reason);
        j += ",\"first_loss_reason_any_phase\":" + json_string(first_loss_reason_);
        j += ",\"spread\":{\"events_seen\":" + std::to_string(stats_.events_seen) +
             ",\"events_complete\":" + std::to_string(stats_.events_complete) +
             ",\"events_incomplete\":" + std::to_string(stats_.events_incomplete) +
             ",\"p50_ms\":" + num(pct(spread_samples_, 0.5) / 1e6) +
             ",\"p99_ms\":" + num(pct(spread_samples_, 0.99) / 1e6) +
             ",\"max_ms\":" + num(pct(spread_samples_, 1.0) / 1e6) + "}";
        if (!schedule_.empty()) {
            // Shifted so that the fastest delivery took no time (t0 is the server's, unseen here).
            std::int64_t floor_ns =
                latency_samples_.empty() ? 0 : *std::min_element(latency_samples_.begin(), latency_samples_.end());
            for (auto& v : latency_samples_)
                v -= floor_ns;
            j += ",\"latency\":{\"deliveries\":" + std::to_string(latency_samples_.size()) +
                 ",\"unscheduled\":" + std::to_string(unscheduled_) +
                 ",\"p50_ms\":" + num(pct(latency_samples_, 0.5) / 1e6) +
                 ",\"p99_ms\":" + num(pct(latency_samples_, 0.99) / 1e6) +
                 ",\"max_ms\":" + num(pct(latency_samples_, 1.0) / 1e6) + "}";
        }
        j += ",\"client_cpu_s\":" + num(client_cpu, 3);
        j += ",\"client_cpu_total_s\":" + num(cpu_self_s(), 3);
        j += ",\"machine_busy_cpu_s\":" + num(machine_busy_window_s_, 2);
        j += ",\"machine_cores\":" + std::to_string(sysconf(_SC_NPROCESSORS_ONLN));
        j += ",\"client_cpu_per_million_deliveries\":" +
             num(stats_.deliveries ? client_cpu / static_cast<double>(stats_.deliveries) * 1e6 : std::nan(""), 3);
        if (o_.server_pid > 0) {
            j += ",\"server\":{\"before\":" + proc_json(before) + ",\"connected\":" + proc_json(connected) +
                 ",\"window_start\":" + proc_json(sw0) + ",\"window_end\":" + proc_json(sw1);
            if (sw0.ok && sw1.ok) {
                const double cpu = sw1.cpu_s - sw0.cpu_s;
                j += ",\"window_cpu_s\":" + num(cpu, 2);
                j += ",\"cpu_per_million_deliveries\":" +
                     num(stats_.deliveries ? cpu / static_cast<double>(stats_.deliveries) * 1e6 : std::nan(""), 3);
                j += ",\"window_thread_cpu_s\":{";
                bool first = true;
                for (const auto& [name, v] : sw1.thread_cpu_s) {
                    auto it = sw0.thread_cpu_s.find(name);
                    double d = v - (it == sw0.thread_cpu_s.end() ? 0.0 : it->second);
                    j += (first ? "" : ",") + json_string(name) + ":" + num(d, 2);
                    first = false;
                }
                j += "}";
            }
            if (before.ok && connected.ok) {
                j += ",\"connect_cpu_s\":" + num(connected.cpu_s - before.cpu_s, 2);
                j += ",\"rss_per_connection_kb\":" +
                     num(open_ ? static_cast<double>(connected.rss_kb - before.rss_kb) / static_cast<double>(open_)
                               : std::nan(""),
                         2);
            }
            j += "}";
        }
        j += "}";
        std::printf("%s\n", j.c_str());
        std::fflush(stdout);
    }

    Options o_;
    int ep_ = -1;
    sockaddr_in server_{};
    std::vector<Conn> conns_;
    std::string request_, handshake_, ping_, pong_;
    std::size_t pending_ = 0, open_ = 0, failed_ = 0, lost_total_ = 0, open_at_window_ = 0;
    std::vector<std::string> failures_;
    std::vector<std::int64_t> connect_latencies_ns_;
    std::int64_t next_ping_scan_ = 0;
    bool measuring_ = false, warned_loss_ = false, rss_limit_hit_ = false;
    double machine_busy_window_s_ = 0;
    std::string first_loss_reason_;  // of an open connection, whenever it happened (the window's is in stats_)
    Stats stats_;
    std::unordered_map<EventKey, Spread, EventKeyHash> spreads_;
    std::vector<std::int64_t> spread_samples_;
    std::unordered_map<EventKey, std::int64_t, EventKeyHash> schedule_;  // event -> due, ns after t0
    std::vector<std::int64_t> latency_samples_;                          // receipt - due, per delivery
    std::uint64_t unscheduled_ = 0;
    char buf_[256 * 1024];
};

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Options o = parse_args(argc, argv);
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < static_cast<rlim_t>(o.n) + 32) {
        std::fprintf(stderr, "hub_load_client: the open-file limit (%llu) is below %d connections + 32\n",
                     static_cast<unsigned long long>(rl.rlim_cur), o.n);
        return 2;
    }
    auto client = std::make_unique<Client>(std::move(o));
    return client->run();
}
