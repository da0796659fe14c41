// Reload through the real runtime while it runs: unchanged nodes keep running, replaced and removed ones
// drain, new ones start, and the nodes that stay see every event exactly once.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "config/pipeline.h"
#include "fake_components.h"
#include "runtime/runtime.h"

using namespace hubflow;
using namespace hubflow::core;
using namespace hubflow::testing_core;
using namespace std::chrono_literals;

namespace {

// Emits numbered events (id = the number) in small batches until the host stops it.
class SequenceSource final : public Source {
public:
    static ComponentDescription describe() {
        return {"sequence", ComponentKind::source, "numbered events until stopped", {}};
    }
    void configure(const ConfigView&, Context& ctx) override { ctx_ = &ctx; }
    void run() override {
        std::uint64_t n = 0;
        while (!ctx_->stopping()) {
            EventBatch batch(10);
            for (auto& e : batch) {
                e.meta.id = std::to_string(n);
                e.meta.kind = n % 2 ? "incident" : "entry";
                e.payload = "{\"seq\":" + std::to_string(n++) + "}";
            }
            ctx_->emit(std::move(batch));
            ctx_->wait_for(200us);
        }
    }

private:
    Context* ctx_ = nullptr;
};

// Serves a one-line greeting to every connection on `listen`, from the socket the host keeps for it.
class GreetSink final : public Sink {
public:
    static ComponentDescription describe() {
        return {"greet",
                ComponentKind::sink,
                "greets whoever connects",
                {{.name = "listen",
                  .type = FieldType::string,
                  .required = true,
                  .doc = "address",
                  .claim = Claim::listen_address},
                 {.name = "greeting", .type = FieldType::string, .default_json = R"("hello")", .doc = "what to say"}}};
    }
    void configure(const ConfigView& c, Context& ctx) override {
        ctx_ = &ctx;
        listen_ = c.string("listen");
        greeting_ = c.string("greeting") + "\n";
    }
    void start() override {
        fd_ = ctx_->listening_socket(listen_);
        port.store(bound_port(fd_));
        serving_ = std::thread([this] {
            while (!done_) {
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, 20) <= 0) continue;
                const int client = ::accept(fd_, nullptr, nullptr);
                if (client < 0) continue;
                (void)!::write(client, greeting_.data(), greeting_.size());
                ::close(client);
            }
        });
    }
    void write(const EventBatch&) override {}
    void stop() override {
        done_ = true;
        if (serving_.joinable()) serving_.join();
        ::close(fd_);
    }

    static inline std::atomic<int> port{0};

private:
    Context* ctx_ = nullptr;
    std::string listen_;
    std::string greeting_;
    int fd_ = -1;
    std::atomic<bool> done_{false};
    std::thread serving_;
};

// A connection to 127.0.0.1:port with a 5 s read timeout: its descriptor, or -1 with errno saying why not.
int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) return fd;
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
}

// Connects to 127.0.0.1:port again and again, counting each greeting and every refused connection.
class Caller {
public:
    explicit Caller(int port) : port_(port), thread_([this] { loop(); }) {}
    ~Caller() { stop(); }
    void stop() {
        done_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int refused() const { return refused_.load(); }
    int heard(const std::string& greeting) {
        std::lock_guard lock(mutex_);
        return heard_[greeting];
    }
    bool wait_to_hear(const std::string& greeting, int times) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (heard(greeting) >= times) return true;
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }

private:
    void loop() {
        while (!done_) {
            const int fd = connect_loopback(port_);
            if (fd < 0) {
                if (errno == ECONNREFUSED) ++refused_;
                continue;
            }
            std::string text;
            char buf[64];
            for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
                text.append(buf, static_cast<std::size_t>(n));
            ::close(fd);
            if (!text.empty() && text.back() == '\n') text.pop_back();
            std::lock_guard lock(mutex_);
            ++heard_[text];
        }
    }

    const int port_;
    std::atomic<bool> done_{false};
    std::atomic<int> refused_{0};
    std::mutex mutex_;
    std::map<std::string, int> heard_;
    std::thread thread_;
};

