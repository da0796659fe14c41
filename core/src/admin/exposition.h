#pragma once
// /metrics: the runtime's status in the Prometheus text format 0.0.4, or OpenMetrics 1.0 when the scraper
// asks for it. Pure functions of their inputs, so a test can check the text without a server.
//
// Names follow Vector's internal metrics with a `hubflow_` prefix, so dashboards carry over:
//   hubflow_component_received_events_total, _sent_events_total{output}, _discarded_events_total{reason},
//   _errors_total, hubflow_component_processing_seconds (histogram), hubflow_buffer_events,
//   hubflow_buffer_max_events, hubflow_edge_events_total{from,output,to}; a component's own counters and
//   gauges as hubflow_<component_type>_<name>, a disk buffer's as hubflow_buffer_<name>; the process's as
//   hubflow_process_*; hubflow_build_info. Every component series carries component_id, component_kind and
//   component_type.

#include <string>
#include <string_view>

#include "admin/process_stats.h"
#include "runtime/runtime.h"

namespace hubflow::core {

enum class ExpositionFormat { prometheus_text, openmetrics };

// From the request's Accept header: OpenMetrics when it names application/openmetrics-text.
ExpositionFormat negotiate_exposition(std::string_view accept);
std::string_view content_type(ExpositionFormat format);

std::string render_metrics(const RuntimeStatus& status, const ProcessStats& process, ExpositionFormat format);

}  // namespace hubflow::core
