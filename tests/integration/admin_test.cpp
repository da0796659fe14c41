// The admin server of a real `hubflow run`: health, metrics (checked by promtool), graph, tokens, bad requests,
// and a scraper that never reads.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include "admin_client.h"
#include "process.h"

using namespace hubflow::test;
using namespace std::chrono_literals;

namespace {

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

using Answer = HttpAnswer;

Answer http(std::uint16_t port, const std::string& method, const std::string& path,
            const std::map<std::string, std::string>& headers = {}) {
    return http_request(port, method, path, headers, std::chrono::seconds(10));
}

// One node's account as a scrape of /metrics shows it; -1 where the scrape had no such sample.
struct Account {
    std::string kind;
    std::int64_t received = -1, finished = -1, in_flight = -1;
    std::map<std::string, std::int64_t> discarded;  // by reason
    std::map<std::string, std::int64_t> sent;       // by output
    std::int64_t discarded_total() const {
        std::int64_t sum = 0;
        for (const auto& [reason, n] : discarded)
            sum += n;
        return sum;
    }
};

std::map<std::string, Account> accounts_of(const std::string& metrics) {
    static const std::regex sample(R"(^(hubflow_component_[a-z_]+)\{([^}]*)\} (-?[0-9.e+]+)$)");
    static const std::regex label(R"re(([a-z_]+)="([^"]*)")re");
    std::map<std::string, Account> out;
    std::istringstream in(metrics);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (!std::regex_match(line, m, sample)) continue;
        std::map<std::string, std::string> labels;
        const std::string text = m[2];
        for (std::sregex_iterator it(text.begin(), text.end(), label), end; it != end; ++it)
            labels[(*it)[1]] = (*it)[2];
        Account& a = out[labels["component_id"]];
        a.kind = labels["component_kind"];
        const auto value = static_cast<std::int64_t>(std::stod(m[3]));
        const std::string family = m[1];
        if (family == "hubflow_component_received_events_total")
            a.received = value;
        else if (family == "hubflow_component_finished_events_total")
            a.finished = value;
        else if (family == "hubflow_component_in_flight_events")
            a.in_flight = value;
        else if (family == "hubflow_component_discarded_events_total")
            a.discarded[labels["reason"]] = value;
        else if (family == "hubflow_component_sent_events_total")
            a.sent[labels["output"]] = value;
    }
    return out;
}

// received = finished + discarded + in flight for every filter and sink, with nothing negative; a source has no
// received. Returns the number of nodes checked.
std::size_t expect_balanced(const std::map<std::string, Account>& accounts, const std::string& when) {
    std::size_t checked = 0;
    for (const auto& [node, a] : accounts) {
        if (a.kind == "source") {
            EXPECT_EQ(a.received, -1) << node << ": a source receives nothing (" << when << ")";
            continue;
        }
        ++checked;
        EXPECT_GE(a.received, 0) << node << " (" << when << ")";
        EXPECT_GE(a.finished, 0) << node << " (" << when << ")";
        EXPECT_GE(a.in_flight, 0) << node << " (" << when << ")";
        std::set<std::string> reasons;
        for (const auto& [reason, n] : a.discarded) {
            EXPECT_GE(n, 0) << node << " " << reason << " (" << when << ")";
            reasons.insert(reason);
        }
        EXPECT_EQ((std::set<std::string>{"filtered", "node_failed", "queue_full", "refused"}), reasons) << node;
        EXPECT_EQ(a.received, a.finished + a.discarded_total() + a.in_flight)
            << node << " (" << when << "): received " << a.received << ", finished " << a.finished << ", discarded "
            << a.discarded_total() << ", in flight " << a.in_flight;
    }
    return checked;
}

// A webhook receiver on loopback: refuses every third request for good (HTTP 400) and accepts the others,
// counting the events (NDJSON lines) of each, so the test knows what the sink must report without asking it.
class Receiver {
public:
    Receiver()
        : server_(new Factory(*this), Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0)),
                  new Poco::Net::HTTPServerParams) {
        server_.start();
    }
    ~Receiver() { server_.stopAll(true); }
    std::uint16_t port() const { return server_.port(); }

