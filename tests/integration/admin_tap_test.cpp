// The admin server's tap, /ui page and `hubflow top`, against a real `hubflow run` (generator -> route -> file)
// on loopback port 0.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>

#include "admin_client.h"
#include "hubflow/json_parse.h"
#include "process.h"

using namespace hubflow::test;
using namespace std::chrono_literals;

namespace {

const std::string hubflow_bin = std::string(HUBFLOW_BINARY_DIR) + "/bin/hubflow";

using Answer = HttpAnswer;

Answer http(std::uint16_t port, const std::string& path, const std::map<std::string, std::string>& headers = {},
            const std::string& method = "GET") {
    return http_request(port, method, path, headers);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

class AdminTapTest : public ScratchDirTest {
protected:
    // Starts `hubflow run` with the given admin object and generator rate; returns the admin port.
    std::uint16_t start(const std::string& admin, int rate = 500, const std::map<std::string, std::string>& env = {}) {
        const std::string file = write("p.json", R"({"data_dir": ")" + (dir / "state").string() + R"(",
            "admin": )" + admin + R"(,
            "sources": {"gen": {"type": "generator", "rate": )" +
                                                     std::to_string(rate) +
                                                     R"(, "seed": 5}},
            "filters": {"split": {"type": "route", "inputs": ["gen"],
                                  "routes": {"incidents": {"field": "kind", "equals": "incident"}}}},
            "sinks": {"all": {"type": "file", "inputs": ["gen"], "path": ")" +
                                                     (dir / "all.jsonl").string() + R"("},
                      "incidents": {"type": "file", "inputs": ["split.incidents"], "path": ")" +
                                                     (dir / "incidents.jsonl").string() + R"("}}})");
        proc = std::make_unique<Process>(hubflow_bin, std::vector<std::string>{"run", file}, env);
        return wait_for_admin_port(*proc);
    }
    long output_lines() const {
        std::ifstream in(dir / "all.jsonl");
        return static_cast<long>(
            std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
    }
    std::uint64_t metric(std::uint16_t port, const std::string& pattern) {
        std::smatch m;
        const std::string body = http(port, "/metrics").body;
        if (!std::regex_search(body, m, std::regex(pattern + " ([0-9]+)"))) return UINT64_MAX;
        return std::stoull(m[1]);
    }
    void stop() {
        proc->signal(SIGTERM);
        EXPECT_EQ(proc->wait(20s), 0) << proc->err();
    }
    std::unique_ptr<Process> proc;
};

}  // namespace

TEST_F(AdminTapTest, TheTapIsOffUnlessTheFileTurnsItOn) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0"})");
    ASSERT_NE(port, 0);
    const Answer a = http(port, "/api/v1/tap?node=gen");
    EXPECT_EQ(a.status, 403);
    EXPECT_NE(a.body.find(R"(needs \"admin\": {\"tap\": true})"), std::string::npos) << a.body;
    stop();
}

TEST_F(AdminTapTest, StreamsTheEventsLeavingANodeAsNdjsonAndEndsAtTheLimit) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0", "tap": true})");
    ASSERT_NE(port, 0);
    const Answer a = http(port, "/api/v1/tap?node=split&limit=20&rate=1000");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.content_type, "application/x-ndjson");
    EXPECT_TRUE(a.chunked) << "streamed, not buffered";
    const auto lines = lines_of(a.body);
    ASSERT_EQ(lines.size(), 21u) << a.body;
    for (std::size_t i = 0; i < 20; ++i) {
        const hubflow::Value v = hubflow::parse_json(lines[i]);
        EXPECT_EQ(v.find("node")->as_string(), "split");
        const std::string output = v.find("output")->as_string();
        EXPECT_TRUE(output == "incidents" || output == "unmatched") << lines[i];
        ASSERT_NE(v.find("payload"), nullptr) << lines[i];
        EXPECT_TRUE(v.find("payload")->is_object()) << "the payload as raw JSON: " << lines[i];
        EXPECT_EQ(v.find("source")->as_string(), "gen");
        EXPECT_EQ(v.find("kind")->as_string(), output == "incidents" ? "incident" : "entry") << lines[i];
        EXPECT_NE(v.find("received_at"), nullptr);
    }
    const hubflow::Value end = hubflow::parse_json(lines.back());
    EXPECT_TRUE(end.find("end")->as_bool());
    EXPECT_EQ(end.find("reason")->as_string(), "limit");
    EXPECT_EQ(end.find("events")->as_int(), 20);
    EXPECT_EQ(end.find("dropped")->as_int(), 0);

    // A source's tap, capped by the rate: 5 a second with a burst of one second, so 8 take at least 0.6 s of
    // events; what the rate left out is counted as skipped.
    const auto lines2 = lines_of(http(port, "/api/v1/tap?node=gen&limit=8&rate=5").body);
    ASSERT_EQ(lines2.size(), 9u);
    EXPECT_EQ(hubflow::parse_json(lines2[0]).find("node")->as_string(), "gen");
    const hubflow::Value end2 = hubflow::parse_json(lines2.back());
    EXPECT_EQ(end2.find("events")->as_int(), 8);
    EXPECT_GT(end2.find("skipped")->as_int(), 0) << lines2.back();
    stop();
}

