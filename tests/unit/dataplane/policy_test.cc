// Policy: ordered rules compiled to rte_acl, first match wins, default
// action for the rest (dataplane/policy.h).
#include "dataplane/policy.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace holdfast {
namespace {

Cidr cidr(const char* text) {
  std::string error;
  auto c = Cidr::parse(text, &error);
  EXPECT_TRUE(c.has_value()) << text << ": " << error;
  return c.value_or(Cidr{});
}

ParsedPacket packet(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                    uint8_t proto = kProtoTcp, Side side = Side::inside) {
  ParsedPacket p;
  p.kind = FrameKind::ip;
  p.src = IpAddr::parse(src).value();
  p.dst = IpAddr::parse(dst).value();
  p.ip_version = p.src.is_v4() ? 4 : 6;
  p.proto = proto;
  p.sport = sport;
  p.dport = dport;
  p.side = side;
  return p;
}

std::unique_ptr<Policy> compile(std::vector<Rule> rules, Action default_action = Action::deny) {
  std::string error;
  auto p = Policy::compile(std::move(rules), default_action, &error);
  EXPECT_NE(p, nullptr) << error;
  return p;
}

Rule allow() {
  Rule r;
  r.action = Action::allow;
  return r;
}
Rule deny() {
  Rule r;
  r.action = Action::deny;
  return r;
}

// Index of the rule that matched (-1: default action).
int32_t matched(const Policy& policy, const ParsedPacket& p) {
  return policy.classify(p).rule;
}

TEST(Policy, EmptyRuleListTakesTheDefault) {
  auto deny_all = compile({}, Action::deny);
  ASSERT_NE(deny_all, nullptr);
  const Policy::Match m = deny_all->classify(packet("10.0.0.1", 1, "10.0.0.2", 2));
  EXPECT_EQ(m.rule, -1);
  EXPECT_EQ(m.action, Action::deny);
  auto allow_all = compile({}, Action::allow);
  ASSERT_NE(allow_all, nullptr);
  EXPECT_EQ(allow_all->classify(packet("2001:db8::1", 1, "2001:db8::2", 2)).action, Action::allow);
  EXPECT_EQ(allow_all->default_action(), Action::allow);
}

TEST(Policy, FirstMatchWins) {
  Rule ssh = deny();
  ssh.protocol = kProtoTcp;
  ssh.dst = {cidr("192.0.2.0/24")};
  ssh.dst_ports = {{22, 22}};
  Rule web = allow();
  web.protocol = kProtoTcp;
  web.dst = {cidr("192.0.2.0/24")};
  auto policy = compile({ssh, web});
  ASSERT_NE(policy, nullptr);
  const Policy::Match to_ssh = policy->classify(packet("10.0.0.1", 40000, "192.0.2.5", 22));
  EXPECT_EQ(to_ssh.rule, 0);
  EXPECT_EQ(to_ssh.action, Action::deny);
  const Policy::Match to_web = policy->classify(packet("10.0.0.1", 40000, "192.0.2.5", 80));
  EXPECT_EQ(to_web.rule, 1);
  EXPECT_EQ(to_web.action, Action::allow);
}

TEST(Policy, EarlierBroadRuleShadowsLaterNarrowOne) {
  Rule broad = allow();
  Rule narrow = deny();
  narrow.dst = {cidr("192.0.2.5/32")};
  auto policy = compile({broad, narrow});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "192.0.2.5", 2)), 0);
}

TEST(Policy, OrderHoldsAcrossManyRules) {
  // Rules 0..99 each match one destination port; 100 matches everything.
  std::vector<Rule> rules;
  for (uint16_t i = 0; i < 100; ++i) {
    Rule r = i % 2 == 0 ? allow() : deny();
    r.protocol = kProtoUdp;
    r.dst_ports = {{static_cast<uint16_t>(1000 + i), static_cast<uint16_t>(1000 + i)}};
    rules.push_back(r);
  }
  rules.push_back(allow());
  auto policy = compile(rules);
  ASSERT_NE(policy, nullptr);
  for (uint16_t i : {0, 1, 57, 98, 99}) {
    const Policy::Match m =
        policy->classify(packet("10.0.0.1", 5, "10.0.0.2", 1000 + i, kProtoUdp));
    EXPECT_EQ(m.rule, i);
    EXPECT_EQ(m.action, i % 2 == 0 ? Action::allow : Action::deny);
  }
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 5, "10.0.0.2", 1100, kProtoUdp)), 100);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 5, "10.0.0.2", 1000, kProtoTcp)), 100);
}

