#include "client/token_provider.h"

#include "client/http_request.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTMLForm.h>

#include <fstream>
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
    Poco::Net::HTMLForm form;
    form.set("grant_type", o.grant);
    form.set("client_id", o.client_id);
    if (!o.client_secret.empty()) form.set("client_secret", o.client_secret);
    if (o.grant == "password") {
        form.set("username", o.username);
        form.set("password", o.password);
    }
    if (!o.scope.empty()) form.set("scope", o.scope);
    HttpRequest request;
    request.method = "POST";
    request.url = o.token_url;
    request.headers.emplace_back("Accept", "application/json");
    request.content_type = "application/x-www-form-urlencoded";
    std::ostringstream encoded;
    form.write(encoded);
    request.body = encoded.str();
    request.timeout = o.timeout;
    const auto asked = clock_();
    const HttpReply response = http_request(request, tls_);
    if (response.status == 0) throw std::runtime_error("token endpoint " + o.token_url + ": " + response.error);
    const std::string& body = response.body;
    ++fetches_;
    Poco::JSON::Object::Ptr json;
    try {
        json = Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
    }
    if (response.status != 200) {
        // The OAuth2 error code and description identify the problem without echoing anything secret.
        std::string why = "HTTP " + std::to_string(response.status);
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
