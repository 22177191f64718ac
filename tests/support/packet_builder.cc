#include "tests/support/packet_builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace holdfast::test {
namespace {

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}
void append16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void append32(Bytes& b, uint32_t v) {
  append16(b, static_cast<uint16_t>(v >> 16));
  append16(b, static_cast<uint16_t>(v));
}
void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}

Bytes padded_to_words(Bytes options) {
  while (options.size() % 4 != 0) options.push_back(0);
  return options;
}

uint32_t partial_sum(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t{data[i]} << 8 | data[i + 1];
  if (len % 2 != 0) sum += uint32_t{data[len - 1]} << 8;
  return sum;
}

// Fills in the checksum of `upper` given the sum of its pseudo-header.
Bytes finish(const Upper& upper, uint32_t pseudo_sum) {
  Bytes b = upper.bytes;
  if (upper.checksum_offset < 0) return b;
  const auto at = static_cast<size_t>(upper.checksum_offset);
  put16(b, at, 0);
  uint16_t c = 0;
  if (!upper.keep_zero) {
    c = inet_checksum(b.data(), b.size(), upper.pseudo_header ? pseudo_sum : 0);
    if (c == 0 && upper.zero_means_none) c = 0xffff;
  }
  // XOR with 0x0101 never yields the other representation of the same value
  // (0x0000 and 0xffff are the only pair), so the result is always wrong.
  if (upper.corrupt) c ^= 0x0101;
  put16(b, at, c);
  return b;
}

Bytes source_route(uint8_t type, const std::vector<std::string>& route) {
  Bytes o = {type, static_cast<uint8_t>(3 + 4 * route.size()), 4};
  for (const std::string& hop : route) {
    const auto a = v4(hop);
    o.insert(o.end(), a.begin(), a.end());
  }
  return o;
}

ext::Header options_header(uint8_t type, uint8_t len_units) {
  Bytes b((len_units + 1u) * 8, 0);
  b[1] = len_units;
  // One PadN option covering the six bytes after the header fields (RFC 8200 4.2).
  b[2] = 1;
  b[3] = static_cast<uint8_t>(b.size() - 4);
  return {type, b};
}

}  // namespace

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) append(out, p);
  return out;
}

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t initial) {
  uint32_t sum = partial_sum(data, len, initial);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::array<uint8_t, 4> v4(const std::string& text) {
  std::array<uint8_t, 4> a{};
  if (inet_pton(AF_INET, text.c_str(), a.data()) != 1) {
    std::fprintf(stderr, "packet_builder: bad IPv4 address %s\n", text.c_str());
    std::abort();
  }
  return a;
}

std::array<uint8_t, 16> v6(const std::string& text) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET6, text.c_str(), a.data()) != 1) {
    std::fprintf(stderr, "packet_builder: bad IPv6 address %s\n", text.c_str());
    std::abort();
  }
  return a;
}

namespace tcpopt {
Bytes eol() {
  return {0};
}
Bytes nop() {
  return {1};
}
Bytes mss(uint16_t mss) {
  Bytes o = {2, 4};
  append16(o, mss);
  return o;
}
Bytes wscale(uint8_t shift) {
  return {3, 3, shift};
}
Bytes sack_permitted() {
  return {4, 2};
}
Bytes sack(const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
  Bytes o = {5, static_cast<uint8_t>(2 + 8 * blocks.size())};
  for (const auto& [left, right] : blocks) {
    append32(o, left);
    append32(o, right);
  }
  return o;
}
Bytes timestamp(uint32_t val, uint32_t ecr) {
  Bytes o = {8, 10};
  append32(o, val);
  append32(o, ecr);
  return o;
}
}  // namespace tcpopt

Upper tcp(const TcpSpec& spec) {
  const Bytes options = padded_to_words(spec.options);
  Bytes b;
  append16(b, spec.sport);
  append16(b, spec.dport);
  append32(b, spec.seq);
  append32(b, spec.ack);
  const uint8_t words =
      spec.data_offset_words.value_or(static_cast<uint8_t>(5 + options.size() / 4));
  b.push_back(static_cast<uint8_t>(words << 4));
  b.push_back(spec.flags);
  append16(b, spec.window);
  append16(b, 0);  // checksum
  append16(b, 0);  // urgent pointer
  append(b, options);
  append(b, spec.payload);
  Upper u;
  u.proto = 6;
  u.bytes = std::move(b);
  u.checksum_offset = 16;
  u.corrupt = spec.bad_checksum;
  return u;
}