TEST(Policy, Side) {
  Rule in = allow();
  in.side = SideMatch::inside;
  in.dst_ports = {};
  in.protocol = kProtoUdp;
  Rule out = deny();
  out.side = SideMatch::outside;
  out.protocol = kProtoUdp;
  Rule any = allow();
  any.side = SideMatch::any;
  auto policy = compile({in, out, any});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2, kProtoUdp, Side::inside)), 0);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2, kProtoUdp, Side::outside)), 1);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2, kProtoTcp, Side::inside)), 2);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2, kProtoTcp, Side::outside)), 2);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 1, "2001:db8::2", 2, kProtoUdp, Side::outside)),
            1);
}

TEST(Policy, Protocol) {
  Rule icmp = allow();
  icmp.protocol = kProtoIcmp;
  Rule gre = allow();
  gre.protocol = 47;
  Rule icmp6 = allow();
  icmp6.protocol = kProtoIcmpV6;
  auto policy = compile({icmp, gre, icmp6});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 0x1234, "10.0.0.2", 0, kProtoIcmp)), 0);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 0, "10.0.0.2", 0, 47)), 1);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 7, "2001:db8::2", 0, kProtoIcmpV6)), 2);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 0, "10.0.0.2", 0, 46)), -1);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2, kProtoTcp)), -1);
}

TEST(Policy, Ipv4PrefixBoundaries) {
  struct Case {
    const char* prefix;
    const char* inside;
    const char* outside;
  };
  const Case cases[] = {
      {"0.0.0.0/0", "255.255.255.255", nullptr},
      {"128.0.0.0/1", "128.0.0.0", "127.255.255.255"},
      {"10.0.0.0/8", "10.255.255.255", "11.0.0.0"},
      {"172.16.0.0/12", "172.31.255.255", "172.32.0.0"},
      {"192.0.2.4/31", "192.0.2.5", "192.0.2.6"},
      {"192.0.2.4/31", "192.0.2.4", "192.0.2.3"},
      {"192.0.2.4/32", "192.0.2.4", "192.0.2.5"},
  };
  for (const Case& c : cases) {
    Rule r = allow();
    r.dst = {cidr(c.prefix)};
    auto policy = compile({r});
    ASSERT_NE(policy, nullptr);
    EXPECT_EQ(matched(*policy, packet("10.9.9.9", 1, c.inside, 2)), 0)
        << c.prefix << " " << c.inside;
    if (c.outside != nullptr) {
      EXPECT_EQ(matched(*policy, packet("10.9.9.9", 1, c.outside, 2)), -1)
          << c.prefix << " " << c.outside;
    }
    // The same prefix as a source.
    Rule s = allow();
    s.src = {cidr(c.prefix)};
    auto by_src = compile({s});
    ASSERT_NE(by_src, nullptr);
    EXPECT_EQ(matched(*by_src, packet(c.inside, 1, "10.9.9.9", 2)), 0) << c.prefix;
    if (c.outside != nullptr) {
      EXPECT_EQ(matched(*by_src, packet(c.outside, 1, "10.9.9.9", 2)), -1) << c.prefix;
    }
  }
}

