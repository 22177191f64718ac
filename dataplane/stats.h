// Statistics of one or more pipelines as JSON (the dataplane's exit report,
// holdfast-replay's --summary-json) and as the readable summary printed by
// holdfast-replay and ./run demo.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/pipeline.h"

namespace holdfast {

// A module's counters by name.
nlohmann::json module_counters_json(const FtpCounters& c);
nlohmann::json module_counters_json(const SipCounters& c);

// Sums the counters of pipelines (not their tables).
PipelineCounters sum_counters(const std::vector<const Pipeline*>& pipelines);

// Sums counters over pipelines and counts live connections by protocol and
// state. Keys: packets, passed, dropped, reasons{name: n} (non-zero only),
// connections{opened, expired, reopened, active{proto: {state: n}}},
// rules[{name, action, hits}] with the default action last.
nlohmann::json pipeline_stats(const std::vector<const Pipeline*>& pipelines);

// The readable form of pipeline_stats().
std::string format_stats(const nlohmann::json& stats);

}  // namespace holdfast
