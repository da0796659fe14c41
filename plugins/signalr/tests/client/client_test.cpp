// The `signalr` source's pieces that need no network: URLs, token files, configuration errors (its backoff is
// the SDK's, tested in tests/unit/backoff_test.cpp).
// Its behaviour against hubs is tested end to end in tests/node/source.test.js.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "client/hub_endpoint.h"
#include "client/signalr_source.h"
#include "client/token_provider.h"
#include "hubflow/testing/fake_context.h"
#include "hubflow/testing/node_config.h"

namespace hubflow::signalr {
namespace {

TEST(HubUrl, SchemesPortsSiteAndKind) {
    auto a = parse_hub_url("wss://stream.example.com/v1/hub/entries?site_id=S1&user_id=U");
    EXPECT_TRUE(a.tls);
    EXPECT_EQ(a.host, "stream.example.com");
    EXPECT_EQ(a.port, 443);
    EXPECT_EQ(a.target, "/v1/hub/entries?site_id=S1&user_id=U");
    EXPECT_EQ(a.site_id, "S1");
    EXPECT_EQ(a.kind, "entry");

    auto b = parse_hub_url("http://127.0.0.1:5000/v1/hub/incidents/?site_id=S2");
    EXPECT_FALSE(b.tls);
    EXPECT_EQ(b.port, 5000);
    EXPECT_EQ(b.kind, "incident");

    auto c = parse_hub_url("https://h/chat");
    EXPECT_TRUE(c.tls);
    EXPECT_EQ(c.kind, "");
    EXPECT_EQ(c.site_id, "");
    EXPECT_EQ(parse_hub_url("ws://h").target, "/");
}

TEST(HubUrl, RefusesWhatItCannotConnectTo) {
    EXPECT_THROW(parse_hub_url("ftp://h/x"), std::invalid_argument);
    EXPECT_THROW(parse_hub_url("ws:///x"), std::invalid_argument);
    EXPECT_THROW(parse_hub_url("ws://h/x#frag"), std::invalid_argument);
    EXPECT_THROW(parse_hub_url("not a url at all"), std::invalid_argument);
}

TEST(HubUrl, AccessTokensNeverReachTheDisplayForm) {
    EXPECT_EQ(redact_url("ws://h/x?access_token=abc.def&site_id=1"), "ws://h/x?access_token=***&site_id=1");
    EXPECT_EQ(redact_url("ws://h/x?site_id=1&access_token=abc"), "ws://h/x?site_id=1&access_token=***");
    EXPECT_EQ(redact_url("ws://h/x?my_access_token=keep"), "ws://h/x?my_access_token=keep");
    EXPECT_EQ(parse_hub_url("ws://h/x?access_token=zzz").display, "ws://h/x?access_token=***");
}

TEST(TokenProvider, TokenFileIsReadAgainBeforeEveryConnect) {
    auto file = std::filesystem::temp_directory_path() / ("hubflow-token-" + std::to_string(::getpid()));
    std::ofstream(file) << "first-token\n";
    TokenSettings s;
    s.token_file = file.string();
    TokenProvider tokens(s, nullptr, [] { return std::chrono::steady_clock::now(); });
    EXPECT_EQ(tokens.current(), "first-token");
    std::ofstream(file) << "  second-token  \n";
    EXPECT_EQ(tokens.current(), "second-token");
    std::ofstream(file) << "\n";
    EXPECT_THROW(tokens.current(), std::runtime_error);
    std::filesystem::remove(file);
    try {
        tokens.current();
        FAIL() << "a missing file must be an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
}

// The ConfigError a configuration gets, or "" when it is accepted.
std::string config_error_key(const std::string& json) {
    hubflow::testing::FakeContext context("ks");
    Value config = hubflow::testing::node_config(SignalrSource::describe(), json);
    SignalrSource source;
    try {
        source.configure(ConfigView(config), context);
    } catch (const ConfigError& e) {
        return e.key();
    }
    return "";
}

TEST(SignalrSourceConfig, ErrorsNameTheKey) {
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/v1/hub/entries?site_id=1"})"), "");
    EXPECT_EQ(config_error_key(R"({})"), "url");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/a", "urls": ["ws://h/b"]})"), "url");
    EXPECT_EQ(config_error_key(R"({"url": "gopher://h/a"})"), "url");
    EXPECT_EQ(config_error_key(R"({"urls": ["ws://h/a", "nope"]})"), "urls");
    EXPECT_EQ(config_error_key(R"({"url": "wss://h/v1/hub/entries?site_id={site_id}"})"), "sites");
    EXPECT_EQ(config_error_key(R"({"url": "wss://h/v1/hub/entries?site_id={site_id}", "sites": ["a", "b"]})"), "");
    EXPECT_EQ(config_error_key(R"({"url": "wss://h/x", "sites": ["a"]})"), "sites");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "token_in": "cookie"})"), "token_in");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "method": ""})"), "method");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "ping_interval_s": 30, "server_timeout_s": 30})"),
              "server_timeout_s");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "auth": {"token": "a", "token_file": "f", "oauth2": null}})"),
              "auth");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "reconnect": {"initial_ms": 500, "max_ms": 100,
                                  "max_attempts": 0, "config_error_ms": 1000}})"),
              "reconnect.max_ms");
    EXPECT_EQ(config_error_key(R"({"url": "ws://h/x", "auth": {"token": "", "token_file": "", "oauth2": {
                                  "token_url": "https://id/connect/token", "grant": "implicit", "client_id": "c",
                                  "client_secret": "", "username": "", "password": "", "scope": "s",
                                  "refresh_at": 0.8}}})"),
              "auth.oauth2.grant");
}

}  // namespace
}  // namespace hubflow::signalr
