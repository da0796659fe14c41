#pragma once
// GET /v1.1/sites/{site_id}/entries and /incidents on the hub's listener: authenticated and authorised as the
// hubs are (the same token sources, scope, roles and permission table), one page of the history per request.
//
// Threading: handle() runs on the hub's front loop; it takes the store's lock for the page and its own lock for
// the rate limiter. A page is at most 1,000 events read with pread(2), so it never holds the loop for long.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/roles.h"
#include "auth/token_verifier.h"
#include "history/history_store.h"
#include "hubflow/context.h"

namespace hubflow::signalr {

struct HistoryEndpointSettings {
    std::chrono::seconds token_ttl{3600};  // how long a continuation token stays valid
    double max_requests_per_s = 0;         // per access token; 0 = no limit
    std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
    Counter* answered = nullptr;                                               // pages served (200)
    Counter* refused = nullptr;                                                // requests answered 4xx or 5xx
    std::function<void(const std::string&)> warn = [](const std::string&) {};  // a page that could not be read
};

struct HttpAnswer {
    int status = 200;
    std::string reason = "OK";
    std::string content_type = "application/json; charset=utf-8";
    std::string body;
    std::string extra_headers;  // complete lines, each ending in \r\n
};

struct HistoryRequestHead {
    std::string_view method;
    std::string_view path;       // percent-decoded
    std::string_view raw_query;  // still encoded
    std::optional<std::string_view> authorization;
    std::optional<std::string_view> continuation;  // the CLP-Continuation-Token header
};

class HistoryEndpoint {
public:
    // `token_key` signs continuation tokens; keep it across restarts so that tokens outlive the process.
    HistoryEndpoint(HistoryEndpointSettings settings, std::shared_ptr<HistoryStore> store,
                    std::shared_ptr<TokenVerifier> verifier, std::shared_ptr<RoleDirectory> roles,
                    std::string token_key);

    HttpAnswer handle(const HistoryRequestHead& request);

    // Reads {dir}/token.key, or writes 32 random bytes there (0600) when it is missing.
    static std::string load_or_create_key(const std::string& dir);

private:
    HttpAnswer answer(const HistoryRequestHead& request);
    bool admit(const std::string& access_token, std::chrono::system_clock::time_point now, double& retry_after_s);

    HistoryEndpointSettings settings_;
    std::shared_ptr<HistoryStore> store_;
    std::shared_ptr<TokenVerifier> verifier_;
    std::shared_ptr<RoleDirectory> roles_;
    std::string key_;
    struct Bucket {
        double tokens = 0;
        std::chrono::system_clock::time_point at;
    };
    std::mutex buckets_mutex_;
    std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace hubflow::signalr
