#include "hubflow/plugin.h"

#include "kafka_sink.h"

using hubflow::kafka::KafkaSink;

HUBFLOW_PLUGIN("kafka", "0.1.0", KafkaSink)