TEST(Policy, Ipv6PrefixBoundaries) {
  struct Case {
    const char* prefix;
    const char* inside;
    const char* outside;
  };
  const Case cases[] = {
      {"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", nullptr},
      {"8000::/1", "8000::", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"},
      {"2001:db8:0:1::/64", "2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:2::"},
      {"2001:db8:0:1::/64", "2001:db8:0:1::", "2001:db8:0:0:ffff:ffff:ffff:ffff"},
      {"2001:db8:1:2:3:4:8000:0/97", "2001:db8:1:2:3:4:ffff:ffff", "2001:db8:1:2:3:4:7fff:ffff"},
      {"2001:db8::4/127", "2001:db8::5", "2001:db8::6"},
      {"2001:db8::4/128", "2001:db8::4", "2001:db8::5"},
      {"2001:db8::1:0:0/96", "2001:db8::1:ffff:ffff", "2001:db8::2:0:0"},
  };
  for (const Case& c : cases) {
    Rule r = allow();
    r.dst = {cidr(c.prefix)};
    Rule s = allow();
    s.src = {cidr(c.prefix)};
    auto by_dst = compile({r});
    auto by_src = compile({s});
    ASSERT_NE(by_dst, nullptr);
    ASSERT_NE(by_src, nullptr);
    EXPECT_EQ(matched(*by_dst, packet("2001:db8:9::9", 1, c.inside, 2)), 0) << c.prefix;
    EXPECT_EQ(matched(*by_src, packet(c.inside, 1, "2001:db8:9::9", 2)), 0) << c.prefix;
    if (c.outside != nullptr) {
      EXPECT_EQ(matched(*by_dst, packet("2001:db8:9::9", 1, c.outside, 2)), -1)
          << c.prefix << " " << c.outside;
      EXPECT_EQ(matched(*by_src, packet(c.outside, 1, "2001:db8:9::9", 2)), -1)
          << c.prefix << " " << c.outside;
    }
  }
}

TEST(Policy, PortRanges) {
  Rule r = allow();
  r.protocol = kProtoTcp;
  r.src_ports = {{1024, 65535}};
  r.dst_ports = {{8000, 8080}, {443, 443}};
  auto policy = compile({r});
  ASSERT_NE(policy, nullptr);
  auto m = [&](uint16_t sport, uint16_t dport) {
    return matched(*policy, packet("10.0.0.1", sport, "10.0.0.2", dport));
  };
  EXPECT_EQ(m(1024, 8000), 0);
  EXPECT_EQ(m(65535, 8080), 0);
  EXPECT_EQ(m(40000, 443), 0);
  EXPECT_EQ(m(1023, 8000), -1);
  EXPECT_EQ(m(40000, 7999), -1);
  EXPECT_EQ(m(40000, 8081), -1);
  EXPECT_EQ(m(40000, 442), -1);
  EXPECT_EQ(m(40000, 444), -1);
}

TEST(Policy, PortRangesInIpv6) {
  Rule r = allow();
  r.protocol = kProtoUdp;
  r.dst_ports = {{53, 53}};
  r.dst = {cidr("2001:db8::/32")};
  auto policy = compile({r});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 5000, "2001:db8::2", 53, kProtoUdp)), 0);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 5000, "2001:db8::2", 54, kProtoUdp)), -1);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 5000, "2001:db8::2", 52, kProtoUdp)), -1);
}

TEST(Policy, FullPortRangeAndPortZero) {
  Rule r = allow();
  r.protocol = kProtoUdp;
  r.dst_ports = {{0, 0}};
  Rule all = deny();
  all.protocol = kProtoUdp;
  all.dst_ports = {{0, 65535}};
  auto policy = compile({r, all});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 0, kProtoUdp)), 0);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 65535, kProtoUdp)), 1);
}

TEST(Policy, CidrListsAreCartesian) {
  Rule r = allow();
  r.src = {cidr("10.1.0.0/16"), cidr("10.2.0.0/16")};
  r.dst = {cidr("192.0.2.0/24"), cidr("198.51.100.0/24")};
  EXPECT_EQ(Policy::expansion(r), 4u);
  auto policy = compile({r});
  ASSERT_NE(policy, nullptr);
  for (const char* s : {"10.1.0.1", "10.2.0.1"}) {
    for (const char* d : {"192.0.2.1", "198.51.100.1"}) {
      EXPECT_EQ(matched(*policy, packet(s, 1, d, 2)), 0) << s << " -> " << d;
    }
  }
  EXPECT_EQ(matched(*policy, packet("10.3.0.1", 1, "192.0.2.1", 2)), -1);
  EXPECT_EQ(matched(*policy, packet("10.1.0.1", 1, "203.0.113.1", 2)), -1);
  // Source and destination are not interchangeable.
  EXPECT_EQ(matched(*policy, packet("192.0.2.1", 1, "10.1.0.1", 2)), -1);
}

