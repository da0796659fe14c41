// OAuth2 tokens for the `signalr` source against a token endpoint served by Poco in the test, on a clock the
// test moves: what is asked for, when a token is renewed, and what an error says (and never says).
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "client/token_provider.h"

namespace hubflow::signalr {
namespace {

using namespace std::chrono_literals;

// An IdentityServer-style /connect/token: answers `status` with `body_for(n)` for the n-th request (from 1),
// and keeps every request's form.
class TokenEndpoint {
public:
    int status = 200;
    std::function<std::string(int)> body_for = [](int n) {
        return R"({"access_token":"tok-)" + std::to_string(n) + R"(","expires_in":100,"token_type":"Bearer"})";
    };

    TokenEndpoint()
        : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)),
          server_(new Factory(*this), socket_, new Poco::Net::HTTPServerParams) {
        server_.start();
    }
    ~TokenEndpoint() { server_.stopAll(true); }

    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(socket_.address().port()) + "/connect/token";
    }
    std::vector<std::map<std::string, std::string>> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    class Handler : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(TokenEndpoint& ep) : ep_(ep) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
            Poco::Net::HTMLForm form(request, request.stream());
            int n;
            {
                std::lock_guard lock(ep_.mutex_);
                auto& kept = ep_.requests_.emplace_back();
                for (const auto& [name, value] : form)
                    kept[name] = value;
                n = static_cast<int>(ep_.requests_.size());
            }
            response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(ep_.status));
            response.setContentType("application/json");
            response.send() << ep_.body_for(n);
        }

    private:
        TokenEndpoint& ep_;
    };
    class Factory : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(TokenEndpoint& ep) : ep_(ep) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(ep_);
        }

    private:
        TokenEndpoint& ep_;
    };

    Poco::Net::ServerSocket socket_;
    Poco::Net::HTTPServer server_;
    std::mutex mutex_;
    std::vector<std::map<std::string, std::string>> requests_;
};

struct Fixture {
    TokenEndpoint endpoint;
    std::chrono::steady_clock::time_point now{std::chrono::hours(1)};

    TokenProvider provider(OAuth2Settings o) {
        TokenSettings s;
        s.oauth2 = true;
        o.token_url = endpoint.url();
        s.oauth = std::move(o);
        return TokenProvider(s, nullptr, [this] { return now; });
    }
};

OAuth2Settings client_credentials() {
    OAuth2Settings o;
    o.client_id = "hubflow";
    o.client_secret = "client-secret-value";
    return o;
}

TEST(OAuth2Tokens, ClientCredentialsAskForTheKsScope) {
    Fixture f;
    auto tokens = f.provider(client_credentials());
    EXPECT_EQ(tokens.current(), "tok-1");
    auto asked = f.endpoint.requests();
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_EQ(asked[0]["grant_type"], "client_credentials");
    EXPECT_EQ(asked[0]["client_id"], "hubflow");
    EXPECT_EQ(asked[0]["client_secret"], "client-secret-value");
    EXPECT_EQ(asked[0]["scope"], "user_api.full_access");
    EXPECT_EQ(asked[0].count("username"), 0u);
    EXPECT_EQ(tokens.fetches(), 1u);
}

TEST(OAuth2Tokens, PasswordGrantSendsTheUser) {
    Fixture f;
    OAuth2Settings o = client_credentials();
    o.grant = "password";
    o.username = "integrator@example.com";
    o.password = "user-password-value";
    o.scope = "user_api.full_access offline_access";
    auto tokens = f.provider(o);
    tokens.current();
    auto asked = f.endpoint.requests();
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_EQ(asked[0]["grant_type"], "password");
    EXPECT_EQ(asked[0]["username"], "integrator@example.com");
    EXPECT_EQ(asked[0]["password"], "user-password-value");
    EXPECT_EQ(asked[0]["scope"], "user_api.full_access offline_access");
}

TEST(OAuth2Tokens, RenewedAfterTheConfiguredShareOfTheLifetime) {
    Fixture f;
    OAuth2Settings o = client_credentials();
    o.refresh_at = 0.8;  // of expires_in 100 s: renewed from 80 s on
    auto tokens = f.provider(o);
    EXPECT_EQ(tokens.current(), "tok-1");
    f.now += 79s;
    EXPECT_FALSE(tokens.refresh_due());
    EXPECT_EQ(tokens.current(), "tok-1");
    f.now += 2s;
    EXPECT_TRUE(tokens.refresh_due());
    EXPECT_EQ(tokens.current(), "tok-2");
    EXPECT_FALSE(tokens.refresh_due());
    EXPECT_EQ(f.endpoint.requests().size(), 2u);
}

TEST(OAuth2Tokens, A401InvalidatesTheTokenSoTheNextConnectFetchesAnother) {
    Fixture f;
    auto tokens = f.provider(client_credentials());
    EXPECT_EQ(tokens.current(), "tok-1");
    tokens.invalidate();
    EXPECT_FALSE(tokens.refresh_due()) << "nothing cached, nothing to renew while disconnected";
    EXPECT_EQ(tokens.current(), "tok-2");
    EXPECT_EQ(tokens.current(), "tok-2");
}

TEST(OAuth2Tokens, WithoutExpiresInTheKsLifetimeOfAnHourIsAssumed) {
    Fixture f;
    f.endpoint.body_for = [](int n) { return R"({"access_token":"tok-)" + std::to_string(n) + R"("})"; };
    auto tokens = f.provider(client_credentials());
    tokens.current();
    f.now += 2879s;  // 0.8 of 3600 s is 2880 s
    EXPECT_FALSE(tokens.refresh_due());
    f.now += 2s;
    EXPECT_TRUE(tokens.refresh_due());
}

TEST(OAuth2Tokens, RefusalsNameTheEndpointAndTheOAuthErrorButNoSecret) {
    Fixture f;
    f.endpoint.status = 400;
    f.endpoint.body_for = [](int) {
        return R"({"error":"invalid_client","error_description":"unknown client or wrong secret"})";
    };
    OAuth2Settings o = client_credentials();
    o.grant = "password";
    o.username = "integrator";
    o.password = "user-password-value";
    auto tokens = f.provider(o);
    try {
        tokens.current();
        FAIL() << "a 400 must throw";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(f.endpoint.url()), std::string::npos) << what;
        EXPECT_NE(what.find("HTTP 400, invalid_client: unknown client or wrong secret"), std::string::npos) << what;
        EXPECT_EQ(what.find("client-secret-value"), std::string::npos) << what;
        EXPECT_EQ(what.find("user-password-value"), std::string::npos) << what;
    }
}

TEST(OAuth2Tokens, AnAnswerWithoutATokenOrAnUnreachableEndpointIsAnError) {
    Fixture f;
    f.endpoint.body_for = [](int) { return std::string(R"({"token_type":"Bearer"})"); };
    auto tokens = f.provider(client_credentials());
    EXPECT_THROW(tokens.current(), std::runtime_error);

    TokenSettings s;
    s.oauth2 = true;
    s.oauth = client_credentials();
    s.oauth.token_url = "http://127.0.0.1:1/connect/token";  // nothing listens on port 1
    s.oauth.timeout = 2s;
    TokenProvider unreachable(s, nullptr, [] { return std::chrono::steady_clock::now(); });
    try {
        unreachable.current();
        FAIL() << "an unreachable endpoint must throw";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("http://127.0.0.1:1/connect/token"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace hubflow::signalr
