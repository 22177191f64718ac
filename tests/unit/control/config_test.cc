// Configuration loading (control/config.h, docs/config.md): every key, every
// error path with its JSON path, all errors collected, nothing applied from
// a file with any error.
#include "control/config.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <string>

namespace holdfast {
namespace {

std::string all_errors(const ConfigResult& r) {
  std::string out;
  for (const std::string& e : r.errors) out += "\n  " + e;
  return out.empty() ? " (none)" : out;
}

// An error at exactly `path` whose message contains `text`.
testing::AssertionResult HasError(const ConfigResult& r, const std::string& path,
                                  const std::string& text) {
  for (const std::string& e : r.errors) {
    if (e.rfind(path + ": ", 0) == 0 && e.find(text, path.size()) != std::string::npos) {
      return testing::AssertionSuccess();
    }
  }
  return testing::AssertionFailure()
         << "no error \"" << path << ": ..." << text << "...\"; got" << all_errors(r);
}

// Exactly one error, that one, and no configuration.
testing::AssertionResult OnlyError(const ConfigResult& r, const std::string& path,
                                   const std::string& text) {
  if (r.config.has_value()) return testing::AssertionFailure() << "a configuration was returned";
  if (r.errors.size() != 1) {
    return testing::AssertionFailure() << r.errors.size() << " errors:" << all_errors(r);
  }
  return HasError(r, path, text);
}

constexpr const char* kPorts =
    R"("ports": [{"inside": "0000:01:00.0", "outside": "0000:01:00.1"}])";

// A file with one port pair plus `more` (JSON members, comma-separated).
std::string with(const std::string& more) {
  return std::string("{") + kPorts + (more.empty() ? "" : ", " + more) + "}";
}

ConfigResult load(const std::string& more) {
  return parse_config(with(more));
}

// ---------------------------------------------------------------------------
// Valid files

TEST(Config, MinimalFileGetsTheDefaults) {
  const ConfigResult r = load("");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_TRUE(r.errors.empty());
  const Config& c = *r.config;
  ASSERT_EQ(c.ports.size(), 1u);
  EXPECT_EQ(c.ports[0].inside, "0000:01:00.0");
  EXPECT_EQ(c.ports[0].outside, "0000:01:00.1");
  EXPECT_TRUE(c.inside_networks.empty());
  EXPECT_TRUE(c.rules.empty());
  EXPECT_EQ(c.default_action, Action::deny);
  EXPECT_TRUE(c.parse.verify_checksums);
  const PipelineSettings& p = c.pipeline;
  EXPECT_EQ(p.connections, 65536u);
  EXPECT_EQ(p.fragments, 4096u);
  EXPECT_EQ(p.fragment_timeout_ms, 30'000u);
  EXPECT_TRUE(p.l2.arp);
  EXPECT_FALSE(p.l2.non_ip);
  EXPECT_TRUE(p.l2.ipv6_nd);
  const TrackerSettings& t = p.tracker;
  EXPECT_FALSE(t.tcp_loose_pickup);
  EXPECT_EQ(t.tcp.syn_sent, 120'000u);
  EXPECT_EQ(t.tcp.syn_recv, 60'000u);
  EXPECT_EQ(t.tcp.established, 432'000'000u);
  EXPECT_EQ(t.tcp.fin_wait, 120'000u);
  EXPECT_EQ(t.tcp.close_wait, 60'000u);
  EXPECT_EQ(t.tcp.last_ack, 30'000u);
  EXPECT_EQ(t.tcp.time_wait, 120'000u);
  EXPECT_EQ(t.tcp.close, 10'000u);
  EXPECT_EQ(t.tcp.unacknowledged, 300'000u);
  EXPECT_EQ(t.udp_unreplied, 30'000u);
  EXPECT_EQ(t.udp_assured, 120'000u);
  EXPECT_EQ(t.icmp, 30'000u);
  EXPECT_EQ(t.other_unreplied, 30'000u);
  EXPECT_EQ(t.other_assured, 600'000u);
}

TEST(Config, CompleteFileLoads) {
  const ConfigResult r = parse_config(R"({
    "comment": "every key",
    "ports": [
      {"inside": "0000:01:00.0", "outside": "0000:01:00.1"},
      {"inside": "net_pcap0", "outside": "net_pcap1"}
    ],
    "inside_networks": ["10.0.0.0/8", "2001:db8::/32"],
    "rules": [
      {"name": "ssh-in", "comment": "admins only", "side": "outside", "protocol": "tcp",
       "src": ["198.51.100.0/24", "203.0.113.7"], "dst": "10.0.0.22",
       "src_ports": "1024-65535", "dst_ports": [22, "2222-2223"], "action": "allow"},
      {"side": "inside", "protocol": "any", "src": "any", "dst": ["any"], "action": "allow"},
      {"protocol": 47, "action": "deny"},
      {"protocol": "icmpv6", "side": "any", "action": "allow"}
    ],
    "default": "allow",
    "timeouts": {
      "tcp": {"syn_sent": 10, "syn_recv": 11, "established": 86400, "fin_wait": 12,
              "close_wait": 13, "last_ack": 14, "time_wait": 15, "close": 2.5,
              "unacknowledged": 16},
      "udp": {"unreplied": 17, "assured": 18},
      "icmp": 19,
      "other": {"unreplied": 20, "assured": 21},
      "fragment": 0.25
    },
    "limits": {"connections_per_worker": 1000000, "fragments_per_worker": 1024},
    "modules": {"tcp": {"loose_pickup": true}, "udp": {}, "icmp": {}},
    "l2": {"arp": false, "non_ip": true, "ipv6_nd": false},
    "verify_checksums": false
  })");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  const Config& c = *r.config;
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[1].inside, "net_pcap0");
  ASSERT_EQ(c.inside_networks.size(), 2u);
  EXPECT_EQ(c.inside_networks[1].to_string(), "2001:db8::/32");
  ASSERT_EQ(c.rules.size(), 4u);

  const Rule& ssh = c.rules[0];
  EXPECT_EQ(ssh.name, "ssh-in");
  EXPECT_EQ(ssh.side, SideMatch::outside);
  EXPECT_EQ(ssh.protocol, kProtoTcp);
  ASSERT_EQ(ssh.src.size(), 2u);
  EXPECT_EQ(ssh.src[1].to_string(), "203.0.113.7/32");
  ASSERT_EQ(ssh.dst.size(), 1u);
  ASSERT_EQ(ssh.src_ports.size(), 1u);
  EXPECT_EQ(ssh.src_ports[0].lo, 1024);
  EXPECT_EQ(ssh.src_ports[0].hi, 65535);
  ASSERT_EQ(ssh.dst_ports.size(), 2u);
  EXPECT_EQ(ssh.dst_ports[0].lo, 22);
  EXPECT_EQ(ssh.dst_ports[0].hi, 22);
  EXPECT_EQ(ssh.dst_ports[1].lo, 2222);
  EXPECT_EQ(ssh.dst_ports[1].hi, 2223);
  EXPECT_EQ(ssh.action, Action::allow);

  const Rule& out = c.rules[1];
  EXPECT_EQ(out.name, "rule-1");
  EXPECT_EQ(out.side, SideMatch::inside);
  EXPECT_EQ(out.protocol, -1);
  EXPECT_TRUE(out.src.empty());
  EXPECT_TRUE(out.dst.empty());
  EXPECT_EQ(c.rules[2].protocol, 47);
  EXPECT_EQ(c.rules[2].action, Action::deny);
  EXPECT_EQ(c.rules[3].protocol, kProtoIcmpV6);

  EXPECT_EQ(c.default_action, Action::allow);
  const TrackerSettings& t = c.pipeline.tracker;
  EXPECT_EQ(t.tcp.syn_sent, 10'000u);
  EXPECT_EQ(t.tcp.syn_recv, 11'000u);
  EXPECT_EQ(t.tcp.established, 86'400'000u);
  EXPECT_EQ(t.tcp.fin_wait, 12'000u);
  EXPECT_EQ(t.tcp.close_wait, 13'000u);
  EXPECT_EQ(t.tcp.last_ack, 14'000u);
  EXPECT_EQ(t.tcp.time_wait, 15'000u);
  EXPECT_EQ(t.tcp.close, 2'500u);
  EXPECT_EQ(t.tcp.unacknowledged, 16'000u);
  EXPECT_EQ(t.udp_unreplied, 17'000u);
  EXPECT_EQ(t.udp_assured, 18'000u);
  EXPECT_EQ(t.icmp, 19'000u);
  EXPECT_EQ(t.other_unreplied, 20'000u);
  EXPECT_EQ(t.other_assured, 21'000u);
  EXPECT_EQ(c.pipeline.fragment_timeout_ms, 250u);
  EXPECT_TRUE(t.tcp_loose_pickup);
  EXPECT_EQ(c.pipeline.connections, 1'000'000u);
  EXPECT_EQ(c.pipeline.fragments, 1024u);
  EXPECT_FALSE(c.pipeline.l2.arp);
  EXPECT_TRUE(c.pipeline.l2.non_ip);
  EXPECT_FALSE(c.pipeline.l2.ipv6_nd);
  EXPECT_FALSE(c.parse.verify_checksums);

  // The rules compile.
  std::string error;
  EXPECT_NE(Policy::compile(c.rules, c.default_action, &error), nullptr) << error;
}

TEST(Config, IsInside) {
  const ConfigResult r = load(R"("inside_networks": ["10.0.0.0/8", "2001:db8::/32"])");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_TRUE(r.config->is_inside(*IpAddr::parse("10.200.0.1")));
  EXPECT_TRUE(r.config->is_inside(*IpAddr::parse("2001:db8:5::1")));
  EXPECT_FALSE(r.config->is_inside(*IpAddr::parse("11.0.0.1")));
  EXPECT_FALSE(r.config->is_inside(*IpAddr::parse("2001:db9::1")));
}

TEST(Config, SingleValuesStandForOneElementLists) {
  const ConfigResult r = load(R"("rules": [{"protocol": "udp", "src": "10.0.0.0/8",
      "dst": "192.0.2.1", "dst_ports": 53, "src_ports": "1000-2000", "action": "allow"}])");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  const Rule& rule = r.config->rules[0];
  EXPECT_EQ(rule.src.size(), 1u);
  EXPECT_EQ(rule.dst.size(), 1u);
  ASSERT_EQ(rule.dst_ports.size(), 1u);
  EXPECT_EQ(rule.dst_ports[0].lo, 53);
  EXPECT_EQ(rule.dst_ports[0].hi, 53);
  EXPECT_EQ(rule.src_ports[0].lo, 1000);
  EXPECT_EQ(rule.src_ports[0].hi, 2000);
}

TEST(Config, TimeoutBoundariesAreAccepted) {
  const ConfigResult r =
      load(R"("timeouts": {"icmp": 0.001, "fragment": 2000000, "udp": {"assured": 1}})");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_EQ(r.config->pipeline.tracker.icmp, 1u);
  EXPECT_EQ(r.config->pipeline.fragment_timeout_ms, 2'000'000'000u);
  EXPECT_EQ(r.config->pipeline.tracker.udp_assured, 1000u);
}

TEST(Config, LimitBoundariesAreAccepted) {
  ConfigResult r =
      load(R"("limits": {"connections_per_worker": 64, "fragments_per_worker": 1048576})");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_EQ(r.config->pipeline.connections, 64u);
  EXPECT_EQ(r.config->pipeline.fragments, 1048576u);
  r = load(R"("limits": {"connections_per_worker": 67108864, "fragments_per_worker": 64})");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_EQ(r.config->pipeline.connections, 67108864u);
}

// ---------------------------------------------------------------------------
// Syntax

TEST(Config, InvalidJsonGivesLineAndColumn) {
  const ConfigResult r = parse_config("{\n  \"ports\": [,]\n}");
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors[0].rfind("line 2, column 13: not valid JSON: ", 0), 0u) << r.errors[0];
}

TEST(Config, TruncatedJson) {
  const ConfigResult r = parse_config("{\n\"ports\": [\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].rfind("line 3, column 1: not valid JSON: ", 0), 0u) << r.errors[0];
}

TEST(Config, EmptyFileIsNotJson) {
  const ConfigResult r = parse_config("");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("not valid JSON"), std::string::npos);
}

TEST(Config, RootMustBeAnObject) {
  EXPECT_TRUE(OnlyError(parse_config("[]"), "/", "expected an object, got an array"));
  EXPECT_TRUE(OnlyError(parse_config("42"), "/", "expected an object, got a number"));
}

TEST(Config, DuplicateKeyIsAnError) {
  // JSON parsers keep one of the two silently; a repeated "default" could
  // turn deny into allow unnoticed.
  EXPECT_TRUE(
      OnlyError(load(R"("default": "deny", "default": "allow")"), "/default", "duplicate key"));
  EXPECT_TRUE(OnlyError(
      load(
          R"("rules": [{"action": "deny"}, {"action": "deny", "dst": "10.0.0.1", "action": "allow"}])"),
      "/rules/1/action", "duplicate key"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"tcp": {"close": 1, "close": 2}})"),
                        "/timeouts/tcp/close", "duplicate key"));
  EXPECT_TRUE(OnlyError(parse_config(std::string("{") + kPorts + ", " + kPorts + "}"), "/ports",
                        "duplicate key"));
  // The same key in different objects is fine.
  EXPECT_TRUE(load(R"("rules": [{"action": "deny"}, {"action": "allow"}])").config.has_value());
}

// ---------------------------------------------------------------------------
// Unknown keys and wrong types

TEST(Config, UnknownKeysAreReportedWhereTheyAre) {
  EXPECT_TRUE(OnlyError(load(R"("rulez": [])"), "/rulez", "unknown key (expected one of: ports,"));
  EXPECT_TRUE(
      OnlyError(parse_config(R"({"ports": [{"inside": "a", "outside": "b", "speed": 10}]})"),
                "/ports/0/speed", "unknown key (expected one of: inside, outside)"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"action": "deny", "dport": 22}])"), "/rules/0/dport",
                        "unknown key"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"tcp": {"established": 1, "estab": 2}})"),
                        "/timeouts/tcp/estab", "unknown key (expected one of: syn_sent,"));
  EXPECT_TRUE(
      OnlyError(load(R"("timeouts": {"udp": {"stream": 2}})"), "/timeouts/udp/stream", "unknown"));
  EXPECT_TRUE(
      OnlyError(load(R"("timeouts": {"other": {"x": 2}})"), "/timeouts/other/x", "unknown"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"sctp": 2})"), "/timeouts/sctp", "unknown"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections": 100})"), "/limits/connections",
                        "unknown key (expected one of: connections_per_worker, "
                        "fragments_per_worker)"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"h323": {}})"), "/modules/h323", "unknown"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"port": 21}})"), "/modules/ftp/port",
                        "unknown key (expected one of: enabled, ports, expectation_timeout, "
                        "sessions_per_worker)"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"tcp": {"liberal": true}})"), "/modules/tcp/liberal",
                        "unknown key (expected one of: loose_pickup)"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"udp": {"x": 1}})"), "/modules/udp/x", "unknown"));
  EXPECT_TRUE(OnlyError(load(R"("l2": {"lldp": true})"), "/l2/lldp", "unknown"));
}

TEST(Config, UnknownKeyPathIsEscapedAsAJsonPointer) {
  EXPECT_TRUE(OnlyError(load(R"("a/b~c": 1)"), "/a~1b~0c", "unknown key"));
}

TEST(Config, WrongTypes) {
  EXPECT_TRUE(OnlyError(load(R"("verify_checksums": "yes")"), "/verify_checksums",
                        "expected true or false, got a string"));
  EXPECT_TRUE(
      OnlyError(load(R"("l2": {"arp": 1})"), "/l2/arp", "expected true or false, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("l2": {"non_ip": null})"), "/l2/non_ip", "got null"));
  EXPECT_TRUE(OnlyError(load(R"("l2": {"ipv6_nd": "no"})"), "/l2/ipv6_nd", "got a string"));
  EXPECT_TRUE(OnlyError(load(R"("l2": [])"), "/l2", "expected an object, got an array"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"tcp": {"loose_pickup": 1}})"),
                        "/modules/tcp/loose_pickup", "expected true or false"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"tcp": true})"), "/modules/tcp", "expected an object"));
  EXPECT_TRUE(
      OnlyError(load(R"("modules": "tcp")"), "/modules", "expected an object, got a string"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": 30)"), "/timeouts", "expected an object"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"tcp": 30})"), "/timeouts/tcp", "expected an object"));
  EXPECT_TRUE(OnlyError(load(R"("limits": true)"), "/limits", "expected an object, got a boolean"));
  EXPECT_TRUE(
      OnlyError(load(R"("rules": {})"), "/rules", "expected a list of rules, got an object"));
  EXPECT_TRUE(
      OnlyError(load(R"("rules": ["allow"])"), "/rules/0", "expected an object, got a string"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"name": 5, "action": "deny"}])"), "/rules/0/name",
                        "expected a string, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"comment": [], "action": "deny"}])"), "/rules/0/comment",
                        "expected a string, got an array"));
  EXPECT_TRUE(OnlyError(load(R"("comment": {})"), "/comment", "expected a string, got an object"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": 10, "action": "deny"}])"), "/rules/0/src",
                        "expected a string or a list of strings, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"dst": ["10.0.0.1", 7], "action": "deny"}])"),
                        "/rules/0/dst/1", "expected a string, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("inside_networks": {"a": 1})"), "/inside_networks",
                        "expected a string or a list of strings"));
  EXPECT_TRUE(
      OnlyError(load(R"("default": true)"), "/default", "expected a string, got a boolean"));
}

