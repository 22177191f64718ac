// Pipeline tests: frames from tests/support/packet_builder, parsed by the
// parser, decided by one worker's pipeline at controlled times.
#include "dataplane/pipeline.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "dataplane/parser.h"
#include "modules/tcp/tcp.h"
#include "tests/support/packet_builder.h"

namespace holdfast {
namespace {

using namespace holdfast::test;

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kFin = tcpflag::kFin;
constexpr uint8_t kPsh = tcpflag::kPsh;

constexpr const char* kClient = "10.0.0.1";
constexpr const char* kServer = "192.0.2.10";
constexpr const char* kRouter = "198.51.100.1";
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kServerIsn = 5000;

// A realistic wall clock in milliseconds; the pipeline keeps it mod 2^32.
constexpr uint64_t kT0 = 1'700'000'000'000;

struct Frame {
  Bytes bytes;
  Side side;
  uint8_t zone = 0;
};

Frame tcp_frame(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0,
                uint16_t client_port = 40000, uint8_t zone = 0) {
  TcpSpec t;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  t.window = 64240;
  t.payload = Bytes(len, 0x42);
  Ipv4Spec ip;
  if (from_client) {
    t.sport = client_port;
    t.dport = 80;
    ip.src = kClient;
    ip.dst = kServer;
  } else {
    t.sport = 80;
    t.dport = client_port;
    ip.src = kServer;
    ip.dst = kClient;
  }
  return {eth_v4(ip, tcp(t)), from_client ? Side::inside : Side::outside, zone};
}

Frame client(uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0, uint16_t port = 40000) {
  return tcp_frame(true, flags, seq, ack, len, port);
}
Frame server(uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0, uint16_t port = 40000) {
  return tcp_frame(false, flags, seq, ack, len, port);
}

Frame udp_frame(const char* src, uint16_t sport, const char* dst, uint16_t dport, Side side) {
  UdpSpec u;
  u.sport = sport;
  u.dport = dport;
  u.payload = {1, 2, 3, 4};
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return {eth_v4(ip, udp(u)), side};
}

Frame echo(const char* src, const char* dst, uint8_t type, uint16_t id, Side side) {
  IcmpSpec e;
  e.type = type;
  e.rest = echo_rest(id, 1);
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return {eth_v4(ip, icmp4(e)), side};
}

// An ICMPv4 error from `from` to `to`, quoting `quoted` (a whole IP packet,
// cut to its header and 8 bytes as RFC 792 asks).
Frame icmp_error(const char* from, const char* to, Bytes quoted, Side side) {
  const size_t ihl = (quoted[0] & 0x0f) * 4u;
  quoted.resize(ihl + 8);
  IcmpSpec e;
  e.type = 3;
  e.code = 1;
  e.payload = quoted;
  Ipv4Spec ip;
  ip.src = from;
  ip.dst = to;
  return {eth_v4(ip, icmp4(e)), side};
}

Bytes quoted_tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint32_t seq) {
  TcpSpec t;
  t.flags = kAck;
  t.sport = sport;
  t.dport = dport;
  t.seq = seq;
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return ipv4(ip, tcp(t));
}

class PipelineTest : public testing::Test {
 protected:
  PipelineSettings settings;
  std::vector<Rule> rules;
  Action default_action = Action::deny;
  ConnIdSource ids;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<Pipeline> pipe;

  void SetUp() override {
    settings.connections = 1024;
    settings.fragments = 256;
    Rule from_inside;
    from_inside.name = "from-inside";
    from_inside.side = SideMatch::inside;
    from_inside.action = Action::allow;
    rules = {from_inside};
  }

  // Builds the pipeline from settings, rules and default_action.
  void start() {
    std::string error;
    policy = Policy::compile(rules, default_action, &error);
    ASSERT_NE(policy, nullptr) << error;
    pipe = Pipeline::create(settings, policy.get(), &ids, 0, &error);
    ASSERT_NE(pipe, nullptr) << error;
  }

  static ParsedPacket parse(const Frame& f) {
    ParsedPacket p;
    parse_frame(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), f.side, f.zone, {}, p);
    return p;
  }

  Verdict send(const Frame& f, uint64_t ms = kT0) {
    const ParsedPacket p = parse(f);
    Verdict v;
    pipe->process(&p, 1, ms * 1'000'000, &v);
    return v;
  }

  std::vector<Verdict> burst(const std::vector<Frame>& frames, uint64_t ms = kT0) {
    std::vector<ParsedPacket> packets;
    for (const Frame& f : frames) packets.push_back(parse(f));
    std::vector<Verdict> verdicts(frames.size());
    pipe->process(packets.data(), static_cast<uint16_t>(packets.size()), ms * 1'000'000,
                  verdicts.data());
    return verdicts;
  }

  // The three-way handshake; returns the connection ID.
  uint64_t handshake(uint64_t ms = kT0, uint16_t port = 40000) {
    const Verdict syn = send(client(kSyn, kClientIsn, 0, 0, port), ms);
    EXPECT_EQ(syn.reason, Reason::new_connection);
    EXPECT_EQ(send(server(kSyn | kAck, kServerIsn, kClientIsn + 1, 0, port), ms).reason,
              Reason::established);
    EXPECT_EQ(send(client(kAck, kClientIsn + 1, kServerIsn + 1, 0, port), ms).reason,
              Reason::established);
    return syn.conn_id;
  }

  const Connection* find(const Frame& f) const {
    const ParsedPacket p = parse(f);
    bool lo = false;
    const FlowKey k = make_flow_key(p.src, p.sport, p.dst, p.dport, p.proto, p.zone, &lo);
    const int32_t pos = pipe->flows().lookup(k);
    return pos < 0 ? nullptr : &pipe->flows().at(static_cast<uint32_t>(pos));
  }

