#include "dataplane/stats.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "modules/l4_dispatch.h"

namespace holdfast {

using json = nlohmann::json;

json pipeline_stats(const std::vector<const Pipeline*>& pipelines) {
  PipelineCounters total;
  std::vector<uint64_t> hits;
  std::map<std::string, std::map<std::string, uint64_t>> active;
  const Policy* policy = nullptr;
  for (const Pipeline* p : pipelines) {
    const PipelineCounters& c = p->counters();
    for (size_t i = 0; i < kReasonCount; ++i) total.reasons[i] += c.reasons[i];
    for (size_t i = 0; i < kModuleSlots; ++i) {
      total.opened[i] += c.opened[i];
      total.expired[i] += c.expired[i];
    }
    total.reopened += c.reopened;
    total.fragments_expired += c.fragments_expired;
    if (hits.size() < p->rule_hits().size()) hits.resize(p->rule_hits().size());
    for (size_t i = 0; i < p->rule_hits().size(); ++i) hits[i] += p->rule_hits()[i];
    p->flows().for_each([&](uint32_t, const Connection& conn) {
      const char* state = visit_l4(
          conn.l4, [&]<typename M>(M) { return M::state_name(conn.slice<typename M::Slice>()); });
      ++active[module_name(conn.l4)][state];
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
  json rules = json::array();
  if (policy != nullptr) {
    for (size_t i = 0; i < policy->rules().size(); ++i) {
      const Rule& r = policy->rules()[i];
      rules.push_back({{"name", r.name},
                       {"action", r.action == Action::allow ? "allow" : "deny"},
                       {"hits", i + 1 < hits.size() ? hits[i + 1] : 0}});
    }
    rules.push_back({{"name", "default"},
                     {"action", policy->default_action() == Action::allow ? "allow" : "deny"},
                     {"hits", hits.empty() ? 0 : hits[0]}});
  }
  out["rules"] = rules;
  return out;
}

std::string format_stats(const json& s) {
  std::string out;
  char line[256];
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
