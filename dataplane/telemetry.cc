#include "dataplane/telemetry.h"

#include <rte_ethdev.h>
#include <rte_telemetry.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "checkpoint/client.h"
#include "checkpoint/inspect.h"
#include "control/config.h"
#include "control/log.h"
#include "dataplane/stats.h"
#include "modules/l4_dispatch.h"

#ifndef HOLDFAST_VERSION
#define HOLDFAST_VERSION "unknown"
#endif

namespace holdfast {

using json = nlohmann::json;

namespace {

std::mutex g_mutex;
TelemetryContext* g_ctx = nullptr;  // under g_mutex

// Connections per /holdfast/conns page: a reply is at most 16 KiB.
constexpr uint32_t kPageDefault = 32;
constexpr uint32_t kPageMax = 40;
// Rules per /holdfast/rules page.
constexpr uint32_t kRulesPage = 40;

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// ---------------------------------------------------------------------------
// Asking workers

// Posts r to worker w and waits until it is done. Returns false when the
// worker did not finish within timeout (the request is then taken back, or
// waited for while it is being served, so r is the caller's again).
bool ask(Worker& w, const ControlRequest& r, ControlRequest* result,
         std::chrono::milliseconds timeout) {
  ControlSlot& slot = w.control();
  slot.request = r;
  slot.state.store(ControlSlot::kPosted, std::memory_order_release);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    uint32_t s = slot.state.load(std::memory_order_acquire);
    if (s == ControlSlot::kDone) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      uint32_t posted = ControlSlot::kPosted;
      if (slot.state.compare_exchange_strong(posted, ControlSlot::kIdle,
                                             std::memory_order_acquire)) {
        return false;
      }
      if (posted == ControlSlot::kDone) break;
      // Being served: a slice of work is short; wait for it.
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  *result = slot.request;
  slot.state.store(ControlSlot::kIdle, std::memory_order_relaxed);
  return true;
}

constexpr std::chrono::milliseconds kAskTimeout{2000};

json error_reply(const std::string& text) {
  return {{"error", text}};
}

// ---------------------------------------------------------------------------
// Converting replies to telemetry data

// Telemetry names hold letters, digits, '_' and '/' only.
std::string tel_name(const std::string& s) {
  std::string out = s.substr(0, RTE_TEL_MAX_STRING_LEN - 1);
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '/') c = '_';
  }
  return out;
}

std::string tel_string(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.size() >= RTE_TEL_MAX_STRING_LEN) s = s.substr(0, RTE_TEL_MAX_STRING_LEN - 4) + "...";
  return s;
}

// Adds v under name to dict d; objects and arrays below the first level are
// flattened into "name/key" entries.
void add_flat(rte_tel_data* d, const std::string& name, const json& v) {
  if (v.is_object() || v.is_array()) {
    if (v.is_array() && v.empty()) return;
    size_t i = 0;
    for (auto it = v.begin(); it != v.end(); ++it, ++i) {
      add_flat(d, name + "/" + (v.is_object() ? it.key() : std::to_string(i)), it.value());
    }
    return;
  }
  const std::string key = tel_name(name);
  if (v.is_number_unsigned()) {
    rte_tel_data_add_dict_u64(d, key.c_str(), v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x >= 0) {
      rte_tel_data_add_dict_u64(d, key.c_str(), static_cast<uint64_t>(x));
    } else {
      rte_tel_data_add_dict_int(d, key.c_str(), static_cast<int>(x));
    }
  } else if (v.is_boolean()) {
    rte_tel_data_add_dict_u64(d, key.c_str(), v.get<bool>() ? 1 : 0);
  } else if (v.is_number_float()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", v.get<double>());
    rte_tel_data_add_dict_string(d, key.c_str(), text);
  } else if (v.is_null()) {
    rte_tel_data_add_dict_string(d, key.c_str(), "");
  } else {
    rte_tel_data_add_dict_string(d, key.c_str(), tel_string(v).c_str());
  }
}

