// holdfast: the DPDK dataplane.
// Usage: holdfast [EAL options] -- --config FILE
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "control/config.h"
#include "control/log.h"
#include "dataplane/policy.h"
#include "dataplane/ports.h"
#include "dataplane/stats.h"
#include "dataplane/steering.h"
#include "dataplane/worker.h"

namespace {

using holdfast::log;
using holdfast::LogLevel;

constexpr const char* kUsage =
    "usage: holdfast [EAL options] -- --config FILE\n"
    "  EAL options select cores (-l), memory and devices (PCI addresses, --vdev);\n"
    "  one worker runs on every worker lcore (on the main lcore if there is none).\n"
    "  SIGINT or SIGTERM stop it and print the final statistics as JSON on stdout.\n";

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

struct AppOptions {
  std::string config;
};

// Parses the application arguments (after "--").
bool parse_app_args(int argc, char** argv, AppOptions* o) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      o->config = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      o->config = a.substr(9);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "holdfast: unknown argument \"%s\"\n%s", a.c_str(), kUsage);
      return false;
    }
  }
  if (o->config.empty()) {
    std::fprintf(stderr, "holdfast: --config FILE is required (after \"--\")\n%s", kUsage);
    return false;
  }
  return true;
}

int worker_entry(void* arg) {
  static_cast<holdfast::Worker*>(arg)->run();
  return 0;
}

// Everything DPDK-side that must be released before rte_eal_cleanup().
struct Runtime {
  rte_mempool* pool = nullptr;
  std::unique_ptr<holdfast::Policy> policy;
  holdfast::WorkerShared shared;
  std::vector<holdfast::ConnIdSource> ids;
  std::vector<std::unique_ptr<holdfast::Worker>> workers;
  bool ports_started = false;

  ~Runtime() {
    workers.clear();
    if (ports_started) holdfast::stop_ports(shared.ports);
    for (auto& row : shared.rings) {
      for (rte_ring* r : row) rte_ring_free(r);
    }
    rte_mempool_free(pool);
  }
};

nlohmann::json port_stats(const holdfast::PortInfo& p) {
  rte_eth_stats st{};
  rte_eth_stats_get(p.port_id, &st);
  return {{"name", p.name},
          {"side", holdfast::side_name(p.side)},
          {"pair", p.zone},
          {"rx_packets", st.ipackets},
          {"tx_packets", st.opackets},
          {"rx_missed", st.imissed},
          {"rx_errors", st.ierrors},
          {"tx_errors", st.oerrors},
          {"rx_no_mbuf", st.rx_nombuf}};
}

