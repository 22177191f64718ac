#include "control/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "checkpoint/writer.h"
#include "dataplane/verdict.h"
#include "modules/ftp/ftp.h"
#include "modules/sip/sip.h"

namespace holdfast::ctl {

namespace {

using json = nlohmann::json;

enum class Type { counter, gauge, untyped };

// A metric family: its name, type and HELP text; values are divided by
// `per` (milliseconds reported, seconds exposed: 1000). Division, not a
// multiplication by 0.001: 3.25 ms is 0.00325 s, not 0.0032500000000000003.
struct Spec {
  std::string_view name;
  Type type;
  std::string_view help;
  double per = 1;
};

// A family whose value is the member `key` of an object.
struct Field {
  std::string_view key;
  Spec spec;
};

using Labels = std::vector<std::pair<std::string_view, std::string>>;

const char* type_name(Type t) {
  switch (t) {
    case Type::counter:
      return "counter";
    case Type::gauge:
      return "gauge";
    case Type::untyped:
      break;
  }
  return "untyped";
}

// HELP text escapes backslash and newline; label values also the double
// quote (the format's only escapes).
std::string escape(std::string_view s, bool label_value) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && label_value) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// The sample value of v divided by per, if v is a number (a boolean is 0 or
// 1). Integers are written exactly: a uint64 counter does not fit a double.
std::optional<std::string> value_text(const json& v, double per) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (!v.is_number()) return std::nullopt;
  if (per == 1 && v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (per == 1 && v.is_number_integer()) return std::to_string(v.get<int64_t>());
  const double d = v.get<double>() / per;
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest that reads back as d
  return std::string(buf, r.ptr);
}

// A name part from a reported key (a counter name): what a metric name
// cannot hold becomes '_'.
std::string name_part(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) c = '_';
  }
  return out;
}

// member(j, key): j[key], or null when j is not an object or has no key.
const json& member(const json& j, std::string_view key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(std::string(key));
  return it == j.end() ? kNull : *it;
}

// A label value from what was reported: a string as it is, a number as its
// text, anything else empty (which Prometheus reads as no label).
std::string label_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return value_text(v, 1).value_or("");
}

// The exposition, family by family in order of first use. Samples are kept
// with their family, so that a family is never split however the input is
// ordered.
class Exposition {
 public:
  // Adds spec.name{labels} value. Skipped: a value that is not a number, a
  // series already added, a family already declared with another type.
  void add(const Spec& spec, const Labels& labels, const json& value) {
    const std::optional<std::string> v = value_text(value, spec.per);
    if (!v) return;
    auto [it, added] = index_.try_emplace(std::string(spec.name), families_.size());
    if (added) {
      families_.push_back({std::string(spec.name), spec.type, std::string(spec.help), {}, {}});
    }
    Family& f = families_[it->second];
    if (f.type != spec.type) return;
    std::string series = f.name;
    if (!labels.empty()) {
      series += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i != 0) series += ',';
        series += labels[i].first;
        series += "=\"" + escape(labels[i].second, true) + '"';
      }
      series += '}';
    }
    if (!f.series.insert(series).second) return;
    f.samples += series + ' ' + *v + '\n';
  }

  std::string text() const {
    std::string out;
    for (const Family& f : families_) {
      out += "# HELP " + f.name + ' ' + escape(f.help, false) + '\n';
      out += "# TYPE " + f.name + ' ' + type_name(f.type) + '\n';
      out += f.samples;
    }
    return out;
  }

 private:
  struct Family {
    std::string name;
    Type type;
    std::string help;
    std::set<std::string> series;
    std::string samples;
  };
  std::vector<Family> families_;
  std::map<std::string, size_t> index_;
};

void add_fields(Exposition& ex, const json& obj, std::initializer_list<Field> fields,
                const Labels& labels) {
  for (const Field& f : fields) ex.add(f.spec, labels, member(obj, f.key));
}

// One sample per member of obj, labelled `label` = its key: the `known`
// keys first, at 0 when obj does not have them (so that dashboards see
// every series), then the others obj has.
void add_keyed(Exposition& ex, const Spec& spec, Labels labels, std::string_view label,
               const json& obj, const std::vector<std::string_view>& known = {}) {
  if (!obj.is_object()) return;
  labels.emplace_back(label, "");
  for (std::string_view key : known) {
    labels.back().second = key;
    const json& v = member(obj, key);
    ex.add(spec, labels, v.is_null() ? json(0) : v);
  }
  for (const auto& [key, v] : obj.items()) {
    labels.back().second = key;
    ex.add(spec, labels, v);
  }
}

