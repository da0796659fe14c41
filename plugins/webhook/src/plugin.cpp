#include "hubflow/plugin.h"

#include "webhook_sink.h"

using hubflow::webhook::WebhookSink;

HUBFLOW_PLUGIN("webhook", "0.1.0", WebhookSink)
