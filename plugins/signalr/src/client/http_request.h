#pragma once
// One blocking HTTP(S) request with Poco, for the `signalr` source's blocking worker: the OAuth2 token
// request and the KS history pages both go through here, so timeouts, TLS and size limits are set once.
// Never call it on the event loop's thread.

#include <Poco/Net/Context.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace hubflow::signalr {

struct HttpRequest {
    std::string method = "GET";
    std::string url;  // http:// or https://, with its query
    std::vector<std::pair<std::string, std::string>> headers;
    std::string content_type;  // with a body
    std::string body;
    std::chrono::milliseconds timeout{10'000};
    std::size_t max_body = std::size_t{64} * 1024;  // longer answers are cut here and flagged
};

struct HttpReply {
    int status = 0;     // 0: no answer (error says why)
    std::string error;  // connect, TLS, timeout or read failure, without secrets
    std::string body;
    bool truncated = false;   // the body was longer than max_body
    std::string retry_after;  // the Retry-After header, if any
};

// `tls` is used for https (may be null for http). Never throws.
HttpReply http_request(const HttpRequest& request, const Poco::Net::Context::Ptr& tls);

}  // namespace hubflow::signalr
