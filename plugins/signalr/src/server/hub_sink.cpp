#include "server/hub_sink.h"

#include <algorithm>

#include "history/history_query.h"

namespace hubflow::signalr {

ComponentDescription HubSink::describe() {
    using F = FieldType;
    return {
        "signalr_hub",
        ComponentKind::sink,
        "serves KS Event Streaming compatible SignalR hubs (/v1/hub/entries, /v1/hub/incidents)",
        {{.name = "listen",
          .type = F::string,
          .default_json = R"("127.0.0.1:5000")",
          .doc = "host:port to accept WebSocket connections on (port 0 picks a free port and logs it)",
          .claim = Claim::listen_address},
         {.name = "tls",
          .type = F::object,
          .doc = "serve wss:// with these PEM files: {\"cert\": PATH, \"key\": PATH}",
          .fields = {{.name = "cert", .type = F::string, .required = true, .doc = "certificate chain (PEM)"},
                     {.name = "key", .type = F::string, .required = true, .doc = "private key (PEM)"}}},
         {.name = "auth",
          .type = F::object,
          .required = true,
          .doc = "how tokens are verified",
          .fields = {{.name = "hs256_secret",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "HS256 secret (32 bytes or more), for development"},
                     {.name = "jwks_file",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "JWKS file with the issuer's RS256/ES256 public keys"},
                     {.name = "jwks_url",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "JWKS URL, fetched at start and again for an unknown kid"},
                     {.name = "issuer",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "required iss claim (empty = not checked)"},
                     {.name = "audience",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "required aud value (empty = not checked)"},
                     {.name = "leeway_s",
                      .type = F::integer,
                      .default_json = "30",
                      .doc = "clock skew allowed on exp and nbf, in seconds"},
                     {.name = "user_claim",
                      .type = F::string,
                      .default_json = R"("sub")",
                      .doc = "claim holding the caller's KS user id"}}},
         {.name = "roles",
          .type = F::object,
          .required = true,
          .doc = "where per-site roles come from: {\"file\": PATH} or {\"claim\": NAME}",
          .fields = {{.name = "file",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "JSON file {\"SITE\": {\"USER\": \"site_admin\"}}, reloaded when it changes"},
                     {.name = "claim",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "token claim holding {\"SITE\": \"ROLE\"}"}}},
         {.name = "method",
          .type = F::string,
          .default_json = R"("ReceiveMessage")",
          .doc = "client method the server invokes with each event"},
         {.name = "ping_interval_s", .type = F::number, .default_json = "15", .doc = "server ping interval"},
         {.name = "client_timeout_s",
          .type = F::number,
          .default_json = "30",
          .doc = "a client silent this long is disconnected"},
         {.name = "handshake_timeout_s",
          .type = F::number,
          .default_json = "15",
          .doc = "time allowed for the HTTP upgrade and the SignalR handshake"},
         {.name = "max_message_bytes",
          .type = F::integer,
          .default_json = "32768",
          .doc = "largest message accepted from a client"},
         {.name = "max_buffered_bytes",
          .type = F::integer,
          .default_json = "4194304",
          .doc = "outbound bytes a client may have pending before it is closed as too slow"},
         {.name = "io_threads", .type = F::integer, .default_json = "1", .doc = "event loops serving connections"},
         {.name = "history",
          .type = F::object,
          .doc = "keep what is broadcast, per site, in the data directory and serve it at "
                 "GET /v1.1/sites/{site_id}/entries and /incidents",
          .fields = {{.name = "max_events",
                      .type = F::integer,
                      .default_json = "100000",
                      .doc = "events kept per site (entries and incidents together)"},
                     {.name = "max_age_s",
                      .type = F::number,
                      .default_json = "86400",
                      .doc = "events older than this (by arrival) are dropped"},
                     {.name = "delay_ms",
                      .type = F::integer,
                      .default_json = "0",
                      .doc = "time before an event becomes visible to queries (KS: a few seconds)"},
                     {.name = "max_requests_per_s",
                      .type = F::number,
                      .default_json = "0",
                      .doc = "requests per second per access token before 429 (0 = no limit)"},
                     {.name = "token_ttl_s",
                      .type = F::integer,
                      .default_json = "3600",
                      .doc = "how long a continuation token stays valid"},
                     {.name = "fsync",
                      .type = F::boolean,
                      .default_json = "false",
                      .doc = "fdatasync each batch before it is broadcast (survives power loss, not only kill -9)"}}}}};
}

namespace {
std::chrono::milliseconds seconds_of(const ConfigView& c, const char* key) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(c.number_in(key, 0.001, 86400) * 1000));
}
}  // namespace