// ---------------------------------------------------------------------------
// Ports (device pairs)

TEST(Config, PortsAreRequired) {
  EXPECT_TRUE(OnlyError(parse_config("{}"), "/ports",
                        "missing: at least one inside/outside port pair is required"));
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": []})"), "/ports",
                        "at least one inside/outside port pair is required"));
  EXPECT_TRUE(
      OnlyError(parse_config(R"({"ports": {"inside": "a", "outside": "b"}})"), "/ports",
                "expected a list of {\"inside\": ..., \"outside\": ...} pairs, got an object"));
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": ["a"]})"), "/ports/0", "expected an object"));
}

TEST(Config, EveryPairNeedsBothPorts) {
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": [{"inside": "a"}]})"), "/ports/0/outside",
                        "missing port: every pair needs an outside device"));
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": [{"outside": "b"}]})"), "/ports/0/inside",
                        "missing port: every pair needs an inside device"));
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": [{"inside": "", "outside": "b"}]})"),
                        "/ports/0/inside", "device name is empty"));
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": [{"inside": 1, "outside": "b"}]})"),
                        "/ports/0/inside", "expected a string, got a number"));
}

TEST(Config, DeviceUsedTwice) {
  EXPECT_TRUE(OnlyError(parse_config(R"({"ports": [{"inside": "a", "outside": "a"}]})"),
                        "/ports/0/outside", "device \"a\" is used twice"));
  EXPECT_TRUE(OnlyError(
      parse_config(
          R"({"ports": [{"inside": "a", "outside": "b"}, {"inside": "c", "outside": "b"}]})"),
      "/ports/1/outside", "device \"b\" is used twice"));
}

