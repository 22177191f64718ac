// holdfastctl: the operator's tool.
//   holdfastctl supervise [--max-restarts N] -- COMMAND [ARGS...]
//   holdfastctl conns --ckpt SOCKET [--app APP] [--ckpt-token-file F] [--json]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/inspect.h"
#include "control/log.h"
#include "control/supervise.h"

namespace {

constexpr const char* kUsage =
    "usage: holdfastctl supervise [--max-restarts N] -- COMMAND [ARGS...]\n"
    "       holdfastctl conns --ckpt SOCKET [--app APP] [--ckpt-token-file F] [--json]\n"
    "  Runs COMMAND (the dataplane) and restarts it with --recover appended after\n"
    "  every abnormal exit, with a backoff from 0.1 s doubling to 5 s. A clean exit\n"
    "  ends supervision; SIGINT/SIGTERM are passed to COMMAND.\n"
    "  conns lists the connections of application APP (default holdfast) as its\n"
    "  checkpoint set in holdfast-ckptd holds them: those of the running dataplane,\n"
    "  or after a crash what recovery will restore. Related connections show their\n"
    "  master; FTP control connections their data connections.\n";

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

int conns_main(int argc, char** argv) {
  holdfast::ckpt::ClientOptions options;
  bool json_out = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--json") {
      json_out = true;
    } else if (a == "--ckpt" || a == "--app" || a == "--ckpt-token-file") {
      const char* v = value();
      if (v == nullptr) {
        std::fprintf(stderr, "holdfastctl: %s needs a value\n%s", a.c_str(), kUsage);
        return 2;
      }
      (a == "--ckpt" ? options.socket : a == "--app" ? options.app : options.token_file) = v;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "holdfastctl: unknown conns option \"%s\"\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
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
  const holdfast::ckpt::StoredSet set =
      holdfast::ckpt::read_set(client->store(), client->store_bytes(), *client->recover());
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

}  // namespace

int main(int argc, char** argv) {
  holdfast::set_log_program("holdfastctl");
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "supervise") == 0) return supervise_main(argc - 2, argv + 2);
  if (std::strcmp(argv[1], "conns") == 0) return conns_main(argc - 2, argv + 2);
  std::fprintf(stderr, "holdfastctl: unknown command \"%s\"\n%s", argv[1], kUsage);
  return 2;
}
