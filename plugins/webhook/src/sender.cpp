#include "sender.h"

#include <sys/socket.h>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/DateTime.h>
#include <Poco/DateTimeParser.h>
#include <Poco/DeflatingStream.h>
#include <Poco/Exception.h>
#include <Poco/HMACEngine.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/SHA2Engine.h>
#include <Poco/TextConverter.h>
#include <Poco/UTF8Encoding.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace hubflow::webhook {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// What is kept of a response body for logs and dead letters.
constexpr std::size_t kept_body = 4096;
// A response body longer than this is not read to its end; the connection is dropped instead.
constexpr std::size_t max_drained_body = 256 * 1024;
// Below the idle timeouts of common servers (Node's is 5 s), so an idle connection is usually replaced
// before the server closes it; the immediate resend on a reused connection covers the rest.
constexpr auto keep_alive = std::chrono::seconds(4);
// A Retry-After beyond this is taken as this: a typo in a header must not park the sink for days.
constexpr auto max_retry_after = std::chrono::hours(1);

// HMACEngine wants the block and digest sizes as members, which SHA2Engine does not declare.
class Sha256Engine : public Poco::SHA2Engine {
public:
    enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
    Sha256Engine() : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256) {}
};

Poco::Timespan timespan(milliseconds d) {
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(d.count()) * 1000);
}

std::string gzip(const std::string& body) {
    std::ostringstream out;
    Poco::DeflatingOutputStream deflate(out, Poco::DeflatingStreamBuf::STREAM_GZIP);
    deflate.write(body.data(), static_cast<std::streamsize>(body.size()));
    deflate.close();
    return std::move(out).str();
}

const char* content_type(Encoding encoding) {
    return encoding == Encoding::ndjson ? "application/x-ndjson" : "application/json";
}

}  // namespace

std::string sign(const std::string& key, std::string_view id, std::int64_t timestamp, std::string_view body) {
    Poco::HMACEngine<Sha256Engine> hmac(key);
    const std::string ts = std::to_string(timestamp);
    hmac.update(id.data(), id.size());
    hmac.update('.');
    hmac.update(ts);
    hmac.update('.');
    hmac.update(body.data(), body.size());
    const Poco::DigestEngine::Digest& digest = hmac.digest();
    std::ostringstream out;
    Poco::Base64Encoder encoder(out);
    encoder.rdbuf()->setLineLength(0);
    encoder.write(reinterpret_cast<const char*>(digest.data()), static_cast<std::streamsize>(digest.size()));
    encoder.close();
    return "v1," + std::move(out).str();
}

std::string decode_secret(std::string_view secret) {
    if (secret.substr(0, 6) == "whsec_") secret.remove_prefix(6);
    std::istringstream in{std::string(secret)};
    Poco::Base64Decoder decoder(in);
    std::string key;
    try {
        key.assign(std::istreambuf_iterator<char>(decoder), std::istreambuf_iterator<char>());
    } catch (const Poco::Exception&) {
        throw std::invalid_argument("is not base64 after the optional whsec_ prefix");
    }
    if (key.empty()) throw std::invalid_argument("is empty");
    return key;
}

std::optional<milliseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 7) return duration_cast<milliseconds>(max_retry_after);
        return std::min<milliseconds>(std::chrono::seconds(std::stoll(std::string(value))), max_retry_after);
    }
    Poco::DateTime date;
    int tzd = 0;
    if (!Poco::DateTimeParser::tryParse(std::string(value), date, tzd)) return std::nullopt;
    date.makeUTC(tzd);
    auto at = std::chrono::system_clock::time_point(std::chrono::microseconds(date.timestamp().epochMicroseconds()));
    if (at <= now) return milliseconds(0);
    return std::min<milliseconds>(duration_cast<milliseconds>(at - now), max_retry_after);
}

std::string printable_excerpt(std::string_view text, std::size_t limit) {
    if (text.size() > limit) text = text.substr(0, limit);
    Poco::UTF8Encoding utf8;
    Poco::TextConverter converter(utf8, utf8, '?');
    std::string out;
    converter.convert(text.data(), static_cast<int>(text.size()), out);
    return out;
}

std::string redacted_url(const Poco::URI& uri) {
    std::string out = uri.getScheme() + "://" + uri.getHost();
    const unsigned short default_port = uri.getScheme() == "https" ? 443 : 80;
    if (uri.getPort() != default_port) out += ":" + std::to_string(uri.getPort());
    out += uri.getPath().empty() ? "/" : uri.getPath();
    return out;
}

Sender::Sender(const Settings& settings, const Poco::URI& uri, Poco::Net::Context::Ptr tls)
    : settings_(settings), uri_(uri), path_(uri.getPathAndQuery()), tls_(std::move(tls)) {
    if (path_.empty()) path_ = "/";
}