    std::atomic<std::int64_t> accepted{0}, refused{0};

private:
    class Handler final : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(Receiver& r) : r_(r) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
            std::int64_t events = 0;
            for (std::string line; std::getline(request.stream(), line);)
                events += !line.empty();
            const bool refuse = ++r_.requests_ % 3 == 0;
            (refuse ? r_.refused : r_.accepted) += events;
            response.setStatus(refuse ? Poco::Net::HTTPResponse::HTTP_BAD_REQUEST : Poco::Net::HTTPResponse::HTTP_OK);
            response.setContentLength(0);
            response.send();
        }

    private:
        Receiver& r_;
    };
    class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(Receiver& r) : r_(r) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(r_);
        }

    private:
        Receiver& r_;
    };
    std::atomic<std::int64_t> requests_{0};
    Poco::Net::HTTPServer server_;
};

std::int64_t line_count(const std::filesystem::path& file, std::set<std::string>* distinct = nullptr) {
    std::ifstream in(file);
    std::int64_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (distinct) distinct->insert(line);
    }
    return n;
}

class AdminTest : public ScratchDirTest {
protected:
    // Starts `hubflow run` on a pipeline with the given admin object; returns the admin port.
    std::uint16_t start(const std::string& admin, const std::map<std::string, std::string>& env = {},
                        const std::string& sink_extra = "") {
        const std::string file = write("p.json", R"({"data_dir": ")" + (dir / "state").string() + R"(",
            "admin": )" + admin + R"(,
            "sources": {"gen": {"type": "generator", "rate": 500, "seed": 3}},
            "filters": {"split": {"type": "route", "inputs": ["gen"],
                                  "routes": {"incidents": {"field": "kind", "equals": "incident"}}}},
            "sinks": {"all": {"type": "file", "inputs": ["gen"], "path": ")" +
                                                     (dir / "all.jsonl").string() + R"(")" + sink_extra + R"(},
                      "incidents": {"type": "file", "inputs": ["split.incidents"], "path": ")" +
                                                     (dir / "incidents.jsonl").string() + R"("}}})");
        proc = std::make_unique<Process>(hubflow_bin, std::vector<std::string>{"run", file}, env);
        return wait_for_admin_port(*proc);
    }
    // Waits until the node has received at least `n` events, by the metrics.
    bool wait_received(std::uint16_t port, const std::string& node, long n) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        const std::regex line("hubflow_component_received_events_total\\{component_id=\"" + node +
                              "\"[^}]*\\} ([0-9]+)");
        while (std::chrono::steady_clock::now() < deadline) {
            std::smatch m;
            std::string body = http(port, "GET", "/metrics").body;
            if (std::regex_search(body, m, line) && std::stol(m[1]) >= n) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }
    std::unique_ptr<Process> proc;
};

}  // namespace

TEST_F(AdminTest, HealthMetricsAndGraphOfARunningPipeline) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0"})");
    ASSERT_NE(port, 0);
    EXPECT_EQ(http(port, "GET", "/livez").status, 200);
    ASSERT_TRUE(wait_received(port, "all", 50));
    const Answer ready = http(port, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    EXPECT_NE(ready.body.find(R"("ready":true)"), std::string::npos) << ready.body;

    const Answer metrics = http(port, "GET", "/metrics");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
    for (
        const char* name :
        {"hubflow_component_sent_events_total{component_id=\"split\",component_kind=\"filter\","  // NOLINT(bugprone-suspicious-missing-comma)
         "component_type=\"route\",output=\"incidents\"}",
         "hubflow_component_discarded_events_total{component_id=\"all\"", "hubflow_component_errors_total",
         "hubflow_component_processing_seconds_bucket{component_id=\"all\"", "hubflow_buffer_events{",
         "hubflow_buffer_max_events{", "hubflow_edge_events_total{from=\"gen\",output=\"\",to=\"all\"}",
         "hubflow_file_bytes_written_total{", "hubflow_process_resident_memory_bytes", "hubflow_build_info{"})
        EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
    // promtool, the Prometheus project's own checker, on both formats.
    write("metrics.txt", metrics.body);
    RunResult check = run_program("/bin/sh", {"-c", "promtool check metrics < " + (dir / "metrics.txt").string()});
    EXPECT_EQ(check.code, 0) << check.out << check.err;
    const Answer open = http(port, "GET", "/metrics", {{"Accept", "application/openmetrics-text; version=1.0.0"}});
    EXPECT_EQ(open.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    EXPECT_EQ(open.body.substr(open.body.size() - 6), "# EOF\n");
    EXPECT_NE(open.body.find("# TYPE hubflow_component_received_events counter"), std::string::npos);

    const Answer graph = http(port, "GET", "/api/v1/graph");
    EXPECT_EQ(graph.status, 200);
    EXPECT_NE(graph.body.find(R"("phase":"running")"), std::string::npos) << graph.body;
    EXPECT_NE(graph.body.find(R"({"from":"split","output":"incidents","to":"incidents")"), std::string::npos)
        << graph.body;
    EXPECT_NE(graph.body.find(R"("name":"all","kind":"sink","type":"file","inputs":["gen"])"), std::string::npos)
        << graph.body;

    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(15s), 0);
}

