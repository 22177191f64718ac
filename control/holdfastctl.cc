// holdfastctl: the operator's tool (usage below, docs/operations.md).
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/inspect.h"
#include "control/ctl.h"
#include "control/log.h"
#include "control/supervise.h"

namespace {

constexpr const char* kUsage =
    "usage: holdfastctl COMMAND [options]\n"
    "Dataplane (over its DPDK telemetry socket):\n"
    "  stats                          counters per port, worker and module, drop reasons\n"
    "  conns [FILTER...]              connections; FILTER: addr A[/LEN], port P, proto\n"
    "                                 tcp|udp|icmp|other, state S, module ftp|sip, id ID\n"
    "  conns show ID                  one connection: base layer and every module's slice\n"
    "  rules show                     the rules in force, with their hits\n"
    "  rules reload FILE              validate FILE (a configuration) and apply its rules\n"
    "                                 to new and existing connections\n"
    "  crash [--signal KILL|SEGV|ABRT] [--after-packets N]\n"
    "                                 make the dataplane crash, for recovery tests\n"
    "  metrics                        every counter in Prometheus text format\n"
    "Checkpoint server (holdfast-ckptd):\n"
    "  ckpt status                    store size and use, epoch, clients, recovery report\n"
    "  ckpt clear                     forget the application's checkpoint set\n"
    "  conns --ckpt SOCKET            connections as the checkpoint set holds them\n"
    "Supervision:\n"
    "  supervise [--max-restarts N] -- COMMAND [ARGS...]\n"
    "                                 run the dataplane, restart it with --recover appended\n"
    "                                 after every abnormal exit (backoff 0.1 s doubling to\n"
    "                                 5 s); a clean exit ends it, SIGINT/SIGTERM pass on\n"
    "Options:\n"
    "  --json                 machine-readable output\n"
    "  --file-prefix P        the dataplane's EAL --file-prefix (default rte)\n"
    "  --telemetry PATH       its telemetry socket (default /var/run/dpdk/P/dpdk_telemetry.v2)\n"
    "  --ckpt SOCKET          holdfast-ckptd's socket (default /run/holdfast/ckptd.sock)\n"
    "  --app APP              application id in the store (default holdfast)\n"
    "  --ckpt-token-file F    token for holdfast-ckptd\n";

int supervise_main(int argc, char** argv) {
  holdfast::SuperviseOptions options;
  int i = 0;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--max-restarts" && i + 1 < argc) {
      char* end = nullptr;
      const long n = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 0) {
        std::fprintf(stderr, "holdfastctl: --max-restarts wants a count, got \"%s\"\n", argv[i]);
        return 2;
      }
      options.max_restarts = static_cast<int>(n);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "holdfastctl: unknown supervise option \"%s\"\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  for (; i < argc; ++i) options.command.emplace_back(argv[i]);
  if (options.command.empty()) {
    std::fprintf(stderr, "holdfastctl: supervise needs a command after \"--\"\n%s", kUsage);
    return 2;
  }
  return holdfast::supervise(options);
}

}  // namespace

namespace holdfast::ctl {

std::string Options::telemetry_path() const {
  if (!telemetry.empty()) return telemetry;
  // DPDK's runtime directory: /var/run/dpdk/PREFIX as root, else under
  // $XDG_RUNTIME_DIR (or /tmp).
  std::string dir = "/var/run";
  if (getuid() != 0) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    dir = xdg != nullptr ? xdg : "/tmp";
  }
  return dir + "/dpdk/" + file_prefix + "/dpdk_telemetry.v2";
}

bool parse_options(int argc, char** argv, Options* o, std::string* error) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* into) {
      if (i + 1 >= argc) {
        *error = a + " needs a value";
        return false;
      }
      *into = argv[++i];
      return true;
    };
    if (a == "--json") {
      o->json = true;
    } else if (a == "--telemetry") {
      if (!value(&o->telemetry)) return false;
    } else if (a == "--file-prefix") {
      if (!value(&o->file_prefix)) return false;
    } else if (a == "--ckpt") {
      if (!value(&o->ckpt_socket)) return false;
      o->ckpt_given = true;
    } else if (a == "--app") {
      if (!value(&o->app)) return false;
    } else if (a == "--ckpt-token-file") {
      if (!value(&o->token_file)) return false;
    } else {
      o->args.push_back(a);
    }
  }
  return true;
}