Upper udp(const UdpSpec& spec) {
  Bytes b;
  append16(b, spec.sport);
  append16(b, spec.dport);
  append16(b, spec.length.value_or(static_cast<uint16_t>(8 + spec.payload.size())));
  append16(b, 0);
  append(b, spec.payload);
  Upper u;
  u.proto = 17;
  u.bytes = std::move(b);
  u.checksum_offset = 6;
  u.zero_means_none = true;
  u.keep_zero = spec.zero_checksum;
  u.corrupt = spec.bad_checksum;
  return u;
}

namespace {
Upper icmp_common(uint8_t proto, const IcmpSpec& spec) {
  Bytes b = {spec.type, spec.code, 0, 0};
  append32(b, spec.rest);
  append(b, spec.payload);
  Upper u;
  u.proto = proto;
  u.bytes = std::move(b);
  u.checksum_offset = 2;
  u.corrupt = spec.bad_checksum;
  return u;
}
}  // namespace

Upper icmp4(const IcmpSpec& spec) {
  Upper u = icmp_common(1, spec);
  u.pseudo_header = false;  // RFC 792: the ICMP message only
  return u;
}

Upper icmp6(const IcmpSpec& spec) {
  return icmp_common(58, spec);  // RFC 4443 2.3: with the IPv6 pseudo-header
}

Upper raw(uint8_t proto, Bytes bytes) {
  Upper u;
  u.proto = proto;
  u.bytes = std::move(bytes);
  return u;
}

namespace ipv4opt {
Bytes eol() {
  return {0};
}
Bytes nop() {
  return {1};
}
Bytes lsrr(const std::vector<std::string>& route) {
  return source_route(131, route);
}
Bytes ssrr(const std::vector<std::string>& route) {
  return source_route(137, route);
}
Bytes record_route(uint8_t slots) {
  Bytes o = {7, static_cast<uint8_t>(3 + 4 * slots), 4};
  o.resize(o.size() + 4u * slots, 0);
  return o;
}
Bytes router_alert() {
  return {148, 4, 0, 0};  // RFC 2113
}
}  // namespace ipv4opt

Bytes finish_v4(const Upper& upper, const std::string& src, const std::string& dst) {
  Bytes pseudo;
  const auto s = v4(src);
  const auto d = v4(dst);
  pseudo.insert(pseudo.end(), s.begin(), s.end());
  pseudo.insert(pseudo.end(), d.begin(), d.end());
  pseudo.push_back(0);
  pseudo.push_back(upper.proto);
  append16(pseudo, static_cast<uint16_t>(upper.bytes.size()));
  return finish(upper, partial_sum(pseudo.data(), pseudo.size(), 0));
}

Bytes ipv4_raw(const Ipv4Spec& spec, uint8_t proto, const Bytes& payload) {
  const Bytes options = padded_to_words(spec.options);
  const size_t header = 20 + options.size();
  Bytes b;
  const uint8_t ihl = spec.ihl_words.value_or(static_cast<uint8_t>(header / 4));
  b.push_back(static_cast<uint8_t>(spec.version.value_or(4) << 4 | (ihl & 0x0f)));
  b.push_back(spec.tos);
  append16(b, spec.total_length.value_or(static_cast<uint16_t>(header + payload.size())));
  append16(b, spec.id);
  uint16_t frag = static_cast<uint16_t>(spec.frag_offset / 8);
  if (spec.more_fragments) frag |= 0x2000;
  if (spec.dont_fragment) frag |= 0x4000;
  append16(b, frag);
  b.push_back(spec.ttl);
  b.push_back(spec.proto.value_or(proto));
  append16(b, 0);
  const auto s = v4(spec.src);
  const auto d = v4(spec.dst);
  b.insert(b.end(), s.begin(), s.end());
  b.insert(b.end(), d.begin(), d.end());
  append(b, options);
  uint16_t c = inet_checksum(b.data(), b.size());
  if (spec.bad_checksum) c ^= 0x0101;
  put16(b, 10, c);
  append(b, payload);
  return b;
}

Bytes ipv4(const Ipv4Spec& spec, const Upper& upper) {
  return ipv4_raw(spec, upper.proto, finish_v4(upper, spec.src, spec.dst));
}