TEST(Config, AtMost255PortPairs) {
  auto pairs = [](int n) {
    std::string s = R"({"ports": [)";
    for (int i = 0; i < n; ++i) {
      s += (i ? "," : "") + std::string(R"({"inside": "i)") + std::to_string(i) +
           R"(", "outside": "o)" + std::to_string(i) + "\"}";
    }
    return s + "]}";
  };
  EXPECT_TRUE(parse_config(pairs(255)).config.has_value());
  EXPECT_TRUE(
      OnlyError(parse_config(pairs(256)), "/ports", "at most 255 port pairs are supported"));
}

// ---------------------------------------------------------------------------
// Rules

TEST(Config, EveryRuleNeedsAnAction) {
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": "tcp"}])"), "/rules/0/action",
                        "missing: every rule needs \"action\": \"allow\" or \"deny\""));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"action": "permit"}])"), "/rules/0/action",
                        "unknown action \"permit\" (expected allow or deny)"));
  EXPECT_TRUE(OnlyError(load(R"("default": "reject")"), "/default", "unknown action \"reject\""));
}

TEST(Config, SideAndProtocol) {
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"side": "left", "action": "deny"}])"), "/rules/0/side",
                        "unknown side \"left\" (expected inside, outside or any)"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": "sctp", "action": "deny"}])"),
                        "/rules/0/protocol",
                        "unknown protocol \"sctp\" (expected tcp, udp, icmp, icmpv6, any or a "
                        "number 0-255)"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": 256, "action": "deny"}])"),
                        "/rules/0/protocol", "must be between 0 and 255, got 256"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": -1, "action": "deny"}])"),
                        "/rules/0/protocol", "must be between 0 and 255"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": 6.5, "action": "deny"}])"),
                        "/rules/0/protocol", "expected a protocol name or number, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": ["tcp"], "action": "deny"}])"),
                        "/rules/0/protocol", "expected a protocol name or number, got an array"));
}