const std::vector<std::string_view> kProtocols = {"tcp", "udp", "icmp", "other"};

// ---------------------------------------------------------------------------
// Dataplane

void info_metrics(Exposition& ex, const json& info) {
  if (!info.is_object()) return;
  ex.add({"holdfast_info", Type::gauge,
          "The running dataplane: its version, configuration file, default action and "
          "application in the checkpoint store"},
         {{"version", label_text(member(info, "version"))},
          {"config", label_text(member(info, "config"))},
          {"default", label_text(member(info, "default"))},
          {"app", label_text(member(info, "ckpt_app"))}},
         1);
  add_fields(
      ex, info,
      {{"uptime_s", {"holdfast_uptime_seconds", Type::gauge, "Time since the dataplane started"}},
       {"workers", {"holdfast_workers", Type::gauge, "Worker lcores"}},
       {"ports", {"holdfast_ports", Type::gauge, "Ports forwarded between"}},
       {"rules", {"holdfast_rules", Type::gauge, "Rules in force, the default not counted"}},
       {"recovered",
        {"holdfast_recovered", Type::gauge,
         "1 if this dataplane started with --recover from the checkpoint store"}}},
      {});
}

// The dataplane's checkpointing, as info has it (ckpt, ckpt_epoch, ...) or
// as stats.checkpoint has it (status, epoch, ...): the same series, written
// once.
void checkpoint_metrics(Exposition& ex, const json& obj, const std::string& prefix,
                        std::string_view status_key) {
  const json& status = member(obj, status_key);
  if (status.is_string()) {
    ex.add({"holdfast_checkpoint_enabled", Type::gauge, "1 if the dataplane checkpoints"}, {},
           status != "off");
    ex.add({"holdfast_checkpoint_connected", Type::gauge,
            "1 if the dataplane is connected to holdfast-ckptd"},
           {}, status == "connected");
  }
  for (const Field& f : {
           Field{"epoch",
                 {"holdfast_checkpoint_epoch", Type::gauge,
                  "Epoch holdfast-ckptd gave this dataplane (connection IDs carry it)"}},
           Field{"set",
                 {"holdfast_checkpoint_set", Type::gauge, "Checkpoint region set being written"}},
           Field{"outages",
                 {"holdfast_checkpoint_outages_total", Type::counter,
                  "Times the connection to holdfast-ckptd was lost"}},
       }) {
    ex.add(f.spec, {}, member(obj, prefix + std::string(f.key)));
  }
}

void verdict_metrics(Exposition& ex, const json& stats) {
  const json& totals = member(stats, "totals");
  const Spec packets{"holdfast_packets_total", Type::counter, "Packets judged, by verdict"};
  ex.add(packets, {{"verdict", "pass"}}, member(totals, "passed"));
  ex.add(packets, {{"verdict", "drop"}}, member(totals, "dropped"));
  const Spec verdicts{"holdfast_verdicts_total", Type::counter,
                      "Packets judged, by verdict and reason (docs/dataplane.md)"};
  for (const bool passes : {true, false}) {
    std::vector<std::string_view> known;
    for (size_t i = 0; i < kReasonCount; ++i) {
      if (kReasonPasses[i] == passes) known.push_back(kReasonNames[i]);
    }
    add_keyed(ex, verdicts, {{"verdict", passes ? "pass" : "drop"}}, "reason",
              member(stats, passes ? "pass_reasons" : "drop_reasons"), known);
  }
}

