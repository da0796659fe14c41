// hub_blaster: a SignalR hub that only pushes, as fast as a client can read. It serves one WebSocket client at
// a time: answers the upgrade and the JSON handshake, then writes a prepared block of ReceiveMessage frames
// (the generator's KS entries, serialised by the same code as signalr_hub) over and over until the client goes.
// It exists so that a client's ingest speed is measured against a hub that costs almost nothing per event
// (bench/cases/ingest); it checks no token.
//
//   hub_blaster [--port 0] [--events 4096] [--seed 7] [--site bench]
// Prints "listening on PORT" on stdout once it accepts.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "entry_frames.h"

namespace {

bool write_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n <= 0) return false;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

// Reads until the client's first WebSocket frame (the SignalR handshake) is complete; false if it goes away.
bool read_handshake_frame(int fd, std::string& in) {
    char buf[4096];
    for (;;) {
        if (in.size() >= 2) {
            std::size_t len = static_cast<unsigned char>(in[1]) & 0x7f, header = 2;
            if (len == 126 && in.size() >= 4) {
                len = (static_cast<unsigned char>(in[2]) << 8) | static_cast<unsigned char>(in[3]);
                header = 4;
            }
            if (len < 126 || header == 4) {
                if (in.size() >= header + 4 + len) return true;  // masked: 4 key bytes
            }
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        in.append(buf, static_cast<std::size_t>(n));
    }
}

void serve(int fd, const std::string& block) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
    }
    std::string key;
    auto at = in.find("Sec-WebSocket-Key:");
    if (at != std::string::npos) {
        auto end = in.find("\r\n", at);
        key = in.substr(at + 18, end - at - 18);
        key.erase(0, key.find_first_not_of(' '));
    }
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        hubflow::signalr::websocket_accept_key(key) + "\r\n\r\n";
    if (!write_all(fd, response.data(), response.size())) return;
    in.erase(0, in.find("\r\n\r\n") + 4);
    if (!read_handshake_frame(fd, in)) return;
    std::string answer;
    hubflow::signalr::append_frame(answer, hubflow::signalr::Opcode::text, hubflow::signalr::handshake_response());
    if (!write_all(fd, answer.data(), answer.size())) return;
    while (write_all(fd, block.data(), block.size())) {
    }
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0, events = 4096;
    std::uint64_t seed = 7;
    std::string site = "bench";
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--port")
            port = std::atoi(argv[i + 1]);
        else if (a == "--events")
            events = std::atoi(argv[i + 1]);
        else if (a == "--seed")
            seed = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--site")
            site = argv[i + 1];
        else {
            std::fprintf(stderr, "hub_blaster: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    const std::string block = hubflow::bench::entry_frames(events, seed, site);

    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 16) != 0) {
        std::perror("hub_blaster: listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("listening on %d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    for (;;) {
        int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd, block);
        ::close(fd);
    }
}
