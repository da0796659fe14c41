#include "hubflow/plugin.h"
#include "dedupe_filter.h"

HUBFLOW_PLUGIN("dedupe", "0.1.0", hubflow::dedupe::DedupeFilter)