void connection_metrics(Exposition& ex, const json& dataplane) {
  const json& stats = member(dataplane, "stats");
  add_keyed(ex,
            {"holdfast_connections_opened_total", Type::counter,
             "Connections opened, by layer-4 protocol"},
            {}, "protocol", member(stats, "opened"), kProtocols);
  add_keyed(ex,
            {"holdfast_connections_expired_total", Type::counter,
             "Connections expired or closed, by layer-4 protocol"},
            {}, "protocol", member(stats, "expired"), kProtocols);
  add_keyed(ex,
            {"holdfast_connections_restored_total", Type::counter,
             "Connections rebuilt from the checkpoint store at start, by layer-4 protocol"},
            {}, "protocol", member(stats, "restored"), kProtocols);
  add_fields(ex, member(stats, "totals"),
             {{"reopened",
               {"holdfast_connections_reopened_total", Type::counter,
                "Connections opened again on the tuple of one that had ended"}},
              {"reload_closed",
               {"holdfast_connections_reload_closed_total", Type::counter,
                "Connections closed because a rules reload denies them"}},
              {"unprotected",
               {"holdfast_connections_unprotected_total", Type::counter,
                "Connections opened without a checkpoint slot (checkpoint.store_full allow)"}},
              {"fragments_expired",
               {"holdfast_fragments_expired_total", Type::counter,
                "Fragment records that expired before their datagram was complete"}}},
             {});
  // {"tcp": {"ESTABLISHED": n}}, or flat: {"tcp/ESTABLISHED": n}.
  const Spec open{"holdfast_connections_open", Type::gauge,
                  "Connections open, by layer-4 protocol and state"};
  const json& states = member(dataplane, "states");
  if (!states.is_object()) return;
  for (const auto& [key, v] : states.items()) {
    if (v.is_object()) {
      for (const auto& [state, n] : v.items()) {
        ex.add(open, {{"protocol", key}, {"state", state}}, n);
      }
      continue;
    }
    const size_t slash = key.find('/');
    ex.add(open,
           {{"protocol", key.substr(0, slash)},
            {"state", slash == std::string::npos ? "" : key.substr(slash + 1)}},
           v);
  }
}

void port_metrics(Exposition& ex, const json& ports) {
  if (!ports.is_object() && !ports.is_array()) return;
  for (const auto& [id, p] : ports.items()) {
    if (!p.is_object()) continue;
    const std::string side = label_text(member(p, "side"));
    const std::string pair = label_text(member(p, "pair"));
    ex.add({"holdfast_port_info", Type::gauge, "A port: its device name, side and pair"},
           {{"port", id}, {"name", label_text(member(p, "name"))}, {"side", side}, {"pair", pair}},
           1);
    add_fields(
        ex, p,
        {{"rx_packets", {"holdfast_port_rx_packets_total", Type::counter, "Frames received"}},
         {"tx_packets", {"holdfast_port_tx_packets_total", Type::counter, "Frames sent"}},
         {"rx_bytes", {"holdfast_port_rx_bytes_total", Type::counter, "Bytes received"}},
         {"tx_bytes", {"holdfast_port_tx_bytes_total", Type::counter, "Bytes sent"}},
         {"rx_missed",
          {"holdfast_port_rx_missed_total", Type::counter,
           "Frames the NIC dropped: its receive queue was full"}},
         {"rx_errors",
          {"holdfast_port_rx_errors_total", Type::counter, "Erroneous frames received"}},
         {"tx_errors", {"holdfast_port_tx_errors_total", Type::counter, "Frames failed to send"}},
         {"rx_no_mbuf",
          {"holdfast_port_rx_no_mbuf_total", Type::counter,
           "Receive failures: no packet buffer was free"}}},
        {{"port", id}, {"side", side}, {"pair", pair}});
  }
}

void worker_metrics(Exposition& ex, const json& workers) {
  if (!workers.is_object() && !workers.is_array()) return;
  for (const auto& [id, w] : workers.items()) {
    if (!w.is_object()) continue;
    add_fields(
        ex, w,
        {{"lcore", {"holdfast_worker_lcore", Type::gauge, "The lcore a worker runs on"}},
         {"rx",
          {"holdfast_worker_rx_packets_total", Type::counter,
           "Frames received from the worker's queues"}},
         {"tx", {"holdfast_worker_tx_packets_total", Type::counter, "Frames handed to the NIC"}},
         {"tx_dropped",
          {"holdfast_worker_tx_dropped_total", Type::counter,
           "Passed frames dropped: the transmit queue was full"}},
         {"handoff_out",
          {"holdfast_worker_handoff_out_total", Type::counter,
           "Frames handed to the worker that owns their connection"}},
         {"handoff_in",
          {"holdfast_worker_handoff_in_total", Type::counter,
           "Frames received from another worker"}},
         {"handoff_full",
          {"holdfast_worker_handoff_full_total", Type::counter,
           "Frames dropped: the owner worker's ring was full"}},
         {"loops", {"holdfast_worker_loops_total", Type::counter, "Iterations of the poll loop"}},
         {"connections",
          {"holdfast_worker_connections", Type::gauge, "Connections in the worker's flow table"}},
         {"capacity",
          {"holdfast_worker_capacity", Type::gauge, "Connections the worker's flow table holds"}}},
        {{"worker", id}});
  }
}