TEST_F(AdminTest, UnknownPathsWrongMethodsAndTokens) {
    const std::uint16_t port =
        start(R"({"listen": "127.0.0.1:0", "token_env": "ADMIN_TOKEN"})", {{"ADMIN_TOKEN", "s3cret-token-value"}});
    ASSERT_NE(port, 0);
    EXPECT_EQ(http(port, "GET", "/nope").status, 404);
    EXPECT_EQ(http(port, "POST", "/metrics").status, 405);
    EXPECT_EQ(http(port, "GET", "/metrics").status, 401);
    EXPECT_EQ(http(port, "GET", "/metrics", {{"Authorization", "Bearer wrong"}}).status, 401);
    EXPECT_EQ(http(port, "GET", "/api/v1/graph", {{"Authorization", "Bearer s3cret-token-value"}}).status, 200);
    EXPECT_EQ(http(port, "GET", "/livez").status, 200) << "probes need no token";
    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(15s), 0);
    EXPECT_EQ(proc->err().find("s3cret-token-value"), std::string::npos) << "the token is never logged";
    EXPECT_EQ(proc->err().find("wrong"), std::string::npos);
}

TEST_F(AdminTest, ANodeThatFailedMakesReadyz503NamingIt) {
    // The file sink cannot open its file: it fails at start, the rest runs.
    std::filesystem::create_directories(dir / "all.jsonl");
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0"})");
    ASSERT_NE(port, 0);
    ASSERT_TRUE(wait_received(port, "incidents", 1));
    const Answer ready = http(port, "GET", "/readyz");
    EXPECT_EQ(ready.status, 503);
    EXPECT_NE(ready.body.find(R"({"name":"all","ok":false,"reason":"failed"})"), std::string::npos) << ready.body;
    EXPECT_EQ(http(port, "GET", "/livez").status, 200) << "liveness never depends on sinks";
    proc->signal(SIGTERM);
    proc->wait(15s);
}

TEST_F(AdminTest, AScraperThatNeverReadsDoesNotStallThePipeline) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0"})");
    ASSERT_NE(port, 0);
    // Ten clients that send a request and never read the answer, and ten that connect and say nothing.
    std::vector<Poco::Net::StreamSocket> idle;
    for (int i = 0; i < 20; ++i) {
        idle.emplace_back(Poco::Net::SocketAddress("127.0.0.1", port));
        if (i % 2 == 0) {
            const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
            idle.back().sendBytes(req.data(), static_cast<int>(req.size()));
        }
    }
    // The pipeline's own output keeps growing while every admin thread is held.
    auto lines = [&] {
        std::ifstream in(dir / "all.jsonl");
        return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
    };
    const auto before = lines();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (lines() < before + 100 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    EXPECT_GE(lines(), before + 100) << "events keep flowing while admin clients hang";
    // Once the hanging clients time out, the admin server answers again.
    EXPECT_EQ(http(port, "GET", "/livez").status, 200);
    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(20s), 0);
}

TEST_F(AdminTest, ANonLoopbackAddressNeedsATokenOrAllowRemote) {
    const std::string file = write("p.json", R"({"admin": {"listen": "0.0.0.0:9610"},
        "sources": {"gen": {"type": "generator", "count": 1}},
        "sinks": {"out": {"type": "console", "inputs": ["gen"]}}})");
    RunResult r = run_program(hubflow_bin, {"validate", file});
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("key 'admin.listen': '0.0.0.0' is not a loopback address"), std::string::npos) << r.err;
}