void HubSink::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    settings_.listen = config.string("listen");
    settings_.method = config.string("method");
    if (settings_.method.empty()) throw config.error("method", "must not be empty");
    settings_.ping_interval = seconds_of(config, "ping_interval_s");
    settings_.client_timeout = seconds_of(config, "client_timeout_s");
    settings_.handshake_timeout = seconds_of(config, "handshake_timeout_s");
    settings_.max_message_bytes = static_cast<std::size_t>(config.integer_in("max_message_bytes", 1024, 1 << 30));
    settings_.max_buffered_bytes =
        static_cast<std::size_t>(config.integer_in("max_buffered_bytes", 4096, std::int64_t{1} << 40));
    settings_.io_threads = static_cast<int>(config.integer_in("io_threads", 1, 64));

    if (config.has("tls")) {
        ConfigView tls = config.object("tls");
        settings_.tls_cert = tls.string("cert");
        settings_.tls_key = tls.string("key");
    }

    ConfigView auth = config.object("auth");
    auth_.hs256_secret = auth.string("hs256_secret");
    auth_.jwks_file = auth.string("jwks_file");
    auth_.jwks_url = auth.string("jwks_url");
    auth_.issuer = auth.string("issuer");
    auth_.audience = auth.string("audience");
    auth_.leeway_s = auth.integer_in("leeway_s", 0, 3600);
    auth_.user_claim = auth.string("user_claim");
    if (auth_.hs256_secret.empty() && auth_.jwks_file.empty() && auth_.jwks_url.empty())
        throw config.error("auth", "set hs256_secret, jwks_file or jwks_url");
    if (!auth_.hs256_secret.empty() && auth_.hs256_secret.size() < 32)
        throw auth.error("hs256_secret", "must be at least 32 bytes long");

    if (config.has("history")) {
        ConfigView h = config.object("history");
        history_enabled_ = true;
        history_settings_.max_events = static_cast<std::size_t>(h.integer_in("max_events", 1, 100'000'000));
        history_settings_.max_age =
            std::chrono::seconds(static_cast<std::int64_t>(h.number_in("max_age_s", 1, 86400.0 * 3650)));
        history_settings_.delay = std::chrono::milliseconds(h.integer_in("delay_ms", 0, 3'600'000));
        history_settings_.fsync = h.boolean("fsync");
        endpoint_settings_.max_requests_per_s = h.number_in("max_requests_per_s", 0, 1e6);
        endpoint_settings_.token_ttl = std::chrono::seconds(h.integer_in("token_ttl_s", 1, std::int64_t{86400} * 7));
    }

    ConfigView roles = config.object("roles");
    roles_file_ = roles.string("file");
    roles_claim_ = roles.string("claim");
    if (roles_file_.empty() == roles_claim_.empty()) throw config.error("roles", "set exactly one of file or claim");
}