TEST(Config, BadCidrs) {
  EXPECT_TRUE(
      OnlyError(load(R"("rules": [{"dst": ["10.0.0.0/8", "10.1.2.3/8"], "action": "deny"}])"),
                "/rules/0/dst/1", "bad CIDR \"10.1.2.3/8\": host bits set beyond /8"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": "::ffff:10.0.0.0/104", "action": "deny"}])"),
                        "/rules/0/src", "IPv4-mapped IPv6 addresses never match"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": "10.0.0.0/33", "action": "deny"}])"),
                        "/rules/0/src", "prefix length must be 0..32"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": "2001:db8::/129", "action": "deny"}])"),
                        "/rules/0/src", "prefix length must be 0..128"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": "10.0.0/8", "action": "deny"}])"), "/rules/0/src",
                        "is not an IPv4 or IPv6 address"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": "10.0.0.0/x", "action": "deny"}])"),
                        "/rules/0/src", "prefix length is not a number"));
  EXPECT_TRUE(
      OnlyError(load(R"("inside_networks": ["10.0.0.1/24"])"), "/inside_networks/0", "host bits"));
  EXPECT_TRUE(OnlyError(load(R"("inside_networks": "any")"), "/inside_networks",
                        "is not an IPv4 or IPv6 address"));
}