namespace {

Answer post(std::uint16_t port, const std::string& path) {
    return http_request(port, "POST", path, {}, 30s);
}

std::string reload_pipeline(const std::filesystem::path& dir, const std::string& route_kind, bool extra_sink) {
    return R"({"data_dir": ")" + (dir / "state").string() + R"(", "admin": {"listen": "127.0.0.1:0"},
        "sources": {"gen": {"type": "generator", "count": 40000, "rate": 8000, "seed": 11}},
        "filters": {"pick": {"type": "route", "inputs": ["gen"],
                             "routes": {"picked": {"field": "kind", "equals": ")" +
           route_kind + R"("}}}},
        "sinks": {"all": {"type": "file", "inputs": ["pick.picked", "pick.unmatched"], "path": ")" +
           (dir / "all.jsonl").string() + R"("})" +
           (extra_sink ? R"(, "extra": {"type": "file", "inputs": ["gen"], "path": ")" +
                             (dir / "extra.jsonl").string() + R"("})"
                       : "") +
           "}}";
}

}  // namespace

// Reloads under load, by POST and by SIGHUP, replacing the route and adding and removing a sink: the file
// sink that stays gets every generated event exactly once.
TEST_F(AdminTest, ReloadUnderLoadLosesAndRepeatsNothingInTheNodesThatStay) {
    const std::string file = write("p.json", reload_pipeline(dir, "incident", false));
    proc = std::make_unique<Process>(hubflow_bin, std::vector<std::string>{"run", file});
    const std::uint16_t port = wait_for_admin_port(*proc);
    ASSERT_NE(port, 0);
    ASSERT_TRUE(wait_received(port, "all", 2000));

    for (int i = 0; i < 4; ++i) {
        write("p.json", reload_pipeline(dir, i % 2 ? "incident" : "entry", i == 1));
        const Answer a = post(port, "/api/v1/reload");
        EXPECT_EQ(a.status, 200) << a.body;
        EXPECT_NE(a.body.find(R"("changed":["pick"])"), std::string::npos) << a.body;
        EXPECT_NE(a.body.find(R"("kept":["all","gen"])"), std::string::npos) << a.body;
    }
    // SIGHUP does the same; its result is in the log.
    write("p.json", reload_pipeline(dir, "entry", false));
    proc->signal(SIGHUP);
    EXPECT_TRUE(proc->wait_for_err("SIGHUP: reloading", 10s));

    // A file with a mistake changes nothing and says what is wrong, by key.
    write("p.json", R"({"admin": {"listen": "127.0.0.1:0"}, "sources": {"gen": {"type": "generatr"}}})");
    // The SIGHUP's reload may still run: a second one meanwhile is 409, so ask until it is over.
    Answer refused = post(port, "/api/v1/reload");
    for (int tries = 0; refused.status == 409 && tries < 100; ++tries) {
        std::this_thread::sleep_for(50ms);
        refused = post(port, "/api/v1/reload");
    }
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_NE(refused.body.find("unknown component type 'generatr'"), std::string::npos) << refused.body;
    EXPECT_EQ(http(port, "GET", "/api/v1/reload").status, 405);

    EXPECT_EQ(proc->wait(60s), 0) << proc->err();  // the generator's count runs out and the graph drains
    std::ifstream in(dir / "all.jsonl");
    std::map<std::string, int> ids;
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
        std::smatch id;
        ASSERT_TRUE(std::regex_search(line, id, std::regex("\"id\":\"([^\"]+)\""))) << line;
        ++ids[id[1]];
    }
    std::size_t repeated = 0;
    for (const auto& [id, count] : ids)
        repeated += static_cast<std::size_t>(count - 1);
    EXPECT_EQ(ids.size(), 40000u) << "missing: " << 40000 - ids.size();
    EXPECT_EQ(repeated, 0u);
    EXPECT_NE(proc->err().find("reloaded: kept all, gen; replaced pick; removed extra"), std::string::npos)
        << proc->err();
}

