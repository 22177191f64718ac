// holdfastctl's commands share one way of reading their options and of
// reporting: each command is a function of its arguments (after the command
// word) that returns the exit status: 0 done, 1 failed (the process or socket
// it needs is not there, or the operation was refused), 2 bad usage.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace holdfast::ctl {

// Options every command understands (each command says which it uses).
struct Options {
  bool json = false;  // --json: machine-readable output
  // The dataplane's DPDK telemetry socket: --telemetry PATH, or the one of
  // the EAL file prefix --file-prefix P (default "rte", DPDK's own default).
  std::string telemetry;
  std::string file_prefix = "rte";
  // holdfast-ckptd: --ckpt SOCKET, --app APP, --ckpt-token-file F.
  std::string ckpt_socket = "/run/holdfast/ckptd.sock";
  bool ckpt_given = false;  // --ckpt was on the command line
  std::string app = "holdfast";
  std::string token_file;
  std::vector<std::string> args;  // what is left: the command's own words

  // The telemetry socket path these options name.
  std::string telemetry_path() const;
};

// Reads the common options out of argv; the rest goes to args in order.
// Returns false with *error on a missing value.
bool parse_options(int argc, char** argv, Options* o, std::string* error);

// Everything the running dataplane reports, in one object (ctl_dataplane.cc;
// the schema is in docs/operations.md, "holdfastctl stats --json"):
// {"info": {...}, "stats": {...}, "ports": {...}, "workers": {...},
//  "states": {...}, "rules": [...]}. Returns false with *error when the
// dataplane's telemetry socket cannot be reached or answers badly.
bool collect_dataplane(const Options& o, nlohmann::json* out, std::string* error);

// holdfast-ckptd's `stats` reply (docs/checkpoint.md), asked as a monitor
// (ctl_ckpt.cc). Returns false with *error when the server is not reachable
// or refuses.
bool collect_ckpt(const Options& o, nlohmann::json* out, std::string* error);

// Commands (ctl_*.cc; conns --ckpt in holdfastctl.cc).
int conns_from_store(const Options& o);
int stats_main(const Options& o);
int conns_main(const Options& o);
int rules_main(const Options& o);
int crash_main(const Options& o);
int metrics_main(const Options& o);
int ckpt_main(const Options& o);

}  // namespace holdfast::ctl
