// holdfast: the DPDK dataplane.
// Usage: holdfast [EAL options] -- --config FILE
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/recovery.h"
#include "checkpoint/writer.h"
#include "control/config.h"
#include "control/log.h"
#include "dataplane/policy.h"
#include "dataplane/ports.h"
#include "dataplane/stats.h"
#include "dataplane/steering.h"
#include "dataplane/telemetry.h"
#include "dataplane/worker.h"

namespace {

using holdfast::log;
using holdfast::LogLevel;

constexpr const char* kUsage =
    "usage: holdfast [EAL options] -- --config FILE [--ckpt SOCKET] [--ckpt-app ID]\n"
    "                                [--ckpt-token-file F] [--recover]\n"
    "  EAL options select cores (-l), memory and devices (PCI addresses, --vdev);\n"
    "  one worker runs on every worker lcore (on the main lcore if there is none).\n"
    "  --ckpt SOCKET       checkpoint into holdfast-ckptd (or config checkpoint.socket)\n"
    "  --ckpt-app ID       application id in the store (default holdfast)\n"
    "  --ckpt-token-file F token for holdfast-ckptd\n"
    "  --recover           rebuild the connections the store holds before forwarding\n"
    "  --check             only check the configuration file, then exit\n"
    "  SIGINT or SIGTERM stop it and print the final statistics as JSON on stdout.\n";

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

struct AppOptions {
  std::string config;
  std::string ckpt_socket;
  std::string ckpt_app;
  std::string ckpt_token_file;
  bool recover = false;
  bool check = false;
};

// Wall clock at process start, for "time to first forwarded packet".
uint64_t g_start_ns = 0;

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// Parses the application arguments (after "--").
bool parse_app_args(int argc, char** argv, AppOptions* o) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      o->config = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      o->config = a.substr(9);
    } else if (a == "--ckpt" && i + 1 < argc) {
      o->ckpt_socket = argv[++i];
    } else if (a == "--ckpt-app" && i + 1 < argc) {
      o->ckpt_app = argv[++i];
    } else if (a == "--ckpt-token-file" && i + 1 < argc) {
      o->ckpt_token_file = argv[++i];
    } else if (a == "--recover") {
      o->recover = true;
    } else if (a == "--check") {
      o->check = true;
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
  std::unique_ptr<holdfast::PinholeMail> mail;  // with more than one worker
  std::vector<std::unique_ptr<holdfast::Worker>> workers;
  bool ports_started = false;
  std::unique_ptr<holdfast::ckpt::Client> client;
  std::vector<holdfast::ckpt::WorkerCheckpoint> writers;  // one per worker, never resized
  nlohmann::json recovery;
  std::atomic<uint32_t> spare_epoch{0};  // for workers whose counters run out
  holdfast::CrashTrigger crash;
  holdfast::TelemetryContext telemetry;

  ~Runtime() {
    holdfast::telemetry_attach(nullptr);
    workers.clear();
    if (ports_started) holdfast::stop_ports(shared.ports);
    for (auto& row : shared.rings) {
      for (rte_ring* r : row) rte_ring_free(r);
    }
    rte_mempool_free(pool);
  }
};

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
  if (const uint64_t stale = holdfast::discard_received(rt.shared.ports)) {
    log(LogLevel::info, "ports", "discarded %llu frames received while the ports came up",
        static_cast<unsigned long long>(stale));
  }
  rt.shared.port_index.fill(-1);
  for (size_t i = 0; i < rt.shared.ports.size(); ++i) {
    rt.shared.port_index[rt.shared.ports[i].port_id] = static_cast<int16_t>(i);
  }
  rt.shared.workers = nworkers;
  rt.shared.parse = config.parse;
  rt.shared.stop = &g_stop;
  rt.shared.crash = &rt.crash;
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
  if (nworkers > 1) {
    std::vector<int> sockets;
    for (uint32_t w = 0; w < nworkers; ++w) {
      sockets.push_back(static_cast<int>(rte_lcore_to_socket_id(lcores[w])));
    }
    rt.mail = holdfast::PinholeMail::create(sockets, &error);
    if (!rt.mail) {
      log(LogLevel::error, "workers", "%s", error.c_str());
      return false;
    }
  }
  for (uint32_t w = 0; w < nworkers; ++w) {
    const int socket = static_cast<int>(rte_lcore_to_socket_id(lcores[w]));
    auto pipeline =
        holdfast::Pipeline::create(config.pipeline, rt.policy.get(), &rt.ids[w], socket, &error);
    if (!pipeline) {
      log(LogLevel::error, "workers", "worker %u: %s", w, error.c_str());
      return false;
    }
    pipeline->set_steering(w, nworkers, rt.mail.get());
    auto worker = std::make_unique<holdfast::Worker>(w, &rt.shared, std::move(pipeline));
    worker->set_lcore(lcores[w]);
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
  for (const holdfast::PortInfo& p : rt.shared.ports) ports.push_back(holdfast::port_stats(p));
  out["ports"] = ports;
  out["workers"] = workers;
  out["pipeline"] = holdfast::pipeline_stats(pipelines);
  if (rt.client) {
    out["checkpoint"] = {{"epoch", rt.client->epoch()},
                         {"set", rt.client->write().set},
                         {"connected", rt.client->connected()},
                         {"outages", rt.client->outages()}};
  }
  if (!rt.recovery.is_null()) out["recovery"] = rt.recovery;
  std::printf("%s\n", out.dump(2).c_str());
  std::fflush(stdout);
}

