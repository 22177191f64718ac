// The SIP module inside a pipeline: signalling over UDP and TCP opens RTP
// and RTCP pinholes from SDP offer and answer, media is admitted as related
// to its signalling connection whatever policy says, and the call's end
// closes pinholes and media; bounds, refusals and malformed messages.
#include "modules/sip/sip.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "dataplane/stats.h"
#include "dataplane/steering.h"
#include "tests/support/packet_builder.h"
#include "tests/support/sip_messages.h"

namespace holdfast {
namespace {

using namespace holdfast::test;

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kPsh = tcpflag::kPsh;

constexpr const char* kCaller = "10.0.0.10";
constexpr const char* kCallee = "198.51.100.20";
constexpr const char* kGateway = "203.0.113.7";  // a media address in modules.sip.media_ranges
constexpr uint16_t kSigPort = 5061;              // the caller's SIP port
constexpr uint64_t kT0 = 1'700'000'000'000;      // ms

struct Frame {
  Bytes bytes;
  Side side;
};

Side side_of(const char* addr) {
  return std::string(addr).rfind("10.", 0) == 0 ? Side::inside : Side::outside;
}

Frame datagram(const char* src, uint16_t sport, const char* dst, uint16_t dport,
               const std::string& payload) {
  UdpSpec u;
  u.sport = sport;
  u.dport = dport;
  u.payload = Bytes(payload.begin(), payload.end());
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return {eth_v4(ip, udp(u)), side_of(src)};
}

Frame segment(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags,
              uint32_t seq, uint32_t ack, const std::string& payload) {
  TcpSpec t;
  t.sport = sport;
  t.dport = dport;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  t.payload = Bytes(payload.begin(), payload.end());
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return {eth_v4(ip, tcp(t)), side_of(src)};
}

ParsedPacket parse(const Frame& f) {
  ParsedPacket p;
  parse_frame(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), f.side, 0, {}, p);
  EXPECT_EQ(p.kind, FrameKind::ip);
  return p;
}

class SipPipelineTest : public testing::Test {
 protected:
  PipelineSettings settings;
  ConnIdSource ids;
  std::unique_ptr<Policy> policy;
  uint32_t workers = 1;  // more: packets go to their owner, pinholes by mail
  std::unique_ptr<PinholeMail> mail;
  std::vector<std::unique_ptr<Pipeline>> pipes;
  Pipeline* pipe = nullptr;  // worker 0
  uint64_t signalling_id = 0;
  uint64_t now = kT0;