// The account of every node, scraped from a real `hubflow run` while events flow and after they drained:
// generator -> route copying incidents to a second output -> dedupe dropping the generator's duplicates -> file
// sinks, a webhook whose receiver refuses every third request, and a slow plain sink behind a small drop_newest
// buffer. A second source keeps the process (and its admin server) up once the first has drained.
TEST_F(AdminTest, EveryNodeAccountsForWhatItReceived) {
    Receiver receiver;
    constexpr std::int64_t count = 20000;
    const std::string file = write("p.json", R"({"data_dir": ")" + (dir / "state").string() + R"(",
        "plugin_paths": [")" + std::string(HUBFLOW_TEST_PLUGIN_DIR) +
                                                 R"("],
        "admin": {"listen": "127.0.0.1:0"},
        "sources": {"gen": {"type": "generator", "count": )" +
                                                 std::to_string(count) +
                                                 R"(, "rate": 8000, "seed": 11, "duplicate_ratio": 0.2},
                    "idle": {"type": "generator", "rate": 1, "seed": 12}},
        "filters": {"fan": {"type": "route", "inputs": ["gen"],
                            "routes": {"all": {"not": {"field": "kind", "equals": "-"}},
                                       "incidents": {"field": "kind", "equals": "incident"}}},
                    "dedupe": {"type": "dedupe", "inputs": ["fan.all"], "cache_size": 100000}},
        "sinks": {"raw": {"type": "file", "inputs": ["fan.all"], "path": ")" +
                                                 (dir / "raw.jsonl").string() + R"("},
                  "out": {"type": "file", "inputs": ["dedupe"], "path": ")" +
                                                 (dir / "out.jsonl").string() + R"("},
                  "hook": {"type": "webhook", "inputs": ["fan.incidents"],
                           "url": "http://127.0.0.1:)" +
                                                 std::to_string(receiver.port()) +
                                                 R"(/in", "encoding": "ndjson",
                           "batch": {"max_events": 20, "timeout_ms": 50},
                           "dead_letter": ")" + (dir / "dead.jsonl").string() +
                                                 R"("},
                  "slow": {"type": "capture", "inputs": ["gen"], "path": ")" +
                                                 (dir / "slow.jsonl").string() + R"(", "delay_ms": 50,
                           "buffer": {"max_events": 1000, "when_full": "drop_newest"}},
                  "idle_out": {"type": "file", "inputs": ["idle"], "path": ")" +
                                                 (dir / "idle.jsonl").string() + R"("}}})");
    proc = std::make_unique<Process>(hubflow_bin, std::vector<std::string>{"run", file});
    const std::uint16_t port = wait_for_admin_port(*proc);
    ASSERT_NE(port, 0) << proc->err();

    const std::set<std::string> drained_nodes = {"gen", "fan", "dedupe", "raw", "out", "hook", "slow"};
    auto drained = [&] {
        Poco::JSON::Parser parser;
        const auto graph = parser.parse(http(port, "GET", "/api/v1/graph").body).extract<Poco::JSON::Object::Ptr>();
        const auto nodes = graph->getArray("nodes");
        std::size_t finished = 0;
        for (std::size_t i = 0; i < nodes->size(); ++i) {
            const auto n = nodes->getObject(static_cast<unsigned>(i));
            if (drained_nodes.count(n->getValue<std::string>("name")) &&
                n->getValue<std::string>("state") == "finished")
                ++finished;
        }
        return finished == drained_nodes.size();
    };

    // While events flow: every scrape balances, and some catch the route midway.
    std::size_t midway = 0, scrapes = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    bool checked_promtool = false;
    while (!drained() && std::chrono::steady_clock::now() < deadline) {
        const Answer scrape = http(port, "GET", "/metrics");
        ASSERT_EQ(scrape.status, 200);
        const auto accounts = accounts_of(scrape.body);
        ++scrapes;
        ASSERT_EQ(expect_balanced(accounts, "scrape " + std::to_string(scrapes)), 7u) << scrape.body;
        const std::int64_t fan_received = accounts.at("fan").received;
        if (fan_received > 0 && fan_received < count) {
            ++midway;
            if (!checked_promtool) {
                checked_promtool = true;
                write("midway.txt", scrape.body);
                RunResult check =
                    run_program("/bin/sh", {"-c", "promtool check metrics < " + (dir / "midway.txt").string()});
                EXPECT_EQ(check.code, 0) << check.out << check.err;
            }
        }
        ASSERT_FALSE(::testing::Test::HasFailure()) << "scrape " << scrapes << ":\n" << scrape.body;
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(drained()) << "the generator's part of the graph did not drain within 60 s\n" << proc->err();
    EXPECT_GE(midway, 3u) << "too few scrapes while events flowed (" << scrapes << " in all)";

    // After the drain: exact counts, from what the files and the receiver hold.
    const Answer scrape = http(port, "GET", "/metrics");
    const auto accounts = accounts_of(scrape.body);
    expect_balanced(accounts, "after the drain");
    std::set<std::string> distinct;
    ASSERT_EQ(line_count(dir / "raw.jsonl", &distinct), count);
    const auto unique = static_cast<std::int64_t>(distinct.size());
    ASSERT_LT(unique, count) << "the generator made no duplicates: the test would not test filtering";
    EXPECT_EQ(line_count(dir / "out.jsonl"), unique);
    const std::int64_t incidents = receiver.accepted + receiver.refused;
    ASSERT_GT(receiver.refused.load(), 0);
    ASSERT_GT(receiver.accepted.load(), 0);
    const std::int64_t slow_written = line_count(dir / "slow.jsonl");

    struct Want {
        std::int64_t received, finished, filtered, queue_full, node_failed, refused;
    };
    const std::map<std::string, Want> want = {
        // Every incident goes to two outputs, and counts once.
        {"fan", {count, count, 0, 0, 0, 0}},
        {"dedupe", {count, unique, count - unique, 0, 0, 0}},
        {"raw", {count, count, 0, 0, 0, 0}},
        {"out", {unique, unique, 0, 0, 0, 0}},
        {"hook", {incidents, receiver.accepted, 0, 0, 0, receiver.refused}},
        // Refused at its full input: received and discarded at once.
        {"slow", {count, slow_written, 0, count - slow_written, 0, 0}},
    };
    for (const auto& [node, w] : want) {
        ASSERT_TRUE(accounts.count(node)) << node;
        const Account& a = accounts.at(node);
        EXPECT_EQ(a.received, w.received) << node;
        EXPECT_EQ(a.finished, w.finished) << node;
        EXPECT_EQ(a.discarded.at("filtered"), w.filtered) << node;
        EXPECT_EQ(a.discarded.at("queue_full"), w.queue_full) << node;
        EXPECT_EQ(a.discarded.at("node_failed"), w.node_failed) << node;
        EXPECT_EQ(a.discarded.at("refused"), w.refused) << node;
        EXPECT_EQ(a.in_flight, 0) << node;
    }
    EXPECT_GT(accounts.at("slow").discarded.at("queue_full"), 0) << "the slow sink's input never filled";
    // Vector's label for dashboards that split what configuration asked for from what went wrong.
    EXPECT_NE(
        scrape.body.find("hubflow_component_discarded_events_total{component_id=\"dedupe\",component_kind=\"filter\","
                         "component_type=\"dedupe\",reason=\"filtered\",intentional=\"true\"} " +
                         std::to_string(count - unique) + "\n"),
        std::string::npos)
        << scrape.body;
    EXPECT_NE(
        scrape.body.find("component_id=\"hook\",component_kind=\"sink\",component_type=\"webhook\",reason=\"refused\","
                         "intentional=\"false\"} " +
                         std::to_string(receiver.refused) + "\n"),
        std::string::npos)
        << scrape.body;
    EXPECT_EQ(accounts.at("gen").sent.at(""), count);
    EXPECT_EQ(accounts.at("gen").discarded.at("node_failed"), 0);
    EXPECT_EQ(accounts.at("fan").sent.at("all"), count);
    EXPECT_EQ(accounts.at("fan").sent.at("incidents"), incidents);
    EXPECT_EQ(accounts.at("fan").sent.at("unmatched"), 0);

    // The graph shows the same account.
    Poco::JSON::Parser parser;
    const auto graph = parser.parse(http(port, "GET", "/api/v1/graph").body).extract<Poco::JSON::Object::Ptr>();
    const auto nodes = graph->getArray("nodes");
    for (std::size_t i = 0; i < nodes->size(); ++i) {
        const auto n = nodes->getObject(static_cast<unsigned>(i));
        if (n->getValue<std::string>("name") != "dedupe") continue;
        EXPECT_EQ(n->getValue<std::int64_t>("received"), count);
        EXPECT_EQ(n->getValue<std::int64_t>("finished"), unique);
        EXPECT_EQ(n->getValue<std::int64_t>("in_flight"), 0);
        EXPECT_EQ(n->getObject("discarded_by_reason")->getValue<std::int64_t>("filtered"), count - unique);
    }

    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(15s), 0) << proc->err();
}
