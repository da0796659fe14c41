#include "client/token_provider.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace hubflow::signalr {

namespace {

std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
}

}  // namespace

TokenProvider::TokenProvider(TokenSettings settings, Poco::Net::Context::Ptr tls, Clock clock)
    : settings_(std::move(settings)), tls_(std::move(tls)), clock_(std::move(clock)) {}

std::string TokenProvider::current() {
    if (!settings_.token.empty()) return settings_.token;
    if (!settings_.token_file.empty()) {
        std::ifstream in(settings_.token_file);
        if (!in) throw std::runtime_error("cannot read token_file '" + settings_.token_file + "'");
        std::ostringstream text;
        text << in.rdbuf();
        std::string token = trimmed(text.str());
        if (token.empty()) throw std::runtime_error("token_file '" + settings_.token_file + "' is empty");
        return token;
    }
    if (!settings_.oauth2) return {};
    if (cached_.empty() || clock_() >= renew_at_) cached_ = fetch_oauth2();
    return cached_;
}

void TokenProvider::invalidate() {
    cached_.clear();
}

bool TokenProvider::refresh_due() const {
    return clock_() >= renew_at();
}

std::chrono::steady_clock::time_point TokenProvider::renew_at() const {
    return settings_.oauth2 && !cached_.empty() ? renew_at_ : std::chrono::steady_clock::time_point::max();
}

std::string TokenProvider::fetch_oauth2() {
    const OAuth2Settings& o = settings_.oauth;
    Poco::URI uri(o.token_url);
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri.getScheme() == "https")
        session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls_);
    else
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    session->setTimeout(Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(o.timeout).count()));

    Poco::Net::HTMLForm form;
    form.set("grant_type", o.grant);
    form.set("client_id", o.client_id);
    if (!o.client_secret.empty()) form.set("client_secret", o.client_secret);
    if (o.grant == "password") {
        form.set("username", o.username);
        form.set("password", o.password);
    }
    if (!o.scope.empty()) form.set("scope", o.scope);
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST,
                                   uri.getPathAndQuery().empty() ? "/" : uri.getPathAndQuery(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Accept", "application/json");
    form.prepareSubmit(request);
    const auto asked = clock_();
    std::string body;
    Poco::Net::HTTPResponse response;
    try {
        form.write(session->sendRequest(request));
        std::istream& in = session->receiveResponse(response);
        Poco::StreamCopier::copyToString(in, body, std::size_t{64} * 1024);
    } catch (const Poco::Exception& e) {
        throw std::runtime_error("token endpoint " + o.token_url + ": " + e.displayText());
    }
    ++fetches_;
    Poco::JSON::Object::Ptr json;
    try {
        json = Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
    }
    if (response.getStatus() != Poco::Net::HTTPResponse::HTTP_OK) {
        // The OAuth2 error code and description identify the problem without echoing anything secret.
        std::string why = "HTTP " + std::to_string(static_cast<int>(response.getStatus()));
        if (json && json->has("error")) why += ", " + json->getValue<std::string>("error");
        if (json && json->has("error_description")) why += ": " + json->getValue<std::string>("error_description");
        throw std::runtime_error("token endpoint " + o.token_url + " refused: " + why);
    }
    if (!json || !json->has("access_token"))
        throw std::runtime_error("token endpoint " + o.token_url + " answered without an access_token");
    std::string token = json->getValue<std::string>("access_token");
    double lifetime = 3600;
    if (json->has("expires_in")) {
        try {
            lifetime = json->getValue<double>("expires_in");
        } catch (const std::exception&) {
        }
    }
    renew_at_ = asked + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(lifetime * o.refresh_at));
    return token;
}

}  // namespace hubflow::signalr
