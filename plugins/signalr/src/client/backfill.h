#pragma once
// Backfill of the `signalr` source: SignalR has no replay, so every interval without a connection (and, at start,
// the time since the last event finished downstream) is asked of the KS history
// (GET {url}/v1.1/sites/{site_id}/entries|incidents) and the events missed are emitted, in time order, with
// metadata source "<node>.backfill". Runs on the source's loop thread; its HTTP requests run on a worker thread
// of their own (the token still comes from the connections' worker, which alone touches the token provider).
//
// A gap runs: awaiting its end (the first event of the new connection, or settle_ms of a quiet one) -> settling
// (settle_ms, as the history lags the stream) -> pages, one request at a time, shared max_requests_per_s ->
// done (recovered N events, or unrecoverable and why). Its progress, and the time of the newest live event
// finished downstream, are kept in the node's data directory, advanced only by batches that ended finished.

#include <Poco/Net/Context.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "client/blocking_worker.h"
#include "client/hub_endpoint.h"
#include "client/token_provider.h"
#include "hubflow/context.h"
#include "hubflow/delivery.h"

namespace hubflow::signalr {

// How the batches a source emitted ended, as the host reports them from any thread. The source owns it, as the
// host requires a listener to outlive the node's thread (reports come after run() has returned).
class DeliveryOutcomes final : public DeliveryListener {
public:
    void batch_ended(std::uint64_t batch_number, BatchOutcome outcome) override {
        {
            std::lock_guard lock(mutex_);
            ended_.emplace_back(batch_number, outcome);
        }
        changed_.notify_all();
    }
    // False when nothing was reported by `deadline`.
    bool wait_until(std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return changed_.wait_until(lock, deadline, [&] { return !ended_.empty(); });
    }
    std::vector<std::pair<std::uint64_t, BatchOutcome>> take() {
        std::lock_guard lock(mutex_);
        return std::exchange(ended_, {});
    }
    bool tracking = false;  // what Context::track_deliveries() answered

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::pair<std::uint64_t, BatchOutcome>> ended_;
};

struct BackfillSettings {
    bool enabled = false;
    std::string url;  // the history's base, without a trailing slash
    std::int64_t page_size = 100;
    std::int64_t max_gap_s = 86400;
    std::int64_t overlap_s = 5;
    std::chrono::milliseconds settle{5'000};
    std::int64_t initial_s = 0;
    double max_requests_per_s = 5;
    bool emit_gap_events = false;
    std::chrono::milliseconds request_timeout{30'000};
    std::size_t max_page_bytes = std::size_t{64} << 20;
    DeliveryOutcomes* outcomes = nullptr;  // set by the source in configure()
};

// Seconds since the epoch of an RFC 3339 time (2026-12-06T10:00:00Z, fractions and offsets allowed); nullopt
// for anything else. Exposed for tests.
std::optional<std::int64_t> parse_utc_seconds(std::string_view text);

// A history page, {"items": [...], "continuation_token": "<escaped JSON>"}, checked whole: `items` gets the raw
// JSON text of each item (so that a backfilled payload is the history's bytes, not a re-serialisation) and
// `token` the token's unescaped text, or nothing when the member is missing or null (the query's end). False,
// with `error` naming what is wrong, for anything else.
bool parse_history_page(std::string_view body, std::vector<std::string_view>& items, std::optional<std::string>& token,
                        std::string& error);

class Backfill {
public:
    using steady = std::chrono::steady_clock;

    Backfill(const BackfillSettings& settings, const std::vector<HubEndpoint>& endpoints, const std::string& kind,
             Context& context, Poco::Net::Context::Ptr tls, BlockingWorker& token_worker, TokenProvider& tokens);
    ~Backfill();
    Backfill(const Backfill&) = delete;
    Backfill& operator=(const Backfill&) = delete;

    int event_fd() const { return worker_->event_fd(); }
    void on_ready() { worker_->run_finished(); }

    // Loads the state kept in the data directory and opens the gaps a start calls for.
    void start();
    // Saves the state a last time.
    void stop();
    steady::time_point next_wake() const;
    // Timers: gaps whose end or settle time came, requests due, batch outcomes, the periodic save.
    void poll(steady::time_point now);

    // The loop's view of connection `site` (its index in the endpoints).
    void on_open(std::size_t site);
    void on_disconnected(std::size_t site, const std::string& cause);
    // A live event read on `site`, before it is emitted: its utc_date_time text and id.
    void on_live(std::size_t site, std::string_view utc_date_time, std::string_view id);
    // Emits a batch of live events; `sites[i]` is the connection of event i (the newest finished live event of
    // each site is what a restart backfills from).
    void emit_live(EventBatch&& batch, const std::vector<std::size_t>& sites);
    bool pending(std::size_t site) const;

private:
    struct Site;
    struct Gap;
    struct Effect;
    struct Page;

    void new_gap(std::size_t site, std::int64_t from, std::string cause);
    void set_end(Gap& g, std::int64_t end_s, steady::time_point query_at);
    void request(Gap& g, steady::time_point now);
    void on_reply(std::uint64_t gap_id, std::uint64_t attempt, Page& page);
    void on_page(Gap& g, const std::string& body);
    void retry(Gap& g, const std::string& why, std::chrono::milliseconds delay, bool count);
    void finish(Gap& g, const std::string& unrecoverable);
    Gap* find(std::uint64_t id);
    void remember(std::size_t site, std::int64_t t, std::string_view id);
    void write_ahead(std::size_t site, std::int64_t t);
    void prune(std::size_t site);
    std::string history_url(const Gap& g) const;
    void emit_tracked(EventBatch&& batch, std::vector<Effect> effects);
    void apply(const Effect& e);
    void settle_outcomes();
    void save();
    void load();

    BackfillSettings s_;
    Context& context_;
    Logger& log_;
    Poco::Net::Context::Ptr tls_;
    BlockingWorker& token_worker_;
    TokenProvider& tokens_;
    std::string source_name_;  // "<node>.backfill": the metadata source of every backfilled event
    std::string state_path_;
    std::vector<std::unique_ptr<Site>> sites_;
    std::deque<std::unique_ptr<Gap>> gaps_;
    std::uint64_t next_gap_id_ = 1;
    steady::time_point next_slot_{};  // the shared request rate: the earliest time the next request may go
    steady::time_point next_save_{};
    bool dirty_ = false;
    bool started_ = false;
    std::mt19937_64 random_;

    // Delivery tracking: what each emitted batch settles once it ends finished, in emission order.
    bool tracking_ = false;
    bool frozen_ = false;
    std::uint64_t emitted_batches_ = 0;
    struct InFlight;
    std::deque<InFlight> in_flight_;
    std::map<std::uint64_t, BatchOutcome> ended_early_;

    Counter *requests_, *retries_, *events_, *duplicates_, *replayed_, *recovered_gaps_, *unrecoverable_gaps_,
        *partial_gaps_, *evicted_;
    Gauge* open_gaps_;

    // Last: its destructor waits for a request in progress, whose follow-up would use the members above.
    std::unique_ptr<BlockingWorker> worker_;
};

}  // namespace hubflow::signalr