  uint64_t count(Reason r) const { return pipe->counters().reasons[static_cast<size_t>(r)]; }
};

// ---------------------------------------------------------------------------
// Connections

TEST_F(PipelineTest, FirstPacketCreatesTheConnectionAndLaterOnesFollowIt) {
  start();
  const Verdict syn = send(client(kSyn, kClientIsn, 0));
  EXPECT_EQ(syn.reason, Reason::new_connection);
  EXPECT_EQ(syn.conn_id, make_conn_id(1, 1));
  EXPECT_EQ(pipe->flows().size(), 1u);
  EXPECT_EQ(pipe->counters().opened[static_cast<size_t>(ModuleId::tcp)], 1u);
  EXPECT_EQ(pipe->rule_hits()[1], 1u);  // rule 0, "from-inside"

  const Verdict synack = send(server(kSyn | kAck, kServerIsn, kClientIsn + 1));
  EXPECT_EQ(synack.reason, Reason::established);
  EXPECT_EQ(synack.conn_id, syn.conn_id);
  EXPECT_EQ(send(client(kAck, kClientIsn + 1, kServerIsn + 1)).conn_id, syn.conn_id);
  EXPECT_EQ(send(client(kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 100)).reason,
            Reason::established);
  EXPECT_EQ(send(server(kAck | kPsh, kServerIsn + 1, kClientIsn + 101, 200)).reason,
            Reason::established);
  EXPECT_EQ(pipe->flows().size(), 1u);

  const Connection* c = find(client(kAck, 0, 0));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, syn.conn_id);
  EXPECT_EQ(c->l4, ModuleId::tcp);
  EXPECT_TRUE(c->flags & Connection::kOriginInside);
  EXPECT_EQ(c->packets[0], 3u);
  EXPECT_EQ(c->packets[1], 2u);
  EXPECT_EQ(c->slice<TcpSlice>().state, TcpState::established);
  EXPECT_EQ(c->created_s, static_cast<uint32_t>(kT0 / 1000));
  EXPECT_EQ(pipe->counters().packets(), 5u);
  EXPECT_EQ(pipe->counters().passed(), 5u);
}

TEST_F(PipelineTest, RepliesPassByStateNotByPolicy) {
  start();  // only the inside may open
  handshake();
  EXPECT_EQ(send(server(kAck | kPsh, kServerIsn + 1, kClientIsn + 1, 10)).reason,
            Reason::established);
  // Without a connection the same outside packets are refused.
  EXPECT_EQ(send(server(kSyn, kServerIsn, 0, 0, 41000)).reason, Reason::default_deny);
  EXPECT_EQ(send(server(kSyn | kAck, kServerIsn, 1, 0, 41000)).reason, Reason::tcp_mid_stream);
  EXPECT_EQ(send(server(kAck, kServerIsn, 1, 0, 41000)).reason, Reason::tcp_mid_stream);
  EXPECT_EQ(pipe->flows().size(), 1u);
}

TEST_F(PipelineTest, ModuleDropsAreCountedWithTheConnection) {
  start();
  const uint64_t id = handshake();
  const Verdict v = send(client(kAck, kClientIsn + 1 + 1'000'000, kServerIsn + 1, 10));
  EXPECT_EQ(v.reason, Reason::tcp_out_of_window);
  EXPECT_EQ(v.conn_id, id);
  EXPECT_FALSE(v.pass());
  EXPECT_EQ(count(Reason::tcp_out_of_window), 1u);
}

TEST_F(PipelineTest, LoosePickupFollowsTheSetting) {
  settings.tracker.tcp_loose_pickup = true;
  start();
  EXPECT_EQ(send(client(kAck, 777, 888, 10)).reason, Reason::new_connection);
  EXPECT_EQ(send(server(kAck, 888, 787, 10)).reason, Reason::established);
}

TEST_F(PipelineTest, BurstGivesTheSameVerdictsAsOneByOne) {
  // The SYN/ACK and the ACK miss in the bulk lookup: the SYN before them in
  // the same burst creates the connection they belong to.
  const std::vector<Frame> frames = {
      client(kSyn, kClientIsn, 0),
      client(kSyn, kClientIsn, 0, 0, 40001),
      server(kSyn | kAck, kServerIsn, kClientIsn + 1),
      client(kAck, kClientIsn + 1, kServerIsn + 1),
      server(kSyn | kAck, kServerIsn, kClientIsn + 1, 0, 40001),
      client(kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 50),
      server(kAck, kServerIsn + 1, kClientIsn + 51),
      client(kAck, kClientIsn + 1, kServerIsn + 1, 0, 40001),
      server(kSyn, 1, 0, 0, 40002),  // refused by policy
  };
  start();
  const std::vector<Verdict> together = burst(frames);
  const size_t opened_together = pipe->flows().size();

  ids = ConnIdSource{};
  start();
  std::vector<Verdict> alone;
  for (const Frame& f : frames) alone.push_back(send(f));

  ASSERT_EQ(together.size(), alone.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(together[i].reason, alone[i].reason) << "packet " << i;
    EXPECT_EQ(together[i].conn_id, alone[i].conn_id) << "packet " << i;
  }
  EXPECT_EQ(together[0].reason, Reason::new_connection);
  EXPECT_EQ(together[1].reason, Reason::new_connection);
  for (size_t i : {2, 3, 4, 5, 6, 7}) EXPECT_EQ(together[i].reason, Reason::established) << i;
  EXPECT_EQ(together[2].conn_id, together[0].conn_id);
  EXPECT_EQ(together[4].conn_id, together[1].conn_id);
  EXPECT_NE(together[0].conn_id, together[1].conn_id);
  EXPECT_EQ(together[8].reason, Reason::default_deny);
  EXPECT_EQ(opened_together, 2u);
  EXPECT_EQ(pipe->flows().size(), 2u);
}

