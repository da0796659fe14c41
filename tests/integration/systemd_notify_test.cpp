// `hubflow run` under a service manager: with NOTIFY_SOCKET set it sends READY=1 once the graph runs and
// STOPPING=1 when it drains, on a real datagram socket as systemd's Type=notify reads them; nothing when the
// pipeline never starts.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "process.h"

using namespace hubflow::test;
using namespace std::chrono_literals;

namespace {

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

// The listening end of NOTIFY_SOCKET: a datagram socket bound to a path in the test's directory.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        EXPECT_GE(fd_, 0) << std::strerror(errno);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        EXPECT_LT(path.size(), sizeof(addr.sun_path)) << path;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
    }
    ~NotifySocket() {
        if (fd_ >= 0) ::close(fd_);
    }
    const std::string& path() const { return path_; }

    // The next message, or nullopt when none came within `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, static_cast<std::size_t>(n));
    }

private:
    std::string path_;
    int fd_ = -1;
};

class SystemdNotify : public ScratchDirTest {};

}  // namespace

TEST_F(SystemdNotify, ReadyOnceRunningThenStoppingOnSigterm) {
    NotifySocket sock((dir / "notify").string());
    std::string pipeline = write("p.json", R"({
      "sources": {"gen": {"type": "generator", "rate": 100, "seed": 5}},
      "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" +
                                               (dir / "out.jsonl").string() + R"("}}
    })");
    Process p(hubflow_bin, {"run", pipeline}, {{"NOTIFY_SOCKET", sock.path()}});

    auto ready = sock.receive(30s);
    ASSERT_TRUE(ready) << "no READY=1 within 30 s; stderr:\n" << p.err();
    EXPECT_NE(ready->find("READY=1"), std::string::npos) << *ready;
    EXPECT_NE(ready->find("STATUS=running 2 nodes"), std::string::npos) << *ready;
    EXPECT_FALSE(p.wait(0ms)) << "the program ended although its generator never stops";

    p.signal(SIGTERM);
    auto stopping = sock.receive(30s);
    ASSERT_TRUE(stopping) << "no STOPPING=1 after SIGTERM; stderr:\n" << p.err();
    EXPECT_NE(stopping->find("STOPPING=1"), std::string::npos) << *stopping;
    EXPECT_EQ(p.wait(60s), 0) << p.err();
    EXPECT_FALSE(sock.receive(0ms)) << "more messages than READY and STOPPING";
}

TEST_F(SystemdNotify, ReloadingThenReadyAroundASighupReload) {
    NotifySocket sock((dir / "notify").string());
    const std::string out = (dir / "out.jsonl").string();
    const auto pipeline_with_rate = [&](int rate) {
        return R"({"sources": {"gen": {"type": "generator", "rate": )" + std::to_string(rate) +
               R"(, "seed": 5}}, "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" + out + R"("}}})";
    };
    std::string pipeline = write("p.json", pipeline_with_rate(100));
    Process p(hubflow_bin, {"run", pipeline}, {{"NOTIFY_SOCKET", sock.path()}});
    auto ready = sock.receive(30s);
    ASSERT_TRUE(ready && ready->find("READY=1") != std::string::npos) << p.err();

    write("p.json", pipeline_with_rate(200));  // the generator changes: a reload that applies
    p.signal(SIGHUP);
    auto reloading = sock.receive(30s);
    ASSERT_TRUE(reloading) << "no message after SIGHUP; stderr:\n" << p.err();
    EXPECT_NE(reloading->find("RELOADING=1"), std::string::npos) << *reloading;
    EXPECT_NE(reloading->find("MONOTONIC_USEC="), std::string::npos) << *reloading;
    auto again = sock.receive(30s);
    ASSERT_TRUE(again) << "no READY=1 after the reload; stderr:\n" << p.err();
    EXPECT_NE(again->find("READY=1"), std::string::npos) << *again;
    EXPECT_NE(again->find("(reloaded)"), std::string::npos) << *again;

    write("p.json", "{ not json");  // refused: still READY, saying so
    p.signal(SIGHUP);
    auto refused_start = sock.receive(30s);
    ASSERT_TRUE(refused_start && refused_start->find("RELOADING=1") != std::string::npos) << p.err();
    auto refused = sock.receive(30s);
    ASSERT_TRUE(refused) << p.err();
    EXPECT_NE(refused->find("READY=1"), std::string::npos) << *refused;
    EXPECT_NE(refused->find("(reload refused)"), std::string::npos) << *refused;

    p.signal(SIGTERM);
    auto stopping = sock.receive(30s);
    ASSERT_TRUE(stopping && stopping->find("STOPPING=1") != std::string::npos) << p.err();
    EXPECT_EQ(p.wait(60s), 0) << p.err();
}

TEST_F(SystemdNotify, NothingWhenThePipelineIsInvalid) {
    NotifySocket sock((dir / "notify").string());
    std::string pipeline = write("p.json", R"({"sources": {"gen": {"type": "generator", "rate": "fast"}}})");
    auto r = run_program(hubflow_bin, {"run", pipeline}, {{"NOTIFY_SOCKET", sock.path()}});
    EXPECT_EQ(r.code, 65) << r.err;
    // The program has exited: anything it sent is already queued on the socket.
    EXPECT_FALSE(sock.receive(0ms));
}

TEST_F(SystemdNotify, ASourceThatEndsAtOnceStillReportsStopping) {
    NotifySocket sock((dir / "notify").string());
    std::string pipeline = write("p.json", R"({
      "sources": {"gen": {"type": "generator", "count": 10, "seed": 5}},
      "sinks": {"out": {"type": "file", "inputs": ["gen"], "path": ")" +
                                               (dir / "out.jsonl").string() + R"("}}
    })");
    auto r = run_program(hubflow_bin, {"run", pipeline}, {{"NOTIFY_SOCKET", sock.path()}});
    EXPECT_EQ(r.code, 0) << r.err;
    // READY=1 may or may not have been seen before the graph finished; STOPPING=1 always ends the story.
    std::string all;
    while (auto m = sock.receive(0ms))
        all += *m + "\n";
    EXPECT_NE(all.find("STOPPING=1"), std::string::npos) << all;
}
