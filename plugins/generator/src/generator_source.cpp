#include "generator_source.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <set>

#include "hubflow/json.h"

namespace hubflow::generator {

namespace {

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
// Every site holds its users and locks as ready-made JSON fragments (a few hundred bytes each); this bound
// keeps that under a few hundred megabytes.
constexpr std::int64_t max_people_and_locks = 1'000'000;

// Shortest readable form for messages: 1.2 rather than 1.1999999999999999.
std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

double ratio(const ConfigView& config, std::string_view key) {
    const double v = config.number(key);
    if (v < 0 || v > 1) throw config.error(key, "must be between 0 and 1, found " + number_text(v));
    return v;
}

}  // namespace

ComponentDescription GeneratorSource::describe() {
    using hubflow::FieldType;
    return {"generator",
            ComponentKind::source,
            "synthetic Salto KS entries and incidents, shaped like KS Event Streaming sends them",
            {
                {.name = "count",
                 .type = FieldType::integer,
                 .default_json = "0",
                 .doc = "events to produce, then stop (0 = until shutdown)"},
                {.name = "rate",
                 .type = FieldType::number,
                 .default_json = "0",
                 .doc = "events per second (0 = as fast as downstream takes them)"},
                {.name = "sites",
                 .type = FieldType::strings,
                 .default_json = "[]",
                 .doc = "site ids to use (empty = site_count UUIDs derived from the seed)"},
                {.name = "site_count",
                 .type = FieldType::integer,
                 .default_json = "3",
                 .doc = "number of sites to invent when sites is empty"},
                {.name = "users_per_site",
                 .type = FieldType::integer,
                 .default_json = "50",
                 .doc = "known users in each site"},
                {.name = "locks_per_site",
                 .type = FieldType::integer,
                 .default_json = "20",
                 .doc = "locks in each site, named 'Door 01', 'Door 02', ..."},
                {.name = "incident_ratio",
                 .type = FieldType::number,
                 .default_json = "0.05",
                 .doc = "share of events that are incidents rather than entries (0..1)"},
                {.name = "duplicate_ratio",
                 .type = FieldType::number,
                 .default_json = "0",
                 .doc = "share of events that repeat a recent event exactly, same id and payload (0..1)"},
                {.name = "seed",
                 .type = FieldType::integer,
                 .default_json = "0",
                 .doc = "random seed (0 = choose one and log it, so the run can be repeated)"},
                {.name = "batch_size",
                 .type = FieldType::integer,
                 .default_json = "512",
                 .doc = "largest number of events emitted at once (smaller at low rates)"},
                {.name = "start_time",
                 .type = FieldType::string,
                 .default_json = R"("")",
                 .doc = "RFC 3339 time of the first event (empty = now); event i is at start + i/rate "
                        "(1 ms apart when rate is 0)"},
            }};
}

void GeneratorSource::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    count_ = config.integer_in("count", 0, int64_max);

    rate_ = config.number("rate");
    if (rate_ < 0 || rate_ > 1e9)
        throw config.error("rate",
                           "must be 0 (as fast as possible) or a positive number of events per second up to "
                           "1e9, found " +
                               number_text(rate_));