  void SetUp() override {
    settings.connections = 1024;
    settings.fragments = 64;
    settings.sip.sessions = 8;
    settings.sip.calls = 16;
  }
  // Inside may send UDP and TCP to port 5060; everything else is denied.
  void start() {
    std::vector<Rule> rules;
    for (uint8_t proto : {kProtoUdp, kProtoTcp}) {
      Rule r;
      r.name = "sip-out";
      r.side = SideMatch::inside;
      r.protocol = proto;
      r.dst_ports = {PortRange{5060, 5060}};
      r.action = Action::allow;
      rules.push_back(r);
    }
    std::string error;
    policy = Policy::compile(rules, Action::deny, &error);
    ASSERT_NE(policy, nullptr) << error;
    if (workers > 1) {
      mail = PinholeMail::create(std::vector<int>(workers, 0), &error);
      ASSERT_NE(mail, nullptr) << error;
    }
    for (uint32_t w = 0; w < workers; ++w) {
      pipes.push_back(Pipeline::create(settings, policy.get(), &ids, 0, &error));
      ASSERT_NE(pipes.back(), nullptr) << error;
      pipes.back()->set_steering(w, workers, mail.get());
    }
    pipe = pipes[0].get();
  }
  // The worker that owns the packet's addresses decides it; then every
  // worker reads its mail, as each does before its next receive.
  Verdict send(const Frame& f) {
    const ParsedPacket p = parse(f);
    Verdict v;
    Pipeline& owner = *pipes[workers > 1 ? owner_worker(p, workers) : 0];
    owner.process(&p, 1, now * 1'000'000, &v);
    for (auto& q : pipes) q->read_mail();
    now += 10;
    return v;
  }
  Pipeline& owner_of(const char* a, const char* b) {
    if (workers == 1) return *pipe;
    return *pipes[worker_for_hash(address_pair_hash(*IpAddr::parse(a), *IpAddr::parse(b)),
                                  workers)];
  }
  Verdict caller(const std::string& text) {
    const Verdict v = send(datagram(kCaller, kSigPort, kCallee, 5060, text));
    if (signalling_id == 0) signalling_id = v.conn_id;
    return v;
  }
  Verdict callee(const std::string& text) {
    return send(datagram(kCallee, 5060, kCaller, kSigPort, text));
  }
  Verdict rtp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    return send(datagram(src, sport, dst, dport, std::string(172, 'r')));
  }
  // INVITE with the caller's audio on 20000, answered with the callee's on
  // 30000; ACK.
  void call_up(const std::string& call_id = "call-1@10.0.0.10", uint16_t caller_port = 20000,
               uint16_t callee_port = 30000) {
    ASSERT_EQ(caller(request("INVITE", call_id, 1, sdp(kCaller, {{"audio", caller_port}}))).reason,
              signalling_id == 0 ? Reason::new_connection : Reason::established);
    ASSERT_EQ(callee(response(100, call_id, 1, "INVITE")).reason, Reason::established);
    ASSERT_EQ(callee(response(180, call_id, 1, "INVITE")).reason, Reason::established);
    ASSERT_EQ(
        callee(response(200, call_id, 1, "INVITE", sdp(kCallee, {{"audio", callee_port}}))).reason,
        Reason::established);
    ASSERT_EQ(caller(request("ACK", call_id, 1)).reason, Reason::established);
  }
  const Connection* find_udp(const char* src, uint16_t sport, const char* dst,
                             uint16_t dport) const {
    bool lo = false;
    const FlowKey k =
        make_flow_key(*IpAddr::parse(src), sport, *IpAddr::parse(dst), dport, kProtoUdp, 0, &lo);
    for (const auto& q : pipes) {
      const int32_t pos = q->flows().lookup(k);
      if (pos >= 0) return &q->flows().at(static_cast<uint32_t>(pos));
    }
    return nullptr;
  }
  // Every worker's, added up.
  SipCounters sip() const {
    SipCounters sum;
#define HOLDFAST_SIP_ADD(name) sum.name += q->counters().sip.name;
    for (const auto& q : pipes) {
      HOLDFAST_SIP_COUNTERS(HOLDFAST_SIP_ADD)
    }
#undef HOLDFAST_SIP_ADD
    return sum;
  }
};

TEST_F(SipPipelineTest, AnsweredCallAdmitsRtpAndRtcpBothWays) {
  start();
  call_up();
  EXPECT_EQ(sip().sessions, 1u);
  EXPECT_EQ(sip().calls, 1u);
  EXPECT_EQ(sip().offers, 1u);
  EXPECT_EQ(sip().answers, 1u);
  EXPECT_EQ(sip().pinholes_opened, 4u);  // RTP and RTCP, each way
  EXPECT_EQ(pipe->expectations().size(), 4u);
  const uint64_t hits = pipe->rule_hits()[0] + pipe->rule_hits()[1] + pipe->rule_hits()[2];
  // Callee to caller's RTP port, caller to callee's: one connection
  // (symmetric RTP), admitted as expected with the signalling as master.
  const Verdict in = rtp(kCallee, 30000, kCaller, 20000);
  EXPECT_EQ(in.reason, Reason::expected);
  const Connection* media = find_udp(kCallee, 30000, kCaller, 20000);
  ASSERT_NE(media, nullptr);
  EXPECT_EQ(media->master_id, signalling_id);
  EXPECT_EQ(rtp(kCaller, 20000, kCallee, 30000).reason, Reason::established);
  // RTCP from the caller to the callee's port + 1.
  EXPECT_EQ(rtp(kCaller, 20001, kCallee, 30001).reason, Reason::expected);
  EXPECT_EQ(pipe->rule_hits()[0] + pipe->rule_hits()[1] + pipe->rule_hits()[2], hits);
  EXPECT_EQ(sip().media_connections, 2u);
  // Pinholes are not consumed: they stay for the call.
  EXPECT_EQ(pipe->expectations().size(), 4u);
  // Anything else is still policy's.
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20002).reason, Reason::default_deny);
  EXPECT_EQ(rtp(kGateway, 30000, kCaller, 20000).reason, Reason::default_deny);
  // The statistics list the call with its media connections.
  const auto stats = pipeline_stats({pipe});
  ASSERT_EQ(stats["sip"]["open_calls"].size(), 1u);
  const auto& call = stats["sip"]["open_calls"][0];
  EXPECT_EQ(call["call_id"], "call-1@10.0.0.10");
  EXPECT_EQ(call["state"], "confirmed");
  EXPECT_EQ(call["signalling"], signalling_id);
  EXPECT_EQ(call["started_s"], kT0 / 1000);
  EXPECT_EQ(call["media"].size(), 2u);
}

