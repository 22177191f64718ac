// holdfastctl's dataplane commands: stats, conns, rules, crash, over the
// dataplane's /holdfast/ telemetry commands (dataplane/telemetry.h).
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/ctl.h"
#include "control/telemetry_client.h"

namespace holdfast::ctl {
namespace {

using json = nlohmann::json;

// Telemetry carries booleans as 0/1.
bool flag(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_number_unsigned() && it->get<uint64_t>() != 0;
}

// One call; on failure says why on stderr. Replies {"error": ...} fail too.
class Dataplane {
 public:
  explicit Dataplane(const Options& o) : path_(o.telemetry_path()) {}

  bool connect(std::string* error) { return client_.connect(path_, error); }

  bool call(const std::string& command, const std::string& params, json* reply,
            std::string* error) {
    json raw;
    if (!client_.call(command, params, &raw, error)) return false;
    if (raw.is_object() && raw.contains("error") && raw["error"].is_string() &&
        !raw.contains("ok")) {
      *error = raw["error"].get<std::string>();
      return false;
    }
    *reply = unflatten(raw);
    return true;
  }

  // Every page of a paged command (rules, conns): the numbered entries in order.
  bool pages(const std::string& command, const std::string& params, const char* cursor_key,
             json* items, std::string* error) {
    *items = json::array();
    std::string cursor;
    for (;;) {
      std::string p = params;
      if (!cursor.empty()) {
        p = std::string(cursor_key).empty() ? cursor : p + " " + cursor_key + "=" + cursor;
      }
      json page;
      if (!call(command, p, &page, error)) return false;
      for (size_t i = 0;; ++i) {
        const auto it = page.find(std::to_string(i));
        if (it == page.end()) break;
        items->push_back(*it);
      }
      if (!flag(page, "more")) return true;
      cursor = std::to_string(page.value("next", uint64_t{0}));
    }
  }