class ReloadTest : public ::testing::Test {
protected:
    void SetUp() override {
        recorder = &rec;
        registry.add_builtin<SequenceSource>();
        registry.add_builtin<SplitFilter>();
        registry.add_builtin<PassFilter>();
        registry.add_builtin<StoreSink>();
        registry.add_builtin<GreetSink>();
        StoreSink::released = true;
        GreetSink::port = 0;
    }
    void TearDown() override { recorder = nullptr; }

    PipelineSpec load(const std::string& text) { return valid_pipeline(text, registry); }
    // Every id the sinks got, counting repeats.
    std::multiset<std::uint64_t> ids(const std::vector<std::string>& sinks) {
        std::lock_guard lock(rec.mutex);
        std::multiset<std::uint64_t> out;
        for (const auto& s : sinks)
            for (const auto& e : rec.received[s])
                out.insert(std::stoull(e.meta.id));
        return out;
    }

    Recorder rec;
    ComponentRegistry registry;
    std::ostringstream log_text;
    LogSink log{log_text, LogLevel::debug};
};

std::string split_pipeline(const std::string& outputs, const std::string& extra_sink = "") {
    return R"({"sources": {"seq": {"type": "sequence"}},
        "filters": {"split": {"type": "split", "inputs": ["seq"], "outputs": )" +
           outputs + R"(}},
        "sinks": {"a": {"type": "store", "inputs": ["split.entries"]},
                  "b": {"type": "store", "inputs": ["split.incidents"]})" +
           extra_sink + "}}";
}

}  // namespace