TEST_F(PipelineTest, FullBurstOfThirtyTwoHandshakes) {
  start();
  std::vector<Frame> frames;
  for (uint16_t i = 0; i < 32; ++i) {
    frames.push_back(client(kSyn, kClientIsn, 0, 0, static_cast<uint16_t>(50000 + i)));
    frames.push_back(
        server(kSyn | kAck, kServerIsn, kClientIsn + 1, 0, static_cast<uint16_t>(50000 + i)));
  }
  ASSERT_EQ(frames.size(), Pipeline::kMaxBurst);
  const std::vector<Verdict> v = burst(frames);
  for (size_t i = 0; i < v.size(); i += 2) {
    EXPECT_EQ(v[i].reason, Reason::new_connection) << i;
    EXPECT_EQ(v[i + 1].reason, Reason::established) << i;
    EXPECT_EQ(v[i + 1].conn_id, v[i].conn_id) << i;
  }
  EXPECT_EQ(pipe->flows().size(), 32u);
}

TEST_F(PipelineTest, ConnectionIdsAreEpochAndStridedCounter) {
  ids.epoch = 5;
  ids.next = 3;
  ids.stride = 4;
  start();
  const Verdict a = send(udp_frame(kClient, 1000, kServer, 53, Side::inside));
  const Verdict b = send(udp_frame(kClient, 1001, kServer, 53, Side::inside));
  EXPECT_EQ(a.conn_id, (uint64_t{5} << 40) | 3);
  EXPECT_EQ(b.conn_id, (uint64_t{5} << 40) | 7);
  EXPECT_EQ(a.conn_id, make_conn_id(5, 3));
  EXPECT_EQ(ids.next, 11u);
}

TEST(ConnIdSource, MovesToTheSpareEpochWhenItsCountersRunOut) {
  std::atomic<uint32_t> spare{0};
  ConnIdSource ids;
  ids.epoch = 5;
  ids.stride = 4;
  ids.next = kConnCounterMask - 4;  // worker 2 of 4: counters 3, 7, 11, ...
  ids.spare_epoch = &spare;
  EXPECT_EQ(ids.take(), make_conn_id(5, kConnCounterMask - 4));
  EXPECT_EQ(ids.take(), make_conn_id(5, kConnCounterMask));  // the last one
  spare.store(9);
  // Out of counters: the spare epoch, the worker's first counter in it.
  EXPECT_EQ(ids.take(), make_conn_id(9, 3));
  EXPECT_EQ(ids.take(), make_conn_id(9, 7));
  EXPECT_EQ(ids.current_epoch(), 9u);
  EXPECT_EQ(ids.used(), 11u);
  // With no spare (no checkpoint server) the next epoch number.
  ConnIdSource local;
  local.epoch = 1;
  local.next = kConnCounterMask;
  EXPECT_EQ(local.take(), make_conn_id(1, kConnCounterMask));
  EXPECT_EQ(local.take(), make_conn_id(2, 1));
}

TEST_F(PipelineTest, PortReuseAfterTimeWaitGetsANewId) {
  start();
  const uint64_t first = handshake();
  const uint32_t c = kClientIsn + 1;
  const uint32_t s = kServerIsn + 1;
  ASSERT_EQ(send(client(kFin | kAck, c, s)).reason, Reason::established);
  ASSERT_EQ(send(server(kFin | kAck, s, c + 1)).reason, Reason::established);
  ASSERT_EQ(send(client(kAck, c + 1, s + 1)).reason, Reason::established);
  ASSERT_EQ(find(client(kAck, 0, 0))->slice<TcpSlice>().state, TcpState::time_wait);

  const Verdict reuse = send(client(kSyn, 900000, 0));
  EXPECT_EQ(reuse.reason, Reason::new_connection);
  EXPECT_NE(reuse.conn_id, first);
  EXPECT_NE(reuse.conn_id, 0u);
  EXPECT_EQ(pipe->counters().reopened, 1u);
  EXPECT_EQ(pipe->flows().size(), 1u);
  const Verdict answer = send(server(kSyn | kAck, 700000, 900001));
  EXPECT_EQ(answer.reason, Reason::established);
  EXPECT_EQ(answer.conn_id, reuse.conn_id);
}

TEST_F(PipelineTest, PortReuseIsStillSubjectToPolicy) {
  start();
  handshake();
  const uint32_t c = kClientIsn + 1;
  const uint32_t s = kServerIsn + 1;
  send(client(kFin | kAck, c, s));
  send(server(kFin | kAck, s, c + 1));
  send(client(kAck, c + 1, s + 1));
  // The server reusing the tuple towards the client is refused: the outside
  // may not open connections.
  EXPECT_EQ(send(server(kSyn, 1, 0)).reason, Reason::default_deny);
}

TEST_F(PipelineTest, SameTupleInAnotherZoneIsAnotherConnection) {
  start();
  const Verdict a = send(tcp_frame(true, kSyn, kClientIsn, 0, 0, 40000, 0));
  const Verdict b = send(tcp_frame(true, kSyn, kClientIsn, 0, 0, 40000, 1));
  EXPECT_EQ(a.reason, Reason::new_connection);
  EXPECT_EQ(b.reason, Reason::new_connection);
  EXPECT_NE(a.conn_id, b.conn_id);
  EXPECT_EQ(send(tcp_frame(false, kSyn | kAck, kServerIsn, kClientIsn + 1, 0, 40000, 1)).conn_id,
            b.conn_id);
}