 private:
  std::string path_;
  TelemetryClient client_;
};

int fail(const std::string& error) {
  std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
  return 1;
}

uint64_t u64(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string duration(uint64_t s) {
  char text[64];
  if (s < 120) {
    std::snprintf(text, sizeof text, "%llus", static_cast<unsigned long long>(s));
  } else if (s < 7200) {
    std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else if (s < 172800) {
    std::snprintf(text, sizeof text, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60));
  } else {
    std::snprintf(text, sizeof text, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s / 3600 % 24));
  }
  return text;
}

// Non-zero members of an object of counters, largest first; with all, every one.
void print_counters(const char* title, const json& counters, bool all) {
  std::vector<std::pair<std::string, uint64_t>> rows;
  size_t zero = 0;
  for (auto it = counters.begin(); it != counters.end(); ++it) {
    const uint64_t n = it.value().is_number_unsigned() ? it.value().get<uint64_t>() : 0;
    if (n == 0 && !all) {
      ++zero;
      continue;
    }
    rows.emplace_back(it.key(), n);
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::printf("%s", title);
  if (rows.empty()) std::printf(" none");
  if (zero != 0) std::printf(" (%zu more at 0%s)", zero, all ? "" : "; --all lists them");
  std::printf("\n");
  for (const auto& [name, n] : rows) {
    std::printf("  %-28s %14llu\n", name.c_str(), static_cast<unsigned long long>(n));
  }
}

}  // namespace

bool collect_dataplane(const Options& o, json* out, std::string* error) {
  Dataplane d(o);
  if (!d.connect(error)) return false;
  *out = json::object();
  // Workers before ports: a port counts a frame before the worker that
  // receives it does, so while traffic flows, ports read after workers
  // never show fewer frames than the workers took from them.
  for (const char* part : {"info", "stats", "workers", "ports", "states"}) {
    json reply;
    if (!d.call(std::string("/holdfast/") + part, "", &reply, error)) return false;
    (*out)[part] = reply;
  }
  // ports and workers are keyed by index; keep them objects as documented.
  for (const char* part : {"ports", "workers"}) {
    if ((*out)[part].is_array()) {
      json keyed = json::object();
      for (size_t i = 0; i < (*out)[part].size(); ++i) keyed[std::to_string(i)] = (*out)[part][i];
      (*out)[part] = keyed;
    }
  }
  json rules;
  if (!d.pages("/holdfast/rules", "", "", &rules, error)) return false;
  for (size_t i = 0; i < rules.size(); ++i) rules[i]["index"] = i;
  (*out)["rules"] = rules;
  return true;
}

int stats_main(const Options& o) {
  bool all = false;
  for (const std::string& a : o.args) {
    if (a == "--all") {
      all = true;
    } else {
      std::fprintf(stderr, "holdfastctl: stats takes --all, --json\n");
      return 2;
    }
  }
  json s;
  std::string error;
  if (!collect_dataplane(o, &s, &error)) return fail(error);
  json store;
  std::string store_error;
  const bool have_store = collect_ckpt(o, &store, &store_error);
  if (o.json) {
    s["ckpt"] = have_store ? store : json(nullptr);
    if (!have_store) s["ckpt_error"] = store_error;
    std::printf("%s\n", s.dump(2).c_str());
    return 0;
  }
  const json& info = s["info"];
  const json& totals = s["stats"]["totals"];
  std::printf("holdfast %s, pid %llu, up %s, %llu worker%s, %llu rules + default %s\n",
              str(info, "version").c_str(), static_cast<unsigned long long>(u64(info, "pid")),
              duration(u64(info, "uptime_s")).c_str(),
              static_cast<unsigned long long>(u64(info, "workers")),
              u64(info, "workers") == 1 ? "" : "s",
              static_cast<unsigned long long>(u64(info, "rules")), str(info, "default").c_str());
  std::printf("config %s%s\n", str(info, "config").c_str(),
              u64(info, "recovered") != 0 ? "; started by recovering from the store" : "");
  std::printf("Packets: %llu, passed %llu, dropped %llu\n",
              static_cast<unsigned long long>(u64(totals, "packets")),
              static_cast<unsigned long long>(u64(totals, "passed")),
              static_cast<unsigned long long>(u64(totals, "dropped")));
  std::printf(
      "Connections: %llu open; %llu opened, %llu expired, %llu restored, %llu closed by a rules "
      "reload\n",
      static_cast<unsigned long long>(u64(totals, "active")),
      static_cast<unsigned long long>(u64(totals, "opened")),
      static_cast<unsigned long long>(u64(totals, "expired")),
      static_cast<unsigned long long>(u64(totals, "restored")),
      static_cast<unsigned long long>(u64(totals, "reload_closed")));
  for (auto it = s["states"].begin(); it != s["states"].end(); ++it) {
    // unflatten nests "tcp/established" as {"tcp": {"established": n}}
    for (auto st = it.value().begin(); it.value().is_object() && st != it.value().end(); ++st) {
      std::printf("  %-6s %-14s %12llu\n", it.key().c_str(), st.key().c_str(),
                  static_cast<unsigned long long>(st.value().get<uint64_t>()));
    }
  }
  std::printf("\n%-4s %-24s %-8s %-4s %12s %12s %10s %10s %10s %10s\n", "PORT", "NAME", "SIDE",
              "PAIR", "RX", "TX", "MISSED", "RX_ERR", "TX_ERR", "NO_MBUF");
  for (auto it = s["ports"].begin(); it != s["ports"].end(); ++it) {
    const json& p = it.value();
    std::printf("%-4s %-24s %-8s %-4llu %12llu %12llu %10llu %10llu %10llu %10llu\n",
                it.key().c_str(), str(p, "name").c_str(), str(p, "side").c_str(),
                static_cast<unsigned long long>(u64(p, "pair")),
                static_cast<unsigned long long>(u64(p, "rx_packets")),
                static_cast<unsigned long long>(u64(p, "tx_packets")),
                static_cast<unsigned long long>(u64(p, "rx_missed")),
                static_cast<unsigned long long>(u64(p, "rx_errors")),
                static_cast<unsigned long long>(u64(p, "tx_errors")),
                static_cast<unsigned long long>(u64(p, "rx_no_mbuf")));
  }
  std::printf("\n%-6s %-5s %12s %12s %9s %11s %11s %12s %11s %11s\n", "WORKER", "LCORE", "RX", "TX",
              "TX_DROP", "HANDOFF_OUT", "HANDOFF_IN", "HANDOFF_FULL", "CONNS", "CAPACITY");
  for (auto it = s["workers"].begin(); it != s["workers"].end(); ++it) {
    const json& w = it.value();
    std::printf("%-6s %-5llu %12llu %12llu %9llu %11llu %11llu %12llu %11llu %11llu\n",
                it.key().c_str(), static_cast<unsigned long long>(u64(w, "lcore")),
                static_cast<unsigned long long>(u64(w, "rx")),
                static_cast<unsigned long long>(u64(w, "tx")),
                static_cast<unsigned long long>(u64(w, "tx_dropped")),
                static_cast<unsigned long long>(u64(w, "handoff_out")),
                static_cast<unsigned long long>(u64(w, "handoff_in")),
                static_cast<unsigned long long>(u64(w, "handoff_full")),
                static_cast<unsigned long long>(u64(w, "connections")),
                static_cast<unsigned long long>(u64(w, "capacity")));
  }
  std::printf("\n");
  print_counters("Passed, by reason:", s["stats"]["pass_reasons"], all);
  print_counters("Dropped, by reason:", s["stats"]["drop_reasons"], all);
  print_counters("FTP:", s["stats"]["ftp"], all);
  print_counters("SIP:", s["stats"]["sip"], all);
  std::printf("\nCheckpointing: %s", str(info, "ckpt").c_str());
  if (str(info, "ckpt") != "off") {
    std::printf(" (app %s, epoch %llu, set %llu, %llu outages)", str(info, "ckpt_app").c_str(),
                static_cast<unsigned long long>(u64(info, "ckpt_epoch")),
                static_cast<unsigned long long>(u64(info, "ckpt_set")),
                static_cast<unsigned long long>(u64(info, "ckpt_outages")));
  }
  std::printf("\n");
  if (have_store) {
    const json& st = store["store"];
    const uint64_t bytes = u64(st, "bytes");
    const uint64_t used = u64(st, "used_bytes");
    std::printf("Store: %s, %.1f MiB of %.1f MiB used (%.1f%%)\n", str(st, "path").c_str(),
                static_cast<double>(used) / 1048576.0, static_cast<double>(bytes) / 1048576.0,
                bytes != 0 ? 100.0 * static_cast<double>(used) / static_cast<double>(bytes) : 0.0);
    for (const json& app : store.value("apps", json::array())) {
      if (str(app, "app") != o.app || !app["committed"].is_object()) continue;
      std::printf("  %s: set %llu holds %llu connections\n", o.app.c_str(),
                  static_cast<unsigned long long>(u64(app["committed"], "set")),
                  static_cast<unsigned long long>(u64(app["committed"], "connections")));
    }
  } else if (str(info, "ckpt") != "off") {
    std::printf("Store: %s\n", store_error.c_str());
  }
  return 0;
}

namespace {

// "addr A" "port P" words (or addr=A) to the dataplane's key=value filter.
bool filter_params(const std::vector<std::string>& args, size_t from, std::string* params,
                   std::string* error) {
  static const char* const kKeys[] = {"addr", "port", "proto", "state", "module", "id"};
  for (size_t i = from; i < args.size(); ++i) {
    std::string key = args[i];
    std::string value;
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    }
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (!known || value.empty() || value.find_first_of(" ,") != std::string::npos) {
      *error = known ? key + " needs a value" : "unknown filter \"" + key + "\"";
      return false;
    }
    *params += (params->empty() ? "" : " ") + key + "=" + value;
  }
  return true;
}

int conn_show(Dataplane& d, const Options& o, const std::string& id) {
  json c;
  std::string error;
  if (!d.call("/holdfast/conn", id, &c, &error)) return fail(error);
  if (o.json) {
    std::printf("%s\n", c.dump(2).c_str());
    return 0;
  }
  const json& b = c["base"];
  std::printf("connection %s on worker %s, table position %s\n", str(b, "id").c_str(),
              str(b, "worker").c_str(), str(b, "position").c_str());
  std::printf("  %s %s -> %s, opened from the %s, pair %s\n", str(b, "protocol").c_str(),
              str(b, "client").c_str(), str(b, "server").c_str(), str(b, "origin").c_str(),
              str(b, "zone").c_str());
  std::printf("  state %s, age %s, idle %s, packets %s original / %s reply\n",
              str(b, "state").c_str(), duration(u64(b, "age_s")).c_str(),
              duration(u64(b, "idle_s")).c_str(), str(b, "packets_original").c_str(),
              str(b, "packets_reply").c_str());
  if (b.contains("master")) std::printf("  related to master %s\n", str(b, "master").c_str());
  if (c.contains("tcp")) {
    const json& t = c["tcp"];
    std::printf("tcp: state %s\n", str(t, "state").c_str());
    for (const char* dir : {"original", "reply"}) {
      const json& s = t[dir];
      std::printf("  %-8s end %-10s maxend %-10s maxwin %-10s maxack %-10s scale %-2s %s\n", dir,
                  str(s, "end").c_str(), str(s, "maxend").c_str(), str(s, "maxwin").c_str(),
                  str(s, "maxack").c_str(), str(s, "scale").c_str(), str(s, "flags").c_str());
    }
  }
  for (const char* l4 : {"udp", "icmp", "other"}) {
    if (c.contains(l4)) std::printf("%s: state %s\n", l4, str(c[l4], "state").c_str());
  }
  if (c.contains("ftp")) {
    const json& f = c["ftp"];
    std::printf("ftp: %s pending expectation(s)\n", str(f, "pending").c_str());
    for (const json& e : f.value("expectations", json::array())) {
      std::printf("  expects %s, expires in %s ms\n", str(e, "expects").c_str(),
                  str(e, "expires_in_ms").c_str());
    }
  }
  if (c.contains("sip")) {
    const json& sip = c["sip"];
    std::printf("sip: %s call(s)\n", str(sip, "calls").c_str());
    for (const json& call : sip.value("call", json::array())) {
      std::printf("  call %s %s, age %s\n", str(call, "call_id").c_str(),
                  str(call, "state").c_str(), duration(u64(call, "age_s")).c_str());
      for (const json& m : call.value("media_streams", json::array())) {
        std::printf("    media stream %s\n", m.get<std::string>().c_str());
      }
      for (const json& m : call.value("media_connections", json::array())) {
        std::printf("    media connection %s\n", m.dump().c_str());
      }
    }
  }
  return 0;
}

}  // namespace

int conns_main(const Options& o) {
  if (o.ckpt_given) return conns_from_store(o);
  Dataplane d(o);
  std::string error;
  if (!o.args.empty() && o.args[0] == "show") {
    if (o.args.size() != 2) {
      std::fprintf(stderr, "holdfastctl: usage: conns show ID\n");
      return 2;
    }
    if (!d.connect(&error)) return fail(error);
    return conn_show(d, o, o.args[1]);
  }
  std::string params;
  if (!filter_params(o.args, 0, &params, &error)) {
    std::fprintf(stderr, "holdfastctl: conns: %s\n", error.c_str());
    return 2;
  }
  if (!d.connect(&error)) return fail(error);
  json conns;
  if (!d.pages("/holdfast/conns", params, "cursor", &conns, &error)) return fail(error);
  if (o.json) {
    std::printf("%s\n", json{{"connections", conns}}.dump(2).c_str());
    return 0;
  }
  std::printf("%-16s %-5s %-12s %-47s %-7s %-7s %-9s %s\n", "ID", "PROTO", "STATE",
              "CLIENT -> SERVER", "AGE", "IDLE", "PACKETS", "RELATED");
  for (const json& c : conns) {
    std::string related;
    if (c.contains("master")) related = "master " + str(c, "master");
    if (str(c, "l7") == "ftp")
      related = "ftp control, " + str(c, "pending_expectations") + " pending";
    if (str(c, "l7") == "sip") related = "sip signalling, " + str(c, "calls") + " call(s)";
    const std::string ends = str(c, "client") + " -> " + str(c, "server");
    std::printf(
        "%-16s %-5s %-12s %-47s %-7s %-7s %-9llu %s\n", str(c, "id").c_str(),
        str(c, "protocol").c_str(), str(c, "state").c_str(), ends.c_str(),
        duration(u64(c, "age_s")).c_str(), duration(u64(c, "idle_s")).c_str(),
        static_cast<unsigned long long>(u64(c, "packets_original") + u64(c, "packets_reply")),
        related.c_str());
  }
  std::printf("%zu connection%s\n", conns.size(), conns.size() == 1 ? "" : "s");
  return 0;
}

int rules_main(const Options& o) {
  const std::string sub = o.args.empty() ? "show" : o.args[0];
  Dataplane d(o);
  std::string error;
  if (sub == "show" && o.args.size() <= 1) {
    if (!d.connect(&error)) return fail(error);
    json rules;
    if (!d.pages("/holdfast/rules", "", "", &rules, &error)) return fail(error);
    if (o.json) {
      std::printf("%s\n", json{{"rules", rules}}.dump(2).c_str());
      return 0;
    }
    std::printf("%-4s %-24s %-6s %-7s %-6s %-22s %-22s %-12s %-12s %12s\n", "#", "NAME", "ACTION",
                "SIDE", "PROTO", "SRC", "DST", "SPORTS", "DPORTS", "HITS");
    for (size_t i = 0; i < rules.size(); ++i) {
      const json& r = rules[i];
      const bool is_default = i + 1 == rules.size();
      std::printf("%-4s %-24s %-6s %-7s %-6s %-22s %-22s %-12s %-12s %12llu\n",
                  is_default ? "-" : std::to_string(i + 1).c_str(), str(r, "name").c_str(),
                  str(r, "action").c_str(), is_default ? "" : str(r, "side").c_str(),
                  is_default ? "" : str(r, "protocol").c_str(),
                  is_default ? "" : str(r, "src").c_str(), is_default ? "" : str(r, "dst").c_str(),
                  is_default ? "" : str(r, "src_ports").c_str(),
                  is_default ? "" : str(r, "dst_ports").c_str(),
                  static_cast<unsigned long long>(u64(r, "hits")));
    }
    return 0;
  }
  if (sub == "reload" && o.args.size() == 2) {
    // Validated here first, so that every error is printed whole.
    const ConfigResult loaded = load_config_file(o.args[1]);
    if (!loaded.config) {
      for (const std::string& e : loaded.errors) {
        std::fprintf(stderr, "holdfastctl: %s\n", e.c_str());  // e names the file
      }
      std::fprintf(stderr, "holdfastctl: nothing reloaded; the rules in force stay\n");
      return 1;
    }
    char full[PATH_MAX];
    if (realpath(o.args[1].c_str(), full) == nullptr) return fail("cannot resolve " + o.args[1]);
    if (!d.connect(&error)) return fail(error);
    json r;
    if (!d.call("/holdfast/reload", full, &r, &error)) return fail(error);
    if (o.json) std::printf("%s\n", r.dump(2).c_str());
    if (!flag(r, "ok")) {
      for (const json& e : r.value("errors", json::array())) {
        std::fprintf(stderr, "holdfastctl: %s: %s\n", full, e.get<std::string>().c_str());
      }
      return fail(str(r, "error"));
    }
    if (o.json) return 0;
    std::printf(
        "reloaded %s: %s rules, default %s; %s connections re-checked, %s closed, %s related "
        "closed with them (%s ms)\n",
        full, str(r, "rules").c_str(), str(r, "default").c_str(), str(r, "checked").c_str(),
        str(r, "closed").c_str(), str(r, "closed_related").c_str(), str(r, "ms").c_str());
    std::string sections;
    for (const json& s : r.value("not_applied", json::array())) {
      sections += (sections.empty() ? "" : ", ") + s.get<std::string>();
    }
    if (!sections.empty()) {
      std::printf("note: %s differ from the running configuration; they apply at the next start\n",
                  sections.c_str());
    }
    return 0;
  }
  std::fprintf(stderr, "holdfastctl: usage: rules show | rules reload FILE\n");
  return 2;
}

int crash_main(const Options& o) {
  std::string signal = "KILL";
  std::string after;
  for (size_t i = 0; i < o.args.size(); ++i) {
    const std::string& a = o.args[i];
    if (a == "--signal" && i + 1 < o.args.size()) {
      signal = o.args[++i];
    } else if (a == "--after-packets" && i + 1 < o.args.size()) {
      after = o.args[++i];
    } else {
      std::fprintf(stderr,
                   "holdfastctl: usage: crash [--signal KILL|SEGV|ABRT] [--after-packets N]\n");
      return 2;
    }
  }
  if (signal != "KILL" && signal != "SEGV" && signal != "ABRT") {
    std::fprintf(stderr, "holdfastctl: --signal wants KILL, SEGV or ABRT\n");
    return 2;
  }
  if (!after.empty() && after.find_first_not_of("0123456789") != std::string::npos) {
    std::fprintf(stderr, "holdfastctl: --after-packets wants a count\n");
    return 2;
  }
  Dataplane d(o);
  std::string error;
  if (!d.connect(&error)) return fail(error);
  json info;
  if (!d.call("/holdfast/info", "", &info, &error)) return fail(error);
  json r;
  if (!d.call("/holdfast/crash", after.empty() ? signal : signal + "," + after, &r, &error)) {
    return fail(error);
  }
  if (o.json) {
    r["pid"] = info["pid"];
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  if (after.empty() || after == "0") {
    std::printf("holdfast (pid %llu) is crashing: %s\n",
                static_cast<unsigned long long>(u64(info, "pid")), str(r, "crash").c_str());
  } else {
    std::printf("holdfast (pid %llu) will crash (%s) after %s more packets\n",
                static_cast<unsigned long long>(u64(info, "pid")), str(r, "crash").c_str(),
                after.c_str());
  }
  return 0;
}

}  // namespace holdfast::ctl