// A reply object becomes a dict whose object members are one level of
// containers (all telemetry allows), deeper levels flattened into them.
void to_telemetry(const json& reply, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  for (auto it = reply.begin(); it != reply.end(); ++it) {
    if (it.value().is_object()) {
      rte_tel_data* inner = rte_tel_data_alloc();
      if (inner == nullptr) continue;
      rte_tel_data_start_dict(inner);
      for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) {
        add_flat(inner, jt.key(), jt.value());
      }
      if (rte_tel_data_add_dict_container(d, tel_name(it.key()).c_str(), inner, 0) != 0) {
        rte_tel_data_free(inner);
      }
    } else if (it.value().is_array()) {
      rte_tel_data* inner = rte_tel_data_alloc();
      if (inner == nullptr) continue;
      rte_tel_data_start_array(inner, RTE_TEL_STRING_VAL);
      for (const json& e : it.value()) rte_tel_data_add_array_string(inner, tel_string(e).c_str());
      if (rte_tel_data_add_dict_container(d, tel_name(it.key()).c_str(), inner, 0) != 0) {
        rte_tel_data_free(inner);
      }
    } else {
      add_flat(d, it.key(), it.value());
    }
  }
}

// ---------------------------------------------------------------------------
// Commands

std::vector<const Pipeline*> pipelines_of(const TelemetryContext& ctx) {
  std::vector<const Pipeline*> out;
  for (const Worker* w : ctx.workers) out.push_back(&w->pipeline());
  return out;
}

const char* ckpt_status(const TelemetryContext& ctx) {
  if (ctx.client == nullptr) return "off";
  return ctx.client->connected() ? "connected" : "disconnected";
}

json cmd_info(const TelemetryContext& ctx) {
  const Policy& policy = **ctx.policy;
  json j = {{"version", HOLDFAST_VERSION},
            {"pid", static_cast<uint64_t>(getpid())},
            {"uptime_s", (wall_ms() - ctx.start_ns / 1'000'000) / 1000},
            {"workers", ctx.workers.size()},
            {"ports", ctx.shared->ports.size()},
            {"config", ctx.config_path},
            {"rules", policy.rules().size()},
            {"default", action_name(policy.default_action())},
            {"ckpt", ckpt_status(ctx)},
            {"recovered", ctx.recovery != nullptr && !ctx.recovery->is_null()}};
  if (ctx.client != nullptr) {
    j["ckpt_app"] = ctx.ckpt_app;
    j["ckpt_epoch"] = ctx.client->epoch();
    j["ckpt_set"] = ctx.client->write().set;
    j["ckpt_outages"] = ctx.client->outages();
  }
  return j;
}

json cmd_stats(const TelemetryContext& ctx) {
  const PipelineCounters total = sum_counters(pipelines_of(ctx));
  uint64_t active = 0;
  for (const Worker* w : ctx.workers) active += w->pipeline().flows().size();
  json totals = {{"packets", total.packets()},
                 {"passed", total.passed()},
                 {"dropped", total.packets() - total.passed()},
                 {"reopened", total.reopened},
                 {"fragments_expired", total.fragments_expired},
                 {"reload_closed", total.reload_closed},
                 {"unprotected", total.unprotected},
                 {"active", active}};
  uint64_t opened_all = 0;
  uint64_t expired_all = 0;
  uint64_t restored_all = 0;
  json opened = json::object();
  json expired = json::object();
  json restored = json::object();
  for (ModuleId m : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
    const size_t i = static_cast<size_t>(m);
    opened[module_name(m)] = total.opened[i];
    expired[module_name(m)] = total.expired[i];
    restored[module_name(m)] = total.restored[i];
    opened_all += total.opened[i];
    expired_all += total.expired[i];
    restored_all += total.restored[i];
  }
  totals["opened"] = opened_all;
  totals["expired"] = expired_all;
  totals["restored"] = restored_all;
  json pass = json::object();
  json drop = json::object();
  for (size_t i = 0; i < kReasonCount; ++i) {
    (kReasonPasses[i] ? pass : drop)[std::string(kReasonNames[i])] = total.reasons[i];
  }
  json out = {{"totals", totals},
              {"pass_reasons", pass},
              {"drop_reasons", drop},
              {"opened", opened},
              {"expired", expired},
              {"restored", restored},
              {"ftp", module_counters_json(total.ftp)},
              {"sip", module_counters_json(total.sip)}};
  json ckpt = {{"status", ckpt_status(ctx)}};
  if (ctx.client != nullptr) {
    ckpt["epoch"] = ctx.client->epoch();
    ckpt["set"] = ctx.client->write().set;
    ckpt["outages"] = ctx.client->outages();
  }
  out["checkpoint"] = ckpt;
  return out;
}

