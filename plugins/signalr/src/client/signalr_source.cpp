#include "client/signalr_source.h"

#include <stdexcept>

namespace hubflow::signalr {

ComponentDescription SignalrSource::describe() {
    using F = FieldType;
    return {
        "signalr",
        ComponentKind::source,
        "consumes SignalR hubs (KS Event Streaming entries and incidents) over WebSockets, reconnecting for ever",
        {{.name = "url",
          .type = F::string,
          .default_json = R"("")",
          .doc = "hub URL (wss://, https://, or ws:// and http:// for local use); {site_id} is replaced by each "
                 "of `sites`"},
         {.name = "urls", .type = F::strings, .default_json = "[]", .doc = "several hub URLs, one connection each"},
         {.name = "sites",
          .type = F::strings,
          .default_json = "[]",
          .doc = "site ids for a `url` holding {site_id}: one connection per site, the KS pattern"},
         {.name = "method",
          .type = F::string,
          .default_json = R"("ReceiveMessage")",
          .doc = "client method the hub invokes with each event (compared case-insensitively)"},
         {.name = "protocol",
          .type = F::string,
          .default_json = R"("json")",
          .doc = "hub protocol asked for in the handshake: json or messagepack (binary frames)"},
         {.name = "kind",
          .type = F::string,
          .default_json = R"("")",
          .doc = "metadata kind; empty = entry for /entries, incident for /incidents"},
         {.name = "auth",
          .type = F::object,
          .doc = "where the access token comes from: token, token_file or oauth2",
          .fields =
              {{.name = "token",
                .type = F::string,
                .default_json = R"("")",
                .doc = "the token itself, e.g. ${KS_TOKEN}"},
               {.name = "token_file",
                .type = F::string,
                .default_json = R"("")",
                .doc = "file holding the token, re-read before every connect"},
               {.name = "oauth2",
                .type = F::object,
                .doc = "an IdentityServer-style token endpoint",
                .fields =
                    {{.name = "token_url",
                      .type = F::string,
                      .required = true,
                      .doc = "e.g. https://.../connect/token"},
                     {.name = "grant",
                      .type = F::string,
                      .default_json = R"("client_credentials")",
                      .doc = "client_credentials or password"},
                     {.name = "client_id", .type = F::string, .required = true, .doc = "OAuth2 client id"},
                     {.name = "client_secret", .type = F::string, .default_json = R"("")", .doc = "client secret"},
                     {.name = "username", .type = F::string, .default_json = R"("")", .doc = "password grant: user"},
                     {.name = "password",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "password grant: password"},
                     {.name = "scope",
                      .type = F::string,
                      .default_json = R"("user_api.full_access")",
                      .doc = "scopes asked for"},
                     {.name = "refresh_at",
                      .type = F::number,
                      .default_json = "0.8",
                      .doc = "share of the token's lifetime after which it is renewed (0.1..0.95)"}}}}},
         {.name = "token_in",
          .type = F::string,
          .default_json = R"("header")",
          .doc = "header (Authorization: Bearer) or query (access_token=)"},
         {.name = "reconnect",
          .type = F::object,
          .doc = "backoff between attempts: exponential with full jitter",
          .fields = {{.name = "initial_ms", .type = F::integer, .default_json = "1000", .doc = "first bound"},
                     {.name = "max_ms", .type = F::integer, .default_json = "30000", .doc = "largest bound"},
                     {.name = "max_attempts",
                      .type = F::integer,
                      .default_json = "0",
                      .doc = "consecutive failed attempts before the source gives up; 0 = never"},
                     {.name = "config_error_ms",
                      .type = F::integer,
                      .default_json = "60000",
                      .doc = "wait after a 403 or 404 (a configuration error, not worth a quick retry)"}}},
         {.name = "backfill",
          .type = F::object,
          .doc = "fill every interval without a connection (and, at start, the time since the last event finished "
                 "downstream) from the KS history; backfilled events have metadata source \"<node>.backfill\"",
          .fields =
              {{.name = "url",
                .type = F::string,
                .required = true,
                .doc = "the history's base: {url}/v1.1/sites/{site_id}/entries or /incidents is asked"},
               {.name = "page_size", .type = F::integer, .default_json = "100", .doc = "$top of each page (1..1000)"},
               {.name = "max_gap_s",
                .type = F::integer,
                .default_json = "86400",
                .doc = "a longer gap is filled for its last max_gap_s and reported as partly lost"},
               {.name = "overlap_s",
                .type = F::integer,
                .default_json = "5",
                .doc = "seconds asked for before the last event and after the first event of the new connection"},
               {.name = "settle_ms",
                .type = F::integer,
                .default_json = "5000",
                .doc = "wait before a gap is asked for, as the history shows events some seconds late"},
               {.name = "initial_s",
                .type = F::integer,
                .default_json = "0",
                .doc = "with no state in the data directory: backfill this many seconds before the first start"},
               {.name = "max_requests_per_s",
                .type = F::number,
                .default_json = "5",
                .doc = "history requests per second, shared by every site of the source"},
               {.name = "emit_gap_events",
                .type = F::boolean,
                .default_json = "false",
                .doc = "also emit an event of kind gap for every gap unrecoverable or partly lost"},
               {.name = "request_timeout_s",
                .type = F::number,
                .default_json = "30",
                .doc = "time allowed for one history page"}}},
         {.name = "ping_interval_s", .type = F::number, .default_json = "15", .doc = "client ping interval"},
         {.name = "server_timeout_s",
          .type = F::number,
          .default_json = "30",
          .doc = "a hub silent this long is considered gone and the connection replaced"},
         {.name = "handshake_timeout_s",
          .type = F::number,
          .default_json = "15",
          .doc = "time allowed for connect, TLS, upgrade and SignalR handshake"},
         {.name = "max_message_bytes",
          .type = F::integer,
          .default_json = "1048576",
          .doc = "largest WebSocket message accepted from the hub"},
         {.name = "tls",
          .type = F::object,
          .doc = "certificate checks for wss:// and https://",
          .fields = {{.name = "ca_file",
                      .type = F::string,
                      .default_json = R"("")",
                      .doc = "extra CA certificates (PEM), besides the system's"},
                     {.name = "insecure",
                      .type = F::boolean,
                      .default_json = "false",
                      .doc = "skip certificate and host name checks (development only; warned at every start)"}}}}};
}

namespace {
std::chrono::milliseconds seconds_of(const ConfigView& c, const char* key) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(c.number_in(key, 0.001, 86400) * 1000));
}
}  // namespace