TEST(Config, AnyStandsAlone) {
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": ["10.0.0.0/8", "any"], "action": "deny"}])"),
                        "/rules/0/src/1", "\"any\" cannot be combined with addresses"));
  const ConfigResult r = load(R"("rules": [{"src": ["any"], "dst": "any", "action": "deny"}])");
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_TRUE(r.config->rules[0].src.empty());
  EXPECT_TRUE(r.config->rules[0].dst.empty());
}

TEST(Config, EmptyListsAreRefused) {
  // [] would read as "no restriction": a generated blocklist that came out
  // empty would turn a narrow rule into one for every address or port.
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"dst": [], "action": "allow"}])"), "/rules/0/dst",
                        "empty list"));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"src": [], "action": "allow"}])"), "/rules/0/src",
                        "empty list"));
  EXPECT_TRUE(
      OnlyError(load(R"("rules": [{"protocol": "tcp", "dst_ports": [], "action": "allow"}])"),
                "/rules/0/dst_ports", "empty list"));
  EXPECT_TRUE(
      OnlyError(load(R"("rules": [{"protocol": "udp", "src_ports": [], "action": "allow"}])"),
                "/rules/0/src_ports", "empty list"));
  // No inside network at all is a meaningful choice.
  EXPECT_TRUE(load(R"("inside_networks": [])").config.has_value());
}

