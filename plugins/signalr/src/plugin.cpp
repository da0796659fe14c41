#include "hubflow/plugin.h"
#include "client/signalr_source.h"
#include "server/hub_sink.h"

HUBFLOW_PLUGIN("signalr", "0.1.0", hubflow::signalr::HubSink, hubflow::signalr::SignalrSource)
