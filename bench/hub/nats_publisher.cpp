// nats_publisher: publishes the generator's KS entries to a nats-server, so that the fan-out of the same events
// can be compared between signalr_hub (fed by the `generator` source) and NATS (fed by this program): the same
// factory, seed and site give byte-identical payloads.
//
//   nats_publisher --port P [--host 127.0.0.1] [--subject ks.entries] [--rate R] [--site bench] [--seed 7]
//
// --rate 0 publishes as fast as the server reads. Runs until SIGTERM or SIGINT, then prints one JSON object
// {"published": N, "seconds": S} on stdout.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "ks_event_factory.h"

namespace {

std::atomic<bool> stop_requested{false};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "nats_publisher: %s\n", what.c_str());
    std::exit(1);
}

void write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            if (stop_requested) return;
            continue;
        }
        if (n < 0) fail(std::string("send: ") + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
}

// Reads until `line` has arrived (INFO, PONG); anything else before it is skipped.
void expect(int fd, const char* prefix) {
    std::string in;
    char buf[4096];
    for (;;) {
        auto eol = in.find("\r\n");
        while (eol != std::string::npos) {
            if (in.compare(0, std::strlen(prefix), prefix) == 0) return;
            if (in.rfind("-ERR", 0) == 0) fail("server: " + in.substr(0, eol));
            in.erase(0, eol + 2);
            eol = in.find("\r\n");
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) fail("the server closed the connection");
        in.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", subject = "ks.entries", site = "bench";
    int port = 0;
    double rate = 0;
    std::uint64_t seed = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "--host")
            host = v;
        else if (a == "--port")
            port = std::atoi(v.c_str());
        else if (a == "--subject")
            subject = v;
        else if (a == "--rate")
            rate = std::atof(v.c_str());
        else if (a == "--site")
            site = v;
        else if (a == "--seed")
            seed = std::strtoull(v.c_str(), nullptr, 10);
        else
            fail("unknown option " + a);
    }
    if (port <= 0) fail("--port is required");
    struct sigaction sa {};
    sa.sa_handler = [](int) { stop_requested = true; };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) fail("--host must be an IPv4 address");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        fail(std::string("connect: ") + std::strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    expect(fd, "INFO");
    write_all(fd, "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n");
    expect(fd, "PONG");

    // The options the benchmark gives the `generator` source: one site, entries only, the same seed.
    hubflow::generator::KsEventFactoryOptions options;
    options.sites = {site};
    options.incident_ratio = 0;
    options.seed = seed;
    hubflow::generator::KsEventFactory factory(options);

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    std::uint64_t published = 0;
    std::string out, payload;
    const std::string head = "PUB " + subject + " ";
    while (!stop_requested) {
        std::uint64_t due = 256;  // at rate 0: as fast as the socket takes them, 256 at a time
        if (rate > 0) {
            double elapsed = std::chrono::duration<double>(clock::now() - start).count();
            auto target = static_cast<std::uint64_t>(elapsed * rate);
            if (target <= published) {
                std::this_thread::sleep_for(std::chrono::microseconds(500));
                continue;
            }
            due = target - published;
        }
        out.clear();
        for (std::uint64_t k = 0; k < due; ++k) {
            payload.clear();
            factory.append_next(payload);
            out += head;
            out += std::to_string(payload.size());
            out += "\r\n";
            out += payload;
            out += "\r\n";
        }
        write_all(fd, out);
        published += due;
    }
    double seconds = std::chrono::duration<double>(clock::now() - start).count();
    std::printf("{\"published\":%llu,\"seconds\":%.3f}\n", static_cast<unsigned long long>(published), seconds);
    ::close(fd);
    return 0;
}