TEST_F(AdminTapTest, AnOpenTapEndsWithItsCountsWhenThePipelineFinishes) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0", "tap": true})");
    ASSERT_NE(port, 0);
    // A tap of a sink stays open and silent; once the status line is in, the pipeline is told to stop.
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    session.setTimeout(Poco::Timespan(20, 0));
    Poco::Net::HTTPRequest request("GET", "/api/v1/tap?node=all", Poco::Net::HTTPMessage::HTTP_1_1);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    ASSERT_EQ(response.getStatus(), 200);
    proc->signal(SIGTERM);
    std::ostringstream body;
    body << in.rdbuf();
    const auto lines = lines_of(body.str());
    ASSERT_EQ(lines.size(), 1u) << body.str();
    const hubflow::Value end = hubflow::parse_json(lines[0]);
    EXPECT_EQ(end.find("reason")->as_string(), "finished") << lines[0];
    EXPECT_EQ(end.find("events")->as_int(), 0);
    EXPECT_EQ(proc->wait(20s), 0) << proc->err();
}

TEST_F(AdminTapTest, BadTapRequests) {
    const std::uint16_t port =
        start(R"({"listen": "127.0.0.1:0", "tap": true, "token_env": "ADMIN_TOKEN"})", 500, {{"ADMIN_TOKEN", "tk-1"}});
    ASSERT_NE(port, 0);
    const std::map<std::string, std::string> auth = {{"Authorization", "Bearer tk-1"}};
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen").status, 401) << "the tap needs the admin token";
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen", {{"Authorization", "Bearer nope"}}).status, 401);
    const Answer unknown = http(port, "/api/v1/tap?node=nope", auth);
    EXPECT_EQ(unknown.status, 404);
    EXPECT_NE(unknown.body.find("no node 'nope'; the nodes are: gen, split, all, incidents"), std::string::npos)
        << unknown.body;
    EXPECT_EQ(http(port, "/api/v1/tap", auth).status, 400);
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen&limit=0", auth).status, 400);
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen&limit=100000", auth).status, 400);
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen&rate=abc", auth).status, 400);
    const Answer extra = http(port, "/api/v1/tap?node=gen&colour=red", auth);
    EXPECT_EQ(extra.status, 400);
    EXPECT_NE(extra.body.find("unknown parameter 'colour'"), std::string::npos) << extra.body;
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen&limit=1", auth).status, 200);
    EXPECT_EQ(http(port, "/api/v1/tap?node=gen&limit=1", auth, "HEAD").status, 405);
    stop();
}

TEST_F(AdminTapTest, ClientsThatGoAwayFreeTheirTaps) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0", "tap": true})");
    ASSERT_NE(port, 0);
    // Four taps of a sink (which emits nothing, so they stay open and silent), the most there may be at once.
    std::vector<std::unique_ptr<Poco::Net::StreamSocket>> taps;
    for (int i = 0; i < 4; ++i) {
        taps.push_back(std::make_unique<Poco::Net::StreamSocket>(Poco::Net::SocketAddress("127.0.0.1", port)));
        const std::string req = "GET /api/v1/tap?node=all HTTP/1.1\r\nHost: x\r\n\r\n";
        taps.back()->sendBytes(req.data(), static_cast<int>(req.size()));
        char buf[256];
        taps.back()->setReceiveTimeout(Poco::Timespan(10, 0));
        const int n = taps.back()->receiveBytes(buf, sizeof buf);
        ASSERT_GT(n, 0);
        ASSERT_EQ(std::string(buf, n).rfind("HTTP/1.1 200", 0), 0u) << std::string(buf, n);
    }
    const Answer busy = http(port, "/api/v1/tap?node=gen&limit=1");
    EXPECT_EQ(busy.status, 429) << busy.body;
    taps.clear();  // closes them
    // The server notices the closed connections on its own and the slots come back.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline &&
           (status = http(port, "/api/v1/tap?node=gen&limit=1").status) != 200)
        std::this_thread::sleep_for(50ms);
    EXPECT_EQ(status, 200);
    stop();
}