json cmd_ports(const TelemetryContext& ctx) {
  json out = json::object();
  for (size_t i = 0; i < ctx.shared->ports.size(); ++i) {
    out[std::to_string(i)] = port_stats(ctx.shared->ports[i]);
  }
  return out;
}

json cmd_workers(const TelemetryContext& ctx) {
  json out = json::object();
  for (size_t i = 0; i < ctx.workers.size(); ++i) {
    const Worker& w = *ctx.workers[i];
    const WorkerCounters& c = w.counters();
    out[std::to_string(i)] = {{"lcore", w.lcore()},
                              {"rx", c.rx},
                              {"tx", c.tx},
                              {"tx_dropped", c.tx_dropped},
                              {"handoff_out", c.handoff_out},
                              {"handoff_in", c.handoff_in},
                              {"handoff_full", c.handoff_full},
                              {"loops", c.loops},
                              {"connections", w.pipeline().flows().size()},
                              {"capacity", w.pipeline().flows().capacity()}};
  }
  return out;
}

json cmd_states(const TelemetryContext& ctx) {
  if (!ctx.workers_running) return error_reply("the workers are not running yet");
  std::map<std::string, uint64_t> counts;
  for (Worker* w : ctx.workers) {
    ControlRequest q;
    q.op = ControlOp::states;
    ControlRequest r;  // done once the whole table is counted
    if (!ask(*w, q, &r, kAskTimeout)) return error_reply("a worker did not answer in time");
    for (uint32_t k = 0; k < r.count_kinds; ++k) {
      counts[std::string(module_name(r.counts[k].l4)) + "/" + r.counts[k].state] +=
          r.counts[k].count;
    }
  }
  json out = json::object();
  for (const auto& [name, n] : counts) out[name] = n;
  return out;
}

// "key=value key=value" words.
std::map<std::string, std::string> words_of(const std::string& params) {
  std::map<std::string, std::string> out;
  std::istringstream in(params);
  std::string word;
  while (in >> word) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos) {
      out[word] = "";
    } else {
      out[word.substr(0, eq)] = word.substr(eq + 1);
    }
  }
  return out;
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (*end != '\0' || errno != 0 || s[0] == '-') return false;
  *out = v;
  return true;
}

ModuleId module_by_name(const std::string& s) {
  for (ModuleId m : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other, ModuleId::ftp,
                     ModuleId::sip}) {
    if (s == module_name(m)) return m;
  }
  return ModuleId::none;
}

// Reads a connection filter; returns an error text, or "" when it is good.
std::string parse_filter(const std::map<std::string, std::string>& words, ConnFilter* f,
                         std::string* state) {
  for (const auto& [key, value] : words) {
    uint64_t n = 0;
    if (key == "cursor" || key == "limit") continue;
    if (key == "id") {
      if (!parse_u64(value, &n) || n == 0) return "id wants a connection ID, got \"" + value + "\"";
      f->id = n;
    } else if (key == "proto") {
      f->l4 = module_by_name(value);
      if (f->l4 == ModuleId::none || f->l4 == ModuleId::ftp || f->l4 == ModuleId::sip) {
        return "proto wants tcp, udp, icmp or other, got \"" + value + "\"";
      }
    } else if (key == "module") {
      f->l7 = module_by_name(value);
      if (f->l7 != ModuleId::ftp && f->l7 != ModuleId::sip) {
        return "module wants ftp or sip, got \"" + value + "\"";
      }
    } else if (key == "state") {
      if (value.empty()) return "state wants a state name";
      *state = value;
    } else if (key == "port") {
      if (!parse_u64(value, &n) || n > 65535) return "port wants 0-65535, got \"" + value + "\"";
      f->port = static_cast<int32_t>(n);
    } else if (key == "addr") {
      std::string error;
      const auto cidr = Cidr::parse(value, &error);
      if (!cidr) return "addr: " + error;
      f->has_addr = true;
      f->addr = *cidr;
    } else {
      return "unknown filter \"" + key + "\" (id, proto, state, addr, port, module)";
    }
  }
  return "";
}

