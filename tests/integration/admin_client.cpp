#include "admin_client.h"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include <regex>
#include <sstream>

namespace hubflow::test {

HttpAnswer http_request(std::uint16_t port, const std::string& method, const std::string& path,
                        const std::map<std::string, std::string>& headers, std::chrono::seconds timeout) {
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    session.setTimeout(Poco::Timespan(static_cast<long>(timeout.count()), 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [k, v] : headers)
        request.set(k, v);
    if (method == "POST") request.setContentLength(0);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::ostringstream body;
    body << in.rdbuf();
    return {response.getStatus(), body.str(), response.getContentType(), response.getChunkedTransferEncoding(),
            response.get("Content-Security-Policy", "")};
}

std::uint16_t wait_for_admin_port(Process& process, std::chrono::milliseconds timeout) {
    EXPECT_TRUE(process.wait_for_err("admin server listening on", timeout)) << process.err();
    std::smatch m;
    const std::string err = process.err();
    if (!std::regex_search(err, m, std::regex("admin server listening on [0-9.]+:([0-9]+)"))) return 0;
    return static_cast<std::uint16_t>(std::stoi(m[1]));
}

}  // namespace hubflow::test
