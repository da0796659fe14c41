#include "hubflow/plugin.h"
#include "generator_source.h"

HUBFLOW_PLUGIN("generator", "0.1.0", hubflow::generator::GeneratorSource)
