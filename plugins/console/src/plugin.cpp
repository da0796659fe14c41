#include "hubflow/plugin.h"
#include "console_sink.h"

HUBFLOW_PLUGIN("console", "0.1.0", hubflow::console::ConsoleSink)
