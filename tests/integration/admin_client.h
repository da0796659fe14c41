#pragma once
// A client of the admin server for the integration tests: one request, the whole answer, and the port a
// `hubflow run` with `"admin": {"listen": "127.0.0.1:0"}` logs.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "process.h"

namespace hubflow::test {

struct HttpAnswer {
    int status = 0;
    std::string body;
    std::string content_type;
    bool chunked = false;
    std::string csp;  // Content-Security-Policy
};

HttpAnswer http_request(std::uint16_t port, const std::string& method, const std::string& path,
                        const std::map<std::string, std::string>& headers = {},
                        std::chrono::seconds timeout = std::chrono::seconds(20));

// Waits for the admin server's "listening on" line in the process's log and returns its port; 0 (and a
// failed expectation) when it does not come.
std::uint16_t wait_for_admin_port(Process& process, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace hubflow::test
