#pragma once
// The history endpoints' request language, as pure functions over bytes (no I/O, no clock of their own), so
// that they can be tested and fuzzed alone:
//   GET /v1.1/sites/{site_id}/entries|incidents?$filter=...&$orderby=...&$top=N&user_id=U&$continuationToken=T
// The OData subset KS clients use: $filter on utc_date_time with ge, gt, le, lt (and user_id eq '...') joined by
// `and`, parentheses allowed; literals 2026-12-06T10:00:00Z (fractions and +hh:mm offsets too) or
// DateTime'2026-12-06T10:00:00Z'; $orderby=utc_date_time [asc|desc]; $top 1..1000. Anything else is an error
// naming the part that is not supported.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/roles.h"
#include "history/history_store.h"

namespace hubflow::signalr {

// Milliseconds since the epoch of an RFC 3339 date-time (Z or an offset; fraction optional), rounded down;
// `exact` says whether no sub-millisecond fraction was lost. Unset when the text is not one.
struct ParsedTime {
    std::int64_t ms = 0;
    bool exact = true;
};
std::optional<ParsedTime> parse_utc_time(std::string_view text);

// The event time of a KS event's `utc_date_time`, or unset.
std::optional<std::int64_t> event_time_ms(std::string_view payload);

struct HistoryFilter {
    std::optional<std::int64_t> from_ms;  // inclusive
    std::optional<std::int64_t> to_ms;    // inclusive
    std::optional<std::string> user;
    bool operator==(const HistoryFilter&) const = default;
};

struct FilterResult {
    std::string error;  // empty = ok
    HistoryFilter filter;
};
FilterResult parse_filter(std::string_view text);

// A request target's path: /v1.1/sites/{site}/entries or /incidents (any case, trailing slash allowed). The site
// is taken percent-decoded. Unset when the path is not a history path.
struct HistoryTarget {
    std::string site;
    Hub hub = Hub::entries;
};
std::optional<HistoryTarget> parse_history_path(std::string_view decoded_path);
// True for any path under /v1.1/ (so that other history-like paths get a 404 from the history, not the hubs).
bool is_history_path(std::string_view decoded_path);

struct HistoryQuery {
    HistoryFilter filter;     // $filter and user_id together
    bool has_filter = false;  // $filter or user_id given
    bool descending = false;
    bool has_orderby = false;
    std::size_t top = 100;
    std::optional<std::string> continuation;  // $continuationToken
    std::optional<std::string> access_token;
};

struct QueryResult {
    std::string error;  // empty = ok
    HistoryQuery query;
};
// `raw` is the query string after '?', still percent-encoded.
QueryResult parse_history_query(std::string_view raw);

// The state a continuation token carries: the query, the position and the snapshot, with an expiry and a MAC,
// so that a token needs no state on the server (and survives a restart of it).
struct ContinuationState {
    std::string site;
    Hub hub = Hub::entries;
    HistoryFilter filter;
    bool descending = false;
    std::uint64_t snapshot = 0;
    HistoryPosition after;
    std::int64_t expires_s = 0;  // Unix seconds
};

// Compact JSON text (the body carries it as an escaped JSON string; clients send it back unescaped).
std::string encode_continuation(const ContinuationState& state, std::string_view key);

struct ContinuationResult {
    std::string error;  // empty = ok
    ContinuationState state;
};
ContinuationResult decode_continuation(std::string_view text, std::string_view key, std::int64_t now_s);

// The response body: {"items":[...],"continuation_token":"..."} (no token member when `token` is empty). A
// payload that is not a JSON object or array is given as a JSON string.
std::string history_body(const std::vector<std::string>& items, const std::string& token);

}  // namespace hubflow::signalr
