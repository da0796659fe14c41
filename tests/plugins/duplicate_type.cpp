// Declares a component type that the test_components plugin already provides.
#include "hubflow/plugin.h"
#include "test_components.h"

namespace {
class AnotherCapture final : public hubflow::Sink {
public:
    static hubflow::ComponentDescription describe() {
        return {"capture", hubflow::ComponentKind::sink, "a second 'capture'", {}};
    }
    void configure(const hubflow::ConfigView&, hubflow::Context&) override {}
    void write(const hubflow::EventBatch&) override {}
};
}  // namespace

HUBFLOW_PLUGIN("duplicate_type", "0.0.1", AnotherCapture)