TEST_F(PipelineTest, NewPolicyAppliesToNewConnectionsOnly) {
  start();
  const uint64_t id = handshake();
  std::string error;
  auto closed = Policy::compile({}, Action::deny, &error);
  ASSERT_NE(closed, nullptr) << error;
  pipe->set_policy(closed.get());
  EXPECT_EQ(send(client(kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 5)).conn_id, id);
  EXPECT_EQ(send(client(kSyn, 1, 0, 0, 41000)).reason, Reason::default_deny);
  EXPECT_EQ(pipe->rule_hits().size(), 1u);
  EXPECT_EQ(pipe->rule_hits()[0], 1u);
}

TEST_F(PipelineTest, PolicyDenyNamesTheRule) {
  Rule no_dns;
  no_dns.protocol = kProtoUdp;
  no_dns.dst_ports = {{53, 53}};
  no_dns.action = Action::deny;
  rules.insert(rules.begin(), no_dns);
  start();
  EXPECT_EQ(send(udp_frame(kClient, 1000, kServer, 53, Side::inside)).reason, Reason::policy_deny);
  EXPECT_EQ(send(udp_frame(kClient, 1000, kServer, 54, Side::inside)).reason,
            Reason::new_connection);
  EXPECT_EQ(pipe->rule_hits()[1], 1u);
  EXPECT_EQ(pipe->rule_hits()[2], 1u);
  EXPECT_EQ(pipe->flows().size(), 1u);
}

// ---------------------------------------------------------------------------
// Expiry

TEST_F(PipelineTest, ExpiryIsCheckedOnLookupWithoutTheCleaner) {
  settings.tracker.tcp.syn_sent = 1000;
  start();
  ASSERT_EQ(send(client(kSyn, kClientIsn, 0), kT0).reason, Reason::new_connection);
  // No clean() in between: the SYN/ACK after the timeout finds the entry,
  // which must count as gone, and a SYN/ACK cannot open.
  EXPECT_EQ(send(server(kSyn | kAck, kServerIsn, kClientIsn + 1), kT0 + 1001).reason,
            Reason::tcp_mid_stream);
  EXPECT_EQ(pipe->flows().size(), 1u);  // still there for the cleaner
}

TEST_F(PipelineTest, NotExpiredJustBeforeTheTimeout) {
  settings.tracker.tcp.syn_sent = 1000;
  start();
  ASSERT_EQ(send(client(kSyn, kClientIsn, 0), kT0).reason, Reason::new_connection);
  EXPECT_EQ(send(server(kSyn | kAck, kServerIsn, kClientIsn + 1), kT0 + 1000).reason,
            Reason::established);
}

TEST_F(PipelineTest, ExpiredUdpFlowIsReopenedWithANewId) {
  settings.tracker.udp_unreplied = 1000;
  start();
  const Frame out = udp_frame(kClient, 5000, kServer, 53, Side::inside);
  const Frame back = udp_frame(kServer, 53, kClient, 5000, Side::outside);
  const Verdict first = send(out, kT0);
  ASSERT_EQ(first.reason, Reason::new_connection);
  // The late answer may not open a connection from the outside.
  EXPECT_EQ(send(back, kT0 + 1500).reason, Reason::default_deny);
  const Verdict again = send(out, kT0 + 1600);
  EXPECT_EQ(again.reason, Reason::new_connection);
  EXPECT_NE(again.conn_id, first.conn_id);
  EXPECT_EQ(pipe->counters().expired[static_cast<size_t>(ModuleId::udp)], 1u);
  EXPECT_EQ(send(back, kT0 + 1700).conn_id, again.conn_id);
}