void rule_metrics(Exposition& ex, const json& rules) {
  if (!rules.is_array() && !rules.is_object()) return;
  const Spec hits{
      "holdfast_rule_hits_total", Type::counter,
      "Packets each rule decided: those of no connection (first packets, stateless ICMP, denied "
      "ones), the default last"};
  for (const auto& [position, r] : rules.items()) {
    const json& index = member(r, "index");
    ex.add(hits,
           {{"rule", label_text(member(r, "name"))},
            {"action", label_text(member(r, "action"))},
            {"index", index.is_number() ? label_text(index) : position}},
           member(r, "hits"));
  }
}

// The counters of a layer-7 module (`counters`, its X-macro's names) as
// prefix<name>_total, at 0 when missing. A count reported as "<what>_total"
// is of what is open now (open_sessions_total), a gauge prefix<what>. Any
// other number, not in `handled` either, comes from a dataplane newer than
// this holdfastctl: exposed untyped as prefix<name>, since its kind is
// unknown.
void named_metrics(Exposition& ex, std::string_view prefix, std::string_view what, const json& obj,
                   const std::vector<std::string_view>& counters,
                   const std::vector<std::string_view>& handled = {}) {
  if (!obj.is_object()) return;
  auto has = [](const std::vector<std::string_view>& names, std::string_view key) {
    return std::find(names.begin(), names.end(), key) != names.end();
  };
  auto expose = [&](std::string_view key, const json& v) {
    constexpr std::string_view kTotal = "_total";
    std::string name(prefix);
    if (has(counters, key)) {
      name += name_part(key);
      ex.add(
          {name + std::string(kTotal), Type::counter, std::string(what) + ": " + std::string(key)},
          {}, v);
    } else if (key.size() > kTotal.size() && key.ends_with(kTotal)) {
      key.remove_suffix(kTotal.size());
      name += name_part(key);
      ex.add({name, Type::gauge, std::string(what) + ": " + std::string(key) + " now"}, {}, v);
    } else if (!has(handled, key)) {
      name += name_part(key);
      ex.add({name, Type::untyped,
              std::string(what) + ": " + std::string(key) + " (not known to this holdfastctl)"},
             {}, v);
    }
  };
  for (std::string_view key : counters) {
    const json& v = member(obj, key);
    expose(key, v.is_null() ? json(0) : v);
  }
  for (const auto& [key, v] : obj.items()) expose(key, v);
}

void dataplane_metrics(Exposition& ex, const json& dataplane) {
  ex.add({"holdfast_up", Type::gauge, "1 if the dataplane's telemetry socket answered"}, {},
         !dataplane.is_null());
  if (dataplane.is_null()) return;
  const json& info = member(dataplane, "info");
  const json& stats = member(dataplane, "stats");
  info_metrics(ex, info);
  checkpoint_metrics(ex, info, "ckpt_", "ckpt");
  checkpoint_metrics(ex, member(stats, "checkpoint"), "", "status");
  verdict_metrics(ex, stats);
  connection_metrics(ex, dataplane);
  port_metrics(ex, member(dataplane, "ports"));
  worker_metrics(ex, member(dataplane, "workers"));
  rule_metrics(ex, member(dataplane, "rules"));
  named_metrics(ex, "holdfast_ftp_", "FTP module (docs/modules/ftp.md)", member(stats, "ftp"),
                {
#define HOLDFAST_FTP_NAME(name) #name,
                    HOLDFAST_FTP_COUNTERS(HOLDFAST_FTP_NAME)
#undef HOLDFAST_FTP_NAME
                });
  named_metrics(ex, "holdfast_sip_", "SIP module (docs/modules/sip.md)", member(stats, "sip"),
                {
#define HOLDFAST_SIP_NAME(name) #name,
                    HOLDFAST_SIP_COUNTERS(HOLDFAST_SIP_NAME)
#undef HOLDFAST_SIP_NAME
                });
  named_metrics(ex, "holdfast_checkpoint_", "Checkpoint writer (docs/checkpoint.md)",
                member(stats, "checkpoint"), {}, {"status", "epoch", "set", "outages"});
}

