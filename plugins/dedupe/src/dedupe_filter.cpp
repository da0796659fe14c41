#include "dedupe_filter.h"

#include <algorithm>
#include <system_error>

#include "hubflow/json_parse.h"
#include "hubflow/value.h"

namespace hubflow::dedupe {

namespace {

// Sorts object members by name, recursively, so that the same fields in another order make the same key.
void canonicalise(Value& v) {
    if (v.is_array()) {
        for (auto& item : v.as_array())
            canonicalise(item);
    } else if (v.is_object()) {
        auto& members = v.as_object();
        for (auto& [name, value] : members)
            canonicalise(value);
        std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    }
}

void erase_path(Value& v, const std::vector<std::string>& path, std::size_t at = 0) {
    if (!v.is_object()) return;
    auto& members = v.as_object();
    for (auto it = members.begin(); it != members.end(); ++it) {
        if (it->first != path[at]) continue;
        if (at + 1 == path.size())
            members.erase(it);
        else
            erase_path(it->second, path, at + 1);
        return;
    }
}

}  // namespace

ComponentDescription DedupeFilter::describe() {
    using F = FieldType;
    return {"dedupe",
            ComponentKind::filter,
            "drops events already seen (bounded LRU of keys, optional time window, optional persistence)",
            {{.name = "fields",
              .type = F::strings,
              .default_json = R"(["id"])",
              .doc = "field paths making the key (metadata names, then payload fields)"},
             {.name = "ignore_fields",
              .type = F::strings,
              .default_json = "[]",
              .doc = "instead of `fields`: the key is the whole payload (and kind, site) except these payload paths"},
             {.name = "cache_size",
              .type = F::integer,
              .default_json = "5000",
              .doc = "keys remembered (LRU); about 32 bytes each"},
             {.name = "max_age_s",
              .type = F::number,
              .default_json = "0",
              .doc = "a key counts as seen for this long after its first sighting (0 = until evicted)"},
             {.name = "persist",
              .type = F::boolean,
              .default_json = "false",
              .doc = "keep the cache in the node's data directory, so a restart lets no duplicate through"},
             {.name = "persist_interval_s",
              .type = F::number,
              .default_json = "10",
              .doc = "how often the cache is written while running (it is always written at shutdown)"}}};
}

void DedupeFilter::configure(const ConfigView& config, Context& context) {
    context_ = &context;
    const auto fields = config.strings("fields");
    const auto ignore = config.strings("ignore_fields");
    const Value* given_fields = config.raw().find("fields");
    if (!ignore.empty() && given_fields && !(fields.size() == 1 && fields[0] == "id"))
        throw config.error("ignore_fields", "set either fields or ignore_fields, not both");
    if (ignore.empty()) {
        if (fields.empty()) throw config.error("fields", "list at least one field path");
        for (const auto& f : fields) {
            try {
                fields_.emplace_back(f);
            } catch (const std::invalid_argument& e) {
                throw config.error("fields", "'" + f + "': " + e.what());
            }
        }
    } else {
        for (const auto& f : ignore) {
            std::vector<std::string> path;
            std::size_t start = 0;
            std::string text = f.rfind("payload.", 0) == 0 ? f.substr(8) : f;
            while (true) {
                auto dot = text.find('.', start);
                path.push_back(text.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
                if (path.back().empty()) throw config.error("ignore_fields", "'" + f + "' has an empty segment");
                if (dot == std::string::npos) break;
                start = dot + 1;
            }
            ignored_.push_back(std::move(path));
        }
    }
    cache_size_ = static_cast<std::size_t>(config.integer_in("cache_size", 1, SeenCache::max_capacity));
    max_age_ = std::chrono::milliseconds(static_cast<std::int64_t>(config.number_in("max_age_s", 0, 1e8) * 1000));
    persist_ = config.boolean("persist");
    persist_interval_ =
        std::chrono::milliseconds(static_cast<std::int64_t>(config.number_in("persist_interval_s", 0.1, 86400) * 1000));
    dropped_ = &context.metrics().counter("duplicates_dropped", "events dropped as already seen");
    keyless_ = &context.metrics().counter("keyless_passed", "events with none of the key fields, passed on");
    cached_ = &context.metrics().gauge("cached_keys", "keys in the cache");
    cache_bytes_ = &context.metrics().gauge("cache_bytes", "memory held by the cache");
}

void DedupeFilter::start() {
    cache_ = std::make_unique<SeenCache>(cache_size_, max_age_);
    last_save_ = context_->clock().monotonic();
    if (!persist_) return;
    cache_file_ = context_->data_dir() / "seen-keys.bin";
    try {
        if (cache_->load(cache_file_, context_->clock().now()))
            context_->log().info("loaded ", cache_->size(), " keys from ", cache_file_.string());
    } catch (const std::exception& e) {
        // A damaged file must not stop the pipeline; duplicates of events seen before it may pass this once.
        // It is set aside rather than overwritten at the next save, so that it can be examined.
        std::filesystem::path aside = cache_file_;
        aside += ".damaged";
        std::error_code ignored;
        std::filesystem::rename(cache_file_, aside, ignored);
        context_->log().warn("ignoring the saved cache: ", e.what(), "; starting empty (file kept as ", aside.string(),
                             ")");
    }
    update_gauges();
}

void DedupeFilter::update_gauges() {
    cached_->set(static_cast<std::int64_t>(cache_->size()));
    cache_bytes_->set(static_cast<std::int64_t>(cache_->memory_bytes()));
}

bool DedupeFilter::key_of(const Event& event, std::string& out) const {
    out.clear();
    if (ignored_.empty()) {
        bool any = false;
        for (const auto& f : fields_) {
            // Present values and absent fields are told apart, and the separator keeps ("ab","c") from ("a","bc").
            if (f.append_to(event, out))
                any = true;
            else
                out += '\x01';
            out += '\x1f';
        }
        return any;
    }
    Value payload;
    try {
        payload = parse_json(event.payload);
    } catch (const std::exception&) {
        out = event.meta.kind + '\x1f' + event.meta.site_id + '\x1f' + event.payload;  // not JSON: the bytes
        return true;
    }
    for (const auto& path : ignored_)
        erase_path(payload, path);
    canonicalise(payload);
    out = event.meta.kind + '\x1f' + event.meta.site_id + '\x1f' + to_json(payload);
    return true;
}

void DedupeFilter::process(const SharedBatch& batch) {
    if (!cache_) start();
    const EventBatch& events = *batch;
    const auto now = context_->clock().now();
    keep_.assign(events.size(), 1);
    hashes_.resize(events.size());
    std::size_t dropped = 0, keyless = 0;
    // Two passes: hash every key and prefetch its index cell, then look them up, so that the cache misses of a
    // large cache overlap instead of following one another.
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (!key_of(events[i], scratch_)) {
            keep_[i] = 2;  // keyless
            ++keyless;
            continue;
        }
        hashes_[i] = key_hash(scratch_);
        cache_->prefetch(hashes_[i]);
    }
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (keep_[i] == 1 && cache_->seen(hashes_[i], now)) {
            keep_[i] = 0;
            ++dropped;
        }
    }
    dirty_ = dirty_ || !events.empty();
    dropped_->add(dropped);
    keyless_->add(keyless);
    update_gauges();
    if (dropped == 0) {
        context_->emit(batch);  // nothing dropped: the same shared batch goes on
    } else if (dropped < events.size()) {
        // The input is shared and immutable, so the survivors are copied; into recycled storage, whose strings
        // keep their capacity, so that in steady state the copy allocates nothing.
        EventBatch out = context_->reusable_batch(events.size() - dropped);
        std::size_t j = 0;
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (!keep_[i]) continue;
            out[j].payload = events[i].payload;
            out[j].meta = events[i].meta;
            ++j;
        }
        context_->emit(std::move(out));
    }
    if (persist_ && context_->clock().monotonic() - last_save_ >= persist_interval_) save();
}

void DedupeFilter::flush() {
    if (persist_) save();
}

void DedupeFilter::stop() {
    if (persist_) save();
}

void DedupeFilter::save() {
    last_save_ = context_->clock().monotonic();
    if (!cache_ || !dirty_) return;
    try {
        cache_->save(cache_file_, context_->clock().now());
        dirty_ = false;
    } catch (const std::exception& e) {
        context_->log().error("cannot save the cache: ", e.what());
    }
}

}  // namespace hubflow::dedupe
