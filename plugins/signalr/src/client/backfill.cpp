#include "client/backfill.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include "client/http_request.h"
#include "hubflow/backoff.h"
#include "hubflow/json.h"

namespace hubflow::signalr {

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* state_file = "signalr-backfill.json";
// Ids kept per site for telling live from backfilled events apart; beyond this the oldest go (counted).
constexpr std::size_t max_seen_ids = 500'000;
// Malformed answers and refused tokens retried before a gap is given up as unrecoverable.
constexpr int max_malformed = 5;
constexpr int max_unauthorized = 3;
constexpr milliseconds max_retry_after{600'000};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::string time_text(std::int64_t s) {
    return format_utc(std::chrono::system_clock::time_point(std::chrono::seconds(s)));
}

std::int64_t wall_seconds(const Context& c) {
    return std::chrono::duration_cast<std::chrono::seconds>(c.clock().now().time_since_epoch()).count();
}

// A short, single-line excerpt of an answer's body for a log line.
std::string excerpt(std::string_view body) {
    std::string out(body.substr(0, 200));
    for (char& ch : out)
        if (ch == '\r' || ch == '\n' || ch == '\t') ch = ' ';
    if (body.size() > 200) out += "...";
    return out;
}

void skip_ws(const char*& p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        ++p;
}

// Moves `p` past one JSON value; false for malformed text. Nesting is bounded so a hostile page cannot
// exhaust the stack.
bool skip_value(const char*& p, const char* end, int depth) {
    skip_ws(p, end);
    if (p >= end || depth > 64) return false;
    const char c = *p;
    if (c == '"') return skip_json_string(p, end);
    if (c == '{' || c == '[') {
        const char close = c == '{' ? '}' : ']';
        ++p;
        skip_ws(p, end);
        if (p < end && *p == close) return ++p, true;
        for (;;) {
            if (c == '{') {
                skip_ws(p, end);
                if (p >= end || *p != '"' || !skip_json_string(p, end)) return false;
                skip_ws(p, end);
                if (p >= end || *p != ':') return false;
                ++p;
            }
            if (!skip_value(p, end, depth + 1)) return false;
            skip_ws(p, end);
            if (p >= end) return false;
            if (*p == ',') {
                ++p;
                continue;
            }
            if (*p != close) return false;
            ++p;
            return true;
        }
    }
    for (const std::string_view word : {"true", "false", "null"})
        if (static_cast<std::size_t>(end - p) >= word.size() && std::string_view(p, word.size()) == word) {
            p += word.size();
            return true;
        }
    const char* start = p;
    if (p < end && *p == '-') ++p;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
        ++p;
    return p > start && (p[-1] >= '0' && p[-1] <= '9');
}

}  // namespace

