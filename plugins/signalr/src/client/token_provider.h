#pragma once
// The access token a `signalr` source presents: a fixed string, a file re-read before every connect, or an
// OAuth2 token endpoint (IdentityServer's /connect/token: client_credentials or password grant), refreshed
// ahead of expiry and whenever the hub answers 401. Tokens and secrets never reach a log line.

#include <Poco/Net/Context.h>

#include <chrono>
#include <functional>
#include <string>

namespace hubflow::signalr {

struct OAuth2Settings {
    std::string token_url;
    std::string grant = "client_credentials";  // or "password"
    std::string client_id;
    std::string client_secret;
    std::string username;
    std::string password;
    std::string scope = "user_api.full_access";
    double refresh_at = 0.8;  // share of the lifetime after which the token is renewed
    std::chrono::milliseconds timeout{10'000};
};

struct TokenSettings {
    std::string token;       // fixed
    std::string token_file;  // re-read before every connect
    bool oauth2 = false;
    OAuth2Settings oauth;
};

// Not thread-safe: the `signalr` source calls it from its blocking worker only.
class TokenProvider {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    // `tls` is used for an https token endpoint (may be null for http).
    TokenProvider(TokenSettings settings, Poco::Net::Context::Ptr tls, Clock clock);

    // The token to present on the next connect; fetches or re-reads it when needed. Throws
    // std::runtime_error with a reason that holds no secret (HTTP status and the endpoint's error code).
    std::string current();
    // The hub refused the token (401): the next current() gets a new one (a no-op for a fixed token).
    void invalidate();
    // True while a fetched token is due for renewal (OAuth2 only), so a connected source renews it early.
    bool refresh_due() const;
    // When that starts: the time point of the clock given, or time_point::max() with nothing to renew.
    std::chrono::steady_clock::time_point renew_at() const;
    bool configured() const { return !settings_.token.empty() || !settings_.token_file.empty() || settings_.oauth2; }
    std::uint64_t fetches() const { return fetches_; }

private:
    std::string fetch_oauth2();

    TokenSettings settings_;
    Poco::Net::Context::Ptr tls_;
    Clock clock_;
    std::string cached_;
    std::chrono::steady_clock::time_point renew_at_{};
    std::uint64_t fetches_ = 0;
};

}  // namespace hubflow::signalr
