#include "route_filter.h"

#include <algorithm>
#include <cctype>

namespace hubflow::route {

namespace {
constexpr std::size_t max_routes = 63;  // one bit each in a 64-bit mask; the last bit is `unmatched`
constexpr std::uint64_t unmatched_bit = std::uint64_t{1} << 63;
}  // namespace

ComponentDescription RouteFilter::describe() {
    using F = FieldType;
    return {"route",
            ComponentKind::filter,
            "named outputs by conditions on metadata and payload fields, plus `unmatched`",
            {{.name = "routes",
              .type = F::any,
              .required = true,
              .doc = "{\"name\": condition, ...}; a condition is {\"field\": PATH, \"equals\"|\"one_of\"|\"exists\"|"
                     "\"prefix\"|\"regex\": ...} or {\"all\"|\"any\": [conditions]} or {\"not\": condition}"},
             {.name = "mode",
              .type = F::string,
              .default_json = R"("all")",
              .doc = "all: an event goes to every route it matches; first: only to the first"}}};
}

void RouteFilter::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    first_only_ = config.one_of("mode", {"all", "first"}) == "first";
    const Value& routes = config.value("routes");
    const std::string key = config.path_of("routes");
    if (!routes.is_object() || routes.as_object().empty())
        throw ConfigError(key,
                          "must be an object of named conditions, e.g. {\"alarms\": {\"field\": "
                          "\"event_category\", \"prefix\": \"alarm\"}}",
                          routes.position);
    if (routes.as_object().size() > max_routes)
        throw ConfigError(key, "at most " + std::to_string(max_routes) + " routes", routes.position);
    for (const auto& [name, condition] : routes.as_object()) {
        // The rule for node names, since `node.route` is written where node names are; `unmatched` is taken.
        const bool legal = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
        });
        if (!legal || name == "unmatched")
            throw ConfigError(key + "." + name,
                              "route names may use only letters, digits, '_' and '-', and `unmatched` is always "
                              "there for events that match no route",
                              condition.position);
        Route r;
        r.name = name;
        r.condition = Condition::parse(condition, key + "." + name);
        r.matched = &context.metrics().counter("matched_" + name, "events sent to output " + name);
        routes_.push_back(std::move(r));
    }
    unmatched_ = &context.metrics().counter("matched_unmatched", "events that matched no route");
}

std::vector<std::string> RouteFilter::outputs() const {
    std::vector<std::string> names;
    for (const auto& r : routes_)
        names.push_back(r.name);
    names.push_back("unmatched");
    return names;
}

void RouteFilter::process(const SharedBatch& batch) {
    const EventBatch& events = *batch;
    masks_.assign(events.size(), 0);
    for (std::size_t i = 0; i < events.size(); ++i) {
        std::uint64_t mask = 0;
        for (std::size_t r = 0; r < routes_.size(); ++r) {
            if (!routes_[r].condition->matches(events[i], scratch_)) continue;
            mask |= std::uint64_t{1} << r;
            if (first_only_) break;
        }
        masks_[i] = mask ? mask : unmatched_bit;
    }
    // The common case, every event of the batch going the same way, passes the shared batch on unchanged.
    const bool uniform =
        std::all_of(masks_.begin(), masks_.end(), [&](std::uint64_t m) { return m == masks_.front(); });
    for (std::size_t r = 0; r <= routes_.size(); ++r) {
        const std::uint64_t bit = r < routes_.size() ? std::uint64_t{1} << r : unmatched_bit;
        const std::string& name = r < routes_.size() ? routes_[r].name : std::string("unmatched");
        Counter* counter = r < routes_.size() ? routes_[r].matched : unmatched_;
        if (uniform) {
            if (!events.empty() && (masks_.front() & bit)) {
                counter->add(events.size());
                context_->emit(batch, name);
            }
            continue;
        }
        const auto n = static_cast<std::size_t>(
            std::count_if(masks_.begin(), masks_.end(), [&](std::uint64_t m) { return (m & bit) != 0; }));
        if (n == 0) continue;
        // The input is shared and immutable, so each output gets copies; into recycled storage, whose strings
        // keep their capacity, so that in steady state the copies allocate nothing.
        EventBatch out = context_->reusable_batch(n);
        std::size_t j = 0;
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (!(masks_[i] & bit)) continue;
            out[j].payload = events[i].payload;
            out[j].meta = events[i].meta;
            ++j;
        }
        counter->add(n);
        context_->emit(std::move(out), name);
    }
}

}  // namespace hubflow::route
