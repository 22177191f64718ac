// The configuration file (docs/config.md). Loading validates everything and
// reports every problem with its JSON path ("/rules/2/dst/0: bad CIDR ...");
// a file with any error yields no configuration at all, so nothing from a bad
// file is ever applied.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "dataplane/policy.h"

namespace holdfast {

struct PortPairConfig {
  std::string inside;  // DPDK device name: PCI address or vdev name
  std::string outside;
};

// Where and how the dataplane checkpoints (docs/checkpoint.md). Command-line
// options (--ckpt, --ckpt-app, --ckpt-token-file) override these.
struct CheckpointConfig {
  std::string socket;  // holdfast-ckptd's control socket; empty: no checkpointing
  std::string app = "holdfast";
  std::string token_file;
  // A new connection with no slot in the store: refuse it (fail closed,
  // ckpt_store_full) or forward it unprotected (counted).
  bool store_full_allow = false;
};

struct Config {
  std::vector<PortPairConfig> ports;
  std::vector<Cidr> inside_networks;
  std::vector<Rule> rules;
  Action default_action = Action::deny;
  PipelineSettings pipeline;
  ParseOptions parse;
  CheckpointConfig checkpoint;

  // Whether addr lies in inside_networks (holdfast-replay's port choice).
  bool is_inside(const IpAddr& addr) const;
};

struct ConfigResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<std::string> errors;  // "<json path>: <message>"
};

ConfigResult parse_config(const std::string& text);
ConfigResult load_config_file(const std::string& path);

}  // namespace holdfast
