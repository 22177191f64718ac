#include "control/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint/store_format.h"

namespace holdfast {
namespace {

using json = nlohmann::json;

// Largest timeout: the dataplane's 32-bit millisecond clock compares idle
// times as signed values, so they must stay below 2^31 ms (24.8 days).
constexpr double kMaxTimeoutSeconds = 2'000'000;
constexpr double kMinTimeoutSeconds = 0.001;

// JSON Pointer escaping (RFC 6901) for keys in error paths.
std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "something else";
  }
}

// Finds keys repeated within one JSON object. The parser keeps one of them
// without a word, so a second "default" could turn deny into allow unnoticed.
class DuplicateKeyFinder {
 public:
  std::vector<std::string> paths;  // JSON Pointers of the repeated keys

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    using Event = json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start: {
        std::string path = child_path();
        levels_.push_back({event == Event::object_start, std::move(path), {}, {}, 0});
        break;
      }
      case Event::key: {
        Level& level = levels_.back();
        level.key = parsed.get<std::string>();
        if (!level.keys.insert(level.key).second) {
          paths.push_back(level.path + "/" + pointer_token(level.key));
        }
        break;
      }
      case Event::value:
        child_path();  // counts the element when inside an array
        break;
      case Event::object_end:
      case Event::array_end:
        levels_.pop_back();
        break;
    }
    return true;
  }

 private:
  struct Level {
    bool object;
    std::string path;
    std::set<std::string> keys;
    std::string key;    // the key whose value comes next (objects)
    size_t next_index;  // the index of the next element (arrays)
  };
  // The path of the value that starts now.
  std::string child_path() {
    if (levels_.empty()) return "";
    Level& level = levels_.back();
    if (level.object) return level.path + "/" + pointer_token(level.key);
    return level.path + "/" + std::to_string(level.next_index++);
  }
  std::vector<Level> levels_;
};

class Loader {
 public:
  std::vector<std::string> errors;

  void error(const std::string& path, const std::string& message) {
    errors.push_back((path.empty() ? "/" : path) + ": " + message);
  }