TEST(Config, BadPortRanges) {
  const char* rule = R"("rules": [{"protocol": "tcp", "dst_ports": %s, "action": "deny"}])";
  auto with_ports = [&](const char* ports) {
    char buf[256];
    std::snprintf(buf, sizeof buf, rule, ports);
    return load(buf);
  };
  EXPECT_TRUE(OnlyError(with_ports(R"("90-80")"), "/rules/0/dst_ports",
                        "bad port range \"90-80\": low end is above high end"));
  EXPECT_TRUE(OnlyError(with_ports(R"(["80", "80-"])"), "/rules/0/dst_ports/1",
                        "bad port range \"80-\": expected a port 0-65535 or \"low-high\""));
  EXPECT_TRUE(OnlyError(with_ports(R"("-80")"), "/rules/0/dst_ports", "bad port range \"-80\""));
  EXPECT_TRUE(OnlyError(with_ports(R"("http")"), "/rules/0/dst_ports", "bad port range \"http\""));
  EXPECT_TRUE(OnlyError(with_ports(R"("1-70000")"), "/rules/0/dst_ports", "bad port range"));
  EXPECT_TRUE(OnlyError(with_ports(R"("1-2-3")"), "/rules/0/dst_ports", "bad port range"));
  EXPECT_TRUE(OnlyError(with_ports("70000"), "/rules/0/dst_ports",
                        "must be between 0 and 65535, got 70000"));
  EXPECT_TRUE(OnlyError(with_ports("-1"), "/rules/0/dst_ports", "must be between 0 and 65535"));
  EXPECT_TRUE(OnlyError(with_ports("[true]"), "/rules/0/dst_ports/0",
                        "expected a port number or a \"low-high\" range, got a boolean"));
  EXPECT_TRUE(OnlyError(with_ports("80.5"), "/rules/0/dst_ports", "got a number"));
  const ConfigResult ok = with_ports(R"(["0-65535", 0, "443"])");
  ASSERT_TRUE(ok.config.has_value()) << all_errors(ok);
  EXPECT_EQ(ok.config->rules[0].dst_ports[2].lo, 443);
}

TEST(Config, PortsNeedTcpOrUdp) {
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"dst_ports": 22, "action": "deny"}])"),
                        "/rules/0/dst_ports", "ports need \"protocol\": \"tcp\" or \"udp\""));
  EXPECT_TRUE(
      OnlyError(load(R"("rules": [{"protocol": "icmp", "src_ports": 1, "action": "deny"}])"),
                "/rules/0/src_ports", "ports need \"protocol\""));
  EXPECT_TRUE(OnlyError(load(R"("rules": [{"protocol": "any", "dst_ports": 1, "action": "deny"}])"),
                        "/rules/0/dst_ports", "ports need \"protocol\""));
}

TEST(Config, AddressFamiliesMustMeet) {
  EXPECT_TRUE(
      OnlyError(load(R"("rules": [{"src": "10.0.0.0/8", "dst": "2001:db8::1", "action": "deny"}])"),
                "/rules/0",
                "src and dst are of different address families, so the rule matches "
                "nothing"));
  // A family in common is enough.
  EXPECT_TRUE(
      load(
          R"("rules": [{"src": ["10.0.0.0/8", "2001:db8::/32"], "dst": "2001:db8::1", "action": "deny"}])")
          .config.has_value());
}

TEST(Config, RuleExpansionIsLimited) {
  std::string many = "[";
  for (int i = 0; i < 300; ++i) {
    many += (i ? ", \"10.0." : "\"10.0.") + std::to_string(i / 256) + "." +
            std::to_string(i % 256) + "\"";
  }
  many += "]";
  const ConfigResult r =
      load(R"("rules": [{"src": )" + many + R"(, "dst": )" + many + R"(, "action": "deny"}])");
  EXPECT_TRUE(OnlyError(r, "/rules/0",
                        "rule expands to 90000 classifier entries (src x dst x src_ports x "
                        "dst_ports), more than 65536; split it"));
}

// ---------------------------------------------------------------------------
// Timeouts and limits

TEST(Config, TimeoutsOutOfRange) {
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"tcp": {"established": 0}})"),
                        "/timeouts/tcp/established",
                        "timeout must be between 0.001 and 2000000 seconds"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"tcp": {"syn_sent": -5}})"), "/timeouts/tcp/syn_sent",
                        "timeout must be between"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"udp": {"assured": 2000001}})"),
                        "/timeouts/udp/assured", "timeout must be between"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"icmp": 1e300})"), "/timeouts/icmp",
                        "timeout must be between"));
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"fragment": "30"})"), "/timeouts/fragment",
                        "expected a number of seconds, got a string"));
  // Would round to 0 ms, i.e. no timeout at all.
  EXPECT_TRUE(OnlyError(load(R"("timeouts": {"other": {"unreplied": 0.0004}})"),
                        "/timeouts/other/unreplied", "timeout must be between"));
}

TEST(Config, LimitsOutOfRange) {
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections_per_worker": 63})"),
                        "/limits/connections_per_worker",
                        "must be between 64 and 67108864, got 63"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections_per_worker": 67108865})"),
                        "/limits/connections_per_worker", "got 67108865"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections_per_worker": -1})"),
                        "/limits/connections_per_worker", "must be between 64 and 67108864"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections_per_worker": 1000.5})"),
                        "/limits/connections_per_worker", "expected a whole number, got a number"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"connections_per_worker": 18446744073709551615})"),
                        "/limits/connections_per_worker", "must be between"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"fragments_per_worker": 1048577})"),
                        "/limits/fragments_per_worker", "must be between 64 and 1048576"));
  EXPECT_TRUE(OnlyError(load(R"("limits": {"fragments_per_worker": "4096"})"),
                        "/limits/fragments_per_worker", "expected a whole number, got a string"));
}