ckpt::StoredConnection stored_of(const ConnSnapshot& s) {
  ckpt::StoredConnection c;
  c.worker = s.worker;
  c.position = s.position;
  c.id = s.conn.id;
  c.master_id = s.conn.master_id;
  c.key = s.conn.key;
  c.flags = s.conn.flags;
  c.l4 = s.conn.l4;
  c.state = l4_state_name(s.conn);
  c.created_s = s.conn.created_s;
  c.last_seen_ms = s.conn.last_seen_ms;
  c.l7 = s.conn.l7;
  c.pending_expectations = s.pending;
  return c;
}

json conn_row(const ConnSnapshot& s, uint64_t now_ms) {
  json j = stored_of(s).to_json(now_ms);
  if (s.conn.l7 == ModuleId::sip) j["calls"] = s.calls;
  j["packets_original"] = s.conn.packets[0];
  j["packets_reply"] = s.conn.packets[1];
  return j;
}

// cursor = worker << 32 | table position.
json cmd_conns(const TelemetryContext& ctx, const std::string& params) {
  if (!ctx.workers_running) return error_reply("the workers are not running yet");
  const auto words = words_of(params);
  ConnFilter filter;
  std::string state;
  const std::string bad = parse_filter(words, &filter, &state);
  if (!bad.empty()) return error_reply(bad);
  if (!state.empty()) filter.state = state.c_str();
  uint64_t cursor = 0;
  uint64_t limit = kPageDefault;
  if (words.count("cursor") && !parse_u64(words.at("cursor"), &cursor)) {
    return error_reply("cursor wants the \"next\" of the previous page");
  }
  if (words.count("limit") && (!parse_u64(words.at("limit"), &limit) || limit == 0)) {
    return error_reply("limit wants a count");
  }
  limit = std::min<uint64_t>(limit, kPageMax);
  std::vector<ConnSnapshot> page(limit);
  uint32_t got = 0;
  uint32_t worker = static_cast<uint32_t>(cursor >> 32);
  uint32_t position = static_cast<uint32_t>(cursor);
  const uint64_t now_ms = wall_ms();
  // Each connection is a container of its own: a telemetry dict holds at
  // most 256 entries.
  json out = {{"count", 0}, {"more", false}, {"next", 0}};
  while (worker < ctx.workers.size() && got < limit) {
    Worker& w = *ctx.workers[worker];
    ControlRequest r;
    r.op = ControlOp::list;
    r.filter = filter;
    r.cursor = position;
    r.out = page.data() + got;
    r.out_capacity = static_cast<uint32_t>(limit) - got;
    ControlRequest done;
    if (!ask(w, r, &done, kAskTimeout)) return error_reply("a worker did not answer in time");
    for (uint32_t i = 0; i < done.out_count; ++i) {
      out[std::to_string(got + i)] = conn_row(page[got + i], now_ms);
    }
    got += done.out_count;
    position = done.cursor;
    if (position >= w.pipeline().flows().capacity()) {
      ++worker;
      position = 0;
    }
  }
  out["count"] = got;
  if (worker < ctx.workers.size()) {
    out["more"] = true;
    out["next"] = (uint64_t{worker} << 32) | position;
  }
  return out;
}

