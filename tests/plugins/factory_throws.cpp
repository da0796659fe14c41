#include <stdexcept>

#include "hubflow/plugin.h"

namespace {
class Exploding final : public hubflow::Sink {
public:
    Exploding() { throw std::runtime_error("constructor exploded on purpose"); }
    static hubflow::ComponentDescription describe() {
        return {"exploding", hubflow::ComponentKind::sink, "a sink whose factory throws", {}};
    }
    void configure(const hubflow::ConfigView&, hubflow::Context&) override {}
    void write(const hubflow::EventBatch&) override {}
};
}  // namespace

HUBFLOW_PLUGIN("factory_throws", "0.0.1", Exploding)