// Builds the runtime: policy, packet pool, ports, handoff rings, one
// pipeline and worker per lcore. Logs and returns false on any failure.
bool build(Runtime& rt, const holdfast::Config& config, const std::vector<unsigned>& lcores) {
  const uint32_t nworkers = static_cast<uint32_t>(lcores.size());
  std::string error;
  rt.policy = holdfast::Policy::compile(config.rules, config.default_action, &error);
  if (!rt.policy) {
    log(LogLevel::error, "policy", "%s", error.c_str());
    return false;
  }
  const uint32_t nports = static_cast<uint32_t>(config.ports.size() * 2);
  rt.pool = rte_pktmbuf_pool_create("hf_mbufs", holdfast::mbufs_needed(nports, nworkers), 256, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
  if (rt.pool == nullptr) {
    log(LogLevel::error, "eal", "cannot create the packet buffer pool: %s",
        rte_strerror(rte_errno));
    return false;
  }
  rt.ports_started = true;  // stop whatever setup_ports started, even on failure
  if (!holdfast::setup_ports(config.ports, nworkers, rt.pool, &rt.shared.ports, &error)) {
    log(LogLevel::error, "ports", "%s", error.c_str());
    return false;
  }
  rt.shared.port_index.fill(-1);
  for (size_t i = 0; i < rt.shared.ports.size(); ++i) {
    rt.shared.port_index[rt.shared.ports[i].port_id] = static_cast<int16_t>(i);
  }
  rt.shared.workers = nworkers;
  rt.shared.parse = config.parse;
  rt.shared.stop = &g_stop;
  for (uint32_t from = 0; nworkers > 1 && from < nworkers; ++from) {
    for (uint32_t to = 0; to < nworkers; ++to) {
      if (from == to) continue;
      char name[RTE_RING_NAMESIZE];
      std::snprintf(name, sizeof name, "hf_handoff_%u_%u", from, to);
      rt.shared.rings[from][to] = rte_ring_create(
          name, holdfast::kHandoffRingSize, static_cast<int>(rte_lcore_to_socket_id(lcores[to])),
          RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (rt.shared.rings[from][to] == nullptr) {
        log(LogLevel::error, "workers", "cannot create handoff ring: %s", rte_strerror(rte_errno));
        return false;
      }
    }
  }
  // Connection IDs: epoch << 40 | counter, counters interleaved by worker.
  rt.ids.resize(nworkers);
  for (uint32_t w = 0; w < nworkers; ++w) {
    rt.ids[w].epoch = 1;
    rt.ids[w].next = w + 1;
    rt.ids[w].stride = nworkers;
  }
  for (uint32_t w = 0; w < nworkers; ++w) {
    const int socket = static_cast<int>(rte_lcore_to_socket_id(lcores[w]));
    auto pipeline =
        holdfast::Pipeline::create(config.pipeline, rt.policy.get(), &rt.ids[w], socket, &error);
    if (!pipeline) {
      log(LogLevel::error, "workers", "worker %u: %s", w, error.c_str());
      return false;
    }
    auto worker = std::make_unique<holdfast::Worker>(w, &rt.shared, std::move(pipeline));
    if (!worker->init(socket, &error)) {
      log(LogLevel::error, "workers", "worker %u: %s", w, error.c_str());
      return false;
    }
    rt.workers.push_back(std::move(worker));
  }
  return true;
}

void print_final_stats(const Runtime& rt) {
  nlohmann::json out;
  std::vector<const holdfast::Pipeline*> pipelines;
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : rt.workers) {
    pipelines.push_back(&w->pipeline());
    workers.push_back(w->stats());
  }
  nlohmann::json ports = nlohmann::json::array();
  for (const holdfast::PortInfo& p : rt.shared.ports) ports.push_back(port_stats(p));
  out["ports"] = ports;
  out["workers"] = workers;
  out["pipeline"] = holdfast::pipeline_stats(pipelines);
  std::printf("%s\n", out.dump(2).c_str());
  std::fflush(stdout);
}

int serve(const holdfast::Config& config) {
  std::vector<unsigned> lcores;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    lcores.push_back(lcore);
  }
  const bool on_main = lcores.empty();
  if (on_main) lcores.push_back(rte_get_main_lcore());
  if (lcores.size() > holdfast::kMaxWorkers) {
    log(LogLevel::error, "workers", "%zu worker lcores, at most %u are supported", lcores.size(),
        holdfast::kMaxWorkers);
    return 1;
  }
  Runtime rt;
  if (!build(rt, config, lcores)) return 1;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  log(LogLevel::info, "dataplane", "forwarding with %zu worker%s (%zu rules, default %s)",
      lcores.size(), lcores.size() == 1 ? "" : "s", config.rules.size(),
      config.default_action == holdfast::Action::allow ? "allow" : "deny");
  if (on_main) {
    rt.workers[0]->run();
  } else {
    for (size_t w = 0; w < lcores.size(); ++w) {
      rte_eal_remote_launch(worker_entry, rt.workers[w].get(), lcores[w]);
    }
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rte_eal_mp_wait_lcore();
  }
  log(LogLevel::info, "dataplane", "stopped");
  print_final_stats(rt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  holdfast::set_log_program("holdfast");
  // EAL options come before "--", ours after it; read ours (and the
  // configuration) first so a bad file fails fast, before DPDK starts.
  int split = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      split = i;
      break;
    }
  }
  AppOptions options;
  if (!parse_app_args(split < argc ? argc - split - 1 : 0, argv + split + 1, &options)) return 2;
  holdfast::ConfigResult loaded = holdfast::load_config_file(options.config);
  if (!loaded.config) {
    for (const std::string& e : loaded.errors) log(LogLevel::error, "config", "%s", e.c_str());
    return 1;
  }
  if (rte_eal_init(split, argv) < 0) {
    log(LogLevel::error, "eal", "cannot initialise DPDK: %s", rte_strerror(rte_errno));
    return 1;
  }
  const int rc = serve(*loaded.config);
  rte_eal_cleanup();
  return rc;
}