void HubSink::start() {
    std::shared_ptr<TokenVerifier> verifier;
    try {
        verifier = std::make_shared<TokenVerifier>(auth_);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("auth: ") + e.what());
    }
    std::shared_ptr<RoleDirectory> roles;
    if (!roles_file_.empty()) {
        Logger* log = &context_->log();
        roles = std::make_shared<FileRoleDirectory>(
            roles_file_, [log](const std::string& problem) { log->error("roles file: ", problem); });
    } else {
        roles = std::make_shared<ClaimRoleDirectory>(roles_claim_);
    }
    Metrics& m = context_->metrics();
    HubServerMetrics metrics{&m.gauge("connections", "open client connections"),
                             &m.counter("connections_accepted", "TCP connections accepted"),
                             &m.counter("upgrades_refused", "upgrade requests answered with 4xx"),
                             &m.counter("deliveries", "events written to client sockets"),
                             &m.counter("slow_clients_closed", "clients closed for a full outbound buffer"),
                             &m.counter("protocol_errors", "connections closed for a protocol violation")};
    server_ = std::make_unique<HubServer>(settings_, verifier, roles, context_->log(), metrics);
    if (history_enabled_) {
        history_settings_.dir = context_->data_dir() / "history";
        Logger* log = &context_->log();
        history_settings_.warn = [log](const std::string& problem) { log->warn(problem); };
        auto store = std::make_shared<FileHistoryStore>(history_settings_);
        history_ = store;
        history_appended_ = &m.counter("history_appended", "events written to the history");
        endpoint_settings_.answered = &m.counter("history_pages", "history pages served");
        endpoint_settings_.refused = &m.counter("history_refused", "history requests answered 4xx or 5xx");
        endpoint_settings_.warn = [log](const std::string& problem) { log->warn(problem); };
        server_->serve_history(
            std::make_shared<HistoryEndpoint>(endpoint_settings_, store, verifier, roles,
                                              HistoryEndpoint::load_or_create_key(history_settings_.dir.string())));
    }
    // The host keeps the socket across a reload, so a changed hub's successor serves on it without a moment
    // in which connections are refused.
    server_->start(context_->listening_socket(settings_.listen));
    context_->log().info("serving /v1/hub/entries and /v1/hub/incidents on ", server_->tls() ? "wss://" : "ws://",
                         server_->bound_address());
    if (history_)
        context_->log().info("serving the history at /v1.1/sites/{site_id}/entries and /incidents on ",
                             server_->tls() ? "https://" : "http://", server_->bound_address(), " (kept in ",
                             history_settings_.dir.string(), ")");
}

void HubSink::write(const EventBatch& batch) {
    if (history_) record(batch);
    server_->broadcast(batch);
}

// Into the history before the broadcast: whatever a client may have seen is in the history when it asks.
void HubSink::record(const EventBatch& batch) {
    // Grouped by site, one append (one write) per site and batch.
    records_.clear();
    sites_.clear();
    for (const Event& e : batch) {
        const std::optional<Hub> found = hub_of(e.meta.kind, e.meta.site_id);
        if (!found) continue;
        const Hub hub = *found;
        // The event's own utc_date_time is what clients filter on; without one, when it entered the pipeline.
        auto when = event_time_ms(e.payload);
        if (!when) {
            auto t = e.meta.received_at.time_since_epoch().count() != 0 ? e.meta.received_at
                                                                        : std::chrono::system_clock::now();
            when = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
        }
        records_.push_back(HistoryRecord{hub, *when, e.meta.id, e.meta.user_id, e.payload});
        sites_.push_back(e.meta.site_id);
    }
    if (records_.empty()) return;
    if (std::all_of(sites_.begin(), sites_.end(), [&](std::string_view site) { return site == sites_.front(); })) {
        history_->append(sites_.front(), records_);  // the usual case: one site per batch
    } else {
        order_.resize(records_.size());
        for (std::size_t i = 0; i < order_.size(); ++i)
            order_[i] = i;
        std::stable_sort(order_.begin(), order_.end(),
                         [&](std::size_t a, std::size_t b) { return sites_[a] < sites_[b]; });
        for (std::size_t i = 0; i < order_.size();) {
            const std::string_view site = sites_[order_[i]];
            group_.clear();
            for (; i < order_.size() && sites_[order_[i]] == site; ++i)
                group_.push_back(records_[order_[i]]);
            history_->append(site, group_);
        }
    }
    history_appended_->add(records_.size());
}

void HubSink::stop() {
    if (server_) server_->stop();
}

}  // namespace hubflow::signalr
