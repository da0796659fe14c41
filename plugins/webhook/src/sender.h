#pragma once
// One HTTP(S) connection of the webhook sink and what goes into each request: headers, authentication,
// gzip, Standard Webhooks signature. Poco does the HTTP, TLS, HMAC, base64 and gzip.
//
// Threading: a Sender belongs to one sender thread. cut_off() is the exception: another thread may call it
// to end a request in progress (at shutdown).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <Poco/Net/Context.h>
#include <Poco/URI.h>

#include "webhook_sink.h"

namespace Poco::Net {
class HTTPClientSession;
}

namespace hubflow::webhook {

// The Standard Webhooks signature header value for one attempt: "v1," + base64(HMAC-SHA256(key,
// "<id>.<timestamp>.<body>")).
std::string sign(const std::string& key, std::string_view id, std::int64_t timestamp, std::string_view body);

// The key inside a Standard Webhooks secret: the base64 text after an optional "whsec_" prefix, decoded.
// Throws std::invalid_argument (without the secret in the message) when it is not base64 or is empty.
std::string decode_secret(std::string_view secret);

// A Retry-After header value, as a delay from `now`: delay-seconds or an HTTP-date. nullopt when it is
// neither. A date in the past is a delay of zero.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

// `text` cut to at most `limit` bytes and made valid UTF-8 (bad sequences become '?'), for logs and the
// dead-letter file.
std::string printable_excerpt(std::string_view text, std::size_t limit);

// The URL without user info, query or fragment: what logs may show.
std::string redacted_url(const Poco::URI& uri);

struct Outcome {
    int status = 0;     // HTTP status; 0 when no answer came
    std::string error;  // why no answer came (network, TLS, timeout)
    std::string body;   // the answer's body, cut to a few KiB
    std::optional<std::chrono::milliseconds> retry_after;
    bool on_wire = false;  // the request was (at least partly) sent: the receiver may have it
};

class Sender {
public:
    // `tls` is null for http URLs.
    Sender(const Settings& settings, const Poco::URI& uri, Poco::Net::Context::Ptr tls);
    ~Sender();
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;

    // Sends one attempt of `request`; `compressed` is its gzip body when compression is on (made once per
    // request, on the first attempt). Never throws for network or HTTP trouble: that is in the Outcome.
    Outcome send(const Request& request, std::string& compressed);
    // Shuts the connection's socket down so that a request in progress ends at once. Thread-safe.
    void cut_off();

private:
    Outcome attempt(const Request& request, const std::string& body, bool& reused);
    void connect();
    void drop_connection();

    const Settings& settings_;
    Poco::URI uri_;
    std::string path_;
    Poco::Net::Context::Ptr tls_;
    std::mutex session_mutex_;  // guards session_ against cut_off() while it is replaced
    std::unique_ptr<Poco::Net::HTTPClientSession> session_;
    bool used_ = false;  // session_ has carried a request: its connection may have gone stale
};

}  // namespace hubflow::webhook