TEST_F(SipPipelineTest, AnOfferAloneOpensNothing) {
  start();
  caller(request("INVITE", "c1", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(180, "c1", 1, "INVITE"));
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::default_deny);
}

TEST_F(SipPipelineTest, ByeClosesPinholesAndMedia) {
  start();
  call_up();
  ASSERT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  ASSERT_EQ(rtp(kCaller, 20001, kCallee, 30001).reason, Reason::expected);
  EXPECT_EQ(caller(request("BYE", "call-1@10.0.0.10", 2)).reason, Reason::established);
  EXPECT_EQ(sip().calls_ended, 1u);
  EXPECT_EQ(sip().media_closed, 2u);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  // The media flows' next packets meet policy.
  EXPECT_EQ(rtp(kCaller, 20000, kCallee, 30000).reason, Reason::default_deny);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::default_deny);
  // The 200 to the BYE still passes on the signalling connection.
  EXPECT_EQ(callee(response(200, "call-1@10.0.0.10", 2, "BYE")).reason, Reason::established);
}

TEST_F(SipPipelineTest, ReinviteMovesThePinholes) {
  start();
  call_up();
  ASSERT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  caller(request("INVITE", "call-1@10.0.0.10", 2, sdp(kCaller, {{"audio", 22000}})));
  callee(response(200, "call-1@10.0.0.10", 2, "INVITE", sdp(kCallee, {{"audio", 32000}})));
  caller(request("ACK", "call-1@10.0.0.10", 2));
  EXPECT_EQ(pipe->expectations().size(), 4u);
  EXPECT_EQ(rtp(kCallee, 32000, kCaller, 22000).reason, Reason::expected);
  // The old ports admit no new flow (the old flow lives until it idles).
  EXPECT_EQ(rtp(kCallee, 30002, kCaller, 20000).reason, Reason::default_deny);
}