// conns --ckpt: the application's connections as its checkpoint set holds
// them, read as a reader of holdfast-ckptd.
int conns_from_store(const Options& o) {
  holdfast::ckpt::ClientOptions options;
  options.socket = o.ckpt_socket;
  options.app = o.app;
  options.token_file = o.token_file;
  const bool json_out = o.json;
  if (options.socket.empty()) {
    std::fprintf(stderr, "holdfastctl: conns needs --ckpt SOCKET (holdfast-ckptd's socket)\n");
    return 2;
  }
  std::string error;
  auto client = holdfast::ckpt::Client::connect_reader(options, &error);
  if (!client) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    return 1;
  }
  if (!client->recover()) {
    std::fprintf(stderr, "holdfastctl: application %s has no committed checkpoint set\n",
                 options.app.c_str());
    return 1;
  }
  const holdfast::ckpt::StoredSet set = holdfast::ckpt::read_set(
      client->store(), client->store_bytes(), client->store_fd(), *client->recover());
  const uint64_t now_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  if (json_out) {
    nlohmann::json out = {{"app", options.app},
                          {"set", client->recover()->set},
                          {"epoch", client->recover()->epoch},
                          {"connections", nlohmann::json::array()},
                          {"skipped", set.skipped}};
    for (const auto& c : set.connections) out["connections"].push_back(c.to_json(now_ms));
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-16s %-5s %-12s %-44s %-8s %s\n", "ID", "PROTO", "STATE", "CLIENT -> SERVER",
              "IDLE", "RELATED");
  std::map<uint64_t, std::vector<const holdfast::ckpt::StoredConnection*>> data_of;
  for (const auto& c : set.connections) {
    if (c.master_id != 0) data_of[c.master_id].push_back(&c);
  }
  for (const auto& c : set.connections) {
    const nlohmann::json j = c.to_json(now_ms);
    std::string related;
    if (c.master_id != 0) related = "master " + std::to_string(c.master_id);
    if (c.l7 == holdfast::ModuleId::ftp) {
      related = "ftp control, " + std::to_string(data_of[c.id].size()) + " data, " +
                std::to_string(c.pending_expectations) + " pending";
    } else if (c.l7 == holdfast::ModuleId::sip) {
      related = "sip signalling, " + std::to_string(c.calls.size()) + " call" +
                (c.calls.size() == 1 ? "" : "s") + ", " + std::to_string(data_of[c.id].size()) +
                " media";
      for (const auto& call : c.calls) related += "; " + call.call_id + " " + call.state;
    }
    const std::string ends = c.client() + " -> " + c.server();
    std::printf("%-16llu %-5s %-12s %-44s %-8s %s\n", static_cast<unsigned long long>(c.id),
                holdfast::module_name(c.l4), c.state.c_str(), ends.c_str(),
                (std::to_string(j["idle_s"].get<uint64_t>()) + "s").c_str(), related.c_str());
  }
  std::printf("%zu connections (app %s, set %u)", set.connections.size(), options.app.c_str(),
              client->recover()->set);
  for (const auto& [why, n] : set.skipped) {
    std::printf(", %llu slots skipped: %s", static_cast<unsigned long long>(n), why.c_str());
  }
  std::printf("\n");
  return 0;
}

}  // namespace holdfast::ctl

int main(int argc, char** argv) {
  holdfast::set_log_program("holdfastctl");
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "supervise") return supervise_main(argc - 2, argv + 2);
  namespace ctl = holdfast::ctl;
  const std::map<std::string, int (*)(const ctl::Options&)> commands = {
      {"stats", ctl::stats_main}, {"conns", ctl::conns_main},     {"rules", ctl::rules_main},
      {"crash", ctl::crash_main}, {"metrics", ctl::metrics_main}, {"ckpt", ctl::ckpt_main}};
  const auto it = commands.find(command);
  if (it == commands.end()) {
    std::fprintf(stderr, "holdfastctl: unknown command \"%s\"\n%s", command.c_str(), kUsage);
    return 2;
  }
  ctl::Options options;
  std::string error;
  if (!ctl::parse_options(argc - 2, argv + 2, &options, &error)) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    return 2;
  }
  for (const std::string& a : options.args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  return it->second(options);
}