namespace ext {
Header hop_by_hop(uint8_t len_units) {
  return options_header(kHopByHop, len_units);
}
Header dest_opts(uint8_t len_units) {
  return options_header(kDestOpts, len_units);
}
Header routing(uint8_t routing_type, uint8_t segments_left, uint8_t addresses) {
  Bytes b(8 + 16u * addresses, 0);
  b[1] = static_cast<uint8_t>(2 * addresses);
  b[2] = routing_type;
  b[3] = segments_left;
  return {kRouting, b};
}
Header routing(uint8_t routing_type, uint8_t segments_left,
               const std::vector<std::string>& addresses) {
  Header h = routing(routing_type, segments_left, static_cast<uint8_t>(addresses.size()));
  if (routing_type == 4) h.bytes[4] = static_cast<uint8_t>(addresses.size() - 1);  // last entry
  for (size_t i = 0; i < addresses.size(); ++i) {
    const auto a = v6(addresses[i]);
    std::copy(a.begin(), a.end(), h.bytes.begin() + 8 + 16 * static_cast<std::ptrdiff_t>(i));
  }
  return h;
}
Header fragment(uint16_t offset, bool more, uint32_t id) {
  Bytes b(8, 0);
  put16(b, 2, static_cast<uint16_t>((offset & 0xfff8) | (more ? 1 : 0)));
  put32(b, 4, id);
  return {kFragment, b};
}
Header auth(uint8_t payload_len_field) {
  Bytes b((payload_len_field + 2u) * 4, 0);
  b[1] = payload_len_field;
  return {kAuth, b};
}
}  // namespace ext

Bytes finish_v6(const Upper& upper, const std::string& src, const std::string& dst) {
  Bytes pseudo;
  const auto s = v6(src);
  const auto d = v6(dst);
  pseudo.insert(pseudo.end(), s.begin(), s.end());
  pseudo.insert(pseudo.end(), d.begin(), d.end());
  append32(pseudo, static_cast<uint32_t>(upper.bytes.size()));
  pseudo.insert(pseudo.end(), {0, 0, 0, upper.proto});
  return finish(upper, partial_sum(pseudo.data(), pseudo.size(), 0));
}

Bytes ipv6_raw(const Ipv6Spec& spec, uint8_t proto, const Bytes& payload) {
  Bytes chain;
  for (size_t i = 0; i < spec.extensions.size(); ++i) {
    Bytes h = spec.extensions[i].bytes;
    h[0] = i + 1 < spec.extensions.size() ? spec.extensions[i + 1].type : proto;
    append(chain, h);
  }
  append(chain, payload);
  Bytes b;
  b.push_back(static_cast<uint8_t>(spec.version.value_or(6) << 4));
  b.insert(b.end(), {0, 0, 0});
  append16(b, spec.payload_length.value_or(static_cast<uint16_t>(chain.size())));
  b.push_back(spec.extensions.empty() ? proto : spec.extensions[0].type);
  b.push_back(spec.hop_limit);
  const auto s = v6(spec.src);
  const auto d = v6(spec.dst);
  b.insert(b.end(), s.begin(), s.end());
  b.insert(b.end(), d.begin(), d.end());
  append(b, chain);
  return b;
}

Bytes ipv6(const Ipv6Spec& spec, const Upper& upper) {
  return ipv6_raw(spec, upper.proto, finish_v6(upper, spec.src, spec.dst));
}

Bytes ether(uint16_t ether_type, const Bytes& payload, const std::vector<VlanTag>& tags) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  for (const VlanTag& t : tags) {
    append16(b, t.tpid);
    append16(b, t.tci);
  }
  append16(b, ether_type);
  append(b, payload);
  return b;
}

Bytes eth_v4(const Ipv4Spec& spec, const Upper& upper) {
  return ether(kEtherIpv4, ipv4(spec, upper));
}

Bytes eth_v6(const Ipv6Spec& spec, const Upper& upper) {
  return ether(kEtherIpv6, ipv6(spec, upper));
}

Bytes arp_request(const std::string& sender, const std::string& target) {
  Bytes b = {0, 1, 0x08, 0x00, 6, 4, 0, 1};     // Ethernet, IPv4, request
  b.insert(b.end(), {0x02, 0, 0, 0, 0, 0x01});  // sender MAC
  const auto s = v4(sender);
  b.insert(b.end(), s.begin(), s.end());
  b.insert(b.end(), {0, 0, 0, 0, 0, 0});  // target MAC unknown
  const auto t = v4(target);
  b.insert(b.end(), t.begin(), t.end());
  return ether(kEtherArp, b);
}

Bytes pad(Bytes frame, size_t size) {
  if (frame.size() < size) frame.resize(size, 0);
  return frame;
}

}  // namespace holdfast::test