TEST_F(AdminTapTest, AReaderThatNeverReadsLosesSamplesNotThroughput) {
    const std::uint16_t port = start(R"({"listen": "127.0.0.1:0", "tap": true})", 4000);
    ASSERT_NE(port, 0);
    // A tap at the highest rate whose client reads nothing, with a small receive window: the server's writes
    // stall, its queue fills, and from then on the samples are dropped while the pipeline runs on.
    Poco::Net::StreamSocket reader(Poco::Net::SocketAddress::IPv4);
    reader.setReceiveBufferSize(4096);
    reader.connect(Poco::Net::SocketAddress("127.0.0.1", port));
    const std::string req = "GET /api/v1/tap?node=gen&limit=10000&rate=1000 HTTP/1.1\r\nHost: x\r\n\r\n";
    reader.sendBytes(req.data(), static_cast<int>(req.size()));
    const std::string dropped = R"(hubflow_tap_dropped_events_total\{component_id="gen"[^}]*\})";
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        const auto d = metric(port, dropped);
        if (d != UINT64_MAX && d > 0) break;
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_GT(metric(port, dropped), 0u) << "the tap drops what its reader cannot take";
    const long before = output_lines();
    const auto flowing = std::chrono::steady_clock::now() + 10s;
    while (output_lines() < before + 2000 && std::chrono::steady_clock::now() < flowing)
        std::this_thread::sleep_for(20ms);
    EXPECT_GE(output_lines(), before + 2000) << "events keep flowing while the tap's reader is stuck";
    // And the program still drains and exits while that reader holds its connection.
    stop();
}

TEST_F(AdminTapTest, TheUiPageIsServedFromTheBinaryAndLoadsNothingFromElsewhere) {
    const std::uint16_t port =
        start(R"({"listen": "127.0.0.1:0", "token_env": "ADMIN_TOKEN"})", 500, {{"ADMIN_TOKEN", "tk-2"}});
    ASSERT_NE(port, 0);
    const Answer page = http(port, "/ui");
    EXPECT_EQ(page.status, 200) << "the page itself holds no data and asks for the token";
    EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
    EXPECT_NE(page.body.find("<svg id=\"graph\""), std::string::npos);
    EXPECT_NE(page.body.find("api/v1/graph"), std::string::npos);
    EXPECT_EQ(page.body.find(" src="), std::string::npos) << "no external scripts or images";
    EXPECT_EQ(page.body.find("https://"), std::string::npos);
    EXPECT_EQ(page.body.find("@import"), std::string::npos);
    EXPECT_NE(page.csp.find("default-src 'none'"), std::string::npos) << page.csp;
    stop();
}

TEST_F(AdminTapTest, TopOnceListsEveryNodeWithItsNumbers) {
    const std::uint16_t port =
        start(R"({"listen": "127.0.0.1:0", "token_env": "ADMIN_TOKEN"})", 500, {{"ADMIN_TOKEN", "tk-3"}});
    ASSERT_NE(port, 0);
    const std::string url = "http://127.0.0.1:" + std::to_string(port);
    RunResult denied = run_program(hubflow_bin, {"top", "--admin", url, "--once"});
    EXPECT_NE(denied.code, 0);
    EXPECT_NE(denied.err.find("wants the admin token: pass --token-env VAR"), std::string::npos) << denied.err;

    RunResult r = run_program(hubflow_bin, {"top", "--admin", url, "--token-env", "TOP_TOKEN", "--once"},
                              {{"TOP_TOKEN", "tk-3"}});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("phase running"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "--once prints plain text for scripts";
    // Every node has a row, and the route and the sink show a rate of events in (the generator makes 500/s).
    for (const std::string node : {"gen", "split", "all", "incidents"}) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\n" + node + " +(source|filter|sink) +[a-z_]+ +([^\n]*)")))
            << node << "\n"
            << r.out;
        if (node == "split" || node == "all") {
            std::smatch rate;
            ASSERT_TRUE(std::regex_search(m[2].first, m[2].second, rate, std::regex("^([0-9]+) +([0-9]+)"))) << m[2];
            EXPECT_GT(std::stoi(rate[1]), 100) << r.out;
            EXPECT_GT(std::stoi(rate[2]), 100) << r.out;
        }
    }
    stop();
}

TEST_F(AdminTapTest, TopSaysClearlyWhenNothingListens) {
    // A port that was just free: bind, read it, close.
    std::uint16_t port;
    {
        Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
        port = s.address().port();
    }
    RunResult r = run_program(hubflow_bin, {"top", "--admin", "http://127.0.0.1:" + std::to_string(port), "--once"});
    EXPECT_EQ(r.code, 69);
    EXPECT_NE(r.err.find("nothing listens at http://127.0.0.1:" + std::to_string(port)), std::string::npos) << r.err;
    RunResult bad = run_program(hubflow_bin, {"top", "--admin", "ftp://x", "--once"});
    EXPECT_EQ(bad.code, 64) << bad.err;
}
