#include "hubflow/plugin.h"

#include "file_sink.h"

using hubflow::file::FileSink;

HUBFLOW_PLUGIN("file", "0.1.0", FileSink)
