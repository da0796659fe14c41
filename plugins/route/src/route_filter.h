#pragma once
// The `route` filter: named outputs selected by conditions, plus `unmatched`. Downstream nodes read
// "node.output". With mode "all" (the default) an event goes to every route it matches; with "first", to the
// first in the order written.

#include <memory>
#include <string>
#include <vector>

#include "condition.h"
#include "hubflow/component.h"

namespace hubflow::route {

class RouteFilter final : public Filter {
public:
    static ComponentDescription describe();
    void configure(const ConfigView& config, Context& context) override;
    std::vector<std::string> outputs() const override;
    void process(const SharedBatch& batch) override;

private:
    struct Route {
        std::string name;
        std::unique_ptr<Condition> condition;
        Counter* matched = nullptr;
    };
    Context* context_ = nullptr;
    std::vector<Route> routes_;
    bool first_only_ = false;
    Counter* unmatched_ = nullptr;
    std::string scratch_;
    std::vector<std::uint64_t> masks_;  // per event of a batch: bit i = route i, bit 63 = unmatched
};

}  // namespace hubflow::route
