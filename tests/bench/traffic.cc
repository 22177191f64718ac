#include "tests/bench/traffic.h"

#include <rte_malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_set>

#include "dataplane/byteorder.h"

namespace holdfast::bench {
namespace {

constexpr uint32_t kEthLen = 14;
constexpr uint32_t kIpv4Len = 20;
constexpr uint32_t kTcpLen = 20;
constexpr uint32_t kSynOptionsLen = 12;
constexpr uint32_t kMinFrame = 60;  // Ethernet minimum without the FCS

// Windows as a Linux host advertises them: unscaled in the SYN and SYN/ACK,
// scaled by 2^7 afterwards.
constexpr uint16_t kSynWindow = 64240;
constexpr uint16_t kSynAckWindow = 65160;
constexpr uint16_t kClientWindow = 502;
constexpr uint16_t kServerWindow = 509;
constexpr uint8_t kWindowScale = 7;

// RFC 1071 one's complement sum of 16-bit big-endian words, not folded.
uint32_t sum_words(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += load_be16(p + i);
  if (len & 1) sum += uint32_t{p[len - 1]} << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

Cidr cidr(const char* text) {
  std::string error;
  std::optional<Cidr> c = Cidr::parse(text, &error);
  if (!c) {
    std::fprintf(stderr, "holdfast-bench: bad CIDR in the benchmark rules: %s\n", error.c_str());
    std::abort();
  }
  return *c;
}

Rule rule(const char* name, SideMatch side, int protocol, std::vector<Cidr> src,
          std::vector<Cidr> dst, std::vector<PortRange> dst_ports, Action action) {
  Rule r;
  r.name = name;
  r.side = side;
  r.protocol = protocol;
  r.src = std::move(src);
  r.dst = std::move(dst);
  r.dst_ports = std::move(dst_ports);
  r.action = action;
  return r;
}

PortRange port(uint16_t p) {
  return {p, p};
}

}  // namespace

std::vector<Tuple> make_tuples(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Tuple> tuples;
  tuples.reserve(count);
  // A client endpoint (address, port) is used once, so the tuples are distinct.
  std::unordered_set<uint64_t> clients;
  clients.reserve(count);
  while (tuples.size() < count) {
    Tuple t;
    t.client_addr = 0x0a000000u | static_cast<uint32_t>(rng() & 0x00ffffffu);  // 10.0.0.0/8
    t.client_port = static_cast<uint16_t>(1024 + rng() % (65536 - 1024));
    if (!clients.insert(uint64_t{t.client_addr} << 16 | t.client_port).second) continue;
    t.server_addr = 0xc6120000u | static_cast<uint32_t>(rng() & 0x0001ffffu);  // 198.18.0.0/15
    const uint64_t mix = rng() % 100;
    t.server_port = mix < 80 ? 443 : mix < 95 ? 80 : 8080;
    t.client_isn = static_cast<uint32_t>(rng());
    t.server_isn = static_cast<uint32_t>(rng());
    tuples.push_back(t);
  }
  return tuples;
}

std::vector<Rule> benchmark_rules() {
  constexpr int kTcp = kProtoTcp;
  constexpr int kUdp = kProtoUdp;
  const SideMatch in = SideMatch::inside;
  const SideMatch out = SideMatch::outside;
  const Action allow = Action::allow;
  const Action deny = Action::deny;
  return {
      rule("deny-bogon-src", out, -1,
           {cidr("0.0.0.0/8"), cidr("127.0.0.0/8"), cidr("169.254.0.0/16"), cidr("224.0.0.0/4"),
            cidr("240.0.0.0/4")},
           {}, {}, deny),
      rule("deny-spoofed-inside", out, -1, {cidr("10.0.0.0/8")}, {}, {}, deny),
      rule("dns-out", in, kUdp, {}, {}, {port(53)}, allow),
      rule("ntp-out", in, kUdp, {}, {}, {port(123)}, allow),
      rule("deny-smb-out", in, kTcp, {}, {}, {{135, 139}, port(445)}, deny),
      rule("web-out", in, kTcp, {cidr("10.0.0.0/8")}, {}, {port(80), port(443), port(8080)}, allow),
      rule("ssh-in", out, kTcp, {cidr("192.0.2.0/24"), cidr("203.0.113.0/24")},
           {cidr("10.1.0.0/16")}, {port(22)}, allow),
      rule("mail-in", out, kTcp, {}, {cidr("10.2.0.10/32")}, {port(25), port(587), port(993)},
           allow),
      rule("ipsec-in", out, kUdp, {}, {cidr("10.2.0.20/32")}, {port(500), port(4500)}, allow),
      rule("web-in", out, kTcp, {}, {cidr("10.2.0.0/24")}, {port(80), port(443)}, allow),
      rule("web-out-v6", in, kTcp, {cidr("2001:db8:1::/48")}, {}, {port(80), port(443)}, allow),
      rule("icmp-out", in, kProtoIcmp, {}, {}, {}, allow),
      rule("icmpv6", SideMatch::any, kProtoIcmpV6, {}, {}, {}, allow),
      rule("deny-telnet", SideMatch::any, kTcp, {}, {}, {port(23)}, deny),
  };
}

std::unique_ptr<Policy> compile_benchmark_policy() {
  std::string error;
  std::unique_ptr<Policy> policy = Policy::compile(benchmark_rules(), Action::deny, &error);
  if (!policy) {
    std::fprintf(stderr, "holdfast-bench: cannot compile the benchmark rules: %s\n", error.c_str());
    std::abort();
  }
  return policy;
}

namespace {

// One Ethernet/IPv4/TCP frame of connection t, from the client or the
// server, with valid checksums, padded to the Ethernet minimum.
struct TcpFields {
  bool from_client;
  uint32_t seq;
  uint32_t ack;
  uint8_t flags;
  uint16_t window;
  bool syn_options;  // MSS, window scale, SACK-permitted
  uint32_t payload;  // bytes of data after the header
};

uint32_t write_frame(const Tuple& t, const TcpFields& f, uint8_t* out) {
  const uint32_t tcp_len = kTcpLen + (f.syn_options ? kSynOptionsLen : 0);
  const uint32_t ip_total = kIpv4Len + tcp_len + f.payload;
  const uint32_t frame_len = kEthLen + ip_total < kMinFrame ? kMinFrame : kEthLen + ip_total;
  std::memset(out, 0, frame_len);

  // Ethernet: locally administered MACs, one per side.
  static constexpr uint8_t kClientMac[6] = {0x02, 0, 0, 0, 0, 0x01};
  static constexpr uint8_t kServerMac[6] = {0x02, 0, 0, 0, 0, 0x02};
  std::memcpy(out, f.from_client ? kServerMac : kClientMac, 6);
  std::memcpy(out + 6, f.from_client ? kClientMac : kServerMac, 6);
  store_be16(out + 12, 0x0800);

  const uint32_t src = f.from_client ? t.client_addr : t.server_addr;
  const uint32_t dst = f.from_client ? t.server_addr : t.client_addr;
  uint8_t* ip = out + kEthLen;
  ip[0] = 0x45;
  store_be16(ip + 2, static_cast<uint16_t>(ip_total));
  store_be16(ip + 4, static_cast<uint16_t>(t.client_port ^ t.server_isn));  // identification
  store_be16(ip + 6, 0x4000);                                               // DF
  ip[8] = 64;
  ip[9] = kProtoTcp;
  store_be32(ip + 12, src);
  store_be32(ip + 16, dst);
  store_be16(ip + 10, fold(sum_words(ip, kIpv4Len, 0)));

  uint8_t* tcp = ip + kIpv4Len;
  store_be16(tcp, f.from_client ? t.client_port : t.server_port);
  store_be16(tcp + 2, f.from_client ? t.server_port : t.client_port);
  store_be32(tcp + 4, f.seq);
  store_be32(tcp + 8, f.ack);
  tcp[12] = static_cast<uint8_t>((tcp_len / 4) << 4);
  tcp[13] = f.flags;
  store_be16(tcp + 14, f.window);
  if (f.syn_options) {
    uint8_t* o = tcp + kTcpLen;
    o[0] = 2;  // MSS 1460
    o[1] = 4;
    store_be16(o + 2, 1460);
    o[4] = 1;  // NOP
    o[5] = 3;  // window scale
    o[6] = 3;
    o[7] = kWindowScale;
    o[8] = 4;  // SACK permitted
    o[9] = 2;
    o[10] = 1;  // NOP, NOP
    o[11] = 1;
  }
  // Data: a recognisable byte pattern.
  std::memset(tcp + tcp_len, 'd', f.payload);
  // Pseudo-header (RFC 9293 3.1): addresses, protocol, TCP length.
  const uint32_t segment_len = tcp_len + f.payload;
  uint32_t sum = sum_words(ip + 12, 8, 0);
  sum += kProtoTcp + segment_len;
  store_be16(tcp + 16, fold(sum_words(tcp, segment_len, sum)));
  return frame_len;
}

}  // namespace

uint32_t build_frame(const Tuple& t, Segment s, uint8_t* out) {
  TcpFields f{};
  f.from_client = side_of(s) == Side::inside;
  f.flags = tcpflag::kAck;
  switch (s) {
    case Segment::syn:
      f.seq = t.client_isn;
      f.flags = tcpflag::kSyn;
      f.window = kSynWindow;
      f.syn_options = true;
      break;
    case Segment::syn_ack:
      f.seq = t.server_isn;
      f.ack = t.client_isn + 1;
      f.flags = tcpflag::kSyn | tcpflag::kAck;
      f.window = kSynAckWindow;
      f.syn_options = true;
      break;
    case Segment::client_ack:
      f.seq = t.client_isn + 1;
      f.ack = t.server_isn + 1;
      f.window = kClientWindow;
      break;
    case Segment::server_ack:
      f.seq = t.server_isn + 1;
      f.ack = t.client_isn + 1;
      f.window = kServerWindow;
      break;
  }
  return write_frame(t, f, out);
}

uint32_t build_data_frame(const Tuple& t, bool from_client, uint32_t seq, uint32_t ack,
                          uint32_t payload, uint8_t* out) {
  TcpFields f{};
  f.from_client = from_client;
  f.seq = seq;
  f.ack = ack;
  f.flags = tcpflag::kAck | tcpflag::kPsh;
  f.window = from_client ? kClientWindow : kServerWindow;
  f.payload = payload < kMaxPayload ? payload : kMaxPayload;
  return write_frame(t, f, out);
}

std::unique_ptr<FrameStore> FrameStore::create(size_t count, size_t stride, std::string* error) {
  std::unique_ptr<FrameStore> store(new FrameStore());
  store->base_ = static_cast<uint8_t*>(rte_zmalloc("hf_bench_frames", count * stride, 64));
  if (store->base_ == nullptr) {
    *error = "cannot allocate " + std::to_string((count * stride) >> 20) + " MiB of frames";
    return nullptr;
  }
  store->count_ = count;
  store->stride_ = stride;
  store->len_.assign(count, 0);
  store->side_.assign(count, Side::inside);
  return store;
}

FrameStore::~FrameStore() {
  rte_free(base_);
}

}  // namespace holdfast::bench
