#include "hubflow/plugin.h"

#include "file_sink.h"
#include "tail_source.h"

using hubflow::file::FileSink;
using hubflow::file::TailSource;

HUBFLOW_PLUGIN("file", "0.1.0", FileSink, TailSource)