TEST(Policy, Expansion) {
  Rule r = allow();
  EXPECT_EQ(Policy::expansion(r), 1u);
  r.src = {cidr("10.0.0.0/8"), cidr("2001:db8::/32"), cidr("192.0.2.0/24")};
  r.src_ports = {{1, 2}, {3, 4}};
  r.dst_ports = {{5, 5}, {6, 6}, {7, 7}, {8, 8}, {9, 9}};
  EXPECT_EQ(Policy::expansion(r), 3u * 2u * 5u);
}

TEST(Policy, RuleWithOnlyIpv4AddressesNeverMatchesIpv6) {
  Rule v4_src = allow();
  v4_src.src = {cidr("0.0.0.0/0")};
  Rule v4_dst = allow();
  v4_dst.dst = {cidr("0.0.0.0/0")};
  auto policy = compile({v4_src, v4_dst});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 1, "2001:db8::2", 2)), -1);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2)), 0);
}

TEST(Policy, RuleWithOnlyIpv6AddressesNeverMatchesIpv4) {
  Rule v6 = allow();
  v6.dst = {cidr("::/0")};
  auto policy = compile({v6});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.0.0.1", 1, "10.0.0.2", 2)), -1);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 1, "2001:db8::2", 2)), 0);
}

TEST(Policy, RuleWithoutAddressesMatchesBothFamilies) {
  Rule r = deny();
  r.protocol = kProtoTcp;
  auto policy = compile({r}, Action::allow);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->classify(packet("10.0.0.1", 1, "10.0.0.2", 2)).action, Action::deny);
  EXPECT_EQ(policy->classify(packet("2001:db8::1", 1, "2001:db8::2", 2)).action, Action::deny);
}

TEST(Policy, MixedFamilyListMatchesEachFamilyByItsOwnEntries) {
  Rule r = allow();
  r.src = {cidr("10.0.0.0/8"), cidr("2001:db8:a::/48")};
  auto policy = compile({r});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("10.1.1.1", 1, "192.0.2.1", 2)), 0);
  EXPECT_EQ(matched(*policy, packet("2001:db8:a::1", 1, "2001:db8::2", 2)), 0);
  EXPECT_EQ(matched(*policy, packet("2001:db8:b::1", 1, "2001:db8::2", 2)), -1);
  EXPECT_EQ(matched(*policy, packet("11.1.1.1", 1, "192.0.2.1", 2)), -1);
}

TEST(Policy, Ipv6OrderAcrossFamilies) {
  // Rule 0 is IPv4-only, so for IPv6 the first match is rule 1 even though
  // rule 2 is also an IPv6 match.
  Rule v4 = deny();
  v4.src = {cidr("10.0.0.0/8")};
  Rule v6_narrow = deny();
  v6_narrow.dst = {cidr("2001:db8::2/128")};
  Rule v6_broad = allow();
  v6_broad.dst = {cidr("2001:db8::/32")};
  auto policy = compile({v4, v6_narrow, v6_broad});
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 1, "2001:db8::2", 2)), 1);
  EXPECT_EQ(matched(*policy, packet("2001:db8::1", 1, "2001:db8::3", 2)), 2);
}

TEST(Policy, TooManyClassifierEntriesIsAnErrorBeforeAnythingIsBuilt) {
  // 4096 rules of 65536 entries each: 2^28 entries, tens of gigabytes if
  // they were built before the limit is checked.
  Rule big = allow();
  big.protocol = kProtoTcp;
  for (uint16_t i = 0; i < 256; ++i) {
    big.src_ports.push_back({i, i});
    big.dst_ports.push_back({i, i});
  }
  ASSERT_EQ(Policy::expansion(big), 65536u);
  std::vector<Rule> rules(4096, big);
  std::string error;
  EXPECT_EQ(Policy::compile(rules, Action::deny, &error), nullptr);
  EXPECT_NE(error.find("more than the limit of 1048576"), std::string::npos) << error;
}

