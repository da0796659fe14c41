#include "hubflow/plugin.h"
#include "test_components.h"

HUBFLOW_PLUGIN("test_components", "0.0.1", hubflow::test::MemorySource, hubflow::test::CaptureSink)
