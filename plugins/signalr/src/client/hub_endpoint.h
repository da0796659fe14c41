#pragma once
// Where a `signalr` source connects: one hub URL taken apart once, at configure time.

#include <cstdint>
#include <string>
#include <string_view>

namespace hubflow::signalr {

struct HubEndpoint {
    bool tls = false;
    std::string host;
    std::uint16_t port = 0;
    std::string target;   // path and query, as sent in the request line
    std::string site_id;  // the site_id query parameter, if any
    std::string kind;     // "entry" for a path ending in /entries, "incident" for /incidents, else empty
    std::string display;  // for logs: the URL with any access_token value replaced by "***"
};

// Parses ws://, wss://, http:// (as ws) and https:// (as wss) URLs. Throws std::invalid_argument with a short
// reason for anything else (no host, another scheme, a fragment).
HubEndpoint parse_hub_url(std::string_view url);

// The URL with the value of every access_token query parameter replaced by "***".
std::string redact_url(std::string_view url);

}  // namespace hubflow::signalr
