#include "history/history_endpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <Poco/String.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "history/history_query.h"

namespace hubflow::signalr {

namespace {

HttpAnswer text_answer(int status, const char* reason, std::string body, std::string extra = {}) {
    HttpAnswer a;
    a.status = status;
    a.reason = reason;
    a.content_type = "text/plain; charset=utf-8";
    a.body = std::move(body) + "\n";
    a.extra_headers = std::move(extra);
    return a;
}

}  // namespace

HistoryEndpoint::HistoryEndpoint(HistoryEndpointSettings settings, std::shared_ptr<HistoryStore> store,
                                 std::shared_ptr<TokenVerifier> verifier, std::shared_ptr<RoleDirectory> roles,
                                 std::string token_key)
    : settings_(std::move(settings)),
      store_(std::move(store)),
      verifier_(std::move(verifier)),
      roles_(std::move(roles)),
      key_(std::move(token_key)) {}

std::string HistoryEndpoint::load_or_create_key(const std::string& dir) {
    const std::string path = dir + "/token.key";
    std::ifstream in(path, std::ios::binary);
    if (in) {
        std::ostringstream s;
        s << in.rdbuf();
        if (s.str().size() >= 32) return s.str();
    }
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("history: no random bytes for token.key");
    std::string key(reinterpret_cast<char*>(bytes), sizeof bytes);
    const std::string temp = path + ".tmp";
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size()) || ::fsync(fd) != 0 ||
        ::close(fd) != 0 || ::rename(temp.c_str(), path.c_str()) != 0)
        throw std::runtime_error("history: cannot write " + path);
    return key;
}

bool HistoryEndpoint::admit(const std::string& access_token, std::chrono::system_clock::time_point now,
                            double& retry_after_s) {
    const double rate = settings_.max_requests_per_s;
    if (rate <= 0) return true;
    const double burst = std::max(1.0, rate);
    std::lock_guard lock(buckets_mutex_);
    if (buckets_.size() > 10'000) {
        // Idle buckets are full again, and so the same as none: forget them.
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            double idle = std::chrono::duration<double>(now - it->second.at).count();
            it = it->second.tokens + idle * rate >= burst ? buckets_.erase(it) : std::next(it);
        }
    }
    auto [it, fresh] = buckets_.try_emplace(access_token, Bucket{burst, now});
    Bucket& b = it->second;
    if (!fresh) {
        double elapsed = std::max(0.0, std::chrono::duration<double>(now - b.at).count());
        b.tokens = std::min(burst, b.tokens + elapsed * rate);
        b.at = now;
    }
    if (b.tokens >= 1) {
        b.tokens -= 1;
        return true;
    }
    retry_after_s = (1 - b.tokens) / rate;
    return false;
}

HttpAnswer HistoryEndpoint::handle(const HistoryRequestHead& request) {
    HttpAnswer a = answer(request);
    Counter* counter = a.status == 200 ? settings_.answered : settings_.refused;
    if (counter) counter->add();
    return a;
}

HttpAnswer HistoryEndpoint::answer(const HistoryRequestHead& request) {
    auto target = parse_history_path(request.path);
    if (!target)
        return text_answer(404, "Not Found", "no such history: use /v1.1/sites/{site_id}/entries or /incidents");
    if (request.method != "GET") {
        return text_answer(405, "Method Not Allowed", "the history answers GET only", "Allow: GET\r\n");
    }
    QueryResult parsed = parse_history_query(request.raw_query);
    if (!parsed.error.empty()) return text_answer(400, "Bad Request", parsed.error);
    HistoryQuery& q = parsed.query;

    // The hubs' token sources: Authorization: Bearer first, then access_token.
    std::string token = q.access_token.value_or("");
    if (request.authorization) {
        std::string auth(*request.authorization);
        if (auth.size() > 7 && Poco::icompare(auth.substr(0, 7), "Bearer ") == 0) token = Poco::trim(auth.substr(7));
    }
    const auto now = settings_.clock();
    if (token.empty()) return text_answer(401, "Unauthorized", "no access token", "WWW-Authenticate: Bearer\r\n");
    VerifyResult verified = verifier_->verify(token, now);
    if (!verified.ok)
        return text_answer(401, "Unauthorized", verified.reason,
                           "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");

    std::optional<std::string> continuation;
    if (request.continuation && !request.continuation->empty()) continuation = std::string(*request.continuation);
    if (q.continuation) {
        if (continuation && *continuation != *q.continuation)
            return text_answer(400, "Bad Request",
                               "the CLP-Continuation-Token header and $continuationToken hold different tokens");
        continuation = q.continuation;
    }
    const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    ContinuationState state;
    bool resuming = false;
    if (continuation) {
        ContinuationResult decoded = decode_continuation(*continuation, key_, now_s);
        if (!decoded.error.empty()) return text_answer(400, "Bad Request", decoded.error);
        state = decoded.state;
        if (state.site != target->site || state.hub != target->hub)
            return text_answer(400, "Bad Request", "the continuation token belongs to another site or hub");
        // A client may repeat its query with the token (most do) or send the token alone; a different query
        // with an old token is a mistake worth naming.
        if (q.has_filter && q.filter != state.filter)
            return text_answer(400, "Bad Request", "the continuation token belongs to another $filter or user_id");
        if (q.has_orderby && q.descending != state.descending)
            return text_answer(400, "Bad Request", "the continuation token belongs to another $orderby");
        resuming = true;
    } else {
        state.site = target->site;
        state.hub = target->hub;
        state.filter = q.filter;
        state.descending = q.descending;
    }

    AccessDecision access = authorize(target->hub, target->site, state.filter.user, verified.principal, *roles_);
    if (access.status != 0) {
        return access.status == 403 ? text_answer(403, "Forbidden", access.reason)
                                    : text_answer(400, "Bad Request", access.reason);
    }
    double retry_after = 0;
    if (!admit(token, now, retry_after)) {
        auto seconds = static_cast<long>(std::max(1.0, std::ceil(retry_after)));
        return text_answer(429, "Too Many Requests", "too many history requests for this token",
                           "Retry-After: " + std::to_string(seconds) + "\r\n");
    }

    HistoryRequest r;
    r.site = target->site;
    r.hub = target->hub;
    r.user = state.filter.user;
    r.from_ms = state.filter.from_ms;
    r.to_ms = state.filter.to_ms;
    r.descending = state.descending;
    r.limit = q.top;
    if (resuming) {
        r.after = state.after;
        r.snapshot = state.snapshot;
    }
    HistoryPage page;
    try {
        page = store_->query(r);
    } catch (const std::exception& e) {
        settings_.warn(std::string("history: a page of ") + target->site + " could not be read: " + e.what());
        return text_answer(503, "Service Unavailable", "the history cannot be read now", "Retry-After: 5\r\n");
    }
    std::string next;
    if (page.next) {
        state.snapshot = page.snapshot;
        state.after = *page.next;
        state.expires_s = now_s + settings_.token_ttl.count();
        next = encode_continuation(state, key_);
    }
    HttpAnswer answer;
    answer.body = history_body(page.items, next);
    return answer;
}

}  // namespace hubflow::signalr