TEST_F(PipelineTest, DropsDoNotKeepAConnectionAlive) {
  settings.tracker.tcp.established = 10'000;
  settings.tracker.tcp.unacknowledged = 10'000;
  start();
  handshake(kT0);
  // Out-of-window junk every few seconds must not refresh last_seen.
  for (uint64_t t = 3000; t <= 9000; t += 3000) {
    EXPECT_EQ(send(client(kAck, kClientIsn + 1'000'000, kServerIsn + 1, 10), kT0 + t).reason,
              Reason::tcp_out_of_window);
  }
  EXPECT_EQ(send(server(kAck, kServerIsn + 1, kClientIsn + 1), kT0 + 10'001).reason,
            Reason::tcp_mid_stream);
}

TEST_F(PipelineTest, CleanRemovesIdleConnectionsByTheirStateTimeout) {
  settings.tracker.udp_unreplied = 1000;
  settings.tracker.udp_assured = 5000;
  start();
  send(udp_frame(kClient, 5000, kServer, 53, Side::inside), kT0);
  send(udp_frame(kClient, 5001, kServer, 53, Side::inside), kT0);
  send(udp_frame(kServer, 53, kClient, 5001, Side::outside), kT0);  // assured
  pipe->clean((kT0 + 900) * 1'000'000, settings.connections);
  EXPECT_EQ(pipe->flows().size(), 2u);
  pipe->clean((kT0 + 1001) * 1'000'000, settings.connections);
  EXPECT_EQ(pipe->flows().size(), 1u);
  EXPECT_NE(find(udp_frame(kClient, 5001, kServer, 53, Side::inside)), nullptr);
  pipe->clean((kT0 + 5001) * 1'000'000, settings.connections);
  EXPECT_EQ(pipe->flows().size(), 0u);
  EXPECT_EQ(pipe->counters().expired[static_cast<size_t>(ModuleId::udp)], 2u);
}

TEST_F(PipelineTest, CleanRespectsItsBudget) {
  settings.tracker.udp_unreplied = 1000;
  start();
  for (uint16_t i = 0; i < 100; ++i) {
    send(udp_frame(kClient, static_cast<uint16_t>(2000 + i), kServer, 53, Side::inside), kT0);
  }
  // 50 entries visited at most, so at least 50 of the 100 remain.
  pipe->clean((kT0 + 2000) * 1'000'000, 50);
  EXPECT_GE(pipe->flows().size(), 50u);
  // Enough calls to go once round the whole table remove them all.
  for (uint32_t visited = 50; visited < settings.connections; visited += 50) {
    pipe->clean((kT0 + 2000) * 1'000'000, 50);
  }
  EXPECT_EQ(pipe->flows().size(), 0u);
  EXPECT_EQ(pipe->counters().expired[static_cast<size_t>(ModuleId::udp)], 100u);
}

TEST_F(PipelineTest, PacedCleanerVisitsTheTableOnceAPeriod) {
  settings.tracker.udp_unreplied = 1000;
  start();  // 1024 entries; a fresh table hands out positions 0, 1, 2, ...
  const uint32_t n = settings.connections / 2;
  for (uint32_t i = 0; i < n; ++i) {
    send(udp_frame(kClient, static_cast<uint16_t>(2000 + i), kServer, 53, Side::inside), kT0);
  }
  const uint64_t t = (kT0 + 2000) * 1'000'000;  // all idle past their timeout
  pipe->clean_paced(t);                         // starts the clock, owes nothing
  EXPECT_EQ(pipe->flows().size(), n);
  // A quarter of a period, called in many small steps: a quarter of the table.
  for (uint64_t step = 1; step <= 250; ++step) pipe->clean_paced(t + step * 1'000'000);
  EXPECT_NEAR(static_cast<double>(pipe->flows().size()), n - settings.connections / 4.0, 2.0);
  // Half a period in total: the first half of the table, which holds them all.
  for (uint64_t step = 251; step <= 500; ++step) pipe->clean_paced(t + step * 1'000'000);
  EXPECT_LE(pipe->flows().size(), 2u);
  // A long stall earns one sweep, not many.
  pipe->clean_paced(t + 60 * Pipeline::kSweepPeriodNs);
  EXPECT_EQ(pipe->flows().size(), 0u);
}

// ---------------------------------------------------------------------------
// A full table

TEST_F(PipelineTest, FullTableRefusesThenReclaimsExpiredEntries) {
  settings.connections = 64;
  settings.tracker.udp_unreplied = 1000;
  start();
  for (uint16_t i = 0; i < 64; ++i) {
    ASSERT_EQ(
        send(udp_frame(kClient, static_cast<uint16_t>(3000 + i), kServer, 53, Side::inside)).reason,
        Reason::new_connection)
        << i;
  }
  EXPECT_EQ(pipe->flows().size(), 64u);
  EXPECT_EQ(send(udp_frame(kClient, 4000, kServer, 53, Side::inside), kT0 + 500).reason,
            Reason::conn_table_full);
  // Once they are idle, a new connection takes the place of expired ones
  // even though the cleaner never ran.
  EXPECT_EQ(send(udp_frame(kClient, 4000, kServer, 53, Side::inside), kT0 + 1001).reason,
            Reason::new_connection);
  EXPECT_GE(pipe->counters().expired[static_cast<size_t>(ModuleId::udp)], 1u);
}

TEST_F(PipelineTest, ReclaimSparesEntriesALaterPacketOfTheBurstHolds) {
  settings.connections = 64;
  settings.tracker.udp_unreplied = 1000;
  start();
  for (uint16_t i = 0; i < 64; ++i) {
    send(udp_frame(kClient, static_cast<uint16_t>(3000 + i), kServer, 53, Side::inside));
  }
  // The entry the reclaim sweep meets first.
  uint16_t first_port = 0;
  bool found = false;
  pipe->flows().for_each([&](uint32_t index, const Connection& c) {
    if (found) return;
    found = true;
    EXPECT_EQ(index, 0u);
    first_port = c.key.hi_port == 53 ? c.key.lo_port : c.key.hi_port;
  });
  ASSERT_TRUE(found);
  const Frame held = udp_frame(kClient, first_port, kServer, 53, Side::inside);
  const Frame fresh = udp_frame(kClient, 4000, kServer, 53, Side::inside);
  const std::vector<Verdict> v = burst({fresh, held}, kT0 + 2000);
  EXPECT_EQ(v[0].reason, Reason::new_connection);
  // The held entry was expired too, so its packet opens anew, on its own
  // entry, not on the fresh connection.
  EXPECT_EQ(v[1].reason, Reason::new_connection);
  EXPECT_NE(v[1].conn_id, v[0].conn_id);
  const Connection* h = find(held);
  const Connection* f = find(fresh);
  ASSERT_NE(h, nullptr);
  ASSERT_NE(f, nullptr);
  EXPECT_NE(h, f);
  EXPECT_EQ(h->id, v[1].conn_id);
  EXPECT_EQ(f->id, v[0].conn_id);
}

// ---------------------------------------------------------------------------
// ICMP

TEST_F(PipelineTest, EchoRequestOpensAndOnlyItsReplyComesBack) {
  start();
  const Verdict req = send(echo(kClient, kServer, 8, 0x77, Side::inside));
  EXPECT_EQ(req.reason, Reason::new_connection);
  const Verdict rep = send(echo(kServer, kClient, 0, 0x77, Side::outside));
  EXPECT_EQ(rep.reason, Reason::established);
  EXPECT_EQ(rep.conn_id, req.conn_id);
  EXPECT_EQ(send(echo(kServer, kClient, 0, 0x78, Side::outside)).reason, Reason::icmp_no_request);
  EXPECT_EQ(send(echo("203.0.113.9", kClient, 0, 0x77, Side::outside)).reason,
            Reason::icmp_no_request);
  // The pinged host pinging back is its own flow, and the outside may not.
  EXPECT_EQ(send(echo(kServer, kClient, 8, 0x77, Side::outside)).reason, Reason::default_deny);
}

TEST_F(PipelineTest, EchoBothWaysWithOneIdentifierIsTwoFlows) {
  // "A pings B" and "B pings A" with the same identifier are two flows
  // (dataplane/parser.cc); identifier 0 gives both all-zero ports.
  Rule ping_in;
  ping_in.side = SideMatch::outside;
  ping_in.protocol = kProtoIcmp;
  ping_in.action = Action::allow;
  rules.push_back(ping_in);
  start();
  for (uint16_t id : {0, 7}) {
    const Verdict a_req = send(echo(kClient, kServer, 8, id, Side::inside));
    EXPECT_EQ(a_req.reason, Reason::new_connection) << id;
    EXPECT_EQ(send(echo(kServer, kClient, 0, id, Side::outside)).conn_id, a_req.conn_id) << id;
    const Verdict b_req = send(echo(kServer, kClient, 8, id, Side::outside));
    EXPECT_EQ(b_req.reason, Reason::new_connection) << id;
    EXPECT_NE(b_req.conn_id, a_req.conn_id) << id;
    const Verdict b_rep = send(echo(kClient, kServer, 0, id, Side::inside));
    EXPECT_EQ(b_rep.reason, Reason::established) << id;
    EXPECT_EQ(b_rep.conn_id, b_req.conn_id) << id;
    EXPECT_EQ(send(echo(kClient, kServer, 8, id, Side::inside)).conn_id, a_req.conn_id) << id;
    // An error about B's request goes back to B and relates to B's flow.
    IcmpSpec e;
    e.type = 8;
    e.rest = echo_rest(id, 1);
    Ipv4Spec ip;
    ip.src = kServer;
    ip.dst = kClient;
    const Verdict err = send(icmp_error(kRouter, kServer, ipv4(ip, icmp4(e)), Side::inside));
    EXPECT_EQ(err.reason, Reason::related) << id;
    EXPECT_EQ(err.conn_id, b_req.conn_id) << id;
  }
}

TEST_F(PipelineTest, UntrackedIcmpTypesGoByPolicy) {
  Rule icmp;
  icmp.side = SideMatch::outside;
  icmp.protocol = kProtoIcmp;
  icmp.action = Action::allow;
  rules.push_back(icmp);
  start();
  IcmpSpec timestamp;
  timestamp.type = 13;
  timestamp.payload = Bytes(12, 0);
  Ipv4Spec ip;
  ip.src = kServer;
  ip.dst = kClient;
  const Verdict v = send({eth_v4(ip, icmp4(timestamp)), Side::outside});
  EXPECT_EQ(v.reason, Reason::untracked);
  EXPECT_EQ(v.conn_id, 0u);
  EXPECT_EQ(pipe->flows().size(), 0u);
  rules.pop_back();
  start();
  EXPECT_EQ(send({eth_v4(ip, icmp4(timestamp)), Side::outside}).reason, Reason::default_deny);
}

TEST_F(PipelineTest, IcmpErrorAboutATrackedConnectionIsRelated) {
  start();
  const uint64_t id = handshake();
  // A router tells the client its segment could not be delivered.
  const Verdict v = send(icmp_error(
      kRouter, kClient, quoted_tcp(kClient, 40000, kServer, 80, kClientIsn + 1), Side::outside));
  EXPECT_EQ(v.reason, Reason::related);
  EXPECT_EQ(v.conn_id, id);
  // And the server about one of its own segments.
  const Verdict back = send(icmp_error(
      kRouter, kServer, quoted_tcp(kServer, 80, kClient, 40000, kServerIsn + 1), Side::inside));
  EXPECT_EQ(back.reason, Reason::related);
  EXPECT_EQ(back.conn_id, id);
}

// A tracked connection's packets must keep to their ports: the opener's on
// the port it opened from, the replies on the other. Anything else carries a
// forged address and must not ride on the connection's state.
TEST_F(PipelineTest, PacketsOnTheWrongPortAreForgeries) {
  start();
  const uint64_t id = handshake();
  Frame spoofed = client(kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 10);
  spoofed.side = Side::outside;  // the client's address, from outside
  Verdict v = send(spoofed);
  EXPECT_EQ(v.reason, Reason::side_mismatch);
  EXPECT_EQ(v.conn_id, id);
  Frame reflected = server(kAck | kPsh, kServerIsn + 1, kClientIsn + 1, 10);
  reflected.side = Side::inside;  // the server's address, from inside
  EXPECT_EQ(send(reflected).reason, Reason::side_mismatch);
  EXPECT_EQ(count(Reason::side_mismatch), 2u);
  // Neither moved the connection: the real segments still fit exactly.
  EXPECT_EQ(send(client(kAck | kPsh, kClientIsn + 1, kServerIsn + 1, 10)).reason,
            Reason::established);
  EXPECT_EQ(send(server(kAck | kPsh, kServerIsn + 1, kClientIsn + 11, 10)).reason,
            Reason::established);
}

TEST_F(PipelineTest, IcmpErrorOnTheWrongPortIsAForgery) {
  start();
  handshake();
  // About the client's segment, so it must come from outside.
  const Verdict v = send(icmp_error(
      kRouter, kClient, quoted_tcp(kClient, 40000, kServer, 80, kClientIsn + 1), Side::inside));
  EXPECT_EQ(v.reason, Reason::side_mismatch);
}

TEST_F(PipelineTest, IcmpErrorGoingToTheWrongHostIsUnrelated) {
  start();
  handshake();
  // Quotes the client's segment but is addressed to the server.
  EXPECT_EQ(send(icmp_error(kRouter, kServer,
                            quoted_tcp(kClient, 40000, kServer, 80, kClientIsn + 1), Side::outside))
                .reason,
            Reason::icmp_error_unrelated);
}

TEST_F(PipelineTest, IcmpErrorAboutNoConnectionIsUnrelated) {
  start();
  handshake();
  EXPECT_EQ(send(icmp_error(kRouter, kClient,
                            quoted_tcp(kClient, 40999, kServer, 80, kClientIsn + 1), Side::outside))
                .reason,
            Reason::icmp_error_unrelated);
}

TEST_F(PipelineTest, IcmpErrorQuotingASegmentOutsideTheWindowIsUnrelated) {
  start();
  handshake();
  EXPECT_EQ(send(icmp_error(kRouter, kClient,
                            quoted_tcp(kClient, 40000, kServer, 80, kClientIsn + 0x40000000),
                            Side::outside))
                .reason,
            Reason::icmp_error_unrelated);
}

TEST_F(PipelineTest, IcmpErrorAboutAnExpiredConnectionIsUnrelated) {
  settings.tracker.udp_unreplied = 1000;
  start();
  UdpSpec u;
  u.sport = 5000;
  u.dport = 53;
  Ipv4Spec ip;
  ip.src = kClient;
  ip.dst = kServer;
  const Bytes quoted = ipv4(ip, udp(u));
  ASSERT_EQ(send(udp_frame(kClient, 5000, kServer, 53, Side::inside), kT0).reason,
            Reason::new_connection);
  EXPECT_EQ(send(icmp_error(kServer, kClient, quoted, Side::outside), kT0 + 500).reason,
            Reason::related);
  EXPECT_EQ(send(icmp_error(kServer, kClient, quoted, Side::outside), kT0 + 1500).reason,
            Reason::icmp_error_unrelated);
}

TEST_F(PipelineTest, IcmpErrorAboutAnEchoRequestIsRelated) {
  start();
  const Verdict req = send(echo(kClient, kServer, 8, 0x99, Side::inside));
  IcmpSpec e;
  e.type = 8;
  e.rest = echo_rest(0x99, 1);
  Ipv4Spec ip;
  ip.src = kClient;
  ip.dst = kServer;
  const Verdict v = send(icmp_error(kRouter, kClient, ipv4(ip, icmp4(e)), Side::outside));
  EXPECT_EQ(v.reason, Reason::related);
  EXPECT_EQ(v.conn_id, req.conn_id);
}

TEST_F(PipelineTest, Icmpv6PacketTooBigIsRelated) {
  start();
  TcpSpec t;
  t.sport = 40000;
  t.dport = 443;
  t.seq = kClientIsn;
  Ipv6Spec c2s;
  c2s.src = "2001:db8::1";
  c2s.dst = "2001:db8:1::2";
  const Verdict syn = send({eth_v6(c2s, tcp(t)), Side::inside});
  ASSERT_EQ(syn.reason, Reason::new_connection);
  t.flags = kAck | kPsh;
  t.seq = kClientIsn + 1;
  t.payload = Bytes(64, 0);
  IcmpSpec ptb;
  ptb.type = 2;
  ptb.rest = 1280;
  ptb.payload = ipv6(c2s, tcp(t));
  Ipv6Spec back;
  back.src = "2001:db8:ffff::1";
  back.dst = "2001:db8::1";
  const Verdict v = send({eth_v6(back, icmp6(ptb)), Side::outside});
  EXPECT_EQ(v.reason, Reason::related);
  EXPECT_EQ(v.conn_id, syn.conn_id);
}

// ---------------------------------------------------------------------------
// Fragments

struct Fragments {
  Frame first;
  Frame later;
};

Fragments udp_fragments(const char* src, const char* dst, Side side, uint16_t id) {
  UdpSpec u;
  u.sport = 6000;
  u.dport = 7000;
  u.payload = Bytes(40, 0x33);
  const Bytes whole = finish_v4(udp(u), src, dst);
  Ipv4Spec first;
  first.src = src;
  first.dst = dst;
  first.id = id;
  first.more_fragments = true;
  Ipv4Spec later = first;
  later.more_fragments = false;
  later.frag_offset = 24;
  return {{ether(kEtherIpv4, ipv4_raw(first, kProtoUdp, Bytes(whole.begin(), whole.begin() + 24))),
           side},
          {ether(kEtherIpv4, ipv4_raw(later, kProtoUdp, Bytes(whole.begin() + 24, whole.end()))),
           side}};
}

TEST_F(PipelineTest, LaterFragmentTakesTheFirstFragmentsVerdict) {
  start();
  const Fragments f = udp_fragments(kClient, kServer, Side::inside, 0x1111);
  const Verdict first = send(f.first);
  EXPECT_EQ(first.reason, Reason::new_connection);
  const Verdict later = send(f.later);
  EXPECT_EQ(later.reason, Reason::fragment);
  EXPECT_EQ(later.conn_id, first.conn_id);
  EXPECT_TRUE(later.pass());
  EXPECT_EQ(send(f.later).reason, Reason::fragment);  // duplicates too
}

TEST_F(PipelineTest, FragmentsInOneBurst) {
  start();
  const Fragments f = udp_fragments(kClient, kServer, Side::inside, 0x1212);
  const std::vector<Verdict> v = burst({f.first, f.later});
  EXPECT_EQ(v[0].reason, Reason::new_connection);
  EXPECT_EQ(v[1].reason, Reason::fragment);
  EXPECT_EQ(v[1].conn_id, v[0].conn_id);
}

TEST_F(PipelineTest, OrphanLaterFragmentIsDropped) {
  start();
  EXPECT_EQ(send(udp_fragments(kClient, kServer, Side::inside, 0x2222).later).reason,
            Reason::frag_without_first);
  // A first fragment of another datagram does not adopt it.
  send(udp_fragments(kClient, kServer, Side::inside, 0x2223).first);
  EXPECT_EQ(send(udp_fragments(kClient, kServer, Side::inside, 0x2222).later).reason,
            Reason::frag_without_first);
}

TEST_F(PipelineTest, LaterFragmentOfADroppedFirstIsDropped) {
  start();
  const Fragments f = udp_fragments(kServer, kClient, Side::outside, 0x3333);
  EXPECT_EQ(send(f.first).reason, Reason::default_deny);
  const Verdict later = send(f.later);
  EXPECT_EQ(later.reason, Reason::frag_of_dropped);
  EXPECT_FALSE(later.pass());
}

TEST_F(PipelineTest, LaterFragmentFromTheOtherPortIsAnOrphan) {
  start();
  const Fragments f = udp_fragments(kClient, kServer, Side::inside, 0x3434);
  EXPECT_EQ(send(f.first).reason, Reason::new_connection);
  Frame forged = f.later;
  forged.side = Side::outside;
  EXPECT_EQ(send(forged).reason, Reason::frag_without_first);
  EXPECT_EQ(send(f.later).reason, Reason::fragment);
}

TEST_F(PipelineTest, FragmentRecordsExpire) {
  settings.fragment_timeout_ms = 2000;
  start();
  const Fragments f = udp_fragments(kClient, kServer, Side::inside, 0x4444);
  send(f.first, kT0);
  EXPECT_EQ(send(f.later, kT0 + 1999).reason, Reason::fragment);
  EXPECT_EQ(send(f.later, kT0 + 2001).reason, Reason::frag_without_first);
  pipe->clean((kT0 + 2001) * 1'000'000, settings.fragments);
  EXPECT_EQ(pipe->counters().fragments_expired, 1u);
}

TEST_F(PipelineTest, Ipv6Fragments) {
  start();
  UdpSpec u;
  u.sport = 6000;
  u.dport = 7000;
  u.payload = Bytes(40, 0x33);
  Ipv6Spec base;
  const Bytes whole = finish_v6(udp(u), base.src, base.dst);
  Ipv6Spec first = base;
  first.extensions = {ext::fragment(0, true, 0xabcdef)};
  Ipv6Spec later = base;
  later.extensions = {ext::fragment(24, false, 0xabcdef)};
  const Frame f1{
      ether(kEtherIpv6, ipv6_raw(first, kProtoUdp, Bytes(whole.begin(), whole.begin() + 24))),
      Side::inside};
  const Frame f2{
      ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, Bytes(whole.begin() + 24, whole.end()))),
      Side::inside};
  const Verdict v1 = send(f1);
  EXPECT_EQ(v1.reason, Reason::new_connection);
  const Verdict v2 = send(f2);
  EXPECT_EQ(v2.reason, Reason::fragment);
  EXPECT_EQ(v2.conn_id, v1.conn_id);
}