    options_.sites = config.strings("sites");
    std::set<std::string_view> seen;
    for (const auto& site : options_.sites) {
        if (site.empty()) throw config.error("sites", "site ids must not be empty");
        if (!seen.insert(site).second) throw config.error("sites", "site id '" + site + "' is listed twice");
    }
    options_.site_count = config.integer_in("site_count", 1, 100'000);
    options_.users_per_site = config.integer_in("users_per_site", 1, max_people_and_locks);
    options_.locks_per_site = config.integer_in("locks_per_site", 1, max_people_and_locks);
    const std::int64_t sites =
        options_.sites.empty() ? options_.site_count : static_cast<std::int64_t>(options_.sites.size());
    if (sites * (options_.users_per_site + options_.locks_per_site) > max_people_and_locks)
        throw config.error("users_per_site", "sites x (users_per_site + locks_per_site) must be at most " +
                                                 std::to_string(max_people_and_locks) + ", found " +
                                                 std::to_string(sites) + " x (" +
                                                 std::to_string(options_.users_per_site) + " + " +
                                                 std::to_string(options_.locks_per_site) + ")");

    options_.incident_ratio = ratio(config, "incident_ratio");
    options_.duplicate_ratio = ratio(config, "duplicate_ratio");
    seed_ = static_cast<std::uint64_t>(config.integer_in("seed", 0, int64_max));
    batch_size_ = config.integer_in("batch_size", 1, 1'000'000);

    start_time_.reset();
    if (std::string text = config.string("start_time"); !text.empty()) {
        start_time_ = parse_rfc3339(text);
        if (!start_time_)
            throw config.error("start_time",
                               "expected an RFC 3339 date-time such as 2026-08-19T12:50:38Z, found '" + text + "'");
    }
    options_.events_per_second = rate_ > 0 ? rate_ : 1000.0;

    entries_ = &context.metrics().counter("entries_generated", "entries made (duplicates excluded)");
    incidents_ = &context.metrics().counter("incidents_generated", "incidents made (duplicates excluded)");
    duplicates_ = &context.metrics().counter("duplicates_emitted", "events that repeat a recent event exactly");
}

void GeneratorSource::start() {
    const bool chose_seed = seed_ == 0;
    const bool chose_start = !start_time_;
    options_.seed = seed_;
    if (chose_seed) {
        std::random_device device;
        // Kept within a JSON integer that the `seed` key accepts back.
        options_.seed = ((std::uint64_t{device()} << 32) | device()) & static_cast<std::uint64_t>(int64_max);
        if (options_.seed == 0) options_.seed = 1;
    }
    // Whole seconds, so that the logged start_time, fed back in, reproduces the same timestamps.
    options_.start = start_time_ ? *start_time_ : std::chrono::floor<std::chrono::seconds>(context_->clock().now());
    if (chose_seed || chose_start)
        context_->log().info("seed ", options_.seed, ", start_time ", format_utc(options_.start),
                             "; set both in the node's config to repeat this run");
    factory_ = std::make_unique<KsEventFactory>(options_);
}

std::int64_t GeneratorSource::effective_batch_size() const {
    if (rate_ <= 0) return batch_size_;
    // One batch per 10 ms at most: events leave within 10 ms of their due time.
    const double per_10ms = std::floor(rate_ / 100.0);
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::min(per_10ms, 1e9)), 1, batch_size_);
}

void GeneratorSource::run() {
    if (!factory_) start();
    const Clock& clock = context_->clock();
    const auto t0 = clock.monotonic();
    const std::int64_t batch_size = effective_batch_size();
    std::uint64_t made = 0;
    std::uint64_t entries = factory_->entries(), incidents = factory_->incidents(), duplicates = factory_->duplicates();

    while (!context_->stopping()) {
        std::uint64_t n = static_cast<std::uint64_t>(batch_size);
        if (count_ > 0) n = std::min(n, static_cast<std::uint64_t>(count_) - made);
        if (n == 0) break;

        if (rate_ > 0) {
            // Event i is due at t0 + i / rate; a batch leaves when its last event is due.
            const auto due = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(static_cast<double>(made + n - 1) / rate_));
            const auto now = clock.monotonic();
            if (due > now && !context_->wait_for(due - now)) break;
        }

        EventBatch batch = context_->reusable_batch(n);
        for (auto& event : batch)
            factory_->next(event);
        made += n;

        entries_->add(factory_->entries() - entries);
        incidents_->add(factory_->incidents() - incidents);
        duplicates_->add(factory_->duplicates() - duplicates);
        entries = factory_->entries();
        incidents = factory_->incidents();
        duplicates = factory_->duplicates();
        context_->emit(std::move(batch));
    }
}

}  // namespace hubflow::generator