// Connects to holdfast-ckptd, points every worker at its regions, rebuilds
// what the store holds when asked to, and commits: from here on the store is
// what a restart recovers from. Logs and returns false on any failure.
bool start_checkpointing(Runtime& rt, const holdfast::Config& config, const AppOptions& o) {
  holdfast::ckpt::ClientOptions options;
  options.socket = o.ckpt_socket.empty() ? config.checkpoint.socket : o.ckpt_socket;
  options.app = o.ckpt_app.empty() ? config.checkpoint.app : o.ckpt_app;
  options.token_file = o.ckpt_token_file.empty() ? config.checkpoint.token_file : o.ckpt_token_file;
  if (options.socket.empty()) {
    if (o.recover) {
      log(LogLevel::error, "checkpoint",
          "--recover needs a checkpoint server (--ckpt SOCKET or checkpoint.socket)");
      return false;
    }
    log(LogLevel::warning, "checkpoint",
        "no checkpoint server: connections will not survive a crash");
    return true;
  }
  if (!holdfast::ckpt::app_id_valid(options.app)) {
    log(LogLevel::error, "checkpoint", "invalid application id \"%s\"", options.app.c_str());
    return false;
  }
  holdfast::ckpt::Layout layout;
  layout.workers = static_cast<uint32_t>(rt.workers.size());
  layout.slots = config.pipeline.connections;
  layout.modules = holdfast::ckpt::module_shapes(config.pipeline);
  std::string error;
  rt.client = holdfast::ckpt::Client::connect(options, layout, &error);
  if (!rt.client) {
    log(LogLevel::error, "checkpoint", "%s", error.c_str());
    return false;
  }
  rt.writers.assign(rt.workers.size(), holdfast::ckpt::WorkerCheckpoint{});
  if (!holdfast::ckpt::attach_writers(rt.client->store(), rt.client->write(), &rt.writers,
                                      &error)) {
    log(LogLevel::error, "checkpoint", "%s", error.c_str());
    return false;
  }
  std::vector<holdfast::Pipeline*> pipelines;
  for (size_t w = 0; w < rt.workers.size(); ++w) {
    rt.workers[w]->pipeline().set_checkpoint(&rt.writers[w], config.checkpoint.store_full_allow);
    rt.ids[w].epoch = rt.client->epoch();
    rt.ids[w].spare_epoch = &rt.spare_epoch;
    pipelines.push_back(&rt.workers[w]->pipeline());
  }
  if (rt.writers[0].slots() < config.pipeline.connections) {
    log(LogLevel::warning, "checkpoint",
        "the store holds %u of %u connections per worker; beyond them new connections are %s",
        rt.writers[0].slots(), config.pipeline.connections,
        config.checkpoint.store_full_allow ? "forwarded unprotected" : "refused");
  }
  if (o.recover) {
    if (rt.client->recover()) {
      const holdfast::ckpt::RecoveryReport report = holdfast::ckpt::recover_connections(
          rt.client->store(), rt.client->store_bytes(), rt.client->store_fd(),
          *rt.client->recover(), pipelines, rt.client->epoch());
      rt.recovery = report.to_json();
      std::string text = report.text();
      for (size_t at = 0; (at = text.find('\n')) != std::string::npos;) {
        log(LogLevel::info, "recovery", "%s", text.substr(0, at).c_str());
        text.erase(0, at + 1);
      }
    } else {
      log(LogLevel::info, "recovery", "the store holds nothing to recover for %s",
          options.app.c_str());
    }
  }
  if (!rt.client->commit(&error)) {
    log(LogLevel::error, "checkpoint", "%s", error.c_str());
    return false;
  }
  log(LogLevel::info, "checkpoint", "checkpointing into %s as %s, epoch %u, set %u",
      options.socket.c_str(), options.app.c_str(), rt.client->epoch(), rt.client->write().set);
  return true;
}