TEST_F(SipPipelineTest, CancelAndRejectionEndTheCall) {
  start();
  caller(request("INVITE", "c-cancel", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(180, "c-cancel", 1, "INVITE"));
  caller(request("CANCEL", "c-cancel", 1));
  EXPECT_EQ(sip().calls_ended, 1u);
  caller(request("INVITE", "c-busy", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(486, "c-busy", 1, "INVITE"));
  EXPECT_EQ(sip().calls_ended, 2u);
  // Late answers for ended calls open nothing.
  callee(response(200, "c-busy", 1, "INVITE", sdp(kCallee, {{"audio", 30000}})));
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::default_deny);
}

TEST_F(SipPipelineTest, LateOfferInTheOkIsAnsweredByTheAck) {
  start();
  caller(request("INVITE", "late", 1));
  callee(response(200, "late", 1, "INVITE", sdp(kCallee, {{"audio", 30000}})));
  EXPECT_EQ(pipe->expectations().size(), 0u);
  caller(request("ACK", "late", 1, sdp(kCaller, {{"audio", 20000}})));
  EXPECT_EQ(pipe->expectations().size(), 4u);
  EXPECT_EQ(rtp(kCaller, 20000, kCallee, 30000).reason, Reason::expected);
}

TEST_F(SipPipelineTest, AudioAndVideoOpenPinholesForBothStreams) {
  start();
  caller(request("INVITE", "av", 1, sdp(kCaller, {{"audio", 20000}, {"video", 20002}})));
  callee(response(200, "av", 1, "INVITE", sdp(kCallee, {{"audio", 30000}, {"video", 30002}})));
  EXPECT_EQ(pipe->expectations().size(), 8u);
  EXPECT_EQ(rtp(kCallee, 30002, kCaller, 20002).reason, Reason::expected);
  EXPECT_EQ(rtp(kCaller, 20003, kCallee, 30003).reason, Reason::expected);
}

TEST_F(SipPipelineTest, RtcpAttributeAndMux) {
  start();
  caller(request(
      "INVITE", "rtcp", 1,
      sdp(kCaller, {{"audio", 20000, "a=rtcp:25000\r\n"}, {"video", 20100, "a=rtcp-mux\r\n"}})));
  callee(response(200, "rtcp", 1, "INVITE",
                  sdp(kCallee, {{"audio", 30000}, {"video", 30100, "a=rtcp-mux\r\n"}})));
  // audio: 2 + 2; video: RTP only, each way.
  EXPECT_EQ(pipe->expectations().size(), 6u);
  EXPECT_EQ(rtp(kCallee, 30001, kCaller, 25000).reason, Reason::expected);
  EXPECT_EQ(rtp(kCallee, 30001, kCaller, 20001).reason, Reason::default_deny);
}

TEST_F(SipPipelineTest, MediaAddressesMustBeTheAnnouncersOrInARange) {
  start();
  // The callee announces a gateway address that is not in media_ranges.
  caller(request("INVITE", "gw", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(200, "gw", 1, "INVITE", sdp(kGateway, {{"audio", 30000}})));
  EXPECT_EQ(sip().refused_address, 1u);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(rtp(kGateway, 30000, kCaller, 20000).reason, Reason::default_deny);
}

TEST_F(SipPipelineTest, AMediaRangeAdmitsAGatewayAddress) {
  std::string error;
  settings.sip.media_ranges[0] = *Cidr::parse("203.0.113.0/24", &error);
  settings.sip.range_count = 1;
  start();
  caller(request("INVITE", "gw", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(200, "gw", 1, "INVITE", sdp(kGateway, {{"audio", 30000}})));
  EXPECT_EQ(sip().refused_address, 0u);
  EXPECT_EQ(rtp(kGateway, 30000, kCaller, 20000).reason, Reason::expected);
}

TEST_F(SipPipelineTest, LowPortsAreRefusedOneByOne) {
  start();
  caller(request("INVITE", "low", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(200, "low", 1, "INVITE", sdp(kCallee, {{"audio", 22}})));
  // 22 and 23 open nothing; the caller's 20000 and 20001 do.
  EXPECT_EQ(sip().refused_low_port, 2u);
  EXPECT_EQ(pipe->expectations().size(), 2u);
  EXPECT_EQ(rtp(kCaller, 20000, kCallee, 22).reason, Reason::default_deny);
  EXPECT_EQ(rtp(kCallee, 22, kCaller, 20000).reason, Reason::expected);
}

TEST_F(SipPipelineTest, MalformedMessagesAreDroppedAndCounted) {
  start();
  call_up();
  // No Call-ID.
  std::string bad = request("BYE", "x", 2);
  bad.erase(bad.find("Call-ID:"), bad.find("CSeq:") - bad.find("Call-ID:"));
  const Verdict v = caller(bad);
  EXPECT_EQ(v.reason, Reason::sip_malformed);
  EXPECT_EQ(v.conn_id, signalling_id);
  EXPECT_EQ(caller("GARBAGE\r\n\r\n").reason, Reason::sip_malformed);
  EXPECT_EQ(sip().malformed, 2u);
  // The call is untouched; keepalives pass unread.
  EXPECT_EQ(sip().calls_ended, 0u);
  EXPECT_EQ(caller("\r\n\r\n").reason, Reason::established);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
}

TEST_F(SipPipelineTest, AnInviteFloodReplacesUnansweredCallsOnly) {
  settings.sip.calls_per_session = 3;
  start();
  call_up("answered");
  for (int i = 0; i < 10; ++i) {
    caller(request("INVITE", "flood-" + std::to_string(i), 1, sdp(kCaller, {{"audio", 21000}})));
  }
  EXPECT_EQ(sip().calls, 11u);
  EXPECT_EQ(sip().calls_replaced, 8u);
  // The answered call keeps its pinholes; the flood opened none.
  EXPECT_EQ(pipe->expectations().size(), 4u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  // With every call confirmed, a new one is not followed.
  call_up("second", 20100, 30100);
  call_up("third", 20200, 30200);
  caller(request("INVITE", "refused", 1, sdp(kCaller, {{"audio", 21000}})));
  EXPECT_EQ(sip().calls_refused, 1u);
}

TEST_F(SipPipelineTest, TheCallPoolBoundsEveryWorker) {
  settings.sip.calls = 2;
  start();
  call_up("a");
  call_up("b", 20100, 30100);
  caller(request("INVITE", "c", 1, sdp(kCaller, {{"audio", 20200}})));
  EXPECT_EQ(sip().calls_full, 1u);
}

TEST_F(SipPipelineTest, TheSignallingConnectionLivesAsLongAsItsCalls) {
  start();
  call_up();
  // Well past UDP's timeouts, inside the call timeout: the call is there.
  now += 600'000;
  EXPECT_EQ(caller(request("BYE", "call-1@10.0.0.10", 2)).reason, Reason::established);
  EXPECT_EQ(sip().calls_ended, 1u);
}

TEST_F(SipPipelineTest, ATimedOutCallAdmitsNoNewMediaButKeepsItsLiveMedia) {
  settings.sip.call_timeout_ms = 60'000;
  start();
  call_up();
  ASSERT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  // Media flows on past the call timeout, without signalling.
  for (int i = 0; i < 70; ++i) {
    now += 1'000;
    ASSERT_EQ(rtp(kCaller, 20000, kCallee, 30000).reason, Reason::established) << i;
  }
  // Pinholes expired exactly: a new flow meets policy.
  EXPECT_EQ(rtp(kCaller, 20001, kCallee, 30001).reason, Reason::default_deny);
  // The call is forgotten with the next message; its media is not cut.
  caller("\r\n\r\n");
  EXPECT_EQ(sip().calls_timed_out, 1u);
  EXPECT_EQ(sip().media_closed, 0u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::established);
  // A BYE now finds no call.
  caller(request("BYE", "call-1@10.0.0.10", 2));
  EXPECT_EQ(sip().calls_ended, 0u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::established);
}

TEST_F(SipPipelineTest, WithTheModuleDisabledMediaMeetsPolicy) {
  settings.sip.enabled = false;
  start();
  call_up();
  EXPECT_EQ(sip().sessions, 0u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::default_deny);
}

// Without mail (a pipeline driven alone) a pinhole another worker owns
// cannot be opened: refused and counted.
TEST_F(SipPipelineTest, WithoutMailPinholesOwnedByAnotherWorkerAreRefused) {
  start();
  // Which of 2 workers owns the media pair decides: make this pipeline the
  // other one.
  const uint32_t owner =
      worker_for_hash(address_pair_hash(*IpAddr::parse(kCallee), *IpAddr::parse(kCaller)), 2);
  pipe->set_steering(1 - owner, 2);
  call_up();
  EXPECT_EQ(sip().refused_other_worker, 4u);
  EXPECT_EQ(pipe->expectations().size(), 0u);
}

// The gateway's media and the signalling belong to different workers: the
// pinholes go to the media's worker by mail, the media connection is
// admitted there with the signalling connection as master, the call (on
// its own worker) learns of it, and the BYE closes the pinholes and the
// media on the other worker.
TEST_F(SipPipelineTest, MediaOnAnotherWorkerGetsItsPinholesByMailAndTheByeClosesIt) {
  std::string error;
  settings.sip.media_ranges[0] = *Cidr::parse("203.0.113.0/24", &error);
  settings.sip.range_count = 1;
  // Of two workers, a gateway address in the range whose pair with the
  // caller the other worker owns.
  const auto owner = [](const std::string& a, const std::string& b) {
    return worker_for_hash(address_pair_hash(*IpAddr::parse(a), *IpAddr::parse(b)), 2);
  };
  std::string gateway;
  for (int host = 1; host < 255 && gateway.empty(); ++host) {
    const std::string a = "203.0.113." + std::to_string(host);
    if (owner(a, kCaller) != owner(kCaller, kCallee)) gateway = a;
  }
  ASSERT_FALSE(gateway.empty());
  const char* kGateway = gateway.c_str();
  workers = 2;
  start();
  Pipeline& signalling = owner_of(kCaller, kCallee);
  Pipeline& media = owner_of(kGateway, kCaller);
  ASSERT_NE(&signalling, &media);
  caller(request("INVITE", "gw", 1, sdp(kCaller, {{"audio", 20000}})));
  callee(response(200, "gw", 1, "INVITE", sdp(kGateway, {{"audio", 30000}})));
  caller(request("ACK", "gw", 1));
  // RTP and RTCP each way, all between the caller and the gateway.
  EXPECT_EQ(sip().pinholes_opened, 4u);
  // Opened by the 200, renewed by the ACK.
  EXPECT_EQ(sip().mail_sent, 8u);
  EXPECT_EQ(sip().refused_other_worker, 0u);
  EXPECT_EQ(signalling.expectations().size(), 0u);
  EXPECT_EQ(media.expectations().size(), 4u);

  EXPECT_EQ(rtp(kGateway, 30000, kCaller, 20000).reason, Reason::expected);
  const Connection* flow = find_udp(kGateway, 30000, kCaller, 20000);
  ASSERT_NE(flow, nullptr);
  EXPECT_EQ(flow->master_id, signalling_id);
  EXPECT_EQ(rtp(kCaller, 20000, kGateway, 30000).reason, Reason::established);
  std::vector<const Pipeline*> all;
  for (const auto& q : pipes) all.push_back(q.get());
  const auto stats = pipeline_stats(all);
  ASSERT_EQ(stats["sip"]["open_calls"].size(), 1u);
  ASSERT_EQ(stats["sip"]["open_calls"][0]["media"].size(), 1u);
  EXPECT_EQ(stats["sip"]["open_calls"][0]["media"][0]["id"], flow->id);

  // A re-INVITE that moves the gateway's port moves the pinholes there.
  caller(request("INVITE", "gw", 2, sdp(kCaller, {{"audio", 20000}})));
  callee(response(200, "gw", 2, "INVITE", sdp(kGateway, {{"audio", 30010}})));
  EXPECT_EQ(media.expectations().size(), 4u);
  EXPECT_EQ(rtp(kCaller, 20002, kGateway, 30010).reason, Reason::expected);
  EXPECT_EQ(rtp(kCaller, 20002, kGateway, 30000).reason, Reason::default_deny);

  EXPECT_EQ(caller(request("BYE", "gw", 3)).reason, Reason::established);
  EXPECT_EQ(sip().calls_ended, 1u);
  EXPECT_EQ(sip().media_closed, 2u);
  EXPECT_EQ(media.expectations().size(), 0u);
  EXPECT_EQ(rtp(kGateway, 30000, kCaller, 20000).reason, Reason::default_deny);
  EXPECT_EQ(rtp(kCaller, 20002, kGateway, 30010).reason, Reason::default_deny);
  EXPECT_EQ(sip().mail_lost, 0u);
}

TEST_F(SipPipelineTest, SipOverTcpWithMessagesSplitAcrossSegments) {
  start();
  uint32_t cseq = 1001;
  uint32_t sseq = 9001;
  ASSERT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kSyn, 1000, 0, "")).reason,
            Reason::new_connection);
  send(segment(kCallee, 5060, kCaller, 40000, kSyn | kAck, 9000, 1001, ""));
  const std::string invite = request("INVITE", "tcp-call", 1, sdp(kCaller, {{"audio", 20000}}));
  // The INVITE in three segments.
  for (size_t at : {size_t{0}, size_t{50}, size_t{200}}) {
    const size_t end = at == 200 ? invite.size() : (at == 0 ? 50 : 200);
    const std::string part = invite.substr(at, end - at);
    ASSERT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, cseq, sseq, part)).reason,
              Reason::established);
    cseq += static_cast<uint32_t>(part.size());
  }
  EXPECT_EQ(sip().offers, 1u);
  // 100 and 200 in one segment.
  const std::string both = response(100, "tcp-call", 1, "INVITE") +
                           response(200, "tcp-call", 1, "INVITE", sdp(kCallee, {{"audio", 30000}}));
  send(segment(kCallee, 5060, kCaller, 40000, kAck | kPsh, sseq, cseq, both));
  sseq += static_cast<uint32_t>(both.size());
  EXPECT_EQ(sip().answers, 1u);
  EXPECT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  // A malformed message is dropped, and so is its retransmission; the
  // stream is not read past it.
  const std::string bad = "INVITE sip:x SIP/2.0\r\nCall-ID: y\r\nCSeq: 2 BYE\r\n\r\n";
  EXPECT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, cseq, sseq, bad)).reason,
            Reason::sip_malformed);
  EXPECT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, cseq, sseq, bad)).reason,
            Reason::sip_malformed);
  // A good message in its place is read.
  const std::string bye = request("BYE", "tcp-call", 2);
  EXPECT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, cseq, sseq, bye)).reason,
            Reason::established);
  EXPECT_EQ(sip().calls_ended, 1u);
}

