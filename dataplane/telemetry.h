// Holdfast's commands on DPDK's telemetry socket
// (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2), for holdfastctl and for
// dpdk-telemetry.py alike. docs/operations.md lists them with their replies:
//
//   /holdfast/info                 version, pid, uptime, workers, rules, checkpointing
//   /holdfast/stats                counters: totals, every pass and drop reason,
//                                  per protocol, FTP, SIP, checkpoint
//   /holdfast/ports                per port: name, side, pair, NIC counters
//   /holdfast/workers              per worker: lcore, rx, tx, handoffs, connections
//   /holdfast/states               open connections by protocol/state
//   /holdfast/conns,FILTER         a page of connections (FILTER: key=value words:
//                                  cursor limit id proto state addr port module)
//   /holdfast/conn,ID              one connection, base layer and every slice
//   /holdfast/rules[,START]        rules with their hits, a page at a time
//   /holdfast/reload,PATH          load PATH's rules: validate, swap, re-check
//   /holdfast/crash,SIGNAL[,N]     raise SIGNAL now, or after N more packets
//   /holdfast/recovery             the last recovery report
//
// Callbacks run on DPDK's telemetry threads. They read counters as DPDK
// reads its own (plain loads of single-writer 64-bit words, at most a burst
// old) and ask workers for everything else through their ControlSlot.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/policy.h"
#include "dataplane/worker.h"

namespace holdfast {

namespace ckpt {
class Client;
}

// What the commands see of the running dataplane. Owned by main; every
// field is read and written under telemetry_mutex() once attached.
struct TelemetryContext {
  std::vector<Worker*> workers;
  const WorkerShared* shared = nullptr;
  std::string config_path;
  nlohmann::json config_raw;  // the file as loaded (rules replaced on reload)
  std::unique_ptr<Policy>* policy = nullptr;
  ckpt::Client* client = nullptr;  // null: not checkpointing
  std::string ckpt_app;
  const nlohmann::json* recovery = nullptr;  // null json: no recovery ran
  CrashTrigger* crash = nullptr;
  uint64_t start_ns = 0;  // wall clock
  bool workers_running = false;
  // Policies a reload could not retire (a worker did not confirm in time).
  std::vector<std::unique_ptr<Policy>> retired;
};

// Registers the /holdfast/ commands (before or after rte_eal_init).
void register_telemetry_commands();

// Makes ctx what the commands answer from; nullptr detaches (before the
// runtime goes away). Commands without a context answer an error.
void telemetry_attach(TelemetryContext* ctx);

// Held by every command; others that touch what the context points to
// from another thread (the checkpoint client, the recovery report) hold it
// too.
std::mutex& telemetry_mutex();

// The commands' replies as JSON, before they are turned into telemetry
// data (exposed for tests). Each takes telemetry_mutex().
nlohmann::json telemetry_command(const std::string& command, const std::string& params);

}  // namespace holdfast