// ---------------------------------------------------------------------------
// holdfast-ckptd

// The store's module numbers (docs/checkpoint.md, "Region sets") by name.
std::string module_label(const json& m) {
  if (!m.is_number_unsigned()) return label_text(m);
  const uint64_t n = m.get<uint64_t>();
  if (n == ckpt::kBaseModule) return "base";
  if (n == ckpt::kFragmentModule) return "fragments";
  if (n == ckpt::kSipCallModule) return "sip_calls";
  if (n == ckpt::kRulesModule) return "rules";
  if (n >= static_cast<uint64_t>(ModuleId::tcp) && n <= static_cast<uint64_t>(ModuleId::sip)) {
    return module_name(static_cast<ModuleId>(n));
  }
  return std::to_string(n);
}

// The last recovery report of an application (RecoveryReport::to_json,
// plus the dataplane's first_packet_ms).
void recovery_metrics(Exposition& ex, const std::string& app, const json& report) {
  if (!report.is_object()) return;
  const Labels labels = {{"app", app}};
  add_fields(
      ex, report,
      {{"from_set",
        {"holdfast_ckptd_recovery_from_set", Type::gauge, "Last recovery: the set it read"}},
       {"from_epoch",
        {"holdfast_ckptd_recovery_from_epoch", Type::gauge,
         "Last recovery: epoch of the dataplane that wrote the set"}},
       {"epoch",
        {"holdfast_ckptd_recovery_epoch", Type::gauge,
         "Last recovery: epoch of the dataplane that recovered"}},
       {"workers_before",
        {"holdfast_ckptd_recovery_workers_before", Type::gauge,
         "Last recovery: workers of the dataplane that wrote the set"}},
       {"workers_now",
        {"holdfast_ckptd_recovery_workers_now", Type::gauge,
         "Last recovery: workers of the dataplane that recovered"}},
       {"sip_calls",
        {"holdfast_ckptd_recovery_sip_calls", Type::gauge, "Last recovery: SIP calls restored"}},
       {"sip_media_linked",
        {"holdfast_ckptd_recovery_sip_media_linked", Type::gauge,
         "Last recovery: media connections joined to their call"}},
       {"fragment_records",
        {"holdfast_ckptd_recovery_fragment_records", Type::gauge,
         "Last recovery: fragment records restored"}},
       {"total_ms",
        {"holdfast_ckptd_recovery_duration_seconds", Type::gauge,
         "Last recovery: time to rebuild the connections", 1000}},
       {"first_packet_ms",
        {"holdfast_ckptd_recovery_first_packet_seconds", Type::gauge,
         "Last recovery: from process start to the first frame forwarded, EAL start-up included",
         1000}}},
      labels);
  add_keyed(ex,
            {"holdfast_ckptd_recovery_restored", Type::gauge,
             "Last recovery: connections restored, by layer-4 protocol"},
            labels, "protocol", member(report, "restored"), kProtocols);
  add_keyed(ex,
            {"holdfast_ckptd_recovery_restored_l7", Type::gauge,
             "Last recovery: restored connections followed by a layer-7 module"},
            labels, "module", member(report, "restored_l7"));
  add_keyed(ex,
            {"holdfast_ckptd_recovery_discarded", Type::gauge,
             "Last recovery: slots discarded, by reason (docs/checkpoint.md)"},
            labels, "reason", member(report, "discarded"));
  add_keyed(ex,
            {"holdfast_ckptd_recovery_rules", Type::gauge,
             "Last recovery: connections a rule admitted, classified again or admitted by the "
             "same rules before the crash"},
            labels, "judged", member(report, "rules"));
  add_keyed(ex,
            {"holdfast_ckptd_recovery_phase_seconds", Type::gauge,
             "Last recovery: time of each phase", 1000},
            labels, "phase", member(report, "phase_ms"));
}

