// IP addresses (IPv4 held IPv4-mapped, RFC 4291 2.5.5.2) and CIDR prefixes.
#include "dataplane/ip_address.h"

#include <gtest/gtest.h>

#include <string>

namespace holdfast {
namespace {

IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

Cidr cidr(const char* text) {
  std::string error;
  auto c = Cidr::parse(text, &error);
  EXPECT_TRUE(c.has_value()) << text << ": " << error;
  return c.value_or(Cidr{});
}

std::string cidr_error(const char* text) {
  std::string error;
  auto c = Cidr::parse(text, &error);
  EXPECT_FALSE(c.has_value()) << text << " parsed as " << (c ? c->to_string() : "");
  return error;
}

TEST(IpAddr, Ipv4IsHeldMapped) {
  const IpAddr a = ip("192.0.2.1");
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.v4_host(), 0xc0000201u);
  const std::array<uint8_t, 16> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  EXPECT_EQ(a.bytes, mapped);
  EXPECT_EQ(a, IpAddr::from_v4_host(0xc0000201u));
  const uint8_t wire[4] = {192, 0, 2, 1};
  EXPECT_EQ(a, IpAddr::from_v4_wire(wire));
}

TEST(IpAddr, Ipv6) {
  const IpAddr a = ip("2001:db8::1");
  EXPECT_FALSE(a.is_v4());
  EXPECT_EQ(a.bytes[0], 0x20);
  EXPECT_EQ(a.bytes[1], 0x01);
  EXPECT_EQ(a.bytes[15], 0x01);
  EXPECT_FALSE(ip("::").is_v4());
  EXPECT_FALSE(ip("::1").is_v4());
  EXPECT_FALSE(ip("::ffff:0:1.2.3.4").is_v4());  // SIIT, not mapped
}

TEST(IpAddr, ToStringRoundTrips) {
  for (const char* text : {"10.0.0.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "fe80::1",
                           "2001:db8:1:2:3:4:5:6"}) {
    EXPECT_EQ(ip(text).to_string(), text);
  }
  // Written as a mapped IPv6 address it is the IPv4 address.
  EXPECT_EQ(ip("::ffff:10.1.2.3").to_string(), "10.1.2.3");
}

TEST(IpAddr, RejectsNonAddresses) {
  for (const char* text : {"", "10.0.0", "10.0.0.256", "10.0.0.1/8", " 10.0.0.1", "2001:db8:::1",
                           "host.example", "1.2.3.4.5"}) {
    EXPECT_FALSE(IpAddr::parse(text).has_value()) << text;
  }
}

TEST(IpAddr, OrdersByBytes) {
  EXPECT_LT(ip("10.0.0.1"), ip("10.0.0.2"));
  EXPECT_LT(ip("9.255.255.255"), ip("10.0.0.0"));
  EXPECT_LT(ip("10.0.0.1"), ip("2001:db8::1"));  // ::ffff:a.b.c.d sorts before 2001::
  EXPECT_EQ(ip("2001:db8::1") <=> ip("2001:db8::1"), std::strong_ordering::equal);
}

TEST(Cidr, ParsesBothFamilies) {
  const Cidr v4 = cidr("10.0.0.0/8");
  EXPECT_TRUE(v4.v4);
  EXPECT_EQ(v4.prefix, 8);
  EXPECT_EQ(v4.to_string(), "10.0.0.0/8");
  const Cidr v6 = cidr("2001:db8::/32");
  EXPECT_FALSE(v6.v4);
  EXPECT_EQ(v6.prefix, 32);
  EXPECT_EQ(v6.to_string(), "2001:db8::/32");
}

TEST(Cidr, BareAddressIsAHostPrefix) {
  EXPECT_EQ(cidr("192.0.2.7").prefix, 32);
  EXPECT_EQ(cidr("2001:db8::7").prefix, 128);
}

TEST(Cidr, ZeroLengthPrefixes) {
  EXPECT_EQ(cidr("0.0.0.0/0").prefix, 0);
  EXPECT_EQ(cidr("::/0").prefix, 0);
}

TEST(Cidr, HostBitsMustBeZero) {
  EXPECT_NE(cidr_error("10.1.2.3/8").find("host bits set beyond /8"), std::string::npos);
  EXPECT_NE(cidr_error("10.0.0.1/31").find("host bits"), std::string::npos);
  EXPECT_NE(cidr_error("2001:db8::1/64").find("host bits set beyond /64"), std::string::npos);
  EXPECT_NE(cidr_error("2001:db8::1/127").find("host bits"), std::string::npos);
  EXPECT_NE(cidr_error("0.0.0.1/0").find("host bits"), std::string::npos);
  cidr("10.0.0.0/31");
  cidr("2001:db8::/127");
}

TEST(Cidr, PrefixTooLong) {
  EXPECT_NE(cidr_error("10.0.0.0/33").find("prefix length must be 0..32"), std::string::npos);
  EXPECT_NE(cidr_error("2001:db8::/129").find("prefix length must be 0..128"), std::string::npos);
}

TEST(Cidr, PrefixNotANumber) {
  for (const char* text :
       {"10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8x", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8"}) {
    const std::string e = cidr_error(text);
    EXPECT_NE(e.find(text), std::string::npos) << e;
  }
}

TEST(Cidr, AddressNotAnAddress) {
  EXPECT_NE(cidr_error("10.0.0/8").find("is not an IPv4 or IPv6 address"), std::string::npos);
  EXPECT_NE(cidr_error("any").find("\"any\" is not an IPv4 or IPv6 address"), std::string::npos);
  EXPECT_FALSE(cidr_error("").empty());
}

TEST(Cidr, V4MappedIsRefused) {
  // The dataplane drops IPv6 packets with mapped addresses, so such a rule
  // could never match.
  EXPECT_NE(cidr_error("::ffff:10.0.0.0/104").find("IPv4-mapped"), std::string::npos);
  EXPECT_NE(cidr_error("::ffff:10.0.0.1").find("IPv4-mapped"), std::string::npos);
}

TEST(Cidr, ContainsIpv4Boundaries) {
  const Cidr all = cidr("0.0.0.0/0");
  EXPECT_TRUE(all.contains(ip("0.0.0.0")));
  EXPECT_TRUE(all.contains(ip("255.255.255.255")));
  const Cidr half = cidr("128.0.0.0/1");
  EXPECT_TRUE(half.contains(ip("128.0.0.0")));
  EXPECT_TRUE(half.contains(ip("255.255.255.255")));
  EXPECT_FALSE(half.contains(ip("127.255.255.255")));
  const Cidr pair = cidr("192.0.2.6/31");
  EXPECT_FALSE(pair.contains(ip("192.0.2.5")));
  EXPECT_TRUE(pair.contains(ip("192.0.2.6")));
  EXPECT_TRUE(pair.contains(ip("192.0.2.7")));
  EXPECT_FALSE(pair.contains(ip("192.0.2.8")));
  const Cidr host = cidr("192.0.2.7/32");
  EXPECT_TRUE(host.contains(ip("192.0.2.7")));
  EXPECT_FALSE(host.contains(ip("192.0.2.6")));
  const Cidr odd = cidr("172.16.0.0/12");
  EXPECT_TRUE(odd.contains(ip("172.31.255.255")));
  EXPECT_FALSE(odd.contains(ip("172.32.0.0")));
  EXPECT_FALSE(odd.contains(ip("172.15.255.255")));
}

TEST(Cidr, ContainsIpv6Boundaries) {
  EXPECT_TRUE(cidr("::/0").contains(ip("ffff::1")));
  const Cidr half = cidr("8000::/1");
  EXPECT_TRUE(half.contains(ip("8000::")));
  EXPECT_FALSE(half.contains(ip("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  const Cidr subnet = cidr("2001:db8:0:1::/64");
  EXPECT_TRUE(subnet.contains(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(subnet.contains(ip("2001:db8:0:2::")));
  const Cidr p2p = cidr("2001:db8::/127");
  EXPECT_TRUE(p2p.contains(ip("2001:db8::1")));
  EXPECT_FALSE(p2p.contains(ip("2001:db8::2")));
  const Cidr host = cidr("2001:db8::5/128");
  EXPECT_TRUE(host.contains(ip("2001:db8::5")));
  EXPECT_FALSE(host.contains(ip("2001:db8::4")));
}

TEST(Cidr, FamiliesNeverMix) {
  // ::/0 must not swallow IPv4 (held as ::ffff:a.b.c.d) nor 0.0.0.0/0 IPv6.
  EXPECT_FALSE(cidr("::/0").contains(ip("10.0.0.1")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(ip("::")));
}

}  // namespace
}  // namespace holdfast
