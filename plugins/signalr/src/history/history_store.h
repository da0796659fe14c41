#pragma once
// The hub's history: what it broadcast, per site, kept so that a client that was away can ask for what it
// missed (GET /v1.1/sites/{site}/entries and /incidents, as KS serves them).
//
// The interface is small on purpose so that stores of other kinds (Redis Streams, say) fit behind it: a store
// appends records and answers one page of a query at a time. A position in a query is (event time, seq), where
// seq is the store's own per-site append counter; a query also carries a snapshot (the last seq it may see), so
// a client paging through it while new events arrive sees neither a skip nor a repeat.
//
// Threading: implementations are safe to call from several threads (the sink's thread appends, the hub's front
// loop queries).

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/roles.h"

namespace hubflow::signalr {

// One event to keep. The views need only live for the call.
struct HistoryRecord {
    Hub hub = Hub::entries;
    std::int64_t event_ms = 0;  // the event's utc_date_time, in milliseconds since the epoch
    std::string_view id;
    std::string_view user_id;  // empty = none
    std::string_view payload;  // the event's JSON text, as broadcast
};

// Where a query stands: the last event it returned (or looked at) in its order.
struct HistoryPosition {
    std::int64_t event_ms = 0;
    std::uint64_t seq = 0;
    bool operator==(const HistoryPosition&) const = default;
};

struct HistoryRequest {
    std::string site;
    Hub hub = Hub::entries;
    std::optional<std::string> user;      // only this user's events
    std::optional<std::int64_t> from_ms;  // inclusive bounds on the event time
    std::optional<std::int64_t> to_ms;
    bool descending = false;
    std::optional<HistoryPosition> after;   // resume after this position (exclusive)
    std::optional<std::uint64_t> snapshot;  // unset: a new query, the store takes the newest visible seq
    std::size_t limit = 100;                // items in the page
};

struct HistoryPage {
    std::vector<std::string> items;  // payloads, in the query's order
    std::uint64_t snapshot = 0;      // the query's snapshot, to carry into the next page
    // Set when more may follow: the next page starts after it. Unset = the query is complete.
    std::optional<HistoryPosition> next;
};

class HistoryStore {
public:
    virtual ~HistoryStore() = default;
    // Keeps the records of one site. When it returns they are in the store (as durable as the store's settings
    // say) and visible to queries once the store's delay has passed. Throws std::runtime_error when it cannot
    // keep them (a full disk, say), so nothing is broadcast that the history lacks.
    virtual void append(std::string_view site, std::span<const HistoryRecord> records) = 0;
    // One page of a query. Events that arrived after the query's snapshot, or within the store's delay, are
    // not part of it; events dropped by retention since the previous page are simply absent.
    virtual HistoryPage query(const HistoryRequest& request) = 0;
};

}  // namespace hubflow::signalr
