#include "client/http_request.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/URI.h>

#include <istream>
#include <memory>

namespace hubflow::signalr {

HttpReply http_request(const HttpRequest& r, const Poco::Net::Context::Ptr& tls) {
    HttpReply reply;
    try {
        Poco::URI uri(r.url);
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        if (uri.getScheme() == "https") {
            if (!tls) {
                reply.error = "no TLS context for " + uri.getHost();
                return reply;
            }
            session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls);
        } else {
            session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
        }
        session->setTimeout(Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(r.timeout).count()));
        const std::string target = uri.getPathAndQuery().empty() ? "/" : uri.getPathAndQuery();
        Poco::Net::HTTPRequest request(r.method, target, Poco::Net::HTTPMessage::HTTP_1_1);
        for (const auto& [name, value] : r.headers)
            request.set(name, value);
        if (!r.body.empty() || r.method == "POST") {
            request.setContentType(r.content_type);
            request.setContentLength(static_cast<std::streamsize>(r.body.size()));
        }
        session->sendRequest(request) << r.body;
        Poco::Net::HTTPResponse response;
        std::istream& in = session->receiveResponse(response);
        reply.status = static_cast<int>(response.getStatus());
        reply.retry_after = response.get("Retry-After", "");
        char chunk[16 * 1024];
        while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
            const auto n = static_cast<std::size_t>(in.gcount());
            if (reply.body.size() + n > r.max_body) {
                reply.body.append(chunk, r.max_body - reply.body.size());
                reply.truncated = true;
                break;
            }
            reply.body.append(chunk, n);
        }
        if (in.bad() && !reply.truncated) {
            reply.error = "the answer broke off after " + std::to_string(reply.body.size()) + " bytes";
            reply.status = 0;
        }
    } catch (const Poco::Exception& e) {
        reply.status = 0;
        reply.error = e.displayText();
    } catch (const std::exception& e) {
        reply.status = 0;
        reply.error = e.what();
    }
    return reply;
}

}  // namespace hubflow::signalr