std::string flag_names(uint8_t flags) {
  const std::pair<uint8_t, const char*> names[] = {
      {TcpSlice::kWindowScale, "window_scale"}, {TcpSlice::kSackPermitted, "sack"},
      {TcpSlice::kMaxAckSet, "ack_seen"},       {TcpSlice::kDataUnacked, "data_unacked"},
      {TcpSlice::kFinSent, "fin_sent"},         {TcpSlice::kLiberal, "liberal"},
      {TcpSlice::kUnknownEnd, "unknown_end"}};
  std::string text;
  for (const auto& [bit, name] : names) {
    if (!(flags & bit)) continue;
    if (!text.empty()) text += ",";
    text += name;
  }
  return text;
}

std::string expectation_text(const ExpectationKey& k) {
  return k.src.to_string() + " -> " + k.dst.to_string(k.dport) + " " +
         (k.proto == kProtoTcp ? "tcp" : "udp");
}

json cmd_conn(const TelemetryContext& ctx, const std::string& params) {
  if (!ctx.workers_running) return error_reply("the workers are not running yet");
  uint64_t id = 0;
  if (!parse_u64(params, &id) || id == 0) return error_reply("wants a connection ID");
  ConnSnapshot found;
  auto detail = std::make_unique<ConnDetail>();
  bool have = false;
  for (Worker* w : ctx.workers) {
    ControlRequest r;
    r.op = ControlOp::list;
    r.filter.id = id;
    r.out = &found;
    r.out_capacity = 1;
    r.detail = detail.get();
    // Done once it is found or the whole table was searched.
    ControlRequest done;
    if (!ask(*w, r, &done, kAskTimeout)) return error_reply("a worker did not answer in time");
    have = done.out_count == 1;
    if (have) break;
  }
  if (!have) return error_reply("no connection " + std::to_string(id));
  const Connection& c = found.conn;
  json base = conn_row(found, wall_ms());
  base["position"] = found.position;
  base["created_s"] = c.created_s;
  json out = {{"base", base}};
  if (c.l4 == ModuleId::tcp) {
    const TcpSlice& t = c.slice<TcpSlice>();
    json tcp = {{"state", TcpModule::state_name(t)}, {"syn_data", t.syn_data}};
    for (Dir d : {Dir::original, Dir::reply}) {
      const size_t i = static_cast<size_t>(d);
      tcp[d == Dir::original ? "original" : "reply"] = {
          {"end", t.sender[i].end},       {"maxend", t.sender[i].maxend},
          {"maxwin", t.sender[i].maxwin}, {"maxack", t.sender[i].maxack},
          {"scale", t.scale[i]},          {"flags", flag_names(t.flags[i])}};
    }
    out["tcp"] = tcp;
  } else {
    out[module_name(c.l4)] = {{"state", base["state"]}};
  }
  const uint64_t now_ms = wall_ms();
  if (c.l7 == ModuleId::ftp) {
    const FtpSlice& f = detail->ftp;
    json pending = json::array();
    for (uint8_t i = 0; i < f.pending_count && i < FtpSlice::kMaxPending; ++i) {
      const int64_t left =
          static_cast<int32_t>(f.pending[i].expires_ms - static_cast<uint32_t>(now_ms));
      pending.push_back({{"expects", expectation_text(f.pending[i].key)},
                         {"expires_in_ms", std::max<int64_t>(left, 0)}});
    }
    out["ftp"] = {{"pending", f.pending_count}, {"expectations", pending}};
  } else if (c.l7 == ModuleId::sip) {
    json calls = json::array();
    for (uint32_t k = 0; k < detail->call_count; ++k) {
      const SipCall& call = detail->calls[k];
      json media = json::array();
      for (uint8_t i = 0; i < call.media_count && i < SipCall::kMaxMedia; ++i) {
        media.push_back(call.media[i].id);
      }
      json streams = json::array();
      for (int side = 0; side < 2 && call.has_active; ++side) {
        const sip::SessionDescription& sd = call.active[side];
        for (uint8_t i = 0; i < sd.count && i < sip::kMaxStreams; ++i) {
          if (sd.streams[i].port == 0) continue;
          streams.push_back(sd.streams[i].address.to_string(sd.streams[i].port));
        }
      }
      calls.push_back(
          {{"call_id", std::string(call.call_id, call.call_id_len)},
           {"state", SipModule::state_name(call)},
           {"age_s", now_ms / 1000 >= call.started_s ? now_ms / 1000 - call.started_s : 0},
           {"media_streams", streams},
           {"media_connections", media}});
    }
    out["sip"] = {{"calls", detail->call_count}, {"call", calls}};
  }
  return out;
}

