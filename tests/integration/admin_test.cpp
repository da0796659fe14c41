// The admin server of a real `hubflow run`: health, metrics (checked by promtool), graph, tokens, bad requests,
// and a scraper that never reads.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>
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
    for (const char* name :
         {"hubflow_component_sent_events_total{component_id=\"split\",component_kind=\"filter\","
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
