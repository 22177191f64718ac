#include "dataplane/stats.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "modules/l4_dispatch.h"

namespace holdfast {

using json = nlohmann::json;

namespace {

// "client -> server" of a connection: the opener first.
json describe(const Connection& c) {
  return {{"id", c.id},
          {"client", c.addr(Dir::original).to_string(c.port(Dir::original))},
          {"server", c.addr(Dir::reply).to_string(c.port(Dir::reply))}};
}

// At most this many FTP sessions and SIP calls are listed (the counters
// cover them all).
constexpr size_t kMaxListedSessions = 64;

// A SIP signalling connection's calls, each with its live media connections
// (which may live on other workers: pipelines are all of them, by worker).
void list_calls(const std::vector<const Pipeline*>& pipelines, const Pipeline& p,
                const Connection& conn, json* calls) {
  const SipSession& session = p.sip_session(conn);
  const json d = describe(conn);
  for (uint8_t k = 0; k < session.call_count; ++k) {
    const SipCall& call = p.sip_call(session.calls[k]);
    json media = json::array();
    for (uint8_t i = 0; i < call.media_count; ++i) {
      const SipMedia& m = call.media[i];
      if (m.worker >= pipelines.size()) continue;
      const FlowTable& flows = pipelines[m.worker]->flows();
      if (m.position >= flows.capacity()) continue;
      const Connection& mc = flows.at(m.position);
      if (mc.id != m.id || (mc.flags & Connection::kClosed)) continue;
      media.push_back(describe(mc));
    }
    std::sort(media.begin(), media.end(),
              [](const json& a, const json& b) { return a["id"] < b["id"]; });
    calls->push_back({{"signalling", conn.id},
                      {"transport", conn.l4 == ModuleId::tcp ? "tcp" : "udp"},
                      {"client", d["client"]},
                      {"server", d["server"]},
                      {"call_id", std::string(call.call_id, call.call_id_len)},
                      {"state", SipModule::state_name(call)},
                      {"started_s", call.started_s},
                      {"media", media}});
  }
}

}  // namespace

json module_counters_json(const FtpCounters& c) {
  json out = json::object();
#define HOLDFAST_FTP_JSON(name) out[#name] = c.name;
  HOLDFAST_FTP_COUNTERS(HOLDFAST_FTP_JSON)
#undef HOLDFAST_FTP_JSON
  return out;
}

json module_counters_json(const SipCounters& c) {
  json out = json::object();
#define HOLDFAST_SIP_JSON(name) out[#name] = c.name;
  HOLDFAST_SIP_COUNTERS(HOLDFAST_SIP_JSON)
#undef HOLDFAST_SIP_JSON
  return out;
}

PipelineCounters sum_counters(const std::vector<const Pipeline*>& pipelines) {
  PipelineCounters total;
  for (const Pipeline* p : pipelines) {
    const PipelineCounters& c = p->counters();
    for (size_t i = 0; i < kReasonCount; ++i) total.reasons[i] += c.reasons[i];
    for (size_t i = 0; i < kModuleSlots; ++i) {
      total.opened[i] += c.opened[i];
      total.expired[i] += c.expired[i];
      total.restored[i] += c.restored[i];
    }
    total.reopened += c.reopened;
    total.unprotected += c.unprotected;
    total.reload_closed += c.reload_closed;
#define HOLDFAST_FTP_SUM(name) total.ftp.name += c.ftp.name;
    HOLDFAST_FTP_COUNTERS(HOLDFAST_FTP_SUM)
#undef HOLDFAST_FTP_SUM
#define HOLDFAST_SIP_SUM(name) total.sip.name += c.sip.name;
    HOLDFAST_SIP_COUNTERS(HOLDFAST_SIP_SUM)
#undef HOLDFAST_SIP_SUM
    total.fragments_expired += c.fragments_expired;
  }
  return total;
}

json pipeline_stats(const std::vector<const Pipeline*>& pipelines) {
  const PipelineCounters total = sum_counters(pipelines);
  std::vector<uint64_t> hits;
  std::map<std::string, std::map<std::string, uint64_t>> active;
  const Policy* policy = nullptr;
  std::map<uint64_t, json> sessions;  // FTP control connection ID -> it and its data connections
  json calls = json::array();         // SIP calls with their media connections
  for (const Pipeline* p : pipelines) {
    if (hits.size() < p->rule_hits().size()) hits.resize(p->rule_hits().size());
    for (size_t i = 0; i < p->rule_hits().size(); ++i) hits[i] += p->rule_hits()[i];
    p->flows().for_each([&](uint32_t, const Connection& conn) {
      if (conn.flags & Connection::kClosed) return;  // gone, not yet swept
      ++active[module_name(conn.l4)][l4_state_name(conn)];
      if (conn.l7 == ModuleId::ftp) {
        json& session = sessions[conn.id];
        const json d = describe(conn);
        session["control"] = d["id"];
        session["client"] = d["client"];
        session["server"] = d["server"];
        session["pending_expectations"] = p->ftp_slice(conn).pending_count;
        if (!session.contains("data")) session["data"] = json::array();
      } else if (conn.l7 == ModuleId::sip) {
        list_calls(pipelines, *p, conn, &calls);
      } else if (conn.master_id != 0 && conn.l4 == ModuleId::tcp) {
        // FTP data connections (SIP media is listed with its call).
        json& session = sessions[conn.master_id];
        if (!session.contains("data")) session["data"] = json::array();
        session["data"].push_back(describe(conn));
      }
    });
    policy = p->policy();
  }

  json out;
  out["packets"] = total.packets();
  out["passed"] = total.passed();
  out["dropped"] = total.packets() - total.passed();
  json reasons = json::object();
  for (size_t i = 0; i < kReasonCount; ++i) {
    if (total.reasons[i] != 0) reasons[std::string(kReasonNames[i])] = total.reasons[i];
  }
  out["reasons"] = reasons;
  json conns;
  json opened = json::object();
  json expired = json::object();
  for (ModuleId m : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
    opened[module_name(m)] = total.opened[static_cast<size_t>(m)];
    expired[module_name(m)] = total.expired[static_cast<size_t>(m)];
  }
  conns["opened"] = opened;
  conns["expired"] = expired;
  conns["reopened"] = total.reopened;
  conns["active"] = active.empty() ? json::object() : json(active);
  out["connections"] = conns;
  out["fragments_expired"] = total.fragments_expired;
  json ftp = module_counters_json(total.ftp);
  json listed = json::array();
  for (auto& [id, session] : sessions) {
    std::sort(session["data"].begin(), session["data"].end(),
              [](const json& a, const json& b) { return a["id"] < b["id"]; });
    if (listed.size() == kMaxListedSessions) break;
    // A data connection whose control connection has gone shows with the
    // master's ID alone.
    if (!session.contains("control")) session["control"] = id;
    listed.push_back(session);
  }
  ftp["open_sessions"] = listed;
  ftp["open_sessions_total"] = sessions.size();
  out["ftp"] = ftp;
  json sip = module_counters_json(total.sip);
  std::sort(calls.begin(), calls.end(), [](const json& a, const json& b) {
    return a["signalling"] != b["signalling"] ? a["signalling"] < b["signalling"]
                                              : a["call_id"] < b["call_id"];
  });
  sip["open_calls_total"] = calls.size();
  if (calls.size() > kMaxListedSessions)
    calls.erase(calls.begin() + kMaxListedSessions, calls.end());
  sip["open_calls"] = calls;
  out["sip"] = sip;
  json rules = json::array();
  if (policy != nullptr) {
    for (size_t i = 0; i < policy->rules().size(); ++i) {
      const Rule& r = policy->rules()[i];
      rules.push_back({{"name", r.name},
                       {"action", action_name(r.action)},
                       {"hits", i + 1 < hits.size() ? hits[i + 1] : 0}});
    }
    rules.push_back({{"name", "default"},
                     {"action", action_name(policy->default_action())},
                     {"hits", hits.empty() ? 0 : hits[0]}});
  }
  out["rules"] = rules;
  return out;
}

std::string format_stats(const json& s) {
  std::string out;
  char line[512];
  const uint64_t packets = s.value("packets", uint64_t{0});
  const uint64_t passed = s.value("passed", uint64_t{0});
  const uint64_t dropped = s.value("dropped", uint64_t{0});
  std::snprintf(line, sizeof line, "Verdicts: %llu packets, %llu passed, %llu dropped\n",
                static_cast<unsigned long long>(packets), static_cast<unsigned long long>(passed),
                static_cast<unsigned long long>(dropped));
  out += line;

  // Reasons, passes first, each group by count.
  std::vector<std::pair<std::string, uint64_t>> pass_reasons;
  std::vector<std::pair<std::string, uint64_t>> drop_reasons;
  for (auto it = s["reasons"].begin(); it != s["reasons"].end(); ++it) {
    bool passes = false;
    for (size_t i = 0; i < kReasonCount; ++i) {
      if (kReasonNames[i] == it.key()) passes = kReasonPasses[i];
    }
    (passes ? pass_reasons : drop_reasons).emplace_back(it.key(), it.value().get<uint64_t>());
  }
  auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  std::sort(pass_reasons.begin(), pass_reasons.end(), by_count);
  std::sort(drop_reasons.begin(), drop_reasons.end(), by_count);
  auto print_group = [&](const char* title, const auto& group) {
    if (group.empty()) return;
    out += title;
    for (const auto& [name, n] : group) {
      std::snprintf(line, sizeof line, "  %-24s %10llu\n", name.c_str(),
                    static_cast<unsigned long long>(n));
      out += line;
    }
  };
  print_group("Passed, by reason:\n", pass_reasons);
  print_group("Dropped, by reason:\n", drop_reasons);

  const json& c = s["connections"];
  out += "Connections opened:";
  for (auto it = c["opened"].begin(); it != c["opened"].end(); ++it) {
    std::snprintf(line, sizeof line, " %s %llu", it.key().c_str(),
                  static_cast<unsigned long long>(it.value().get<uint64_t>()));
    out += line;
  }
  std::snprintf(line, sizeof line, " (port reuse: %llu)\n",
                static_cast<unsigned long long>(c.value("reopened", uint64_t{0})));
  out += line;
  out += "Connections open at the end, by protocol and state:\n";
  if (c["active"].empty()) out += "  (none)\n";
  for (auto proto = c["active"].begin(); proto != c["active"].end(); ++proto) {
    for (auto st = proto.value().begin(); st != proto.value().end(); ++st) {
      std::snprintf(line, sizeof line, "  %-6s %-12s %10llu\n", proto.key().c_str(),
                    st.key().c_str(), static_cast<unsigned long long>(st.value().get<uint64_t>()));
      out += line;
    }
  }
  if (s.contains("ftp") && s["ftp"].value("sessions", uint64_t{0}) != 0) {
    const json& f = s["ftp"];
    auto n = [&](const char* key) {
      return static_cast<unsigned long long>(f.value(key, uint64_t{0}));
    };
    std::snprintf(line, sizeof line,
                  "FTP: %llu control connections, %llu announcements, %llu data connections "
                  "admitted, %llu expectations expired unused\n",
                  n("sessions"), n("announcements"), n("data_connections"),
                  n("expectations_expired"));
    out += line;
    std::snprintf(line, sizeof line,
                  "  refused: bounce %llu, low port %llu, malformed %llu, in use %llu, table full "
                  "%llu; replaced %llu; sessions not followed %llu\n",
                  n("refused_bounce"), n("refused_low_port"), n("refused_malformed"),
                  n("refused_in_use"), n("refused_table_full"), n("replaced_pending"),
                  n("sessions_full"));
    out += line;
    for (const json& session : f["open_sessions"]) {
      std::snprintf(line, sizeof line, "  control %llu %s -> %s: %zu data connection%s\n",
                    static_cast<unsigned long long>(session["control"].get<uint64_t>()),
                    session.value("client", std::string("(gone)")).c_str(),
                    session.value("server", std::string("")).c_str(), session["data"].size(),
                    session["data"].size() == 1 ? "" : "s");
      out += line;
      for (const json& d : session["data"]) {
        std::snprintf(line, sizeof line, "    data %llu %s -> %s\n",
                      static_cast<unsigned long long>(d["id"].get<uint64_t>()),
                      d["client"].get<std::string>().c_str(),
                      d["server"].get<std::string>().c_str());
        out += line;
      }
    }
  }
  if (s.contains("sip") && s["sip"].value("sessions", uint64_t{0}) != 0) {
    const json& f = s["sip"];
    auto n = [&](const char* key) {
      return static_cast<unsigned long long>(f.value(key, uint64_t{0}));
    };
    std::snprintf(line, sizeof line,
                  "SIP: %llu signalling connections, %llu messages (%llu malformed, dropped), "
                  "%llu calls, %llu answered offers, %llu pinholes, %llu media connections "
                  "admitted, %llu closed at call end\n",
                  n("sessions"), n("messages"), n("malformed"), n("calls"), n("answers"),
                  n("pinholes_opened"), n("media_connections"), n("media_closed"));
    out += line;
    std::snprintf(line, sizeof line,
                  "  calls ended %llu, timed out %llu, replaced %llu, refused %llu, not followed "
                  "(pool full) %llu; pinholes refused: address %llu, low port %llu, in use %llu, "
                  "table full %llu, other worker %llu\n",
                  n("calls_ended"), n("calls_timed_out"), n("calls_replaced"), n("calls_refused"),
                  n("calls_full"), n("refused_address"), n("refused_low_port"), n("refused_in_use"),
                  n("refused_table_full"), n("refused_other_worker"));
    out += line;
    for (const json& call : f["open_calls"]) {
      std::snprintf(line, sizeof line, "  call %s (%s) over %s %llu %s -> %s: %zu media\n",
                    call["call_id"].get<std::string>().c_str(),
                    call["state"].get<std::string>().c_str(),
                    call["transport"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(call["signalling"].get<uint64_t>()),
                    call["client"].get<std::string>().c_str(),
                    call["server"].get<std::string>().c_str(), call["media"].size());
      out += line;
      for (const json& d : call["media"]) {
        std::snprintf(line, sizeof line, "    media %llu %s -> %s\n",
                      static_cast<unsigned long long>(d["id"].get<uint64_t>()),
                      d["client"].get<std::string>().c_str(),
                      d["server"].get<std::string>().c_str());
        out += line;
      }
    }
  }
  if (!s["rules"].empty()) {
    out += "Rules (connections opened or refused):\n";
    for (const json& r : s["rules"]) {
      std::snprintf(line, sizeof line, "  %-24s %-6s %10llu\n",
                    r["name"].get<std::string>().c_str(), r["action"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(r["hits"].get<uint64_t>()));
      out += line;
    }
  }
  return out;
}

}  // namespace holdfast