std::string ports_text(const std::vector<PortRange>& ports) {
  if (ports.empty()) return "any";
  std::string out;
  for (const PortRange& p : ports) {
    if (!out.empty()) out += ",";
    out += p.lo == p.hi ? std::to_string(p.lo) : std::to_string(p.lo) + "-" + std::to_string(p.hi);
  }
  return out;
}

std::string cidrs_text(const std::vector<Cidr>& cidrs) {
  if (cidrs.empty()) return "any";
  std::string out;
  for (const Cidr& c : cidrs) {
    if (!out.empty()) out += ",";
    out += c.to_string();
  }
  return out;
}

std::string protocol_text(int protocol) {
  switch (protocol) {
    case -1:
      return "any";
    case kProtoTcp:
      return "tcp";
    case kProtoUdp:
      return "udp";
    case kProtoIcmp:
      return "icmp";
    case kProtoIcmpV6:
      return "icmpv6";
    default:
      return std::to_string(protocol);
  }
}

json cmd_rules(const TelemetryContext& ctx, const std::string& params) {
  uint64_t start = 0;
  if (!params.empty() && !parse_u64(params, &start)) return error_reply("wants a rule index");
  const Policy& policy = **ctx.policy;
  std::vector<uint64_t> hits(policy.rules().size() + 1, 0);
  for (const Worker* w : ctx.workers) {
    const std::vector<uint64_t>& h = w->pipeline().rule_hits();
    for (size_t i = 0; i < h.size() && i < hits.size(); ++i) hits[i] += h[i];
  }
  const size_t n = policy.rules().size();
  json out = {{"count", n + 1}, {"config", ctx.config_path}};
  size_t i = start;
  for (; i <= n && i < start + kRulesPage; ++i) {
    if (i == n) {
      out[std::to_string(i)] = {
          {"name", "default"}, {"action", action_name(policy.default_action())}, {"hits", hits[0]}};
      continue;
    }
    const Rule& r = policy.rules()[i];
    out[std::to_string(i)] = {{"name", r.name},
                              {"action", action_name(r.action)},
                              {"hits", hits[i + 1]},
                              {"side", r.side == SideMatch::any      ? "any"
                                       : r.side == SideMatch::inside ? "inside"
                                                                     : "outside"},
                              {"protocol", protocol_text(r.protocol)},
                              {"src", cidrs_text(r.src)},
                              {"dst", cidrs_text(r.dst)},
                              {"src_ports", ports_text(r.src_ports)},
                              {"dst_ports", ports_text(r.dst_ports)}};
  }
  out["more"] = i <= n;
  out["next"] = i <= n ? i : 0;
  return out;
}

// Sections of the configuration a reload does not apply.
json needs_restart(const json& running, const json& loaded) {
  json out = json::array();
  std::set<std::string> keys;
  for (auto it = running.begin(); it != running.end(); ++it) keys.insert(it.key());
  for (auto it = loaded.begin(); it != loaded.end(); ++it) keys.insert(it.key());
  for (const std::string& k : keys) {
    if (k == "rules" || k == "default") continue;
    if (running.value(k, json()) != loaded.value(k, json())) out.push_back(k);
  }
  return out;
}

