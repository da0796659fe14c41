#include "abort_on_load.h"
#include "hubflow/plugin.h"

HUBFLOW_ABI_MARKER(1, 99)
