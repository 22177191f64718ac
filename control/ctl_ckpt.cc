// holdfastctl ckpt: holdfast-ckptd as its operator sees it.
//
//   holdfastctl ckpt status [--json]   the server's stats reply, as tables
//   holdfastctl ckpt clear             forget the application's data
//
// holdfastctl speaks to the server as a monitor (docs/checkpoint.md, "The
// control protocol"): authenticated like any client but handed no store
// descriptor, so it can neither read nor write slots. The server refuses a
// clear while the application's writer is connected; that refusal is what
// keeps an operator from pulling the store from under a running dataplane.
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint/client.h"
#include "checkpoint/protocol.h"
#include "checkpoint/recovery.h"
#include "checkpoint/store_format.h"
#include "checkpoint/writer.h"
#include "control/ctl.h"
#include "modules/module.h"

namespace holdfast::ctl {
namespace {

using nlohmann::json;

constexpr int kReplyTimeoutMs = 10'000;

constexpr const char* kCkptUsage =
    "usage: holdfastctl ckpt status [--json] [--ckpt SOCKET] [--app APP] [--ckpt-token-file F]\n"
    "       holdfastctl ckpt clear [--ckpt SOCKET] [--app APP] [--ckpt-token-file F]\n"
    "  status: store size and use, generation and epoch; per application its committed and\n"
    "          staging sets, their regions' use, its writer and last recovery report; clients\n"
    "  clear:  forget APP's checkpoint sets (refused while its dataplane is connected)\n";

// A JSON member as the text a table cell shows: "-" for null or absent.
std::string cell(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// The server's replies are read without trusting their shape: a member that
// is missing or of another type reads as "-", 0 or false, never as an
// exception.
uint64_t number(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : 0;
}

json member(const json& j, const char* key) {
  return j.contains(key) ? j[key] : json();
}

bool flag(const json& j, const char* key) {
  return j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
}

// One request on a fresh monitor connection: connect, hello, then `request`.
// *reply is the server's answer to it; an error reply, a refused hello or an
// unreachable server returns false with *error.
bool ask_as_monitor(const Options& o, const json& request, json* reply, std::string* error) {
  json hello = {{"type", "hello"}, {"app", o.app}, {"role", "monitor"}};
  if (!o.token_file.empty()) {
    std::string token;
    if (!ckpt::read_token_file(o.token_file, &token, error)) return false;
    hello["token"] = token;
  }
  if (o.ckpt_socket.empty() || o.ckpt_socket.size() >= sizeof(sockaddr_un::sun_path)) {
    *error = "the socket path must be 1 to " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
             " bytes long: \"" + o.ckpt_socket + "\"";
    return false;
  }
  // The blocking framing helpers work on the descriptor; Asio only connects.
  namespace asio = boost::asio;
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  boost::system::error_code ec;
  socket.connect(asio::local::stream_protocol::endpoint(o.ckpt_socket), ec);
  if (ec) {
    *error = "cannot reach holdfast-ckptd at " + o.ckpt_socket + ": " + ec.message();
    return false;
  }
  const int sock = socket.native_handle();
  auto exchange = [&](const json& message, json* answer) {
    int fd = -1;
    if (!ckpt::send_message(sock, message, -1, error) ||
        !ckpt::receive_message(sock, answer, &fd, kReplyTimeoutMs, error)) {
      *error = "holdfast-ckptd at " + o.ckpt_socket + ": " + *error;
      return false;
    }
    if (fd >= 0) close(fd);  // a monitor is given none; never keep one
    return true;
  };
  json welcome;
  if (!exchange(hello, &welcome)) return false;
  if (cell(welcome, "type") != "welcome") {
    const std::string why = cell(welcome, "error");
    *error = "holdfast-ckptd refused: " + (why == "-" ? welcome.dump() : why);
    return false;
  }
  if (!exchange(request, reply)) return false;
  if (cell(*reply, "type") == "error") {
    *error = "holdfast-ckptd: " + cell(*reply, "error");
    return false;
  }
  return true;
}

// What a region set's module number holds (checkpoint/writer.h).
std::string region_name(uint64_t module) {
  if (module == ckpt::kBaseModule) return "base";
  if (module == ckpt::kFragmentModule) return "fragments";
  if (module == ckpt::kSipCallModule) return "sip calls";
  if (module == ckpt::kRulesModule) return "rules";
  if (module == static_cast<uint8_t>(ModuleId::ftp)) return "ftp sessions";
  if (module == static_cast<uint8_t>(ModuleId::sip)) return "sip sessions";
  if (module <= static_cast<uint8_t>(ModuleId::other)) {
    return module_name(static_cast<ModuleId>(module));
  }
  return "module " + std::to_string(module);
}

std::string bytes_text(uint64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f MiB (%llu bytes)", static_cast<double>(bytes) / 1048576.0,
                static_cast<unsigned long long>(bytes));
  return text;
}

double percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// The recovery report as the dataplane logged it (RecoveryReport::text), read
// back from the JSON it sent. The server keeps whatever its writer sent, so a
// report that does not read as one is shown as JSON.
std::string report_text(const json& j) {
  try {
    ckpt::RecoveryReport r;
    r.from_set = j.value("from_set", 0u);
    r.from_epoch = j.value("from_epoch", 0u);
    r.epoch = j.value("epoch", 0u);
    r.workers_before = j.value("workers_before", 0u);
    r.workers_now = j.value("workers_now", 0u);
    r.threads = j.value("threads", 0u);
    r.restored = j.value("restored", r.restored);
    r.restored_l7 = j.value("restored_l7", r.restored_l7);
    r.sip_calls = j.value("sip_calls", uint64_t{0});
    r.sip_media_linked = j.value("sip_media_linked", uint64_t{0});
    r.fragments = j.value("fragment_records", uint64_t{0});
    r.discarded = j.value("discarded", r.discarded);
    if (j.contains("rules") && j["rules"].is_object()) {
      r.rules_classified = j["rules"].value("classified", uint64_t{0});
      r.rules_unchanged = j["rules"].value("unchanged", uint64_t{0});
    }
    r.phase_ms = j.value("phase_ms", r.phase_ms);
    r.total_ms = j.value("total_ms", 0.0);
    std::string text = r.text();
    if (j.contains("first_packet_ms") && j["first_packet_ms"].is_number()) {
      char line[96];
      std::snprintf(line, sizeof line, "  first packet forwarded %.1f ms after start\n",
                    j["first_packet_ms"].get<double>());
      text += line;
    }
    return text;
  } catch (const json::exception&) {
    return j.dump() + "\n";
  }
}

void print_set(const char* what, const json& set) {
  if (!set.is_object()) {
    std::printf("  %s set: none\n", what);
    return;
  }
  std::printf("  %s set %s", what, cell(set, "set").c_str());
  if (set.contains("epoch")) std::printf(" (epoch %s)", cell(set, "epoch").c_str());
  std::printf(": %s connections, %s\n", cell(set, "connections").c_str(),
              bytes_text(number(set, "bytes")).c_str());
}

// One line per region of the committed and the staging set.
void print_regions(const json& app) {
  bool header = false;
  for (const char* which : {"committed", "staging"}) {
    const json set = member(app, which);
    const json regions = member(set, "regions");
    if (!regions.is_array()) continue;
    if (!header) {
      std::printf("  %-14s %-6s %-14s %10s %10s %7s\n", "SET", "WORKER", "MODULE", "SLOTS", "USED",
                  "USE");
      header = true;
    }
    const std::string name = std::string(which) + " " + cell(set, "set");
    for (const json& r : regions) {
      const uint64_t slots = number(r, "slots");
      const uint64_t used = number(r, "used");
      std::printf("  %-14s %-6s %-14s %10llu %10llu %6.1f%%\n", name.c_str(),
                  cell(r, "worker").c_str(), region_name(number(r, "module")).c_str(),
                  static_cast<unsigned long long>(slots), static_cast<unsigned long long>(used),
                  percent(used, slots));
    }
  }
}

void print_status(const Options&, const json& stats) {
  const json store = member(stats, "store");
  const uint64_t bytes = number(store, "bytes");
  const uint64_t used = number(store, "used_bytes");
  std::printf("Store %s\n", cell(store, "path").c_str());
  std::printf("  size        %s\n", bytes_text(bytes).c_str());
  std::printf("  used        %s, %.1f%%\n", bytes_text(used).c_str(), percent(used, bytes));
  std::printf("  generation  %s\n", cell(store, "generation").c_str());
  std::printf("  epoch       %s (the last one handed out)\n", cell(store, "epoch").c_str());

  const json apps = member(stats, "apps");
  if (apps.empty() || apps.is_null()) std::printf("\nNo application has data in the store.\n");
  for (const json& app : apps) {
    std::printf("\nApplication %s\n", cell(app, "app").c_str());
    const std::string writer = cell(app, "writer");
    std::printf("  writer: %s\n", writer == "-" ? "none connected" : ("client " + writer).c_str());
    print_set("committed", member(app, "committed"));
    print_set("staging", member(app, "staging"));
    print_regions(app);
    const json report = member(app, "report");
    if (report.is_object()) {
      std::printf("  last recovery report:\n");
      std::string text = report_text(report);
      for (size_t at = 0; (at = text.find('\n')) != std::string::npos; text.erase(0, at + 1)) {
        std::printf("    %s\n", text.substr(0, at).c_str());
      }
    }
  }
  if (flag(stats, "regions_omitted")) {
    std::printf("\n(per-region use left out: the reply would not fit in one message)\n");
  }
  if (flag(stats, "reports_omitted")) {
    std::printf("(recovery reports left out: the reply would not fit in one message)\n");
  }

  std::printf("\nClients\n");
  std::printf("  %-6s %-8s %-8s %-32s %s\n", "ID", "PID", "UID", "APP", "ROLE");
  for (const json& c : member(stats, "clients")) {
    std::printf("  %-6s %-8s %-8s %-32s %s\n", cell(c, "id").c_str(), cell(c, "pid").c_str(),
                cell(c, "uid").c_str(), cell(c, "app").c_str(), cell(c, "role").c_str());
  }
}

void print_cleared(const Options& o, const json& reply) {
  const std::string app = cell(reply, "app");
  std::printf("cleared application %s\n", app == "-" ? o.app.c_str() : app.c_str());
}

// A subcommand: one request as a monitor, its reply as JSON (--json, as the
// server sent it) or as text.
int ask_and_print(const Options& o, const json& request,
                  void (*print_text)(const Options&, const json&)) {
  json reply;
  std::string error;
  if (!ask_as_monitor(o, request, &reply, &error)) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    return 1;
  }
  if (o.json) {
    std::printf("%s\n", reply.dump(2).c_str());
  } else {
    print_text(o, reply);
  }
  return 0;
}

}  // namespace

bool collect_ckpt(const Options& o, json* out, std::string* error) {
  return ask_as_monitor(o, {{"type", "stats"}}, out, error);
}

int ckpt_main(const Options& o) {
  const std::string sub = o.args.empty() ? "" : o.args[0];
  if (o.args.size() == 1 && sub == "status") {
    return ask_and_print(o, {{"type", "stats"}}, print_status);
  }
  if (o.args.size() == 1 && sub == "clear") {
    return ask_and_print(o, {{"type", "clear"}, {"app", o.app}}, print_cleared);
  }
  if (sub.empty()) {
    std::fprintf(stderr, "holdfastctl: ckpt needs a subcommand\n%s", kCkptUsage);
  } else if (sub != "status" && sub != "clear") {
    std::fprintf(stderr, "holdfastctl: unknown ckpt subcommand \"%s\"\n%s", sub.c_str(),
                 kCkptUsage);
  } else {
    std::fprintf(stderr, "holdfastctl: unexpected argument \"%s\"\n%s", o.args[1].c_str(),
                 kCkptUsage);
  }
  return 2;
}

}  // namespace holdfast::ctl
