#include "client/hub_endpoint.h"

#include <Poco/Exception.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <stdexcept>

namespace hubflow::signalr {

std::string redact_url(std::string_view url) {
    std::string out(url);
    for (std::size_t at = 0; (at = out.find("access_token=", at)) != std::string::npos;) {
        if (at > 0 && out[at - 1] != '?' && out[at - 1] != '&') {
            at += 13;
            continue;
        }
        const std::size_t value = at + 13;
        std::size_t end = out.find_first_of("&#", value);
        if (end == std::string::npos) end = out.size();
        out.replace(value, end - value, "***");
        at = value + 3;
    }
    return out;
}

HubEndpoint parse_hub_url(std::string_view url) {
    Poco::URI uri;
    try {
        uri = Poco::URI(std::string(url));
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument("not a URL: " + e.message());
    }
    HubEndpoint ep;
    const std::string scheme = Poco::toLower(uri.getScheme());
    if (scheme == "wss" || scheme == "https")
        ep.tls = true;
    else if (scheme != "ws" && scheme != "http")
        throw std::invalid_argument("the scheme must be wss, https, ws or http, not '" + scheme + "'");
    if (uri.getHost().empty()) throw std::invalid_argument("the URL has no host");
    if (!uri.getFragment().empty()) throw std::invalid_argument("the URL must not have a fragment");
    ep.host = uri.getHost();
    ep.port = uri.getPort() != 0 ? uri.getPort() : (ep.tls ? 443 : 80);
    ep.target = uri.getPathAndQuery();
    if (ep.target.empty()) ep.target = "/";
    for (const auto& [name, value] : uri.getQueryParameters())
        if (name == "site_id") ep.site_id = value;
    std::string path = uri.getPath();
    while (path.size() > 1 && path.back() == '/')
        path.pop_back();
    if (path.size() >= 8 && path.compare(path.size() - 8, 8, "/entries") == 0)
        ep.kind = "entry";
    else if (path.size() >= 10 && path.compare(path.size() - 10, 10, "/incidents") == 0)
        ep.kind = "incident";
    ep.display = redact_url(url);
    return ep;
}

}  // namespace hubflow::signalr