TEST(Policy, EntriesAreCountedPerFamily) {
  // src and dst with one prefix of each family: an IPv4 and an IPv6 entry
  // per port combination, 2 x 2048, not the cartesian 4 x 2048.
  Rule r = allow();
  r.src = {cidr("10.0.0.0/8"), cidr("2001:db8::/32")};
  r.dst = {cidr("192.0.2.0/24"), cidr("2001:db8:1::/48")};
  r.protocol = kProtoTcp;
  for (uint16_t i = 0; i < 256; ++i) r.dst_ports.push_back({i, i});
  for (uint16_t i = 0; i < 8; ++i) r.src_ports.push_back({i, i});
  std::vector<Rule> rules(257, r);
  std::string error;
  EXPECT_EQ(Policy::compile(rules, Action::deny, &error), nullptr);
  EXPECT_NE(error.find("rules expand to 1052672 ACL entries"), std::string::npos) << error;
}

TEST(Policy, RulesAreKeptInOrder) {
  Rule a = allow();
  a.name = "first";
  Rule b = deny();
  b.name = "second";
  auto policy = compile({a, b});
  ASSERT_NE(policy, nullptr);
  ASSERT_EQ(policy->rules().size(), 2u);
  EXPECT_EQ(policy->rules()[0].name, "first");
  EXPECT_EQ(policy->rules()[1].name, "second");
}

TEST(Policy, SeveralPoliciesCoexist) {
  // A new rule set is a new Policy; the old one stays valid.
  Rule a = allow();
  auto first = compile({a}, Action::deny);
  auto second = compile({}, Action::deny);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const ParsedPacket p = packet("10.0.0.1", 1, "10.0.0.2", 2);
  EXPECT_EQ(first->classify(p).action, Action::allow);
  EXPECT_EQ(second->classify(p).action, Action::deny);
  second.reset();
  EXPECT_EQ(first->classify(p).action, Action::allow);
}

// Recovery skips classifying connections whose rules record holds the
// current digest (checkpoint/recovery.cc), so the digest must change with
// anything that can change a verdict, and only with that.
TEST(Policy, DigestChangesWithEveryFieldThatDecidesAVerdict) {
  Rule web = allow();
  web.name = "web";
  web.side = SideMatch::inside;
  web.protocol = kProtoTcp;
  web.src = {cidr("10.0.0.0/8")};
  web.dst = {cidr("192.0.2.0/24"), cidr("2001:db8::/32")};
  web.src_ports = {{1024, 65535}};
  web.dst_ports = {{80, 80}, {443, 443}};
  Rule ssh = deny();
  ssh.protocol = kProtoTcp;
  ssh.dst_ports = {{22, 22}};
  const uint64_t base = compile({web, ssh})->digest();
  EXPECT_NE(base, 0u);

  // The same rules compiled again, and under other names: the same digest.
  EXPECT_EQ(compile({web, ssh})->digest(), base);
  Rule renamed = web;
  renamed.name = "http and https";
  EXPECT_EQ(compile({renamed, ssh})->digest(), base);

  std::vector<std::pair<const char*, std::unique_ptr<Policy>>> changed;
  auto with = [&](const char* what, auto change) {
    Rule r = web;
    change(r);
    changed.emplace_back(what, compile({r, ssh}));
  };
  with("side", [](Rule& r) { r.side = SideMatch::any; });
  with("protocol", [](Rule& r) { r.protocol = kProtoUdp; });
  with("action", [](Rule& r) { r.action = Action::deny; });
  with("source address", [](Rule& r) { r.src = {cidr("11.0.0.0/8")}; });
  with("source prefix", [](Rule& r) { r.src = {cidr("10.0.0.0/9")}; });
  with("one source more", [](Rule& r) { r.src.push_back(cidr("172.16.0.0/12")); });
  with("destination", [](Rule& r) { r.dst.pop_back(); });
  with("a source become a destination", [](Rule& r) {
    r.dst.insert(r.dst.begin(), r.src[0]);
    r.src.clear();
  });
  with("source ports", [](Rule& r) { r.src_ports = {{1025, 65535}}; });
  with("destination port high end", [](Rule& r) { r.dst_ports[1].hi = 444; });
  with("destination ports as source ports", [](Rule& r) { std::swap(r.src_ports, r.dst_ports); });
  changed.emplace_back("order", compile({ssh, web}));
  changed.emplace_back("default action", compile({web, ssh}, Action::allow));
  changed.emplace_back("a rule less", compile({web}));
  std::set<uint64_t> seen = {base};
  for (const auto& [what, policy] : changed) {
    ASSERT_NE(policy, nullptr) << what;
    EXPECT_TRUE(seen.insert(policy->digest()).second) << what << " left the digest as it was";
  }
}

