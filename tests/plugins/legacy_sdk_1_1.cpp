// A plugin built against the frozen SDK 1.1 headers (tests/plugins/sdk_1_1): a sink that appends each event's
// id to a file. It knows nothing of acknowledgements; the host must treat write() returning as delivered.

#include <fstream>
#include <string>

#include "hubflow/plugin.h"

static_assert(HUBFLOW_SDK_VERSION_MINOR == 1, "this plugin must see the SDK 1.1 headers");

namespace {

class LegacyLinesSink final : public hubflow::Sink {
public:
    static hubflow::ComponentDescription describe() {
        return {"legacy_lines",
                hubflow::ComponentKind::sink,
                "appends event ids to a file (built for SDK 1.1)",
                {{.name = "path", .type = hubflow::FieldType::string, .required = true, .doc = "the file"}}};
    }
    void configure(const hubflow::ConfigView& config, hubflow::Context&) override { path_ = config.string("path"); }
    void write(const hubflow::EventBatch& batch) override {
        std::ofstream out(path_, std::ios::app);
        for (const auto& e : batch)
            out << e.meta.id << '\n';
    }

private:
    std::string path_;
};

}  // namespace

HUBFLOW_PLUGIN("legacy_sdk_1_1", "1.1.0", LegacyLinesSink)
