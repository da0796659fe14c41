#include "file_sink.h"
#include "hubflow/plugin.h"

using hubflow::file::FileSink;

HUBFLOW_PLUGIN("file", "0.1.0", FileSink)