  // Reports keys of obj not in `known`.
  void only_keys(const json& obj, const std::string& path,
                 std::initializer_list<const char*> known) {
    std::set<std::string> allowed(known.begin(), known.end());
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!allowed.count(it.key())) {
        std::string list;
        for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
        error(path + "/" + pointer_token(it.key()), "unknown key (expected one of: " + list + ")");
      }
    }
  }

  bool expect_object(const json& v, const std::string& path) {
    if (v.is_object()) return true;
    error(path, std::string("expected an object, got ") + type_name(v));
    return false;
  }

  std::optional<bool> boolean(const json& v, const std::string& path) {
    if (v.is_boolean()) return v.get<bool>();
    error(path, std::string("expected true or false, got ") + type_name(v));
    return std::nullopt;
  }

  std::optional<std::string> string(const json& v, const std::string& path) {
    if (v.is_string()) return v.get<std::string>();
    error(path, std::string("expected a string, got ") + type_name(v));
    return std::nullopt;
  }

  std::optional<uint64_t> count(const json& v, const std::string& path, uint64_t min,
                                uint64_t max) {
    if (!v.is_number_integer() && !v.is_number_unsigned()) {
      error(path, std::string("expected a whole number, got ") + type_name(v));
      return std::nullopt;
    }
    if (v.is_number_integer() && v.get<int64_t>() < 0) {
      error(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    uint64_t n = v.get<uint64_t>();
    if (n < min || n > max) {
      error(path, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                      ", got " + std::to_string(n));
      return std::nullopt;
    }
    return n;
  }

  // A timeout in seconds (fractions allowed), returned in milliseconds.
  void timeout(const json& obj, const char* key, const std::string& path, uint32_t* out_ms) {
    if (!obj.contains(key)) return;
    const json& v = obj.at(key);
    const std::string p = path + "/" + key;
    if (!v.is_number()) {
      error(p, std::string("expected a number of seconds, got ") + type_name(v));
      return;
    }
    double s = v.get<double>();
    // At least a millisecond, the dataplane's unit: anything smaller would
    // round to 0 and expire every connection at its next packet.
    if (!(s >= kMinTimeoutSeconds) || s > kMaxTimeoutSeconds) {
      error(p, "timeout must be between 0.001 and " +
                   std::to_string(static_cast<int64_t>(kMaxTimeoutSeconds)) + " seconds");
      return;
    }
    *out_ms = static_cast<uint32_t>(std::llround(s * 1000));
  }

  // A string or a list of strings.
  std::vector<std::pair<std::string, std::string>> string_list(const json& v,
                                                               const std::string& path) {
    std::vector<std::pair<std::string, std::string>> out;  // (value, path)
    if (v.is_string()) {
      out.emplace_back(v.get<std::string>(), path);
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string p = path + "/" + std::to_string(i);
        if (auto s = string(v[i], p)) out.emplace_back(*s, p);
      }
    } else {
      error(path, std::string("expected a string or a list of strings, got ") + type_name(v));
    }
    return out;
  }

  std::vector<Cidr> cidrs(const json& v, const std::string& path, bool allow_any) {
    std::vector<Cidr> out;
    if (allow_any && v.is_array() && v.empty()) {
      // Internally "no addresses" means "any address", so [] would silently
      // widen the rule (a generated list that came out empty, say).
      error(path, "empty list: it would match any address; write \"any\" or list addresses");
      return out;
    }
    for (const auto& [text, p] : string_list(v, path)) {
      if (allow_any && text == "any") {
        // "any" alongside addresses would be meaningless; alone it means no
        // restriction, which an empty list expresses.
        if (string_list_size(v) > 1) error(p, "\"any\" cannot be combined with addresses");
        return {};
      }
      std::string why;
      if (auto c = Cidr::parse(text, &why)) {
        out.push_back(*c);
      } else {
        error(p, why);
      }
    }
    return out;
  }

  static size_t string_list_size(const json& v) { return v.is_array() ? v.size() : 1; }

  std::optional<PortRange> port_range(const json& v, const std::string& path) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
      auto n = count(v, path, 0, 65535);
      if (!n) return std::nullopt;
      return PortRange{static_cast<uint16_t>(*n), static_cast<uint16_t>(*n)};
    }
    if (!v.is_string()) {
      error(path,
            std::string("expected a port number or a \"low-high\" range, got ") + type_name(v));
      return std::nullopt;
    }
    const std::string text = v.get<std::string>();
    auto parse_port = [&](std::string_view s, uint16_t* out) {
      unsigned value = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value > 65535) {
        return false;
      }
      *out = static_cast<uint16_t>(value);
      return true;
    };
    PortRange r;
    const size_t dash = text.find('-');
    bool ok = dash == std::string::npos
                  ? parse_port(text, &r.lo) && parse_port(text, &r.hi)
                  : parse_port(std::string_view(text).substr(0, dash), &r.lo) &&
                        parse_port(std::string_view(text).substr(dash + 1), &r.hi);
    if (!ok) {
      error(path, "bad port range \"" + text + "\": expected a port 0-65535 or \"low-high\"");
      return std::nullopt;
    }
    if (r.lo > r.hi) {
      error(path, "bad port range \"" + text + "\": low end is above high end");
      return std::nullopt;
    }
    return r;
  }

  std::vector<PortRange> port_ranges(const json& v, const std::string& path) {
    std::vector<PortRange> out;
    if (v.is_array() && v.empty()) {
      // As for addresses: no ranges would mean every port.
      error(path, "empty list: it would match any port; leave the key out for any port");
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (auto r = port_range(v[i], path + "/" + std::to_string(i))) out.push_back(*r);
      }
    } else if (auto r = port_range(v, path)) {
      out.push_back(*r);
    }
    return out;
  }

  std::optional<int> protocol(const json& v, const std::string& path) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
      auto n = count(v, path, 0, 255);
      if (!n) return std::nullopt;
      return static_cast<int>(*n);
    }
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (s == "any") return -1;
      if (s == "tcp") return kProtoTcp;
      if (s == "udp") return kProtoUdp;
      if (s == "icmp") return kProtoIcmp;
      if (s == "icmpv6") return kProtoIcmpV6;
      error(path, "unknown protocol \"" + s +
                      "\" (expected tcp, udp, icmp, icmpv6, any or a number 0-255)");
      return std::nullopt;
    }
    error(path, std::string("expected a protocol name or number, got ") + type_name(v));
    return std::nullopt;
  }

  std::optional<Action> action(const json& v, const std::string& path) {
    auto s = string(v, path);
    if (!s) return std::nullopt;
    if (*s == "allow") return Action::allow;
    if (*s == "deny") return Action::deny;
    error(path, "unknown action \"" + *s + "\" (expected allow or deny)");
    return std::nullopt;
  }

  void ports(const json& v, const std::string& path, Config& cfg) {
    if (!v.is_array()) {
      error(path,
            std::string("expected a list of {\"inside\": ..., \"outside\": ...} pairs, got ") +
                type_name(v));
      return;
    }
    if (v.empty()) error(path, "at least one inside/outside port pair is required");
    std::set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string p = path + "/" + std::to_string(i);
      if (!expect_object(v[i], p)) continue;
      only_keys(v[i], p, {"inside", "outside"});
      PortPairConfig pair;
      for (const char* side : {"inside", "outside"}) {
        const std::string sp = p + "/" + side;
        if (!v[i].contains(side)) {
          error(sp, std::string("missing port: every pair needs an ") + side + " device");
          continue;
        }
        auto name = string(v[i].at(side), sp);
        if (!name) continue;
        if (name->empty()) {
          error(sp, "device name is empty");
          continue;
        }
        if (!seen.insert(*name).second) error(sp, "device \"" + *name + "\" is used twice");
        (side[0] == 'i' ? pair.inside : pair.outside) = *name;
      }
      cfg.ports.push_back(pair);
    }
    if (v.size() > 255) error(path, "at most 255 port pairs are supported");
  }

  void rules(const json& v, const std::string& path, Config& cfg) {
    if (!v.is_array()) {
      error(path, std::string("expected a list of rules, got ") + type_name(v));
      return;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string p = path + "/" + std::to_string(i);
      if (!expect_object(v[i], p)) continue;
      const json& r = v[i];
      only_keys(r, p,
                {"name", "side", "protocol", "src", "dst", "src_ports", "dst_ports", "action",
                 "comment"});
      Rule rule;
      rule.name = "rule-" + std::to_string(i);
      if (r.contains("name")) {
        if (auto s = string(r.at("name"), p + "/name")) rule.name = *s;
      }
      if (r.contains("comment")) string(r.at("comment"), p + "/comment");
      if (r.contains("side")) {
        if (auto s = string(r.at("side"), p + "/side")) {
          if (*s == "inside") {
            rule.side = SideMatch::inside;
          } else if (*s == "outside") {
            rule.side = SideMatch::outside;
          } else if (*s == "any") {
            rule.side = SideMatch::any;
          } else {
            error(p + "/side", "unknown side \"" + *s + "\" (expected inside, outside or any)");
          }
        }
      }
      if (r.contains("protocol")) {
        if (auto proto = protocol(r.at("protocol"), p + "/protocol")) rule.protocol = *proto;
      }
      if (r.contains("src")) rule.src = cidrs(r.at("src"), p + "/src", true);
      if (r.contains("dst")) rule.dst = cidrs(r.at("dst"), p + "/dst", true);
      for (const char* key : {"src_ports", "dst_ports"}) {
        if (!r.contains(key)) continue;
        const std::string pp = p + "/" + key;
        auto ranges = port_ranges(r.at(key), pp);
        if (rule.protocol != kProtoTcp && rule.protocol != kProtoUdp) {
          error(pp, "ports need \"protocol\": \"tcp\" or \"udp\"");
        }
        (key[0] == 's' ? rule.src_ports : rule.dst_ports) = std::move(ranges);
      }
      if (!r.contains("action")) {
        error(p + "/action", "missing: every rule needs \"action\": \"allow\" or \"deny\"");
      } else if (auto a = action(r.at("action"), p + "/action")) {
        rule.action = *a;
      }
      if (mixes_families_only(rule)) {
        error(p, "src and dst are of different address families, so the rule matches nothing");
      }
      if (Policy::expansion(rule) > Policy::kMaxExpansionPerRule) {
        error(p, "rule expands to " + std::to_string(Policy::expansion(rule)) +
                     " classifier entries (src x dst x src_ports x dst_ports), more than " +
                     std::to_string(Policy::kMaxExpansionPerRule) + "; split it");
      }
      cfg.rules.push_back(std::move(rule));
    }
  }

  // True when src lists only one family and dst only the other.
  static bool mixes_families_only(const Rule& r) {
    if (r.src.empty() || r.dst.empty()) return false;
    auto has = [](const std::vector<Cidr>& l, bool v4) {
      for (const Cidr& c : l) {
        if (c.v4 == v4) return true;
      }
      return false;
    };
    return !(has(r.src, true) && has(r.dst, true)) && !(has(r.src, false) && has(r.dst, false));
  }

  void timeouts(const json& v, const std::string& path, Config& cfg) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"tcp", "udp", "icmp", "other", "fragment"});
    TrackerSettings& t = cfg.pipeline.tracker;
    if (v.contains("tcp") && expect_object(v.at("tcp"), path + "/tcp")) {
      const json& tcp = v.at("tcp");
      const std::string p = path + "/tcp";
      only_keys(tcp, p,
                {"syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
                 "time_wait", "close", "unacknowledged"});
      timeout(tcp, "syn_sent", p, &t.tcp.syn_sent);
      timeout(tcp, "syn_recv", p, &t.tcp.syn_recv);
      timeout(tcp, "established", p, &t.tcp.established);
      timeout(tcp, "fin_wait", p, &t.tcp.fin_wait);
      timeout(tcp, "close_wait", p, &t.tcp.close_wait);
      timeout(tcp, "last_ack", p, &t.tcp.last_ack);
      timeout(tcp, "time_wait", p, &t.tcp.time_wait);
      timeout(tcp, "close", p, &t.tcp.close);
      timeout(tcp, "unacknowledged", p, &t.tcp.unacknowledged);
    }
    if (v.contains("udp") && expect_object(v.at("udp"), path + "/udp")) {
      const std::string p = path + "/udp";
      only_keys(v.at("udp"), p, {"unreplied", "assured"});
      timeout(v.at("udp"), "unreplied", p, &t.udp_unreplied);
      timeout(v.at("udp"), "assured", p, &t.udp_assured);
    }
    if (v.contains("other") && expect_object(v.at("other"), path + "/other")) {
      const std::string p = path + "/other";
      only_keys(v.at("other"), p, {"unreplied", "assured"});
      timeout(v.at("other"), "unreplied", p, &t.other_unreplied);
      timeout(v.at("other"), "assured", p, &t.other_assured);
    }
    timeout(v, "icmp", path, &t.icmp);
    timeout(v, "fragment", path, &cfg.pipeline.fragment_timeout_ms);
  }

  void limits(const json& v, const std::string& path, Config& cfg) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"connections_per_worker", "fragments_per_worker"});
    if (v.contains("connections_per_worker")) {
      if (auto n = count(v.at("connections_per_worker"), path + "/connections_per_worker", 64,
                         1u << 26)) {
        cfg.pipeline.connections = static_cast<uint32_t>(*n);
      }
    }
    if (v.contains("fragments_per_worker")) {
      if (auto n =
              count(v.at("fragments_per_worker"), path + "/fragments_per_worker", 64, 1u << 20)) {
        cfg.pipeline.fragments = static_cast<uint32_t>(*n);
      }
    }
  }

  void modules(const json& v, const std::string& path, Config& cfg) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"tcp", "udp", "icmp", "ftp", "sip"});
    if (v.contains("tcp") && expect_object(v.at("tcp"), path + "/tcp")) {
      only_keys(v.at("tcp"), path + "/tcp", {"loose_pickup"});
      if (v.at("tcp").contains("loose_pickup")) {
        if (auto b = boolean(v.at("tcp").at("loose_pickup"), path + "/tcp/loose_pickup")) {
          cfg.pipeline.tracker.tcp_loose_pickup = *b;
        }
      }
    }
    if (v.contains("ftp")) ftp(v.at("ftp"), path + "/ftp", cfg.pipeline.ftp);
    if (v.contains("sip")) sip(v.at("sip"), path + "/sip", cfg.pipeline.sip);
    // A TCP connection to a port both modules claim would be followed by FTP
    // alone: say so rather than silently ignore the SIP port.
    const FtpSettings& f = cfg.pipeline.ftp;
    const SipSettings& sp = cfg.pipeline.sip;
    if (f.enabled && sp.enabled) {
      for (uint8_t i = 0; i < sp.ports.count; ++i) {
        if (f.ports.contains(sp.ports.ports[i])) {
          error(path + "/sip/ports", "port " + std::to_string(sp.ports.ports[i]) +
                                         " is also an FTP control port (modules.ftp.ports)");
        }
      }
    }
    // udp and icmp have no settings of their own yet beyond their timeouts;
    // an empty object is accepted so every module can be listed.
    for (const char* m : {"udp", "icmp"}) {
      if (v.contains(m) && expect_object(v.at(m), path + "/" + m)) {
        only_keys(v.at(m), path + "/" + m, {});
      }
    }
  }

  void ftp(const json& v, const std::string& path, FtpSettings& ftp) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"enabled", "ports", "expectation_timeout", "sessions_per_worker"});
    if (v.contains("enabled")) {
      if (auto b = boolean(v.at("enabled"), path + "/enabled")) ftp.enabled = *b;
    }
    if (v.contains("ports")) {
      port_list(v.at("ports"), path + "/ports", &ftp.ports);
    }
    timeout(v, "expectation_timeout", path, &ftp.expectation_timeout_ms);
    if (v.contains("sessions_per_worker")) {
      if (auto n = count(v.at("sessions_per_worker"), path + "/sessions_per_worker", 1, 65535)) {
        ftp.sessions = static_cast<uint32_t>(*n);
      }
    }
  }

  // A module's list of 1..max distinct ports.
  void port_list(const json& ports, const std::string& p, PortSet* out) {
    const size_t max = PortSet::kMax;
    if (!ports.is_array()) {
      error(p, std::string("expected a list of port numbers, got ") + type_name(ports));
      return;
    }
    if (ports.empty() || ports.size() > max) {
      error(p, "between 1 and " + std::to_string(max) + " ports");
      return;
    }
    PortSet set;
    for (size_t i = 0; i < ports.size(); ++i) {
      const std::string pi = p + "/" + std::to_string(i);
      auto n = count(ports[i], pi, 1, 65535);
      if (!n) continue;
      if (set.contains(static_cast<uint16_t>(*n))) {
        error(pi, "port " + std::to_string(*n) + " is listed twice");
        continue;
      }
      set.ports[set.count++] = static_cast<uint16_t>(*n);
    }
    *out = set;
  }

  void sip(const json& v, const std::string& path, SipSettings& sip) {
    if (!expect_object(v, path)) return;
    only_keys(v, path,
              {"enabled", "ports", "media_ranges", "call_timeout", "calls_per_session",
               "sessions_per_worker", "calls_per_worker"});
    if (v.contains("enabled")) {
      if (auto b = boolean(v.at("enabled"), path + "/enabled")) sip.enabled = *b;
    }
    if (v.contains("ports")) {
      port_list(v.at("ports"), path + "/ports", &sip.ports);
    }
    if (v.contains("media_ranges")) {
      const std::string p = path + "/media_ranges";
      const std::vector<Cidr> ranges = cidrs(v.at("media_ranges"), p, false);
      if (ranges.size() > SipSettings::kMaxRanges) {
        error(p, "at most " + std::to_string(SipSettings::kMaxRanges) + " ranges");
      } else {
        sip.range_count = 0;
        for (const Cidr& c : ranges) sip.media_ranges[sip.range_count++] = c;
      }
    }
    timeout(v, "call_timeout", path, &sip.call_timeout_ms);
    if (v.contains("calls_per_session")) {
      if (auto n = count(v.at("calls_per_session"), path + "/calls_per_session", 1,
                         SipSettings::kMaxCallsPerSession)) {
        sip.calls_per_session = static_cast<uint8_t>(*n);
      }
    }
    if (v.contains("sessions_per_worker")) {
      if (auto n = count(v.at("sessions_per_worker"), path + "/sessions_per_worker", 1, 65535)) {
        sip.sessions = static_cast<uint32_t>(*n);
      }
    }
    if (v.contains("calls_per_worker")) {
      if (auto n = count(v.at("calls_per_worker"), path + "/calls_per_worker", 1, 65535)) {
        sip.calls = static_cast<uint32_t>(*n);
      }
    }
  }

  void l2(const json& v, const std::string& path, Config& cfg) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"arp", "non_ip", "ipv6_nd"});
    L2Settings& l2 = cfg.pipeline.l2;
    if (v.contains("arp")) {
      if (auto b = boolean(v.at("arp"), path + "/arp")) l2.arp = *b;
    }
    if (v.contains("non_ip")) {
      if (auto b = boolean(v.at("non_ip"), path + "/non_ip")) l2.non_ip = *b;
    }
    if (v.contains("ipv6_nd")) {
      if (auto b = boolean(v.at("ipv6_nd"), path + "/ipv6_nd")) l2.ipv6_nd = *b;
    }
  }

  void checkpoint(const json& v, const std::string& path, Config& cfg) {
    if (!expect_object(v, path)) return;
    only_keys(v, path, {"socket", "app", "token_file", "store_full"});
    CheckpointConfig& c = cfg.checkpoint;
    if (v.contains("socket")) {
      if (auto s = string(v.at("socket"), path + "/socket")) {
        if (s->empty()) error(path + "/socket", "socket path is empty");
        c.socket = *s;
      }
    }
    if (v.contains("app")) {
      if (auto s = string(v.at("app"), path + "/app")) {
        if (!ckpt::app_id_valid(*s)) {
          error(path + "/app", "application id must be 1-31 letters, digits, '-', '_' or '.'");
        }
        c.app = *s;
      }
    }
    if (v.contains("token_file")) {
      if (auto s = string(v.at("token_file"), path + "/token_file")) c.token_file = *s;
    }
    if (v.contains("store_full")) {
      if (auto s = string(v.at("store_full"), path + "/store_full")) {
        if (*s == "refuse") {
          c.store_full_allow = false;
        } else if (*s == "allow") {
          c.store_full_allow = true;
        } else {
          error(path + "/store_full", "unknown policy \"" + *s + "\" (expected refuse or allow)");
        }
      }
    }
  }

  Config load(const json& root) {
    Config cfg;
    if (!expect_object(root, "")) return cfg;
    only_keys(root, "",
              {"ports", "inside_networks", "rules", "default", "timeouts", "limits", "modules",
               "l2", "verify_checksums", "checkpoint", "comment"});
    if (root.contains("ports")) {
      ports(root.at("ports"), "/ports", cfg);
    } else {
      error("/ports", "missing: at least one inside/outside port pair is required");
    }
    if (root.contains("inside_networks")) {
      cfg.inside_networks = cidrs(root.at("inside_networks"), "/inside_networks", false);
    }
    if (root.contains("rules")) rules(root.at("rules"), "/rules", cfg);
    if (root.contains("default")) {
      if (auto a = action(root.at("default"), "/default")) cfg.default_action = *a;
    }
    if (root.contains("timeouts")) timeouts(root.at("timeouts"), "/timeouts", cfg);
    if (root.contains("limits")) limits(root.at("limits"), "/limits", cfg);
    if (root.contains("modules")) modules(root.at("modules"), "/modules", cfg);
    if (root.contains("l2")) l2(root.at("l2"), "/l2", cfg);
    if (root.contains("verify_checksums")) {
      if (auto b = boolean(root.at("verify_checksums"), "/verify_checksums")) {
        cfg.parse.verify_checksums = *b;
      }
    }
    if (root.contains("checkpoint")) checkpoint(root.at("checkpoint"), "/checkpoint", cfg);
    if (root.contains("comment")) string(root.at("comment"), "/comment");
    return cfg;
  }
};

}  // namespace