// ---------------------------------------------------------------------------
// Error collection and files

TEST(Config, EveryErrorIsReportedNotJustTheFirst) {
  const ConfigResult r = parse_config(R"({
    "ports": [{"inside": "a"}],
    "rules": [{"dst": "10.1.2.3/8", "action": "allow"}, {"action": "maybe"}],
    "timeouts": {"icmp": 0},
    "limits": {"connections_per_worker": 1},
    "l2": {"arp": "yes"},
    "bogus": 1
  })");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors.size(), 7u) << all_errors(r);
  EXPECT_TRUE(HasError(r, "/bogus", "unknown key"));
  EXPECT_TRUE(HasError(r, "/ports/0/outside", "missing port"));
  EXPECT_TRUE(HasError(r, "/rules/0/dst", "host bits"));
  EXPECT_TRUE(HasError(r, "/rules/1/action", "unknown action"));
  EXPECT_TRUE(HasError(r, "/timeouts/icmp", "timeout must be"));
  EXPECT_TRUE(HasError(r, "/limits/connections_per_worker", "must be between"));
  EXPECT_TRUE(HasError(r, "/l2/arp", "expected true or false"));
}

class ConfigFile : public testing::Test {
 protected:
  std::string path;
  void SetUp() override {
    path = testing::TempDir() + "holdfast-config-test-" + std::to_string(getpid()) + ".json";
  }
  void TearDown() override { std::remove(path.c_str()); }
  void write(const std::string& text) {
    std::ofstream out(path);
    out << text;
  }
};

TEST_F(ConfigFile, ErrorsNameTheFileThenThePath) {
  write(with(R"("rules": [{"protocol": "tcp"}])"));
  const ConfigResult r = load_config_file(path);
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], path +
                             ": /rules/0/action: missing: every rule needs \"action\": "
                             "\"allow\" or \"deny\"");
}

TEST_F(ConfigFile, SyntaxErrorsNameTheFileAndLine) {
  write("{\n  \"ports\": [\n    {\"inside\": \"a\" \"outside\": \"b\"}\n  ]\n}\n");
  const ConfigResult r = load_config_file(path);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].rfind(path + ": line 3, column 28: not valid JSON", 0), 0u) << r.errors[0];
}

TEST_F(ConfigFile, ValidFileLoads) {
  write(with(R"("default": "allow")"));
  const ConfigResult r = load_config_file(path);
  ASSERT_TRUE(r.config.has_value()) << all_errors(r);
  EXPECT_EQ(r.config->default_action, Action::allow);
}

TEST_F(ConfigFile, MissingFile) {
  const ConfigResult r = load_config_file(path + ".absent");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], path + ".absent: cannot open configuration file");
}

}  // namespace
}  // namespace holdfast

