#pragma once
// A webhook receiver for tests and the benchmark: a real Poco HTTPServer on 127.0.0.1 that records every
// request (gzip bodies inflated), answers as the test scripts it, can hold requests open to show concurrency,
// and counts the connections it accepted.

#include <Poco/InflatingStream.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace hubflow::webhook::test {

struct Received {
    std::string method;
    std::string uri;
    std::map<std::string, std::string> headers;  // names in lowercase
    std::string raw_body;                        // as it came over the wire
    std::string body;                            // inflated when Content-Encoding is gzip
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

struct Reply {
    int status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

class Receiver {
public:
    // Port 0: the system picks one. `threads` bounds the requests served at once. With `keep` false the
    // requests are only counted (a benchmark's receiver), and a script sees them without their body.
    explicit Receiver(std::uint16_t port = 0, int threads = 16, bool keep = true)
        : Receiver(Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", port)), "http", threads, keep) {}
    // On a socket of the caller's, e.g. a SecureServerSocket for https.
    Receiver(const Poco::Net::ServerSocket& socket, std::string scheme, int threads = 16, bool keep = true)
        : socket_(socket), scheme_(std::move(scheme)), keep_(keep) {
        auto params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(threads);
        params->setMaxQueued(256);
        params->setKeepAlive(true);
        params->setMaxKeepAliveRequests(0);  // unlimited: connection reuse is the client's to show
        params->setKeepAliveTimeout(Poco::Timespan(30, 0));
        server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket_, params);
        server_->start();
        port_ = socket_.address().port();
    }
    ~Receiver() { stop(); }

    void stop() {
        if (!server_) return;
        release();
        server_->stopAll(true);
        server_.reset();
        socket_.close();  // the server's copy shares it: without this the port still accepts connections
    }

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& path = "/hook") const {
        return scheme_ + "://127.0.0.1:" + std::to_string(port()) + path;
    }

    // How to answer request number n (0-based, in arrival order).
    void respond(std::function<Reply(const Received&, int n)> script) {
        std::lock_guard lock(mutex_);
        script_ = std::move(script);
    }

    // While held, requests wait inside the handler (after being recorded) until release().
    void hold() {
        std::lock_guard lock(mutex_);
        held_ = true;
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            held_ = false;
        }
        changed_.notify_all();
    }

    std::vector<Received> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return keep_ ? requests_.size() : counted_;
    }
    std::uint64_t body_bytes() const {
        std::lock_guard lock(mutex_);
        return body_bytes_;
    }
    // Waits until `pred(requests)` holds; false at the deadline.
    bool wait_until(const std::function<bool(const std::vector<Received>&)>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return pred(requests_); });
    }
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        return wait_until([n](const auto& r) { return r.size() >= n; }, timeout);
    }
    bool wait_for_active(int n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return active_ >= n; });
    }

    int connections() const { return server_ ? server_->totalConnections() : 0; }
    int max_active() const {
        std::lock_guard lock(mutex_);
        return max_active_;
    }

private:
    class Handler : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(Receiver& owner) : owner_(owner) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
            Received r;
            r.method = request.getMethod();
            r.uri = request.getURI();
            for (const auto& [name, value] : request) {
                std::string lower = name;
                std::transform(lower.begin(), lower.end(), lower.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                r.headers[lower] = value;
            }
            Poco::StreamCopier::copyToString(request.stream(), r.raw_body);
            if (owner_.keep_ && r.header("content-encoding") == "gzip") {
                std::istringstream compressed(r.raw_body);
                Poco::InflatingInputStream inflate(compressed, Poco::InflatingStreamBuf::STREAM_GZIP);
                Poco::StreamCopier::copyToString(inflate, r.body);
            } else if (owner_.keep_) {
                r.body = r.raw_body;
            }

            Reply reply;
            {
                std::unique_lock lock(owner_.mutex_);
                const int n = static_cast<int>(owner_.counted_++);
                owner_.body_bytes_ += r.raw_body.size();
                if (owner_.keep_) owner_.requests_.push_back(r);
                ++owner_.active_;
                owner_.max_active_ = std::max(owner_.max_active_, owner_.active_);
                owner_.changed_.notify_all();
                owner_.changed_.wait(lock, [&] { return !owner_.held_; });
                if (owner_.script_) reply = owner_.script_(r, n);
                --owner_.active_;
            }
            response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
            for (const auto& [name, value] : reply.headers)
                response.set(name, value);
            response.setContentType("text/plain");
            response.sendBuffer(reply.body.data(), reply.body.size());
        }

    private:
        Receiver& owner_;
    };
    class Factory : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(Receiver& owner) : owner_(owner) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(owner_);
        }

    private:
        Receiver& owner_;
    };

    Poco::Net::ServerSocket socket_;
    std::uint16_t port_ = 0;
    std::string scheme_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::function<Reply(const Received&, int)> script_;
    bool keep_;
    std::vector<Received> requests_;
    std::size_t counted_ = 0;
    std::uint64_t body_bytes_ = 0;
    bool held_ = false;
    int active_ = 0;
    int max_active_ = 0;
};

}  // namespace hubflow::webhook::test