bool Config::is_inside(const IpAddr& addr) const {
  for (const Cidr& c : inside_networks) {
    if (c.contains(addr)) return true;
  }
  return false;
}

ConfigResult parse_config(const std::string& text) {
  ConfigResult result;
  json root;
  DuplicateKeyFinder duplicates;
  try {
    root = json::parse(text, [&duplicates](int depth, json::parse_event_t event, json& parsed) {
      return duplicates(depth, event, parsed);
    });
  } catch (const json::parse_error& e) {
    // Turn the byte offset into a line and column a user can find.
    size_t line = 1;
    size_t column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    if (auto pos = what.find("syntax error"); pos != std::string::npos) what = what.substr(pos);
    result.errors.push_back("line " + std::to_string(line) + ", column " + std::to_string(column) +
                            ": not valid JSON: " + what);
    return result;
  }
  Loader loader;
  for (const std::string& path : duplicates.paths) {
    loader.error(path, "duplicate key: a key may appear only once in an object");
  }
  Config cfg = loader.load(root);
  result.errors = std::move(loader.errors);
  if (result.errors.empty()) result.config = std::move(cfg);
  return result;
}

ConfigResult load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ConfigResult result;
    result.errors.push_back(path + ": cannot open configuration file");
    return result;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  ConfigResult result = parse_config(buf.str());
  for (std::string& e : result.errors) e = path + ": " + e;
  return result;
}

}  // namespace holdfast