// ---------------------------------------------------------------------------
// Layer 2 and neighbour discovery

TEST_F(PipelineTest, ArpFollowsItsSetting) {
  start();
  EXPECT_EQ(send({arp_request(kClient, "10.0.0.2"), Side::inside}).reason, Reason::arp);
  settings.l2.arp = false;
  start();
  EXPECT_EQ(send({arp_request(kClient, "10.0.0.2"), Side::inside}).reason, Reason::arp_denied);
}

TEST_F(PipelineTest, OtherNonIpFollowsItsSetting) {
  start();
  const Frame lldp{ether(kEtherLldp, Bytes(46, 0)), Side::outside};
  EXPECT_EQ(send(lldp).reason, Reason::non_ip_denied);
  settings.l2.non_ip = true;
  start();
  EXPECT_EQ(send(lldp).reason, Reason::non_ip);
}

Frame neighbour_solicitation(uint8_t hop_limit) {
  IcmpSpec ns;
  ns.type = 135;
  ns.payload = Bytes(16, 0);
  ns.payload[0] = 0xfe;
  ns.payload[1] = 0x80;
  ns.payload[15] = 2;
  Ipv6Spec ip;
  ip.src = "fe80::1";
  ip.dst = "ff02::1:ff00:2";
  ip.hop_limit = hop_limit;
  return {eth_v6(ip, icmp6(ns)), Side::outside};
}

