// A plugin built against the frozen SDK 1.2 headers (tests/plugins/sdk_1_2): an acknowledging sink, the 1.2
// feature, that appends each event's id to a file and refuses the events whose id ends in ".2" (the tracked
// test source's third event of each batch), delivering the rest. It knows nothing of SDK 1.3.

#include <fstream>
#include <string>

#include "hubflow/plugin.h"

static_assert(HUBFLOW_SDK_VERSION_MINOR == 2, "this plugin must see the SDK 1.2 headers");

namespace {

class LegacyAckingSink final : public hubflow::AcknowledgingSink {
public:
    static hubflow::ComponentDescription describe() {
        return {"legacy_acking",
                hubflow::ComponentKind::sink,
                "appends event ids to a file and refuses those ending in .2 (built for SDK 1.2)",
                {{.name = "path", .type = hubflow::FieldType::string, .required = true, .doc = "the file"}}};
    }
    void configure(const hubflow::ConfigView& config, hubflow::Context&) override { path_ = config.string("path"); }
    void deliver(const hubflow::EventBatch& batch, hubflow::BatchAck ack) override {
        std::ofstream out(path_, std::ios::app);
        std::size_t refused = 0;
        for (const auto& e : batch) {
            out << e.meta.id << '\n';
            if (e.meta.id.size() >= 2 && e.meta.id.compare(e.meta.id.size() - 2, 2, ".2") == 0) ++refused;
        }
        out.flush();
        ack.refused(refused);
        ack.delivered(batch.size() - refused);
    }

private:
    std::string path_;
};

}  // namespace

HUBFLOW_PLUGIN("legacy_sdk_1_2", "1.2.0", LegacyAckingSink)
