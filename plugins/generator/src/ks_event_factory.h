#pragma once
// Synthetic Salto KS events: entries and incidents shaped like the KS Event Streaming service sends them.
//
// The factory is separate from the `generator` source so a benchmark can call it in a bare loop and compare
// the cost of making events with the cost of the whole pipeline. It is built for that loop:
//  - every site, lock, user and IQ is turned into JSON fragments once, at construction; an event is a handful
//    of appends of those fragments plus a fresh id;
//  - the formatted date pair (UTC and the site's local time) is cached per site and second;
//  - randomness comes from xoshiro256** seeded by splitmix64: fast, and the same seed gives the same events
//    on every platform (no std::*_distribution, whose output is implementation-defined).
// With the same Options, the sequence of payloads and metadata is identical byte for byte.
//
// Not thread-safe: one factory per thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hubflow/event.h"

namespace hubflow::generator {

struct KsEventFactoryOptions {
    // Site ids as given; empty = `site_count` UUIDs derived from the seed.
    std::vector<std::string> sites;
    std::int64_t site_count = 3;
    std::int64_t users_per_site = 50;
    std::int64_t locks_per_site = 20;
    double incident_ratio = 0.05;
    // Share of events that are an exact copy (same id, same payload, same metadata) of a recent event, as a
    // service re-delivering after a reconnect would produce.
    double duplicate_ratio = 0.0;
    std::uint64_t seed = 1;
    // Time of event 0. Event i is stamped start + i / events_per_second.
    std::chrono::system_clock::time_point start{std::chrono::seconds(1'767'225'600)};  // 2026-01-01T00:00:00Z
    double events_per_second = 1000.0;
};

// What the factory made, for callers that want metadata without building an Event.
enum class KsEventKind : std::uint8_t { entry, incident };

class KsEventFactory {
public:
    // Throws std::invalid_argument for options out of range (no sites, ratios outside 0..1, ...).
    explicit KsEventFactory(KsEventFactoryOptions options);

    // Makes the next event: payload (replacing what `event` held, reusing its capacity) and metadata
    // (kind, site_id, user_id when a known user is involved, id). source and received_at are left alone.
    void next(Event& event);

    // Makes the next event and appends only its payload to `out` (no newline). Consumes the same sequence as
    // next(): mixing the two calls yields the same payloads in the same order.
    void append_next(std::string& out);

    // Number of events made so far (including duplicates).
    std::uint64_t produced() const { return index_; }
    std::uint64_t duplicates() const { return duplicates_; }
    std::uint64_t incidents() const { return incidents_; }
    std::uint64_t entries() const { return index_ - duplicates_ - incidents_; }

    const std::vector<std::string>& site_ids() const { return site_ids_; }
    const KsEventFactoryOptions& options() const { return options_; }

    // Longest payload the factory can produce, so a caller can reserve once.
    std::size_t max_payload_size() const { return max_payload_; }

private:
    struct Rng {
        std::array<std::uint64_t, 4> s{};
        explicit Rng(std::uint64_t seed);
        std::uint64_t next();
        // Uniform in [0, n) by multiply-shift: one multiplication, no division, bias below 2^-32.
        std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(((next() >> 32) * n) >> 32); }
    };

    struct User {
        std::string fragment;  // value of user_id onwards, up to and including user_alias's value
        std::string id;
        std::string tag;  // the user's tag number as a JSON string: "02309289" with the quotes
    };
    struct Lock {
        std::string entry_fragment;     // ","lock_id":"..."," ... "user_id":
        std::string incident_fragment;  // ","lock":{...},"iq":{...}}
    };
    struct Site {
        std::string id;
        std::int32_t utc_offset_s = 0;
        std::string iq_fragment;  // ,"iq_id":"...", ... "exit_requested":
        std::vector<Lock> locks;
        std::vector<User> users;
        // Date cache: the formatted `UTC","local_date_time":"LOCAL` pair of the last second asked for.
        std::int64_t cached_second = INT64_MIN;
        std::string dates;
    };
    // One kind of entry: its category, detail and how access happened, with a weight in a 1000-slot table.
    enum class Who : std::uint8_t {
        user,         // a known user; access_detail is the user's tag when access_by is tag, else null
        nobody,       // no user involved (inside handle, privacy button); access_detail null
        unknown_tag,  // a tag the site does not know: user fields null, access_detail the tag number
    };
    struct EntryKind {
        std::string head;  // ","event_category":"...","event_detail":...,"utc_date_time":"
        std::string tail;  // false,"access_by":"tag","access_detail":
        Who who = Who::user;
        bool tag = false;  // access_by is tag
    };
    struct IncidentKind {
        std::string head;  // ","type":"...","utc_date_time":"
    };
    // What is needed to repeat an event exactly.
    struct Recent {
        std::string payload;
        KsEventKind kind = KsEventKind::entry;
        std::uint32_t site = 0;
        std::int32_t user = -1;  // index into the site's users; -1 = none
    };
    struct Made {
        KsEventKind kind;
        std::uint32_t site;
        std::int32_t user;
        std::size_t id_offset;  // where the 36-character id starts in the output
    };

    // Appends one event to `out`; for a duplicate, copies a recent one.
    Made make(std::string& out);
    Made make_fresh(std::string& out);
    const std::string& dates_for(Site& site, std::int64_t second);
    static void append_uuid_with(Rng& rng, std::string& out);  // random version-4 UUID, lowercase
    void fill_meta(Metadata& meta, const Made& made, std::string_view id) const;

    KsEventFactoryOptions options_;
    Rng world_rng_;  // sites, locks, users: depends on the seed only
    Rng rng_;        // the event stream
    std::vector<Site> sites_;
    std::vector<std::string> site_ids_;
    std::vector<EntryKind> entry_kinds_;
    std::array<std::uint8_t, 1000> entry_table_{};
    std::vector<IncidentKind> incident_kinds_;
    std::array<std::uint8_t, 1000> incident_table_{};
    std::uint64_t incident_threshold_ = 0;  // compared with a 64-bit draw
    std::uint64_t duplicate_threshold_ = 0;
    bool always_incident_ = false;
    bool always_duplicate_ = false;
    std::string no_user_fragment_;  // user fields all null
    std::vector<Recent> recent_;    // ring of the latest fresh events, only when duplicates are wanted
    std::size_t recent_next_ = 0;
    std::size_t recent_count_ = 0;
    std::int64_t start_second_ = 0;  // whole seconds of options.start since the epoch
    double start_fraction_ = 0;      // sub-second part of options.start
    std::uint64_t index_ = 0;
    std::uint64_t duplicates_ = 0;
    std::uint64_t incidents_ = 0;
    std::size_t max_payload_ = 0;
};

// Parses an RFC 3339 date-time ("2026-08-19T12:50:38Z", fractions and numeric offsets accepted) into a UTC
// time point. Returns nothing when the text is not one.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace hubflow::generator