Sender::~Sender() = default;

void Sender::connect() {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri_.getScheme() == "https")
        session = std::make_unique<Poco::Net::HTTPSClientSession>(uri_.getHost(), uri_.getPort(), tls_);
    else
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri_.getHost(), uri_.getPort());
    session->setTimeout(timespan(settings_.connect_timeout), timespan(settings_.request_timeout),
                        timespan(settings_.request_timeout));
    session->setKeepAlive(true);
    session->setKeepAliveTimeout(timespan(duration_cast<milliseconds>(keep_alive)));
    std::lock_guard lock(session_mutex_);
    session_ = std::move(session);
    used_ = false;
}

void Sender::drop_connection() {
    std::lock_guard lock(session_mutex_);
    session_.reset();
    used_ = false;
}

void Sender::cut_off() {
    std::lock_guard lock(session_mutex_);
    if (!session_) return;
    // The raw shutdown(2) rather than the socket object's: for TLS that would write a close_notify from this
    // thread while the sender thread is inside OpenSSL. shutdown(2) only wakes the sender's blocked call.
    Poco::Net::StreamSocket& socket = session_->socket();
    if (socket.impl()->initialized()) ::shutdown(socket.impl()->sockfd(), SHUT_RDWR);
}

Outcome Sender::send(const Request& request, std::string& compressed) {
    if (settings_.gzip && compressed.empty()) compressed = gzip(request.body);
    const std::string& body = settings_.gzip ? compressed : request.body;
    bool reused = false;
    Outcome outcome = attempt(request, body, reused);
    // An idle keep-alive connection the receiver has closed fails the next request before any answer; that
    // says nothing about the receiver, so the request goes again at once on a new connection.
    if (outcome.status == 0 && reused) outcome = attempt(request, body, reused);
    return outcome;
}

Outcome Sender::attempt(const Request& request, const std::string& body, bool& reused) {
    Outcome outcome;
    if (!session_) connect();
    reused = used_;
    used_ = true;
    try {
        Poco::Net::HTTPRequest http(settings_.method, path_, Poco::Net::HTTPMessage::HTTP_1_1);
        http.setKeepAlive(true);
        http.setContentType(content_type(settings_.encoding));
        http.setContentLength(static_cast<std::streamsize>(body.size()));
        if (settings_.gzip) http.set("Content-Encoding", "gzip");
        for (const auto& [name, value] : settings_.headers)
            http.add(name, value);
        if (!settings_.bearer.empty()) http.setCredentials("Bearer", settings_.bearer);
        if (settings_.basic)
            Poco::Net::HTTPBasicCredentials(settings_.basic->first, settings_.basic->second).authenticate(http);
        // The id stays the same across attempts and runs so the receiver can drop a repeat; it is sent unsigned
        // too, since dropping repeats is worth as much without signatures.
        http.set("webhook-id", request.id);
        if (!settings_.signing_key.empty()) {
            // The timestamp is the attempt's, as the Standard Webhooks spec asks. The signature covers the body
            // before compression: what the receiver's framework hands to its verifier once it has undone
            // Content-Encoding.
            const std::int64_t now =
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count();
            http.set("webhook-timestamp", std::to_string(now));
            http.set("webhook-signature", sign(settings_.signing_key, request.id, now, request.body));
        }

        std::ostream& out = session_->sendRequest(http);
        outcome.on_wire = true;
        out.write(body.data(), static_cast<std::streamsize>(body.size()));
        if (!out) throw Poco::IOException("cannot send the request body");

        Poco::Net::HTTPResponse response;
        std::istream& in = session_->receiveResponse(response);
        outcome.status = static_cast<int>(response.getStatus());
        if (response.has("Retry-After"))
            outcome.retry_after = parse_retry_after(response.get("Retry-After"), std::chrono::system_clock::now());

        // The whole body is read so the connection can carry the next request, up to a limit past which
        // dropping the connection is cheaper.
        char buffer[8192];
        std::size_t total = 0;
        while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
            const auto n = static_cast<std::size_t>(in.gcount());
            if (outcome.body.size() < kept_body)
                outcome.body.append(buffer, std::min(n, kept_body - outcome.body.size()));
            total += n;
            if (total > max_drained_body) break;
        }
        if (total > max_drained_body || !in.eof() || !response.getKeepAlive()) drop_connection();
    } catch (const Poco::Exception& e) {
        // A status already read stays: the receiver answered, only its body was cut short.
        outcome.error = e.displayText();
        drop_connection();
    } catch (const std::exception& e) {
        outcome.error = e.what();
        drop_connection();
    }
    return outcome;
}

}  // namespace hubflow::webhook