namespace holdfast {
namespace {

TEST(ConfigCheckpoint, DefaultsToNoCheckpointing) {
  const ConfigResult r = load("");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_TRUE(r.config->checkpoint.socket.empty());
  EXPECT_EQ(r.config->checkpoint.app, "holdfast");
  EXPECT_FALSE(r.config->checkpoint.store_full_allow);
}

TEST(ConfigCheckpoint, EveryKeyIsRead) {
  const ConfigResult r = load(R"("checkpoint": {"socket": "/run/h/ck.sock", "app": "edge-2",
      "token_file": "/etc/h/token", "store_full": "allow"})");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->checkpoint.socket, "/run/h/ck.sock");
  EXPECT_EQ(r.config->checkpoint.app, "edge-2");
  EXPECT_EQ(r.config->checkpoint.token_file, "/etc/h/token");
  EXPECT_TRUE(r.config->checkpoint.store_full_allow);
}

TEST(ConfigCheckpoint, BadValuesAreReportedWithTheirPaths) {
  EXPECT_TRUE(OnlyError(load(R"("checkpoint": {"socket": ""})"), "/checkpoint/socket",
                        "socket path is empty"));
  EXPECT_TRUE(OnlyError(load(R"("checkpoint": {"app": "has space"})"), "/checkpoint/app",
                        "application id must be"));
  EXPECT_TRUE(
      OnlyError(load(R"("checkpoint": {"app": ""})"), "/checkpoint/app", "application id must be"));
  EXPECT_TRUE(OnlyError(load(R"("checkpoint": {"store_full": "maybe"})"), "/checkpoint/store_full",
                        "unknown policy \"maybe\""));
  EXPECT_TRUE(
      OnlyError(load(R"("checkpoint": {"sockets": "/x"})"), "/checkpoint/sockets", "unknown key"));
  EXPECT_TRUE(
      OnlyError(load(R"("checkpoint": {"socket": 5})"), "/checkpoint/socket", "expected a string"));
  EXPECT_TRUE(OnlyError(load(R"("checkpoint": [])"), "/checkpoint", "expected an object"));
}

Config load_ok(const std::string& more) {
  const ConfigResult r = load(more);
  EXPECT_TRUE(r.config.has_value()) << all_errors(r);
  return r.config.value_or(Config{});
}

TEST(Config, FtpSettings) {
  Config c = load_ok(R"("modules": {"ftp": {"enabled": false, "ports": [21, 2121],
                         "expectation_timeout": 30, "sessions_per_worker": 300}})");
  EXPECT_FALSE(c.pipeline.ftp.enabled);
  EXPECT_EQ(c.pipeline.ftp.ports.count, 2u);
  EXPECT_TRUE(c.pipeline.ftp.ports.contains(2121));
  EXPECT_FALSE(c.pipeline.ftp.ports.contains(22));
  EXPECT_EQ(c.pipeline.ftp.expectation_timeout_ms, 30'000u);
  EXPECT_EQ(c.pipeline.ftp.sessions, 300u);
  // Defaults: on, port 21.
  c = load_ok("");
  EXPECT_TRUE(c.pipeline.ftp.enabled);
  EXPECT_TRUE(c.pipeline.ftp.ports.contains(21));
  EXPECT_EQ(c.pipeline.ftp.ports.count, 1u);

  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"ports": []}})"), "/modules/ftp/ports",
                        "between 1 and 16 ports"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"ports": [21, 0]}})"), "/modules/ftp/ports/1",
                        "must be between 1 and 65535"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"ports": [21, 21]}})"), "/modules/ftp/ports/1",
                        "listed twice"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"ports": 21}})"), "/modules/ftp/ports",
                        "expected a list of port numbers"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"sessions_per_worker": 70000}})"),
                        "/modules/ftp/sessions_per_worker", "must be between 1 and 65535"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"expectation_timeout": 0}})"),
                        "/modules/ftp/expectation_timeout", "timeout must be between"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"ftp": {"enabled": "yes"}})"), "/modules/ftp/enabled",
                        "expected true or false"));
}

TEST(Config, SipSettings) {
  Config c = load_ok(R"("modules": {"sip": {"enabled": false, "ports": [5060, 5080],
                         "media_ranges": ["203.0.113.0/24", "2001:db8:5::/48"],
                         "call_timeout": 1800, "calls_per_session": 8,
                         "sessions_per_worker": 100, "calls_per_worker": 400}})");
  const SipSettings& s = c.pipeline.sip;
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(s.ports.count, 2u);
  EXPECT_TRUE(s.ports.contains(5080));
  EXPECT_FALSE(s.ports.contains(5061));
  EXPECT_EQ(s.range_count, 2u);
  EXPECT_TRUE(s.in_media_range(*IpAddr::parse("203.0.113.99")));
  EXPECT_TRUE(s.in_media_range(*IpAddr::parse("2001:db8:5::1")));
  EXPECT_FALSE(s.in_media_range(*IpAddr::parse("203.0.114.1")));
  EXPECT_EQ(s.call_timeout_ms, 1'800'000u);
  EXPECT_EQ(s.calls_per_session, 8u);
  EXPECT_EQ(s.sessions, 100u);
  EXPECT_EQ(s.calls, 400u);
  // Defaults: on, port 5060, no media ranges, an hour, 32 calls a session.
  c = load_ok("");
  EXPECT_TRUE(c.pipeline.sip.enabled);
  EXPECT_TRUE(c.pipeline.sip.ports.contains(5060));
  EXPECT_EQ(c.pipeline.sip.range_count, 0u);
  EXPECT_EQ(c.pipeline.sip.call_timeout_ms, 3'600'000u);
  EXPECT_EQ(c.pipeline.sip.calls_per_session, 32u);

  EXPECT_TRUE(OnlyError(load(R"("modules": {"sip": {"ports": [5060, 5060]}})"),
                        "/modules/sip/ports/1", "listed twice"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"sip": {"calls_per_session": 33}})"),
                        "/modules/sip/calls_per_session", "must be between 1 and 32"));
  EXPECT_TRUE(OnlyError(load(R"("modules": {"sip": {"media_ranges": ["10.0.0.0/33"]}})"),
                        "/modules/sip/media_ranges/0", ""));
  EXPECT_TRUE(
      OnlyError(load(R"("modules": {"sip": {"call": 1}})"), "/modules/sip/call", "unknown key"));
  // A port both modules would claim.
  EXPECT_TRUE(OnlyError(load(R"("modules": {"sip": {"ports": [21]}})"), "/modules/sip/ports",
                        "also an FTP control port"));
  // Fine when FTP is off.
  load_ok(R"("modules": {"ftp": {"enabled": false}, "sip": {"ports": [21]}})");
}

}  // namespace
}  // namespace holdfast