// Fetches a fresh epoch from holdfast-ckptd once any worker has used half
// of its epoch's connection counters, so that it is there when they run out.
void keep_spare_epoch(Runtime& rt) {
  uint64_t most = 0;
  uint32_t newest = 0;
  for (const holdfast::ConnIdSource& ids : rt.ids) {
    most = std::max(most, ids.used());
    newest = std::max(newest, ids.current_epoch());
  }
  if (most <= holdfast::kConnCounterMask / 2 || rt.spare_epoch.load() > newest) return;
  if (!rt.client->connected()) return;  // tried again next second
  std::string error;
  const uint32_t epoch = rt.client->renew_epoch(&error);
  if (epoch == 0) {
    log(LogLevel::warning, "checkpoint", "cannot get the next epoch yet: %s", error.c_str());
    return;
  }
  rt.spare_epoch.store(epoch, std::memory_order_release);
  log(LogLevel::info, "checkpoint",
      "connection counters of epoch %u half used: epoch %u is ready for when they run out", newest,
      epoch);
}

// The control thread: keeps the checkpoint server attached and reports when
// forwarding resumed after a recovery.
void control_loop(Runtime& rt) {
  bool first_reported = false;
  auto next_maintain = std::chrono::steady_clock::now();
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!first_reported) {
      uint64_t first = 0;
      for (const auto& w : rt.workers) {
        const uint64_t t = w->first_tx_ns();
        if (t != 0 && (first == 0 || t < first)) first = t;
      }
      if (first != 0) {
        first_reported = true;
        const double ms = static_cast<double>(first - g_start_ns) / 1e6;
        log(LogLevel::info, "dataplane", "first packet forwarded %.1f ms after start", ms);
        std::lock_guard lock(holdfast::telemetry_mutex());
        if (!rt.recovery.is_null()) {
          rt.recovery["first_packet_ms"] = ms;
          std::string error;
          if (rt.client && rt.client->connected() && !rt.client->send_report(rt.recovery, &error)) {
            log(LogLevel::warning, "checkpoint", "%s", error.c_str());
          }
        }
      }
    }
    if (rt.client && std::chrono::steady_clock::now() >= next_maintain) {
      std::lock_guard lock(holdfast::telemetry_mutex());
      rt.client->maintain();
      keep_spare_epoch(rt);
      next_maintain = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
  }
}

// Makes the running dataplane what the /holdfast/ telemetry commands answer.
void attach_telemetry(Runtime& rt, const holdfast::Config& config, const AppOptions& o) {
  holdfast::TelemetryContext& t = rt.telemetry;
  for (const auto& w : rt.workers) t.workers.push_back(w.get());
  t.shared = &rt.shared;
  t.config_path = o.config;
  if (char* full = realpath(o.config.c_str(), nullptr)) {
    t.config_path = full;
    std::free(full);
  }
  std::ifstream in(o.config);
  t.config_raw = nlohmann::json::parse(in, nullptr, false);
  t.policy = &rt.policy;
  t.client = rt.client.get();
  t.ckpt_app = o.ckpt_app.empty() ? config.checkpoint.app : o.ckpt_app;
  t.recovery = &rt.recovery;
  t.crash = &rt.crash;
  t.start_ns = g_start_ns;
  holdfast::telemetry_attach(&t);
}

void set_workers_running(Runtime& rt, bool running) {
  std::lock_guard lock(holdfast::telemetry_mutex());
  rt.telemetry.workers_running = running;
}

int serve(const holdfast::Config& config, const AppOptions& options) {
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
  if (!start_checkpointing(rt, config, options)) return 1;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  attach_telemetry(rt, config, options);
  log(LogLevel::info, "dataplane", "forwarding with %zu worker%s (%zu rules, default %s)",
      lcores.size(), lcores.size() == 1 ? "" : "s", config.rules.size(),
      holdfast::action_name(config.default_action));
  set_workers_running(rt, true);
  if (on_main) {
    std::thread control([&rt] { control_loop(rt); });
    rt.workers[0]->run();
    g_stop.store(true);
    control.join();
  } else {
    for (size_t w = 0; w < lcores.size(); ++w) {
      rte_eal_remote_launch(worker_entry, rt.workers[w].get(), lcores[w]);
    }
    // The main lcore runs the control loop, which sleeps, until a signal
    // stops everything: rte_eal_mp_wait_lcore() alone would spin a core
    // that a worker may share.
    control_loop(rt);
    rte_eal_mp_wait_lcore();
  }
  set_workers_running(rt, false);
  log(LogLevel::info, "dataplane", "stopped");
  print_final_stats(rt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_start_ns = realtime_ns();
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
  if (options.check) {
    std::printf("%s: configuration OK: %zu port pair%s, %zu rule%s, default %s\n",
                options.config.c_str(), loaded.config->ports.size(),
                loaded.config->ports.size() == 1 ? "" : "s", loaded.config->rules.size(),
                loaded.config->rules.size() == 1 ? "" : "s",
                holdfast::action_name(loaded.config->default_action));
    return 0;
  }
  holdfast::register_telemetry_commands();
  if (rte_eal_init(split, argv) < 0) {
    log(LogLevel::error, "eal", "cannot initialise DPDK: %s", rte_strerror(rte_errno));
    return 1;
  }
  const int rc = serve(*loaded.config, options);
  rte_eal_cleanup();
  return rc;
}