json cmd_reload(TelemetryContext& ctx, const std::string& path) {
  if (path.empty()) return error_reply("wants the path of a configuration file");
  if (!ctx.workers_running) return error_reply("the workers are not running yet");
  ConfigResult loaded = load_config_file(path);
  if (!loaded.config) {
    json errors = json::array();
    for (const std::string& e : loaded.errors) errors.push_back(e);
    log(LogLevel::warning, "control", "rules reload from %s refused: %s", path.c_str(),
        loaded.errors.empty() ? "?" : loaded.errors.front().c_str());
    return {{"ok", false},
            {"error", "the configuration is not valid; the rules in force stay"},
            {"errors", errors}};
  }
  std::string error;
  std::unique_ptr<Policy> policy =
      Policy::compile(loaded.config->rules, loaded.config->default_action, &error);
  if (!policy) return {{"ok", false}, {"error", "cannot compile the rules: " + error}};
  json raw;
  {
    std::ifstream in(path);
    raw = json::parse(in, nullptr, false);
  }

  // Phase 1: every worker takes the new rules and re-checks its connections
  // opened by a rule, closing those they deny.
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t checked = 0;
  uint64_t closed = 0;
  std::vector<uint64_t> denied;
  std::vector<std::vector<uint64_t>> hits(ctx.workers.size());
  bool all = true;
  for (size_t w = 0; w < ctx.workers.size(); ++w) {
    Worker& worker = *ctx.workers[w];
    hits[w].assign(policy->rules().size() + 1, 0);
    std::vector<uint64_t> ids(worker.pipeline().flows().capacity());
    ControlRequest r;
    r.op = ControlOp::reload;
    r.policy = policy.get();
    r.hits = &hits[w];
    r.denied = ids.data();
    r.denied_capacity = static_cast<uint32_t>(ids.size());
    ControlRequest done;  // once the whole table is re-checked
    if (!ask(worker, r, &done, std::chrono::milliseconds(10000))) {
      all = false;
      break;
    }
    checked += done.checked;
    closed += done.closed;
    denied.insert(denied.end(), ids.begin(), ids.begin() + done.denied_count);
  }
  if (!all) {
    // Some workers may hold the new rules, others the old: keep both alive.
    ctx.retired.push_back(std::move(*ctx.policy));
    *ctx.policy = std::move(policy);
    log(LogLevel::error, "control", "rules reload from %s: a worker did not answer in time",
        path.c_str());
    return {{"ok", false}, {"error", "a worker did not answer in time; rules may be mixed"}};
  }
  // Phase 2: connections admitted through a closed master follow it.
  std::sort(denied.begin(), denied.end());
  uint64_t closed_related = 0;
  for (Worker* w : ctx.workers) {
    if (denied.empty()) break;
    ControlRequest r;
    r.op = ControlOp::close_related;
    r.masters = denied.data();
    r.master_count = static_cast<uint32_t>(denied.size());
    ControlRequest done;
    if (ask(*w, r, &done, kAskTimeout)) closed_related += done.closed;
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  *ctx.policy = std::move(policy);  // the old rules go: no worker holds them now
  const json restart = raw.is_object() ? needs_restart(ctx.config_raw, raw) : json::array();
  if (raw.is_object()) {
    ctx.config_raw["rules"] = raw.value("rules", json::array());
    ctx.config_raw["default"] = raw.value("default", json("deny"));
  }
  log(LogLevel::info, "control",
      "rules reloaded from %s: %zu rules, default %s; %llu connections re-checked, %llu closed, "
      "%llu related closed, in %.1f ms",
      path.c_str(), loaded.config->rules.size(), action_name(loaded.config->default_action),
      static_cast<unsigned long long>(checked), static_cast<unsigned long long>(closed),
      static_cast<unsigned long long>(closed_related), ms);
  return {{"ok", true},
          {"rules", loaded.config->rules.size()},
          {"default", action_name(loaded.config->default_action)},
          {"checked", checked},
          {"closed", closed},
          {"closed_related", closed_related},
          {"ms", ms},
          {"not_applied", restart}};
}

int signal_by_name(const std::string& s) {
  if (s == "KILL" || s == "SIGKILL") return SIGKILL;
  if (s == "SEGV" || s == "SIGSEGV") return SIGSEGV;
  if (s == "ABRT" || s == "SIGABRT") return SIGABRT;
  return 0;
}

json cmd_crash(TelemetryContext& ctx, const std::string& params) {
  const size_t comma = params.find(',');
  const std::string name = params.substr(0, comma);
  const int sig = signal_by_name(name.empty() ? "KILL" : name);
  if (sig == 0) return error_reply("signal must be KILL, SEGV or ABRT");
  uint64_t after = 0;
  if (comma != std::string::npos && !parse_u64(params.substr(comma + 1), &after)) {
    return error_reply("the packet count must be a number");
  }
  if (after == 0) {
    log(LogLevel::warning, "control", "crash injection: %s now", strsignal(sig));
  } else {
    log(LogLevel::warning, "control", "crash injection: %s after %llu more packets", strsignal(sig),
        static_cast<unsigned long long>(after));
  }
  if (after == 0) {
    // After the reply has gone out.
    std::thread([sig] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::raise(sig);
    }).detach();
    return {{"crash", strsignal(sig)}, {"after_packets", 0}};
  }
  ctx.crash->after.store(static_cast<int64_t>(after), std::memory_order_relaxed);
  ctx.crash->signal.store(sig, std::memory_order_release);
  return {{"crash", strsignal(sig)}, {"after_packets", after}};
}