TEST(Policy, QueriesClassifyAsTheirPacketsDo) {
  // A batch of queries, both families mixed and in no order, gets what
  // each query's packet gets on its own.
  Rule ssh_in = deny();
  ssh_in.side = SideMatch::outside;
  ssh_in.protocol = kProtoTcp;
  ssh_in.dst_ports = {{22, 22}};
  Rule web = allow();
  web.protocol = kProtoTcp;
  web.dst = {cidr("192.0.2.0/24"), cidr("2001:db8:1::/48")};
  web.dst_ports = {{80, 80}, {443, 443}};
  Rule dns = allow();
  dns.protocol = kProtoUdp;
  dns.side = SideMatch::inside;
  dns.src = {cidr("10.0.0.0/8"), cidr("fd00::/8")};
  dns.dst_ports = {{53, 53}};
  Rule v6_out = allow();
  v6_out.side = SideMatch::inside;
  v6_out.src = {cidr("fd00::/8")};
  auto policy = compile({ssh_in, web, dns, v6_out});
  ASSERT_NE(policy, nullptr);

  const ParsedPacket cases[] = {
      packet("10.0.0.1", 40000, "192.0.2.5", 443),
      packet("10.0.0.1", 40000, "192.0.2.5", 22, kProtoTcp, Side::outside),
      packet("fd00::5", 40000, "2001:db8:1::9", 80),
      packet("10.0.0.1", 40000, "198.51.100.1", 53, kProtoUdp),
      packet("10.0.0.1", 40000, "198.51.100.1", 53, kProtoUdp, Side::outside),
      packet("fd00::5", 5353, "2001:db8:2::1", 53, kProtoUdp),
      packet("fd00::5", 40000, "2001:db8:2::1", 22, kProtoTcp, Side::outside),
      packet("2001:db8:2::1", 40000, "fd00::5", 8080, kProtoTcp, Side::outside),
      packet("192.0.2.7", 80, "10.0.0.1", 40000, kProtoTcp, Side::outside),
      packet("fd00::5", 0, "2001:db8:2::1", 0, kProtoIcmpV6),
  };
  std::vector<Policy::Query> queries;
  std::vector<int32_t> want;
  for (uint32_t i = 0; i < Policy::kMaxBulk; ++i) {
    const ParsedPacket& p = cases[(i * 7) % std::size(cases)];
    queries.push_back({p.src, p.dst, p.sport, p.dport, p.proto, p.ip_version, p.side});
    want.push_back(matched(*policy, p));
  }
  std::vector<Policy::Match> got(queries.size());
  policy->classify_bulk(queries.data(), static_cast<uint32_t>(queries.size()), got.data());
  std::set<int32_t> seen;
  for (size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(got[i].rule, want[i]) << i;
    EXPECT_EQ(got[i].action, want[i] < 0 ? Action::deny : policy->rules()[want[i]].action) << i;
    seen.insert(want[i]);
  }
  EXPECT_EQ(seen, (std::set<int32_t>{-1, 0, 1, 2, 3}));  // every rule and the default
}

}  // namespace
}  // namespace holdfast