TEST_F(PipelineTest, NeighbourDiscoveryNeedsHopLimit255) {
  rules.clear();  // not even a rule: ND is decided before policy
  start();
  EXPECT_EQ(send(neighbour_solicitation(255)).reason, Reason::ipv6_nd);
  EXPECT_EQ(send(neighbour_solicitation(254)).reason, Reason::ipv6_nd_bad_hop_limit);
  EXPECT_EQ(send(neighbour_solicitation(1)).reason, Reason::ipv6_nd_bad_hop_limit);
  EXPECT_EQ(pipe->flows().size(), 0u);
  settings.l2.ipv6_nd = false;
  start();
  EXPECT_EQ(send(neighbour_solicitation(255)).reason, Reason::ipv6_nd_denied);
}

TEST_F(PipelineTest, MalformedFramesAreCountedByTheirReason) {
  start();
  Frame bad = client(kSyn, kClientIsn, 0);
  bad.bytes[14 + 10] ^= 0xff;  // IPv4 header checksum
  const Verdict v = send(bad);
  EXPECT_EQ(v.reason, Reason::ipv4_bad_checksum);
  EXPECT_EQ(v.conn_id, 0u);
  EXPECT_EQ(count(Reason::ipv4_bad_checksum), 1u);
  EXPECT_EQ(pipe->flows().size(), 0u);
  EXPECT_EQ(pipe->counters().passed(), 0u);
}

}  // namespace
}  // namespace holdfast
