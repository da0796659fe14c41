#include "hubflow/plugin.h"
#include "route_filter.h"

HUBFLOW_PLUGIN("route", "0.1.0", hubflow::route::RouteFilter)