TEST_F(ReloadTest, ReplacingAFilterUnderLoadLosesAndRepeatsNothingInTheNodesThatStay) {
    PipelineSpec first = load(split_pipeline(R"(["entries", "incidents"])"));
    Runtime rt(first, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread running([&] { rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["a"].size() > 200; }));

    std::vector<PipelineSpec> versions;  // a reload keeps copies, but the caller's spec may go: keep them anyway
    for (int i = 0; i < 6; ++i) {
        versions.push_back(
            load(split_pipeline(i % 2 ? R"(["entries", "incidents"])" : R"(["entries", "incidents", "spare"])")));
        ReloadReport r = rt.reload(versions.back());
        ASSERT_EQ(r.outcome, ReloadReport::Outcome::applied) << r.summary();
        EXPECT_EQ(r.changed, std::vector<std::string>{"split"}) << r.summary();
        EXPECT_EQ(r.kept, (std::vector<std::string>{"a", "b", "seq"})) << r.summary();
        const std::size_t seen = rec.count("a");
        ASSERT_TRUE(rec.wait_until([&](auto& rcv) { return rcv["a"].size() > seen + 100; }))
            << "events flow through the new filter";
    }
    rt.request_stop();
    running.join();

    const auto got = ids({"a", "b"});
    ASSERT_FALSE(got.empty());
    const std::uint64_t last = *got.rbegin();
    std::uint64_t missing = 0, repeated = 0;
    for (std::uint64_t n = 0; n <= last; ++n) {
        const auto c = got.count(n);
        missing += c == 0;
        repeated += c > 1 ? c - 1 : 0;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(repeated, 0u);
    EXPECT_EQ(rt.metrics("a")->account().discarded(), 0u);
}

TEST_F(ReloadTest, RemovedNodesDrainNewOnesStartAndABadFileChangesNothing) {
    PipelineSpec first = load(split_pipeline(R"(["entries", "incidents"])"));
    Runtime rt(first, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread running([&] { rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["b"].size() > 100; }));

    // b goes, c comes (reading the same output), a stays.
    PipelineSpec second = load(split_pipeline(R"(["entries", "incidents"])", R"(,
        "c": {"type": "store", "inputs": ["split.incidents"]})"));
    second.nodes.erase(
        std::remove_if(second.nodes.begin(), second.nodes.end(), [](const NodeSpec& n) { return n.name == "b"; }),
        second.nodes.end());
    ReloadReport r = rt.reload(second);
    ASSERT_EQ(r.outcome, ReloadReport::Outcome::applied) << r.summary();
    EXPECT_EQ(r.removed, std::vector<std::string>{"b"});
    EXPECT_EQ(r.added, std::vector<std::string>{"c"});
    EXPECT_EQ(rt.metrics("b"), nullptr) << "a removed node is gone from the graph";
    const std::size_t b_final = rec.count("b");
    ASSERT_TRUE(rec.wait_until([](auto& rcv) { return rcv["c"].size() > 100; }));
    EXPECT_EQ(rec.count("b"), b_final) << "nothing reaches a removed node";

    // A node that cannot be built: refused, and the running graph is untouched.
    PipelineSpec bad = second;
    for (auto& n : bad.nodes)
        if (n.name == "split") n.config.as_object().front().second.as_array().emplace_back(std::string("bad"));
    ReloadReport refused = rt.reload(bad);
    EXPECT_EQ(refused.outcome, ReloadReport::Outcome::invalid);
    EXPECT_NE(refused.summary().find("'bad' is not a valid output name"), std::string::npos) << refused.summary();
    const std::size_t c_now = rec.count("c");
    ASSERT_TRUE(rec.wait_until([&](auto& rcv) { return rcv["c"].size() > c_now + 50; }));

    rt.request_stop();
    running.join();
    // Every incident went to b or to c exactly once; a got every entry.
    const auto incidents = ids({"b", "c"});
    const auto entries = ids({"a"});
    const std::uint64_t last = std::max(*incidents.rbegin(), *entries.rbegin());
    std::uint64_t missing = 0, repeated = 0;
    for (std::uint64_t n = 0; n + 1 < last; ++n) {
        const auto c = (n % 2 ? incidents : entries).count(n);
        missing += c == 0;
        repeated += c > 1 ? c - 1 : 0;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(repeated, 0u);
}

TEST_F(ReloadTest, AChangedNodeHandsItsListeningSocketToItsSuccessorAndNoConnectionIsRefused) {
    const auto pipeline = [](const std::string& greet) {
        return R"({"sources": {"seq": {"type": "sequence"}},
            "sinks": {"a": {"type": "store", "inputs": ["seq"]})" +
               greet + "}}";
    };
    const std::string greet_one = R"(, "hi": {"type": "greet", "inputs": ["seq"], "listen": "127.0.0.1:0",
                                          "greeting": "one"})";
    const std::string greet_two = R"(, "hi": {"type": "greet", "inputs": ["seq"], "listen": "127.0.0.1:0",
                                          "greeting": "two"})";
    const PipelineSpec first = load(pipeline(greet_one));  // the runtime keeps a reference to it
    Runtime rt(first, registry, log);
    ASSERT_TRUE(rt.build());
    std::thread running([&] { rt.run(); });
    ASSERT_TRUE(rec.wait_until([](auto& r) { return r["a"].size() > 10; }));
    const int port = GreetSink::port.load();
    ASSERT_GT(port, 0);

    Caller caller(port);
    ASSERT_TRUE(caller.wait_to_hear("one", 20));
    // Changed (another greeting), same address: the successor serves on the same socket, port 0 included.
    ReloadReport r = rt.reload(load(pipeline(greet_two)));
    ASSERT_EQ(r.outcome, ReloadReport::Outcome::applied) << r.summary();
    EXPECT_EQ(r.changed, std::vector<std::string>{"hi"});
    EXPECT_EQ(GreetSink::port.load(), port) << "the successor got a socket of its own";
    EXPECT_TRUE(caller.wait_to_hear("two", 20));
    caller.stop();
    EXPECT_EQ(caller.refused(), 0) << "connections were refused while the node was replaced";

    // Removed: its socket closes with it.
    ReloadReport removed = rt.reload(load(pipeline("")));
    ASSERT_EQ(removed.outcome, ReloadReport::Outcome::applied) << removed.summary();
    const int after_removal = connect_loopback(port);
    const int why = errno;
    EXPECT_EQ(after_removal, -1);
    EXPECT_EQ(why, ECONNREFUSED);

    rt.request_stop();
    running.join();
}