int callback(const char* cmd, const char* params, rte_tel_data* d) {
  const json reply = telemetry_command(cmd, params != nullptr ? params : "");
  to_telemetry(reply, d);
  return 0;
}

}  // namespace

std::mutex& telemetry_mutex() {
  return g_mutex;
}

void telemetry_attach(TelemetryContext* ctx) {
  std::lock_guard lock(g_mutex);
  g_ctx = ctx;
}

json telemetry_command(const std::string& command, const std::string& params) {
  std::lock_guard lock(g_mutex);
  if (g_ctx == nullptr) return error_reply("the dataplane is starting or stopping");
  TelemetryContext& ctx = *g_ctx;
  try {
    if (command == "/holdfast/info") return cmd_info(ctx);
    if (command == "/holdfast/stats") return cmd_stats(ctx);
    if (command == "/holdfast/ports") return cmd_ports(ctx);
    if (command == "/holdfast/workers") return cmd_workers(ctx);
    if (command == "/holdfast/states") return cmd_states(ctx);
    if (command == "/holdfast/conns") return cmd_conns(ctx, params);
    if (command == "/holdfast/conn") return cmd_conn(ctx, params);
    if (command == "/holdfast/rules") return cmd_rules(ctx, params);
    if (command == "/holdfast/reload") return cmd_reload(ctx, params);
    if (command == "/holdfast/crash") return cmd_crash(ctx, params);
    if (command == "/holdfast/recovery") {
      return ctx.recovery != nullptr && !ctx.recovery->is_null() ? *ctx.recovery
                                                                 : error_reply("no recovery ran");
    }
  } catch (const std::exception& e) {
    // Control path: a bad request must not take the dataplane down.
    return error_reply(std::string("internal error: ") + e.what());
  }
  return error_reply("unknown command " + command);
}

void register_telemetry_commands() {
  const std::pair<const char*, const char*> commands[] = {
      {"/holdfast/info", "Version, uptime, workers, rules and checkpointing. No parameters."},
      {"/holdfast/stats", "Counters: totals, pass and drop reasons, protocols, FTP, SIP."},
      {"/holdfast/ports", "Per port: name, side, pair and NIC counters."},
      {"/holdfast/workers", "Per worker: lcore, rx, tx, handoffs, connections."},
      {"/holdfast/states", "Open connections by protocol/state."},
      {"/holdfast/conns",
       "A page of connections. Parameters: key=value words: cursor limit id proto state addr "
       "port module."},
      {"/holdfast/conn", "One connection, base layer and slices. Parameter: connection ID."},
      {"/holdfast/rules", "Rules with their hits, a page at a time. Parameter: first index."},
      {"/holdfast/reload", "Applies the rules of a configuration file. Parameter: its path."},
      {"/holdfast/crash", "Crash injection. Parameters: KILL|SEGV|ABRT[,packets]."},
      {"/holdfast/recovery", "The last recovery report."},
  };
  for (const auto& [name, help] : commands) rte_telemetry_register_cmd(name, callback, help);
}

}  // namespace holdfast
