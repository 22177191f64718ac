// A dataplane worker: one lcore, run to completion.
//
// Each loop: read the clock once; receive a burst from this worker's queue
// on every port; parse it; hand packets owned by another worker to that
// worker's ring (dataplane/steering.h); run the rest through this worker's
// Pipeline; buffer passed frames for the paired port and free the dropped;
// then take what other workers handed over, flush TX, and let the cleaner
// visit the entries it is owed (the whole table once a second). Nothing here allocates, locks or
// makes a system call.
#pragma once

#include <rte_ethdev.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "dataplane/clock.h"
#include "dataplane/control.h"
#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "dataplane/ports.h"
#include "dataplane/steering.h"

namespace holdfast {

inline constexpr uint16_t kRxBurst = 32;
inline constexpr uint32_t kHandoffRingSize = 1024;

struct alignas(64) WorkerCounters {
  uint64_t rx = 0;            // frames received from this worker's queues
  uint64_t tx = 0;            // frames handed to the NIC
  uint64_t tx_dropped = 0;    // passed, but the TX queue was full
  uint64_t handoff_out = 0;   // sent to their owner worker
  uint64_t handoff_in = 0;    // received from another worker
  uint64_t handoff_full = 0;  // dropped: the owner's ring was full
  uint64_t loops = 0;
};

// Crash injection (holdfastctl crash --after-packets N): once signal is
// set, the worker that receives the packet that makes `after` reach zero
// raises it, before forwarding the burst that holds it.
struct CrashTrigger {
  std::atomic<int> signal{0};  // 0: not armed
  std::atomic<int64_t> after{0};
};

// What all workers share, read-only once they run (except the rings, which
// are single-producer single-consumer per worker pair, and the crash trigger).
struct WorkerShared {
  std::vector<PortInfo> ports;
  std::array<int16_t, RTE_MAX_ETHPORTS> port_index{};  // port id -> index in ports, -1 if none
  uint32_t workers = 1;
  ParseOptions parse;
  // rings[from][to], nullptr on the diagonal and with one worker.
  std::array<std::array<rte_ring*, kMaxWorkers>, kMaxWorkers> rings{};
  std::atomic<bool>* stop = nullptr;
  CrashTrigger* crash = nullptr;
};

class Worker {
 public:
  Worker(uint32_t index, const WorkerShared* shared, std::unique_ptr<Pipeline> pipeline);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Allocates TX buffers on `socket`; returns false when DPDK memory is short.
  bool init(int socket, std::string* error);

  // The lcore entry point: loops until *shared->stop.
  void run();

  const Pipeline& pipeline() const { return *pipeline_; }
  Pipeline& pipeline() { return *pipeline_; }
  const WorkerCounters& counters() const { return counters_; }
  unsigned lcore() const { return lcore_; }
  void set_lcore(unsigned lcore) { lcore_ = lcore; }
  // Clock (ns) when this worker first handed a frame to a NIC; 0: not yet.
  uint64_t first_tx_ns() const { return first_tx_ns_.load(std::memory_order_relaxed); }
  nlohmann::json stats() const;
  // Where the control thread posts its requests (dataplane/control.h).
  ControlSlot& control() { return control_; }
  // Serves a posted control request, a slice of it; on the worker's lcore,
  // or by whoever drives the pipeline when no worker runs it.
  void serve_control();

 private:
  void receive(uint16_t port_index, rte_mbuf** mbufs, uint16_t n, bool from_handoff);
  void flush();
  void maybe_crash(uint16_t received);

  uint32_t index_;
  const WorkerShared* shared_;
  std::unique_ptr<Pipeline> pipeline_;
  TscClock clock_;
  uint64_t now_ns_ = 0;
  std::vector<rte_eth_dev_tx_buffer*> tx_;  // per port index
  WorkerCounters counters_;
  std::atomic<uint64_t> first_tx_ns_{0};
  ControlSlot control_;
  unsigned lcore_ = 0;
};

}  // namespace holdfast
