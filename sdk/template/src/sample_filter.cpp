// The `sample` filter: passes one event in every `every`, optionally only those whose field matches.
// A starting point for your own component: copy this folder, rename, and edit.

#include <string>

#include "hubflow/json.h"
#include "hubflow/plugin.h"

namespace {

class SampleFilter final : public hubflow::Filter {
public:
    // The schema: validation and `hubflow plugins --describe sample` both come from here.
    static hubflow::ComponentDescription describe() {
        return {"sample",
                hubflow::ComponentKind::filter,
                "passes one event in every N, optionally only events whose field equals a value",
                {{.name = "every",
                  .type = hubflow::FieldType::integer,
                  .default_json = "1",
                  .doc = "pass one event in this many"},
                 {.name = "field",
                  .type = hubflow::FieldType::string,
                  .default_json = R"("")",
                  .doc = "field path to compare (empty = no condition)"},
                 {.name = "equals",
                  .type = hubflow::FieldType::string,
                  .default_json = R"("")",
                  .doc = "value the field must have"}}};
    }

    void configure(const hubflow::ConfigView& config, hubflow::Context& context) override {
        context_ = &context;
        every_ = config.integer_in("every", 1, 1'000'000'000);
        if (std::string f = config.string("field"); !f.empty()) field_.emplace(f);
        equals_ = config.string("equals");
        passed_ = &context.metrics().counter("sample_passed", "events passed on");
    }

    void process(const hubflow::SharedBatch& batch) override {
        hubflow::EventBatch out;
        std::string value;
        for (const auto& event : *batch) {
            if (field_) {
                value.clear();
                if (!field_->append_to(event, value) || value != equals_) continue;
            }
            if (seen_++ % every_ == 0) out.push_back(event);
        }
        passed_->add(out.size());
        context_->emit(std::move(out));
    }

private:
    hubflow::Context* context_ = nullptr;
    std::int64_t every_ = 1;
    std::int64_t seen_ = 0;
    std::optional<hubflow::FieldPath> field_;
    std::string equals_;
    hubflow::Counter* passed_ = nullptr;
};

}  // namespace

HUBFLOW_PLUGIN("sample", "1.0.0", SampleFilter)