// An application's committed or staging set.
void set_metrics(Exposition& ex, const std::string& app, const char* which, const json& set) {
  if (!set.is_object()) return;
  const Labels labels = {{"app", app}, {"set", which}};
  add_fields(
      ex, set,
      {{"set", {"holdfast_ckptd_set_number", Type::gauge, "The region set's number"}},
       {"epoch",
        {"holdfast_ckptd_set_epoch", Type::gauge,
         "Epoch of the dataplane that wrote the committed set"}},
       {"connections",
        {"holdfast_ckptd_set_connections", Type::gauge,
         "Connections the set holds (used base slots)"}},
       {"bytes", {"holdfast_ckptd_set_bytes", Type::gauge, "Bytes of the store the set takes"}}},
      labels);
  const json& regions = member(set, "regions");
  if (!regions.is_array()) return;
  for (const json& r : regions) {
    add_fields(
        ex, r,
        {{"slots",
          {"holdfast_ckptd_region_slots", Type::gauge, "Slots of a region (one worker's module)"}},
         {"used", {"holdfast_ckptd_region_used_slots", Type::gauge, "Slots of a region in use"}}},
        {{"app", app},
         {"set", which},
         {"worker", label_text(member(r, "worker"))},
         {"module", module_label(member(r, "module"))}});
  }
}

void ckptd_metrics(Exposition& ex, const json& ckpt) {
  ex.add({"holdfast_ckptd_up", Type::gauge, "1 if holdfast-ckptd answered"}, {}, !ckpt.is_null());
  if (ckpt.is_null()) return;
  const json& store = member(ckpt, "store");
  if (member(store, "path").is_string()) {
    ex.add({"holdfast_ckptd_store_info", Type::gauge, "The checkpoint store file"},
           {{"path", label_text(member(store, "path"))}}, 1);
  }
  add_fields(ex, store,
             {{"bytes", {"holdfast_ckptd_store_bytes", Type::gauge, "Size of the store"}},
              {"used_bytes",
               {"holdfast_ckptd_store_used_bytes", Type::gauge,
                "Bytes of the store taken by region sets"}},
              {"generation",
               {"holdfast_ckptd_generation", Type::gauge,
                "Generation of the store's metadata (one higher at every write)"}},
              {"epoch", {"holdfast_ckptd_epoch", Type::gauge, "The last epoch handed out"}}},
             {});
  add_fields(ex, ckpt,
             {{"regions_omitted",
               {"holdfast_ckptd_regions_omitted", Type::gauge,
                "1 if the per-region lists did not fit holdfast-ckptd's reply"}},
              {"reports_omitted",
               {"holdfast_ckptd_reports_omitted", Type::gauge,
                "1 if the recovery reports did not fit holdfast-ckptd's reply"}}},
             {});
  const json& apps = member(ckpt, "apps");
  if (apps.is_array()) {
    for (const json& a : apps) {
      if (!a.is_object()) continue;
      const std::string app = label_text(member(a, "app"));
      if (a.contains("writer")) {
        ex.add({"holdfast_ckptd_writer_connected", Type::gauge,
                "1 if a dataplane of the application is connected as its writer"},
               {{"app", app}}, !member(a, "writer").is_null());
      }
      set_metrics(ex, app, "committed", member(a, "committed"));
      set_metrics(ex, app, "staging", member(a, "staging"));
      recovery_metrics(ex, app, member(a, "report"));
    }
  }
  const json& clients = member(ckpt, "clients");
  if (clients.is_array()) {
    std::map<std::string, uint64_t> by_role = {{"writer", 0}, {"reader", 0}, {"monitor", 0}};
    for (const json& c : clients) {
      const json& role = member(c, "role");
      ++by_role[role.is_string() ? role.get<std::string>() : "none"];
    }
    for (const auto& [role, n] : by_role) {
      ex.add({"holdfast_ckptd_clients", Type::gauge,
              "Clients connected, by role (none: not said hello yet)"},
             {{"role", role}}, n);
    }
  }
}

}  // namespace

std::string prometheus_text(const json& dataplane, const json& ckpt) {
  Exposition ex;
  dataplane_metrics(ex, dataplane);
  ckptd_metrics(ex, ckpt);
  return ex.text();
}

}  // namespace holdfast::ctl