void SignalrSource::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    std::vector<std::string> urls = config.strings("urls");
    const std::string url = config.string("url");
    const std::vector<std::string> sites = config.strings("sites");
    if (url.empty() == urls.empty()) throw config.error("url", "set exactly one of url and urls");
    if (!url.empty()) {
        const bool templated = url.find("{site_id}") != std::string::npos;
        if (templated && sites.empty()) throw config.error("sites", "the url holds {site_id}: list the sites");
        if (!templated && !sites.empty()) throw config.error("sites", "the url has no {site_id} to put the sites in");
        if (!templated) urls.push_back(url);
        for (const auto& site : sites) {
            std::string u = url;
            for (auto at = u.find("{site_id}"); at != std::string::npos; at = u.find("{site_id}", at + site.size()))
                u.replace(at, 9, site);
            urls.push_back(u);
        }
    }
    const char* url_key = url.empty() ? "urls" : "url";
    for (const auto& u : urls) {
        try {
            settings_.endpoints.push_back(parse_hub_url(u));
        } catch (const std::invalid_argument& e) {
            throw config.error(url_key, "'" + redact_url(u) + "': " + e.what());
        }
    }
    settings_.method = config.string("method");
    if (settings_.method.empty()) throw config.error("method", "must not be empty");
    settings_.protocol = config.one_of("protocol", {"json", "messagepack"}) == "messagepack" ? HubProtocol::messagepack
                                                                                             : HubProtocol::json;
    settings_.kind = config.string("kind");
    settings_.token_in_query = config.one_of("token_in", {"header", "query"}) == "query";
    settings_.ping_interval = seconds_of(config, "ping_interval_s");
    settings_.server_timeout = seconds_of(config, "server_timeout_s");
    settings_.handshake_timeout = seconds_of(config, "handshake_timeout_s");
    if (settings_.server_timeout <= settings_.ping_interval)
        throw config.error("server_timeout_s", "must be longer than ping_interval_s");
    settings_.max_message_bytes =
        static_cast<std::size_t>(config.integer_in("max_message_bytes", 1024, std::int64_t{1} << 30));

    if (config.has("reconnect")) {
        ConfigView r = config.object("reconnect");
        settings_.reconnect_initial = std::chrono::milliseconds(r.integer_in("initial_ms", 1, 3'600'000));
        settings_.reconnect_max = std::chrono::milliseconds(r.integer_in("max_ms", 1, 86'400'000));
        if (settings_.reconnect_max < settings_.reconnect_initial)
            throw r.error("max_ms", "must not be below initial_ms");
        settings_.max_attempts = static_cast<std::uint32_t>(r.integer_in("max_attempts", 0, 1'000'000));
        settings_.config_error_delay = std::chrono::milliseconds(r.integer_in("config_error_ms", 1, 86'400'000));
    }
    if (config.has("tls")) {
        ConfigView tls = config.object("tls");
        settings_.ca_file = tls.string("ca_file");
        settings_.insecure = tls.boolean("insecure");
    }
    if (config.has("backfill")) {
        ConfigView b = config.object("backfill");
        BackfillSettings& bf = settings_.backfill;
        bf.enabled = true;
        bf.url = b.string("url");
        try {
            HubEndpoint base = parse_hub_url(bf.url);
            if (bf.url.rfind("http", 0) != 0) throw std::invalid_argument("the scheme must be https or http");
            if (base.target.find('?') != std::string::npos)
                throw std::invalid_argument("the URL must not have a query");
        } catch (const std::invalid_argument& e) {
            throw b.error("url", "'" + bf.url + "': " + e.what());
        }
        bf.page_size = b.integer_in("page_size", 1, 1000);
        bf.max_gap_s = b.integer_in("max_gap_s", 1, 366LL * 86400);
        bf.overlap_s = b.integer_in("overlap_s", 0, 3600);
        bf.settle = std::chrono::milliseconds(b.integer_in("settle_ms", 0, 3'600'000));
        bf.initial_s = b.integer_in("initial_s", 0, 366LL * 86400);
        bf.max_requests_per_s = b.number_in("max_requests_per_s", 0.01, 1000);
        bf.emit_gap_events = b.boolean("emit_gap_events");
        bf.request_timeout = seconds_of(b, "request_timeout_s");
        // The state advances only past what ended finished downstream.
        bf.outcomes = &outcomes_;
        outcomes_.tracking = context.track_deliveries(outcomes_);
        for (const auto& ep : settings_.endpoints) {
            if (ep.site_id.empty())
                throw b.error("url", "backfill needs the site_id of every hub URL; " + ep.display + " has none");
            if (ep.kind.empty())
                throw b.error("url", "backfill needs hub URLs ending in /entries or /incidents (the history to ask); " +
                                         ep.display + " ends in neither");
        }
    }
    if (config.has("auth")) {
        ConfigView auth = config.object("auth");
        tokens_.token = auth.string("token");
        tokens_.token_file = auth.string("token_file");
        int given = !tokens_.token.empty() + !tokens_.token_file.empty() + auth.has("oauth2");
        if (given > 1) throw config.error("auth", "set one of token, token_file and oauth2");
        if (auth.has("oauth2")) {
            ConfigView o = auth.object("oauth2");
            tokens_.oauth2 = true;
            tokens_.oauth.token_url = o.string("token_url");
            try {
                parse_hub_url(tokens_.oauth.token_url);  // the same scheme and host checks
            } catch (const std::invalid_argument& e) {
                throw o.error("token_url", e.what());
            }
            tokens_.oauth.grant = o.one_of("grant", {"client_credentials", "password"});
            tokens_.oauth.client_id = o.string("client_id");
            tokens_.oauth.client_secret = o.string("client_secret");
            tokens_.oauth.username = o.string("username");
            tokens_.oauth.password = o.string("password");
            tokens_.oauth.scope = o.string("scope");
            tokens_.oauth.refresh_at = o.number_in("refresh_at", 0.1, 0.95);
            if (tokens_.oauth.grant == "password" && tokens_.oauth.username.empty())
                throw o.error("username", "the password grant needs a username");
        }
    }
}

void SignalrSource::run() {
    if (settings_.insecure)
        context_->log().warn(
            "tls.insecure is on: hub certificates and host names are NOT checked; anyone on the "
            "path can read and forge these events. Use it for development only.");
    for (const auto& ep : settings_.endpoints)
        if (!ep.tls && ep.host != "127.0.0.1" && ep.host != "localhost" && ep.host != "::1")
            context_->log().warn(ep.display, " is not encrypted: the token and the events cross the network in clear");
    HubClient client(settings_, tokens_, *context_);
    client.run();
}

}  // namespace hubflow::signalr
