// holdfastctl metrics: every counter of the dataplane and of holdfast-ckptd
// in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). The
// families and their labels are listed in docs/metrics.md.
//
// The input is what holdfastctl collected (control/ctl.h), read defensively:
// a key that is missing or not of the expected type is skipped, never an
// error, so that a holdfastctl and a dataplane of different versions still
// give a valid exposition. Each family is written whole (one HELP, one TYPE,
// then all its samples), and a series (name and labels) at most once.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace holdfast::ctl {

// dataplane: collect_dataplane's object, or null when the dataplane could not
// be reached (holdfast_up 0 and nothing else of it). ckpt: holdfast-ckptd's
// `stats` reply, or null (holdfast_ckptd_up 0).
std::string prometheus_text(const nlohmann::json& dataplane, const nlohmann::json& ckpt);

}  // namespace holdfast::ctl