TEST_F(SipPipelineTest, ASegmentAheadOfAGapIsReadFromItsFirstStartLine) {
  start();
  ASSERT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kSyn, 1000, 0, "")).reason,
            Reason::new_connection);
  send(segment(kCallee, 5060, kCaller, 40000, kSyn | kAck, 9000, 1001, ""));
  const std::string lost = request("INVITE", "lost", 1, sdp(kCaller, {{"audio", 20000}}));
  const std::string next = request("INVITE", "next", 1, sdp(kCaller, {{"audio", 21000}}));
  // The first 100 bytes of `lost` never arrive; the rest and `next` come in
  // one segment ahead of the gap.
  const std::string ahead = lost.substr(100) + next;
  EXPECT_EQ(send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, 1101, 9001, ahead)).reason,
            Reason::established);
  EXPECT_EQ(sip().out_of_order_lost, 1u);
  EXPECT_EQ(sip().offers, 1u);  // `next` only
  // The gap's bytes, arriving late, are not read.
  EXPECT_EQ(
      send(segment(kCaller, 40000, kCallee, 5060, kAck | kPsh, 1001, 9001, lost.substr(0, 100)))
          .reason,
      Reason::established);
  EXPECT_EQ(sip().offers, 1u);
  EXPECT_EQ(sip().calls, 1u);
}