std::optional<std::int64_t> parse_utc_seconds(std::string_view t) {
    auto digits = [&](std::size_t at, std::size_t n, int& out) {
        if (at + n > t.size()) return false;
        out = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (t[i] < '0' || t[i] > '9') return false;
            out = out * 10 + (t[i] - '0');
        }
        return true;
    };
    int y, mo, d, h, mi, s;
    if (!digits(0, 4, y) || t.size() < 19 || t[4] != '-' || !digits(5, 2, mo) || t[7] != '-' || !digits(8, 2, d) ||
        (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !digits(11, 2, h) || t[13] != ':' || !digits(14, 2, mi) ||
        t[16] != ':' || !digits(17, 2, s))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
    std::size_t at = 19;
    if (at < t.size() && t[at] == '.') {
        ++at;
        const std::size_t first = at;
        while (at < t.size() && t[at] >= '0' && t[at] <= '9')
            ++at;
        if (at == first) return std::nullopt;
    }
    std::int64_t offset = 0;
    if (at == t.size()) {
        // No zone: KS writes utc_date_time with Z; a bare time in that field is read as UTC.
    } else if ((t[at] == 'Z' || t[at] == 'z') && at + 1 == t.size()) {
    } else if ((t[at] == '+' || t[at] == '-') && at + 6 == t.size() && t[at + 3] == ':') {
        int oh, om;
        if (!digits(at + 1, 2, oh) || !digits(at + 4, 2, om)) return std::nullopt;
        offset = (t[at] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    } else {
        return std::nullopt;
    }
    return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + s -
           offset;
}

bool parse_history_page(std::string_view body, std::vector<std::string_view>& items, std::optional<std::string>& token,
                        std::string& error) {
    items.clear();
    token.reset();
    const char* p = body.data();
    const char* const end = p + body.size();
    skip_ws(p, end);
    if (p >= end || *p != '{') {
        error = body.empty() ? "the body is empty" : "the body is not a JSON object";
        return false;
    }
    ++p;
    bool has_items = false;
    std::string name;
    skip_ws(p, end);
    if (p < end && *p == '}') {
        ++p;
    } else {
        for (;;) {
            skip_ws(p, end);
            name.clear();
            if (p >= end || *p != '"' || !read_json_string(p, end, name)) {
                error = "the body is not valid JSON (at byte " + std::to_string(p - body.data()) + ")";
                return false;
            }
            skip_ws(p, end);
            if (p >= end || *p != ':') {
                error = "the body is not valid JSON (at byte " + std::to_string(p - body.data()) + ")";
                return false;
            }
            ++p;
            skip_ws(p, end);
            if (name == "items") {
                if (p >= end || *p != '[') {
                    error = "`items` is not an array";
                    return false;
                }
                has_items = true;
                items.clear();
                ++p;
                skip_ws(p, end);
                if (p < end && *p == ']') {
                    ++p;
                } else {
                    for (;;) {
                        skip_ws(p, end);
                        const char* start = p;
                        if (p >= end || *p != '{') {
                            error = "item " + std::to_string(items.size()) + " of `items` is not an object";
                            return false;
                        }
                        if (!skip_value(p, end, 1)) {
                            error = "item " + std::to_string(items.size()) + " of `items` is not valid JSON";
                            return false;
                        }
                        items.emplace_back(start, static_cast<std::size_t>(p - start));
                        skip_ws(p, end);
                        if (p < end && *p == ',') {
                            ++p;
                            continue;
                        }
                        if (p < end && *p == ']') {
                            ++p;
                            break;
                        }
                        error = "`items` is not valid JSON (at byte " + std::to_string(p - body.data()) + ")";
                        return false;
                    }
                }
            } else if (name == "continuation_token") {
                if (p < end && *p == '"') {
                    std::string text;
                    if (!read_json_string(p, end, text)) {
                        error = "`continuation_token` is not a valid JSON string";
                        return false;
                    }
                    token = std::move(text);
                } else if (static_cast<std::size_t>(end - p) >= 4 && std::string_view(p, 4) == "null") {
                    p += 4;
                    token.reset();
                } else {
                    error = "`continuation_token` is neither a string nor null";
                    return false;
                }
            } else if (!skip_value(p, end, 1)) {
                error = "the value of `" + name + "` is not valid JSON";
                return false;
            }
            skip_ws(p, end);
            if (p < end && *p == ',') {
                ++p;
                continue;
            }
            if (p < end && *p == '}') {
                ++p;
                break;
            }
            error = "the body is not valid JSON (at byte " + std::to_string(p - body.data()) + ")";
            return false;
        }
    }
    skip_ws(p, end);
    if (p != end) {
        error = "text after the JSON object (at byte " + std::to_string(p - body.data()) + ")";
        return false;
    }
    if (!has_items) {
        error = "the body has no `items`";
        return false;
    }
    if (token && token->empty()) {
        error = "`continuation_token` is an empty string";
        return false;
    }
    return true;
}

// ---- state ------------------------------------------------------------------------------------------------

struct Backfill::Site {
    HubEndpoint ep;
    std::string key;   // the URL without its token: names the site in the state file and the log
    std::string hub;   // entries or incidents
    std::string kind;  // metadata kind
    std::string user_id;
    bool open = false;
    bool seen_since_open = false;
    steady::time_point opened_at{};
    std::int64_t opened_wall = 0;
    std::optional<std::int64_t> last_live;       // the newest live event's time, read
    std::optional<std::int64_t> mark;            // the newest live event's time finished downstream
    std::optional<std::int64_t> emitted;         // the newest event time emitted (saved, to count replays later)
    std::optional<std::int64_t> emitted_before;  // `emitted` as the previous run left it
    std::optional<std::int64_t> saved_emitted;   // `emitted` as the state file has it
    std::optional<std::int64_t> emitted_exact;   // `emitted` without the live events' write-ahead margin
    std::multimap<std::int64_t, std::string> seen_by_time;
    std::unordered_map<std::string, std::int64_t> seen;  // id -> event time
    // Ids of the live events finished downstream in the last overlap_s before the mark: a restart's gap starts
    // overlap_s before the mark and must not emit them again.
    std::multimap<std::int64_t, std::string> finished;
};

struct Backfill::Gap {
    enum class State { awaiting_end, waiting, requesting, done };
    std::uint64_t id = 0;
    std::size_t site = 0;
    std::int64_t start = 0;  // as the gap began, before a cut to max_gap_s
    std::int64_t from = 0;
    std::optional<std::int64_t> to;
    std::int64_t query_from = 0;  // where the current query starts (from, or the cursor after a refused token)
    std::string token;            // the next page's continuation token; empty for the first page
    std::int64_t cursor = 0;      // the newest event time emitted from the history
    std::string cause, lost;      // lost: why part of the gap cannot be recovered
    State state = State::awaiting_end;
    steady::time_point due{};
    std::uint64_t attempt = 0;
    Backoff backoff;
    int malformed = 0, unauthorized = 0;
    std::uint64_t recovered = 0, duplicates = 0, replayed = 0, pages = 0;
    bool restart = false;  // the gap a start opens from the last live event finished downstream
    // The newest event time emitted from this gap, on disk before the page goes out; what the previous run
    // had emitted of a resumed gap beyond its finished progress may repeat, and is counted.
    std::optional<std::int64_t> ahead, saved_ahead, replay_until;
    // Progress known to have ended finished downstream: what the state file says.
    std::string durable_token;
    std::int64_t durable_query_from = 0, durable_cursor = 0;
    std::uint64_t durable_recovered = 0;

    Gap(std::uint64_t seed) : backoff(milliseconds(500), milliseconds(30'000), seed) {}
};

struct Backfill::Effect {
    enum class What { mark, progress, done };
    What what = What::mark;
    std::size_t site = 0;
    std::uint64_t gap = 0;
    std::int64_t time = 0;  // mark: the site's newest live event; progress: the cursor
    std::string token;
    std::int64_t query_from = 0;
    std::uint64_t recovered = 0;
    std::vector<std::pair<std::int64_t, std::string>> ids;  // mark: the batch's live events of the site
};

struct Backfill::InFlight {
    std::uint64_t number = 0;  // 0: nothing emitted, settled once everything before it is
    std::vector<Effect> effects;
};

struct Backfill::Page {
    HttpReply reply;
    std::string token_error;
};

Backfill::Backfill(const BackfillSettings& settings, const std::vector<HubEndpoint>& endpoints, const std::string& kind,
                   Context& context, Poco::Net::Context::Ptr tls, BlockingWorker& token_worker, TokenProvider& tokens)
    : s_(settings),
      context_(context),
      log_(context.log()),
      tls_(std::move(tls)),
      token_worker_(token_worker),
      tokens_(tokens),
      source_name_(context.node_name() + ".backfill"),
      random_(std::random_device{}()),
      worker_(std::make_unique<BlockingWorker>()) {
    while (!s_.url.empty() && s_.url.back() == '/')
        s_.url.pop_back();
    for (const auto& ep : endpoints) {
        auto site = std::make_unique<Site>();
        site->ep = ep;
        site->key = ep.display;
        site->hub = ep.kind == "incident" ? "incidents" : "entries";
        site->kind = kind.empty() ? ep.kind : kind;
        try {
            for (const auto& [name, value] : Poco::URI("http://h" + ep.target).getQueryParameters())
                if (name == "user_id") site->user_id = value;
        } catch (const Poco::Exception&) {
        }
        sites_.push_back(std::move(site));
    }
    Metrics& m = context.metrics();
    requests_ = &m.counter("backfill_requests", "history pages asked for");
    retries_ = &m.counter("backfill_retries", "history requests retried (429, 503, network, malformed answers)");
    events_ = &m.counter("backfill_events", "events recovered from the history and emitted");
    duplicates_ = &m.counter("backfill_duplicates_skipped", "history events already received live, not emitted");
    replayed_ = &m.counter("backfill_replayed",
                           "backfilled events at or before the newest one emitted before a restart: possible "
                           "duplicates of events that were in flight when the previous run ended");
    recovered_gaps_ = &m.counter("backfill_gaps_recovered", "gaps filled from the history");
    partial_gaps_ = &m.counter("backfill_gaps_partial", "gaps longer than max_gap_s: filled in part");
    unrecoverable_gaps_ = &m.counter("backfill_gaps_unrecoverable", "gaps the history could not fill");
    evicted_ = &m.counter("backfill_ids_evicted", "ids dropped from the duplicate check's bounded memory");
    open_gaps_ = &m.gauge("backfill_gaps_open", "gaps awaiting their end, settling or being filled");
    tracking_ = s_.outcomes && s_.outcomes->tracking;
}

Backfill::~Backfill() = default;

bool Backfill::pending(std::size_t site) const {
    return std::any_of(gaps_.begin(), gaps_.end(),
                       [&](const auto& g) { return g->site == site && g->state != Gap::State::done; });
}

Backfill::Gap* Backfill::find(std::uint64_t id) {
    for (auto& g : gaps_)
        if (g->id == id) return g.get();
    return nullptr;
}

// ---- gaps -------------------------------------------------------------------------------------------------

void Backfill::new_gap(std::size_t site, std::int64_t from, std::string cause) {
    auto g = std::make_unique<Gap>((std::uint64_t{random_()} << 1) | 1);
    g->id = next_gap_id_++;
    g->site = site;
    g->start = g->from = g->query_from = g->cursor = g->durable_query_from = g->durable_cursor = from;
    g->cause = std::move(cause);
    open_gaps_->add(1);
    gaps_.push_back(std::move(g));
    dirty_ = true;
}

void Backfill::set_end(Gap& g, std::int64_t end_s, steady::time_point query_at) {
    if (end_s < g.from) end_s = g.from;
    g.to = end_s;
    if (end_s - g.from > s_.max_gap_s) {
        const std::int64_t cut = end_s - s_.max_gap_s;
        g.lost = "the gap is " + std::to_string(end_s - g.from) + " s long, longer than max_gap_s " +
                 std::to_string(s_.max_gap_s) + ": events from " + time_text(g.from) + " to " + time_text(cut) +
                 " are not recovered";
        g.from = cut;
        g.query_from = std::max(g.query_from, cut);
        g.cursor = std::max(g.cursor, cut);
        g.durable_query_from = std::max(g.durable_query_from, cut);
        g.durable_cursor = std::max(g.durable_cursor, cut);
        partial_gaps_->add();
    }
    g.state = Gap::State::waiting;
    g.due = query_at;
    dirty_ = true;
}

void Backfill::start() {
    started_ = true;
    state_path_ = (context_.data_dir() / state_file).string();
    load();
    const std::int64_t now_s = wall_seconds(context_);
    for (std::size_t i = 0; i < sites_.size(); ++i) {
        Site& site = *sites_[i];
        std::optional<std::int64_t> from;
        std::string cause;
        if (site.mark) {
            from = *site.mark - s_.overlap_s;
            cause = "restart: events after " + time_text(*site.mark) + ", the last one finished downstream";
        } else if (s_.initial_s > 0) {
            from = now_s - s_.initial_s;
            cause = "start: the last " + std::to_string(s_.initial_s) + " s (initial_s)";
        }
        // A gap the previous run had not found the end of is covered by this start's gap, or becomes it.
        for (auto it = gaps_.begin(); it != gaps_.end();) {
            Gap& g = **it;
            if (g.site != i || g.to) {
                ++it;
                continue;
            }
            if (!from || g.from < *from) {
                from = g.from;
                cause = "restart during a gap: " + g.cause;
            }
            open_gaps_->add(-1);
            it = gaps_.erase(it);
        }
        if (from) {
            new_gap(i, *from, cause);
            gaps_.back()->restart = site.mark.has_value();
        }
    }
    for (const auto& g : gaps_)
        if (g->to && g->state == Gap::State::waiting)
            log_.info("resuming the backfill of ", sites_[g->site]->key, " from ", time_text(g->from), " to ",
                      time_text(*g->to), " at ", g->token.empty() ? "its first page" : "the page it had reached");
}

void Backfill::on_open(std::size_t site) {
    Site& s = *sites_[site];
    s.open = true;
    s.seen_since_open = false;
    s.opened_at = steady::now();
    s.opened_wall = wall_seconds(context_);
}

void Backfill::on_disconnected(std::size_t site, const std::string& cause) {
    Site& s = *sites_[site];
    const bool was_open = s.open;
    s.open = false;
    if (!started_) return;
    // A gap still waiting for its end just waits longer.
    for (const auto& g : gaps_)
        if (g->site == site && g->state == Gap::State::awaiting_end) return;
    // From the last event read; a connection that was open without an event missed nothing before it opened.
    std::optional<std::int64_t> last = s.last_live;
    if (was_open && !s.seen_since_open) last = s.opened_wall;
    if (!last) return;  // never connected and nothing to backfill from (no state, initial_s 0)
    new_gap(site, *last - s_.overlap_s, "disconnected: " + cause);
}

void Backfill::on_live(std::size_t site, std::string_view utc_date_time, std::string_view id) {
    Site& s = *sites_[site];
    std::int64_t t;
    if (auto parsed = parse_utc_seconds(utc_date_time))
        t = *parsed;
    else
        t = s.last_live.value_or(wall_seconds(context_));
    s.last_live = std::max(s.last_live.value_or(t), t);
    if (!id.empty()) remember(site, t, id);
    if (s.seen_since_open) return;
    s.seen_since_open = true;
    const auto now = steady::now();
    for (auto& g : gaps_)
        if (g->site == site && g->state == Gap::State::awaiting_end) set_end(*g, t + s_.overlap_s, now + s_.settle);
}

void Backfill::remember(std::size_t site, std::int64_t t, std::string_view id) {
    Site& s = *sites_[site];
    auto [it, added] = s.seen.emplace(std::string(id), t);
    if (!added) return;
    s.seen_by_time.emplace(t, it->first);
    prune(site);
}

// Keeps the ids a gap may still meet in the history: the last overlap_s of live events (a drop's gap starts
// there) and, for each gap, everything from where its query stands (pages come in time order).
void Backfill::prune(std::size_t site) {
    Site& s = *sites_[site];
    std::int64_t keep_from = s.last_live ? *s.last_live - s_.overlap_s : std::numeric_limits<std::int64_t>::max();
    for (const auto& g : gaps_) {
        if (g->site != site || g->state == Gap::State::done) continue;
        keep_from = std::min(keep_from, g->state == Gap::State::awaiting_end ? g->from : g->cursor);
    }
    while (!s.seen_by_time.empty() &&
           (s.seen_by_time.begin()->first < keep_from || s.seen_by_time.size() > max_seen_ids)) {
        if (s.seen_by_time.begin()->first >= keep_from) evicted_->add();
        s.seen.erase(s.seen_by_time.begin()->second);
        s.seen_by_time.erase(s.seen_by_time.begin());
    }
}

steady::time_point Backfill::next_wake() const {
    auto next = steady::time_point::max();
    for (const auto& g : gaps_) {
        const Site& s = *sites_[g->site];
        if (g->state == Gap::State::waiting)
            next = std::min(next, std::max(g->due, next_slot_));
        else if (g->state == Gap::State::awaiting_end && s.open && !s.seen_since_open)
            next = std::min(next, s.opened_at + s_.settle);
    }
    if (dirty_) next = std::min(next, next_save_);
    return next;
}

void Backfill::poll(steady::time_point now) {
    settle_outcomes();
    for (auto& g : gaps_) {
        const Site& s = *sites_[g->site];
        // A quiet hub: no event within settle_ms of the connect, so the gap ends where the connection began.
        if (g->state == Gap::State::awaiting_end && s.open && !s.seen_since_open && now >= s.opened_at + s_.settle)
            set_end(*g, s.opened_wall + s_.overlap_s, now);
    }
    for (auto& g : gaps_) {
        if (g->state != Gap::State::waiting || now < g->due) continue;
        if (now < next_slot_) break;
        request(*g, now);
    }
    if (dirty_ && now >= next_save_) {
        save();
        next_save_ = now + std::chrono::seconds(1);
    }
}

std::string Backfill::history_url(const Gap& g) const {
    const Site& s = *sites_[g.site];
    auto enc = [](const std::string& text) {
        std::string out;
        Poco::URI::encode(text, "!#$&'()*+,/:;=?@[] ", out);
        return out;
    };
    std::string url = s_.url + "/v1.1/sites/" + enc(s.ep.site_id) + "/" + s.hub + "?$filter=" +
                      enc("utc_date_time ge " + time_text(g.query_from) + " and utc_date_time le " + time_text(*g.to)) +
                      "&$orderby=" + enc("utc_date_time asc") + "&$top=" + std::to_string(s_.page_size);
    if (!s.user_id.empty()) url += "&user_id=" + enc(s.user_id);
    return url;
}

void Backfill::request(Gap& g, steady::time_point now) {
    g.state = Gap::State::requesting;
    const std::uint64_t attempt = ++g.attempt;
    const auto interval = std::chrono::duration_cast<steady::duration>(
        std::chrono::duration<double>(1.0 / std::max(s_.max_requests_per_s, 0.001)));
    next_slot_ = std::max(now, next_slot_) + interval;
    HttpRequest r;
    r.url = history_url(g);
    r.headers.emplace_back("Accept", "application/json");
    r.headers.emplace_back("User-Agent", "hubflow");
    if (!g.token.empty()) r.headers.emplace_back("CLP-Continuation-Token", g.token);
    r.timeout = s_.request_timeout;
    r.max_body = s_.max_page_bytes;
    auto page = std::make_shared<Page>();
    auto call = std::make_shared<HttpRequest>(std::move(r));
    // The token comes from the connections' worker, the only thread that touches the token provider; the page
    // is asked for on this backfill's own worker, so a slow history never holds up a reconnect.
    token_worker_.post(
        [&tokens = tokens_, page, call] {
            try {
                const std::string token = tokens.current();
                if (!token.empty()) call->headers.emplace_back("Authorization", "Bearer " + token);
            } catch (const std::exception& e) {
                page->token_error = e.what();
            }
        },
        [this, page, call, id = g.id, attempt] {
            if (!page->token_error.empty()) return on_reply(id, attempt, *page);
            worker_->post([page, call, tls = tls_] { page->reply = http_request(*call, tls); },
                          [this, page, id, attempt] { on_reply(id, attempt, *page); });
        });
}

void Backfill::retry(Gap& g, const std::string& why, milliseconds delay, bool count) {
    retries_->add();
    if (count) ++g.malformed;
    g.state = Gap::State::waiting;
    g.due = steady::now() + delay;
    const Site& s = *sites_[g.site];
    log_.warn("backfill of ", s.key, " (", time_text(g.from), " to ", time_text(*g.to), "): ", why, "; retrying in ",
              delay.count(), " ms at the same page");
}

void Backfill::on_reply(std::uint64_t gap_id, std::uint64_t attempt, Page& page) {
    Gap* gp = find(gap_id);
    if (!gp || gp->state != Gap::State::requesting || gp->attempt != attempt) return;
    Gap& g = *gp;
    if (!page.token_error.empty()) return retry(g, "no token: " + page.token_error, g.backoff.next(), false);
    requests_->add();
    const HttpReply& r = page.reply;
    const int status = r.status;
    const std::string what = "HTTP " + std::to_string(status) + (r.body.empty() ? "" : " (" + excerpt(r.body) + ")");
    if (status == 0) return retry(g, "history request failed: " + r.error, g.backoff.next(), false);
    if (status == 200) {
        if (r.truncated) return finish(g, "a page is larger than " + std::to_string(s_.max_page_bytes) + " bytes");
        return on_page(g, r.body);
    }
    if (status == 429 || status == 503) {
        milliseconds delay = g.backoff.next();
        std::string told;
        if (!r.retry_after.empty()) {
            std::int64_t seconds = -1;
            try {
                std::size_t used = 0;
                seconds = std::stoll(r.retry_after, &used);
                if (used != r.retry_after.size()) seconds = -1;
            } catch (const std::exception&) {
            }
            if (seconds < 0) {
                try {
                    int tz = 0;
                    Poco::DateTime at =
                        Poco::DateTimeParser::parse(Poco::DateTimeFormat::HTTP_FORMAT, r.retry_after, tz);
                    seconds = std::max<std::int64_t>(
                        0, (at.timestamp().epochMicroseconds() / 1'000'000) - wall_seconds(context_));
                } catch (const Poco::Exception&) {
                }
            }
            if (seconds >= 0) {
                delay = std::min(milliseconds(seconds * 1000), max_retry_after);
                told = ", Retry-After " + r.retry_after;
            }
        }
        return retry(g, "the history answered HTTP " + std::to_string(status) + told, delay, false);
    }
    if (status >= 500) return retry(g, "the history answered " + what, g.backoff.next(), false);
    if (status == 400 && !g.token.empty()) {
        // KS tokens expire; a new query from the newest event already emitted picks up where the old one was.
        log_.warn("backfill of ", sites_[g.site]->key, ": the history no longer accepts the continuation token (", what,
                  "); restarting the query from ", time_text(g.cursor));
        retries_->add();
        g.token.clear();
        g.query_from = g.cursor;
        g.state = Gap::State::waiting;
        g.due = steady::now();
        return;
    }
    if (status == 401) {
        if (++g.unauthorized > max_unauthorized)
            return finish(g,
                          "the history refused the token " + std::to_string(g.unauthorized) + " times (" + what + ")");
        token_worker_.post([&tokens = tokens_] { tokens.invalidate(); });
        return retry(g, "the history refused the token (" + what + "); a new token is fetched", g.backoff.next(),
                     false);
    }
    if (status == 403)
        return finish(g, "the history answered " + what + ": the token lacks the scope or the site role for it");
    if (status == 404) return finish(g, "the history answered " + what + ": check backfill.url and the site id");
    finish(g, "the history answered " + what);
}

void Backfill::on_page(Gap& g, const std::string& body) {
    std::vector<std::string_view> items;
    std::optional<std::string> next;
    std::string error;
    if (!parse_history_page(body, items, next, error)) {
        if (g.malformed + 1 >= max_malformed)
            return finish(g, "the history's answers are malformed (" + error + ", " + std::to_string(g.malformed + 1) +
                                 " times): " + excerpt(body));
        return retry(g, "malformed history answer: " + error, g.backoff.next(), true);
    }
    g.malformed = 0;
    g.unauthorized = 0;
    g.backoff.reset();
    ++g.pages;
    Site& s = *sites_[g.site];
    struct Found {
        std::int64_t t;
        std::string_view text;
        std::string id, user_id;
    };
    std::vector<Found> found;
    found.reserve(items.size());
    std::string when;
    for (std::string_view item : items) {
        Found f{0, item, {}, {}};
        when.clear();
        const JsonMember members[] = {{"id", &f.id}, {"user_id", &f.user_id}, {"utc_date_time", &when}};
        find_json_members(item, members);
        auto t = parse_utc_seconds(when);
        f.t = t.value_or(g.cursor);
        // Only what the query asked for: anything later was received live after the gap, or is another gap's.
        if (t && (*t < g.query_from || *t > *g.to)) continue;
        if (!f.id.empty() && s.seen.count(f.id)) {
            ++g.duplicates;
            duplicates_->add();
            continue;
        }
        found.push_back(std::move(f));
    }
    std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.t < b.t; });
    EventBatch batch = context_.reusable_batch(found.size());
    const auto now = context_.clock().now();
    for (std::size_t i = 0; i < found.size(); ++i) {
        Found& f = found[i];
        Event& e = batch[i];
        e.payload.assign(f.text);
        e.meta.kind = s.kind;
        e.meta.site_id = s.ep.site_id;
        e.meta.user_id = std::move(f.user_id);
        e.meta.id = f.id;
        e.meta.source = source_name_;
        e.meta.received_at = now;
        if (!f.id.empty()) remember(g.site, f.t, f.id);
        g.cursor = std::max(g.cursor, f.t);
        // Live events come in time order and the mark passes only batches that all ended finished, so what the
        // last run may have emitted without it being finished lies between the mark and what it wrote ahead.
        if ((g.restart && s.emitted_before && f.t >= g.start + s_.overlap_s && f.t <= *s.emitted_before) ||
            (g.replay_until && f.t <= *g.replay_until)) {
            ++g.replayed;
            replayed_->add();
        }
    }
    g.recovered += found.size();
    events_->add(found.size());
    g.token = next.value_or("");
    Effect progress;
    progress.what = Effect::What::progress;
    progress.gap = g.id;
    progress.token = g.token;
    progress.query_from = g.query_from;
    progress.time = g.cursor;
    progress.recovered = g.recovered;
    if (!found.empty()) {
        g.ahead = std::max(g.ahead.value_or(found.back().t), found.back().t);
        if (!g.saved_ahead || *g.saved_ahead < *g.ahead) save();
    }
    emit_tracked(std::move(batch), {progress});
    if (next) {
        g.state = Gap::State::waiting;
        g.due = steady::now();
        return;
    }
    finish(g, "");
}

void Backfill::finish(Gap& g, const std::string& unrecoverable) {
    g.state = Gap::State::done;
    open_gaps_->add(-1);
    const Site& s = *sites_[g.site];
    const std::string span =
        " from " + time_text(g.from) + " to " + (g.to ? time_text(*g.to) : "?") + " (" + g.cause + ")";
    std::string detail;
    if (g.duplicates) detail += ", " + std::to_string(g.duplicates) + " already received live";
    if (g.replayed)
        detail += "; " + std::to_string(g.replayed) +
                  " of them at or before the newest event emitted before the restart (possible duplicates of what was "
                  "in flight)";
    if (unrecoverable.empty()) {
        if (g.lost.empty()) recovered_gaps_->add();
        log_.info("gap in ", s.key, span, ": recovered ", g.recovered, " events from the history in ", g.pages,
                  " pages", detail, g.lost.empty() ? "" : "; partly lost: " + g.lost);
    } else {
        unrecoverable_gaps_->add();
        log_.error("gap in ", s.key, span, ": unrecoverable: ", unrecoverable, "; ", g.recovered,
                   " events recovered before that", detail, g.lost.empty() ? "" : "; also partly lost: " + g.lost);
    }
    EventBatch batch;
    const std::string reason = unrecoverable.empty() ? g.lost : unrecoverable + (g.lost.empty() ? "" : "; " + g.lost);
    if (s_.emit_gap_events && !reason.empty()) {
        std::string payload = R"({"kind":"gap","site_id":)";
        append_json_string(payload, s.ep.site_id);
        payload += R"(,"hub":)";
        append_json_string(payload, s.hub);
        if (!s.user_id.empty()) {
            payload += R"(,"user_id":)";
            append_json_string(payload, s.user_id);
        }
        payload += R"(,"start":)";
        append_json_string(payload, time_text(g.start));
        payload += R"(,"end":)";
        append_json_string(payload, g.to ? time_text(*g.to) : std::string());
        payload += R"(,"reason":)";
        append_json_string(payload, reason);
        payload += R"(,"recovered":)" + std::to_string(g.recovered) + R"(,"unrecoverable":)" +
                   (unrecoverable.empty() ? "false" : "true") + "}";
        batch = context_.reusable_batch(1);
        Event& e = batch[0];
        e.payload = std::move(payload);
        e.meta.kind = "gap";
        e.meta.site_id = s.ep.site_id;
        e.meta.user_id = s.user_id;
        e.meta.id.clear();
        e.meta.source = source_name_;
        e.meta.received_at = context_.clock().now();
    }
    Effect done;
    done.what = Effect::What::done;
    done.gap = g.id;
    emit_tracked(std::move(batch), {done});
}

// ---- delivery tracking ------------------------------------------------------------------------------------

void Backfill::emit_live(EventBatch&& batch, const std::vector<std::size_t>& sites) {
    std::vector<Effect> effects;
    for (std::size_t i = 0; i < sites.size() && i < batch.size(); ++i) {
        Site& s = *sites_[sites[i]];
        if (!s.last_live) continue;
        auto e = std::find_if(effects.begin(), effects.end(), [&](const Effect& x) { return x.site == sites[i]; });
        if (e == effects.end()) {
            e = effects.emplace(effects.end());
            e->what = Effect::What::mark;
            e->site = sites[i];
        }
        e->time = *s.last_live;
        const std::string& id = batch[i].meta.id;
        if (id.empty()) continue;
        if (auto found = s.seen.find(id); found != s.seen.end()) e->ids.emplace_back(found->second, id);
    }
    // Live events come in time order: a couple of seconds ahead covers the next ones without a write each.
    for (const Effect& e : effects) {
        Site& s = *sites_[e.site];
        s.emitted_exact = std::max(s.emitted_exact.value_or(e.time), e.time);
        write_ahead(e.site, e.time + 2);
    }
    emit_tracked(std::move(batch), std::move(effects));
}

// The newest event time emitted is on disk before the events are handed on, so that a restart after a crash
// knows which backfilled events may repeat what was in flight (and counts them).
void Backfill::write_ahead(std::size_t site, std::int64_t t) {
    Site& s = *sites_[site];
    s.emitted = std::max(s.emitted.value_or(t), t);
    if (s.saved_emitted && *s.saved_emitted >= t) return;
    save();
}

void Backfill::emit_tracked(EventBatch&& batch, std::vector<Effect> effects) {
    if (!tracking_) {
        if (!batch.empty()) context_.emit(std::move(batch));
        for (const auto& e : effects)
            apply(e);
        return;
    }
    if (batch.empty()) {
        in_flight_.push_back({0, std::move(effects)});
        settle_outcomes();
        return;
    }
    // Recorded before emit(): the batch may end inside it.
    in_flight_.push_back({++emitted_batches_, std::move(effects)});
    context_.emit(std::move(batch));
}

void Backfill::settle_outcomes() {
    if (!tracking_) return;
    const auto reports = s_.outcomes->take();
    if (frozen_) return;
    for (const auto& [number, outcome] : reports)
        ended_early_.emplace(number, outcome);
    while (!in_flight_.empty()) {
        InFlight& front = in_flight_.front();
        if (front.number != 0) {
            auto it = ended_early_.find(front.number);
            if (it == ended_early_.end()) break;
            const BatchOutcome outcome = it->second;
            ended_early_.erase(it);
            if (outcome == BatchOutcome::lost) {
                log_.error(
                    "events were lost downstream (a node failed or threw): the backfill state stays where it was "
                    "for the rest of this run, so a restart backfills them again");
                frozen_ = true;
                in_flight_.clear();
                ended_early_.clear();
                return;
            }
        }
        for (const auto& e : front.effects)
            apply(e);
        in_flight_.pop_front();
    }
}

void Backfill::apply(const Effect& e) {
    dirty_ = true;
    switch (e.what) {
        case Effect::What::mark: {
            Site& s = *sites_[e.site];
            s.mark = std::max(s.mark.value_or(e.time), e.time);
            for (const auto& [t, id] : e.ids)
                s.finished.emplace(t, id);
            while (s.finished.size() > max_seen_ids)
                s.finished.erase(s.finished.begin());
            return;
        }
        case Effect::What::progress:
            if (Gap* g = find(e.gap)) {
                g->durable_token = e.token;
                g->durable_query_from = e.query_from;
                g->durable_cursor = e.time;
                g->durable_recovered = e.recovered;
            }
            return;
        case Effect::What::done:
            for (auto it = gaps_.begin(); it != gaps_.end(); ++it)
                if ((*it)->id == e.gap) {
                    gaps_.erase(it);
                    return;
                }
            return;
    }
}

// ---- the state file ---------------------------------------------------------------------------------------

void Backfill::save() {
    dirty_ = false;
    if (!started_ || frozen_) return;  // the file keeps the last state known to be safe
    // Finished live ids a restart may meet again: those of the mark's overlap and those inside an open gap.
    for (std::size_t i = 0; i < sites_.size(); ++i) {
        Site& s = *sites_[i];
        for (auto f = s.finished.begin(); f != s.finished.end();) {
            const std::int64_t t = f->first;
            bool keep = s.mark && t >= *s.mark - s_.overlap_s;
            for (const auto& g : gaps_)
                keep = keep || (g->site == i && t >= g->from && (!g->to || t <= *g->to));
            f = keep ? std::next(f) : s.finished.erase(f);
        }
    }
    std::string text = "{\"version\":1,\"sites\":[";
    for (std::size_t i = 0; i < sites_.size(); ++i) {
        const Site& s = *sites_[i];
        if (i) text += ',';
        text += "{\"key\":";
        append_json_string(text, s.key);
        if (s.mark) text += ",\"mark\":" + std::to_string(*s.mark);
        const auto emitted = s.emitted ? s.emitted : s.emitted_before;
        if (emitted) text += ",\"emitted\":" + std::to_string(*emitted);
        text += ",\"finished\":[";
        for (auto f = s.finished.begin(); f != s.finished.end(); ++f) {
            if (f != s.finished.begin()) text += ',';
            text += '[' + std::to_string(f->first) + ',';
            append_json_string(text, f->second);
            text += ']';
        }
        text += ']';
        text += ",\"gaps\":[";
        bool first = true;
        for (const auto& g : gaps_) {
            if (g->site != i) continue;
            if (!first) text += ',';
            first = false;
            text += "{\"from\":" + std::to_string(g->from) + ",\"to\":" + (g->to ? std::to_string(*g->to) : "null") +
                    ",\"query_from\":" + std::to_string(g->durable_query_from) +
                    ",\"cursor\":" + std::to_string(g->durable_cursor) +
                    ",\"recovered\":" + std::to_string(g->durable_recovered) + ",\"token\":";
            append_json_string(text, g->durable_token);
            text += ",\"cause\":";
            append_json_string(text, g->cause);
            text += ",\"lost\":";
            append_json_string(text, g->lost);
            const auto ahead = g->ahead ? g->ahead : g->replay_until;
            if (ahead) text += ",\"ahead\":" + std::to_string(*ahead);
            text += '}';
        }
        text += "]}";
    }
    text += "]}\n";
    // Aside, synced, renamed over: a crash leaves the old file or the new one. 0600: the tokens are the
    // history's and the times say when the site was watched.
    const std::string tmp = state_path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        ::fchmod(fd, 0600);
        std::size_t done = 0;
        while (!err && done < text.size()) {
            ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                err = n < 0 ? errno : EIO;
            else
                done += static_cast<std::size_t>(n);
        }
        if (!err && ::fdatasync(fd) != 0) err = errno;
        ::close(fd);
    }
    if (!err && ::rename(tmp.c_str(), state_path_.c_str()) != 0) err = errno;
    if (err) {
        log_.error("cannot write the backfill state '", state_path_, "': ", std::system_category().message(err));
        dirty_ = true;
        return;
    }
    for (auto& s : sites_)
        s->saved_emitted = s->emitted ? s->emitted : s->emitted_before;
    for (auto& g : gaps_)
        g->saved_ahead = g->ahead;
    if (int dir = ::open(context_.data_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
}

void Backfill::load() {
    std::ifstream in(state_path_);
    if (!in) return;
    std::ostringstream text;
    text << in.rdbuf();
    try {
        auto root = Poco::JSON::Parser().parse(text.str()).extract<Poco::JSON::Object::Ptr>();
        auto list = root->getArray("sites");
        if (!list) throw std::runtime_error("no sites");
        for (std::size_t i = 0; i < list->size(); ++i) {
            auto o = list->getObject(static_cast<unsigned>(i));
            if (!o) continue;
            const std::string key = o->getValue<std::string>("key");
            auto it = std::find_if(sites_.begin(), sites_.end(), [&](const auto& s) { return s->key == key; });
            if (it == sites_.end()) continue;  // a site no longer configured
            const std::size_t site = static_cast<std::size_t>(it - sites_.begin());
            Site& s = **it;
            if (o->has("mark")) s.mark = o->getValue<std::int64_t>("mark");
            if (o->has("emitted")) s.emitted_before = s.saved_emitted = o->getValue<std::int64_t>("emitted");
            // Finished before the stop: the restart's gap skips them (and keeps them until it has passed them).
            if (auto finished = o->getArray("finished"))
                for (std::size_t j = 0; j < finished->size(); ++j) {
                    auto pair = finished->getArray(static_cast<unsigned>(j));
                    if (!pair || pair->size() != 2) continue;
                    const auto t = pair->getElement<std::int64_t>(0);
                    const auto id = pair->getElement<std::string>(1);
                    s.finished.emplace(t, id);
                    if (s.seen.emplace(id, t).second) s.seen_by_time.emplace(t, id);
                }
            auto gaps = o->getArray("gaps");
            for (std::size_t j = 0; gaps && j < gaps->size(); ++j) {
                auto go = gaps->getObject(static_cast<unsigned>(j));
                if (!go) continue;
                new_gap(site, go->getValue<std::int64_t>("from"), go->getValue<std::string>("cause"));
                Gap& g = *gaps_.back();
                g.lost = go->optValue<std::string>("lost", "");
                if (go->has("ahead")) g.replay_until = go->getValue<std::int64_t>("ahead");
                if (go->isNull("to")) continue;
                g.to = go->getValue<std::int64_t>("to");
                g.query_from = g.durable_query_from = go->getValue<std::int64_t>("query_from");
                g.cursor = g.durable_cursor = go->getValue<std::int64_t>("cursor");
                g.recovered = g.durable_recovered = go->getValue<std::uint64_t>("recovered");
                g.token = g.durable_token = go->getValue<std::string>("token");
                g.state = Gap::State::waiting;
                g.due = steady::now();
            }
        }
    } catch (const std::exception& e) {
        log_.error("ignoring the unreadable backfill state '", state_path_, "' (", e.what(),
                   "): backfilling from initial_s as on a first start");
        for (auto& s : sites_)
            s->mark.reset();
        open_gaps_->add(-static_cast<std::int64_t>(gaps_.size()));
        gaps_.clear();
    }
}

void Backfill::stop() {
    // What is still in flight gets a bounded time to end, so that a clean stop leaves nothing to send twice.
    const auto deadline = steady::now() + std::chrono::seconds(5);
    for (;;) {
        settle_outcomes();
        if (!tracking_ || frozen_ || in_flight_.empty()) break;
        if (!s_.outcomes->wait_until(deadline)) break;
    }
    // Everything ended: the next start need count nothing beyond what was really emitted as a possible repeat.
    if (!tracking_ || in_flight_.empty())
        for (auto& s : sites_)
            if (s->emitted_exact) s->emitted = s->emitted_exact;
    if (tracking_ && !frozen_ && !in_flight_.empty())
        log_.warn(in_flight_.size(),
                  " batches had not ended downstream 5 s after the stop: the backfill state stays "
                  "before them, and the next start emits them again");
    if (started_) save();
}

}  // namespace hubflow::signalr