TEST_F(SipPipelineTest, ClosingTheSignallingConnectionEndsItsCalls) {
  settings.tracker.udp_assured = 1'000;
  settings.sip.call_timeout_ms = 5'000;
  start();
  call_up();
  ASSERT_EQ(rtp(kCallee, 30000, kCaller, 20000).reason, Reason::expected);
  now += 10'000;
  pipe->clean(now * 1'000'000, 4096);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(sip().calls_ended + sip().calls_timed_out, 1u);
}

TEST(SipModule, ValidRejectsDamagedRecords) {
  SipSession s;
  SipModule::open(s);
  EXPECT_TRUE(SipModule::valid(s));
  s.call_count = 200;
  EXPECT_FALSE(SipModule::valid(s));
  SipCall c{};
  c.state = SipCall::inviting;
  c.pending_dir = SipCall::kNoOffer;
  EXPECT_TRUE(SipModule::valid(c));
  c.media_count = 17;
  EXPECT_FALSE(SipModule::valid(c));
  c.media_count = 0;
  c.active[0].count = 9;
  EXPECT_FALSE(SipModule::valid(c));
  c.active[0].count = 0;
  c.pending_dir = 7;
  EXPECT_FALSE(SipModule::valid(c));
}

}  // namespace
}  // namespace holdfast
