// The FTP module: on its own against a recording expectation host (stream
// reading, announcements, refusals, limits), then inside a pipeline (data
// connections admitted by expectation, not by policy; what is refused).
#include "modules/ftp/ftp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "tests/support/packet_builder.h"

namespace holdfast {
namespace {

using namespace holdfast::test;

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kPsh = tcpflag::kPsh;
constexpr uint8_t kFin = tcpflag::kFin;

constexpr const char* kClient = "10.0.0.1";
constexpr const char* kServer = "192.0.2.10";
constexpr const char* kOther = "203.0.113.9";
constexpr const char* kClient6 = "fd00::1";
constexpr const char* kServer6 = "2001:db8::10";
constexpr uint16_t kCtlPort = 40000;
constexpr uint32_t kClientIsn = 1000;
constexpr uint32_t kServerIsn = 5000;
constexpr uint64_t kT0 = 1'700'000'000'000;  // ms

struct Frame {
  Bytes bytes;
  Side side;
};

Frame segment(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags,
              uint32_t seq, uint32_t ack, const std::string& payload, Side side) {
  TcpSpec t;
  t.sport = sport;
  t.dport = dport;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  t.payload = Bytes(payload.begin(), payload.end());
  if (std::string(src).find(':') != std::string::npos) {
    Ipv6Spec ip;
    ip.src = src;
    ip.dst = dst;
    return {eth_v6(ip, tcp(t)), side};
  }
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return {eth_v4(ip, tcp(t)), side};
}

ParsedPacket parse(const Frame& f) {
  ParsedPacket p;
  parse_frame(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), f.side, 0, {}, p);
  EXPECT_EQ(p.kind, FrameKind::ip);
  return p;
}

// ---------------------------------------------------------------------------
// The module against a host that records what it is asked.

class RecordingHost : public ExpectationHost {
 public:
  Result open_expectation(const ExpectationKey& key, uint32_t expires_ms, uint16_t) override {
    if (refuse) return Result::table_full;
    for (auto& [k, e] : open) {
      if (k == key) {
        e = expires_ms;
        return Result::opened;
      }
    }
    open.emplace_back(key, expires_ms);
    return Result::opened;
  }
  void close_expectation(const ExpectationKey& key, uint16_t) override {
    for (size_t i = 0; i < open.size(); ++i) {
      if (open[i].first == key) {
        open.erase(open.begin() + static_cast<long>(i));
        return;
      }
    }
  }
  bool has(const char* src, const char* dst, uint16_t port, Side side) const {
    const ExpectationKey k =
        make_expectation_key(*IpAddr::parse(src), *IpAddr::parse(dst), port, kProtoTcp, 0, side);
    for (const auto& [key, e] : open) {
      if (key == k) return true;
    }
    return false;
  }
  std::vector<std::pair<ExpectationKey, uint32_t>> open;
  bool refuse = false;
};

class FtpModuleTest : public testing::Test {
 protected:
  FtpSettings settings;
  FtpCounters counters;
  RecordingHost host;
  FtpSlice slice;
  const char* client_addr = kClient;
  const char* server_addr = kServer;
  uint32_t client_seq = kClientIsn + 1;
  uint32_t server_seq = kServerIsn + 1;
  uint32_t now_ms = 1000;

  void SetUp() override {
    FtpModule::open(slice);
    feed(segment(client_addr, kCtlPort, server_addr, 21, kSyn, kClientIsn, 0, "", Side::inside),
         Dir::original);
    feed(segment(server_addr, 21, client_addr, kCtlPort, kSyn | kAck, kServerIsn, kClientIsn + 1,
                 "", Side::outside),
         Dir::reply);
  }
  void use_ipv6() {
    client_addr = kClient6;
    server_addr = kServer6;
    SetUp();
  }

  bool feed(const Frame& f, Dir dir) {
    const ParsedPacket p = parse(f);
    return FtpModule::on_segment(slice, p, dir, now_ms, settings, host, counters);
  }
  // The client's next bytes, in order (seq advances).
  bool from_client(const std::string& text) {
    const bool changed = feed(segment(client_addr, kCtlPort, server_addr, 21, kAck | kPsh,
                                      client_seq, server_seq, text, Side::inside),
                              Dir::original);
    client_seq += static_cast<uint32_t>(text.size());
    return changed;
  }
  bool from_server(const std::string& text) {
    const bool changed = feed(segment(server_addr, 21, client_addr, kCtlPort, kAck | kPsh,
                                      server_seq, client_seq, text, Side::outside),
                              Dir::reply);
    server_seq += static_cast<uint32_t>(text.size());
    return changed;
  }
  // Client bytes at an explicit sequence number (out of order, retransmitted).
  bool client_at(uint32_t seq, const std::string& text) {
    return feed(segment(client_addr, kCtlPort, server_addr, 21, kAck | kPsh, seq, server_seq, text,
                        Side::inside),
                Dir::original);
  }
};

TEST_F(FtpModuleTest, PasvReplyExpectsTheClientAtTheServersPort) {
  from_client("PASV\r\n");
  EXPECT_TRUE(host.open.empty());
  from_server("227 Entering Passive Mode (192,0,2,10,156,64).\r\n");
  ASSERT_EQ(host.open.size(), 1u);
  // From the client, arriving on the client's (inside) port.
  EXPECT_TRUE(host.has(kClient, kServer, 156 * 256 + 64, Side::inside));
  EXPECT_EQ(host.open[0].second, now_ms + settings.expectation_timeout_ms);
  EXPECT_EQ(counters.announcements, 1u);
  EXPECT_EQ(counters.expectations_opened, 1u);
  EXPECT_EQ(slice.pending_count, 1u);
}

TEST_F(FtpModuleTest, PortCommandExpectsTheServerAtTheClientsPort) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  ASSERT_EQ(host.open.size(), 1u);
  EXPECT_TRUE(host.has(kServer, kClient, 117 * 256 + 49, Side::outside));
  // A PORT-like line from the server is not a command.
  from_server("200 PORT 10,0,0,1,117,50 ok\r\n");
  EXPECT_EQ(host.open.size(), 1u);
}

TEST_F(FtpModuleTest, EpsvAndEprtOverIpv6) {
  use_ipv6();
  from_client("EPSV\r\n");
  from_server("229 Entering Extended Passive Mode (|||50001|)\r\n");
  EXPECT_TRUE(host.has(kClient6, kServer6, 50001, Side::inside));
  from_client("EPRT |2|fd00::1|50002|\r\n");
  EXPECT_TRUE(host.has(kServer6, kClient6, 50002, Side::outside));
  EXPECT_EQ(counters.expectations_opened, 2u);
}

TEST_F(FtpModuleTest, BounceLowPortAndMalformedAreRefusedAndCounted) {
  from_client("PORT 203,0,113,9,117,49\r\n");     // a third host: FTP bounce
  from_client("EPRT |1|203.0.113.9|30000|\r\n");  // the same with EPRT
  from_server("227 Entering Passive Mode (203,0,113,9,156,64)\r\n");
  from_client("PORT 10,0,0,1,0,25\r\n");                          // port 25: privileged
  from_client("PORT 10,0,0,1,300,1\r\n");                         // not a byte
  from_server("229 Entering Extended Passive Mode (50001)\r\n");  // no delimiters
  EXPECT_TRUE(host.open.empty());
  EXPECT_EQ(counters.refused_bounce, 3u);
  EXPECT_EQ(counters.refused_low_port, 1u);
  EXPECT_EQ(counters.refused_malformed, 2u);
  EXPECT_EQ(counters.expectations_opened, 0u);
  (void)kOther;
}

TEST_F(FtpModuleTest, LinesSplitAcrossSegments) {
  from_client("PO");
  from_client("RT 10,0,0,1,");
  EXPECT_TRUE(host.open.empty());
  from_client("117,49\r");
  EXPECT_TRUE(host.open.empty());
  from_client("\n");
  EXPECT_TRUE(host.has(kServer, kClient, 117 * 256 + 49, Side::outside));
}

TEST_F(FtpModuleTest, OutOfOrderSegmentIsHeldUntilTheGapCloses) {
  const std::string first = "PORT 10,0,0";
  const std::string second = ",1,117,49\r\n";
  const uint32_t seq = client_seq;
  EXPECT_TRUE(client_at(seq + static_cast<uint32_t>(first.size()), second));
  EXPECT_EQ(counters.out_of_order_held, 1u);
  EXPECT_TRUE(host.open.empty());
  client_at(seq, first);
  EXPECT_TRUE(host.has(kServer, kClient, 117 * 256 + 49, Side::outside));
  EXPECT_EQ(slice.dir[0].next_seq, seq + first.size() + second.size());
  EXPECT_EQ(slice.dir[0].held_len, 0u);
}

TEST_F(FtpModuleTest, RetransmissionsAreReadOnce) {
  const uint32_t seq = client_seq;
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(counters.announcements, 1u);
  EXPECT_FALSE(client_at(seq, "PORT 10,0,0,1,117,49\r\n"));  // nothing new
  EXPECT_EQ(counters.announcements, 1u);
  // A retransmission that reaches past what was read: only the new bytes.
  client_at(seq, "PORT 10,0,0,1,117,49\r\nPORT 10,0,0,1,117,50\r\n");
  EXPECT_EQ(counters.announcements, 2u);
  EXPECT_TRUE(host.has(kServer, kClient, 117 * 256 + 50, Side::outside));
}

TEST_F(FtpModuleTest, OnlyTheLastLineOfAMultiLineReplyCounts) {
  from_server("227-Decoy (203,0,113,9,1,1)\r\n227-More (192,0,2,10,200,1)\r\n");
  EXPECT_TRUE(host.open.empty());
  EXPECT_EQ(counters.refused_bounce, 0u);
  from_server("227 Entering Passive Mode (192,0,2,10,156,64)\r\n");
  EXPECT_EQ(host.open.size(), 1u);
  EXPECT_TRUE(host.has(kClient, kServer, 156 * 256 + 64, Side::inside));
}

TEST_F(FtpModuleTest, AFloodOfPortCommandsKeepsTwoPending) {
  for (int i = 0; i < 50; ++i) {
    from_client("PORT 10,0,0,1,100," + std::to_string(i) + "\r\n");
  }
  EXPECT_EQ(host.open.size(), FtpSlice::kMaxPending);
  EXPECT_TRUE(host.has(kServer, kClient, 100 * 256 + 48, Side::outside));
  EXPECT_TRUE(host.has(kServer, kClient, 100 * 256 + 49, Side::outside));
  EXPECT_EQ(counters.replaced_pending, 48u);
  EXPECT_EQ(slice.pending_count, FtpSlice::kMaxPending);
}

TEST_F(FtpModuleTest, AnnouncingThePortAgainRenewsItsLease) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  now_ms += 10'000;
  from_client("PORT 10,0,0,1,117,49\r\n");
  ASSERT_EQ(host.open.size(), 1u);
  EXPECT_EQ(slice.pending_count, 1u);
  EXPECT_EQ(host.open[0].second, now_ms + settings.expectation_timeout_ms);
}

TEST_F(FtpModuleTest, ExpiredPendingExpectationsAreForgotten) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  now_ms += settings.expectation_timeout_ms;
  EXPECT_TRUE(from_client("NOOP\r\n"));
  EXPECT_EQ(slice.pending_count, 0u);
}

TEST_F(FtpModuleTest, TableFullIsCounted) {
  host.refuse = true;
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(counters.refused_table_full, 1u);
  EXPECT_EQ(slice.pending_count, 0u);
}

TEST_F(FtpModuleTest, CloseAndConsumedTakeExpectationsOffTheList) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  from_client("PORT 10,0,0,1,117,50\r\n");
  FtpModule::consumed(slice, host.open[0].first);
  EXPECT_EQ(slice.pending_count, 1u);
  FtpModule::close(slice, host);
  EXPECT_EQ(slice.pending_count, 0u);
  EXPECT_EQ(host.open.size(), 1u);  // consumed ones are the pipeline's to remove
}

TEST_F(FtpModuleTest, OverlongLinesAreSkippedToTheirEnd) {
  from_client(std::string(600, 'A') + " PORT 10,0,0,1,117,49\r\n");
  EXPECT_TRUE(host.open.empty());
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(host.open.size(), 1u);
}

TEST_F(FtpModuleTest, ValidRejectsDamagedSlices) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_TRUE(FtpModule::valid(slice));
  FtpSlice bad = slice;
  bad.pending_count = 3;
  EXPECT_FALSE(FtpModule::valid(bad));
  bad = slice;
  bad.dir[1].held_len = 513;
  EXPECT_FALSE(FtpModule::valid(bad));
  bad = slice;
  bad.pending[0].key.dport = 25;
  EXPECT_FALSE(FtpModule::valid(bad));
  bad = slice;
  bad.dir[0].synced = 7;
  EXPECT_FALSE(FtpModule::valid(bad));
  bad = slice;
  std::memset(static_cast<void*>(&bad.dir[0].line), 0xff, sizeof bad.dir[0].line);
  EXPECT_FALSE(FtpModule::valid(bad));
}

TEST_F(FtpModuleTest, ReopenPutsPendingExpectationsBack) {
  from_client("PORT 10,0,0,1,117,49\r\n");
  RecordingHost fresh;
  EXPECT_EQ(FtpModule::reopen(slice, fresh), 1u);
  EXPECT_TRUE(fresh.has(kServer, kClient, 117 * 256 + 49, Side::outside));
  fresh.open.clear();
  fresh.refuse = true;
  EXPECT_EQ(FtpModule::reopen(slice, fresh), 0u);
  EXPECT_EQ(slice.pending_count, 0u);
}

// ---------------------------------------------------------------------------
// In the pipeline: the control connection is followed, data connections are
// admitted by expectation.

class FtpPipelineTest : public testing::Test {
 protected:
  PipelineSettings settings;
  ConnIdSource ids;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<Pipeline> pipe;
  uint32_t client_seq = kClientIsn + 1;
  uint32_t server_seq = kServerIsn + 1;
  uint64_t control_id = 0;

  void SetUp() override {
    settings.connections = 1024;
    settings.fragments = 64;
    settings.ftp.sessions = 4;
  }
  // Inside may open TCP to port 21 only; everything else is denied.
  void start() {
    Rule ftp_out;
    ftp_out.name = "ftp-out";
    ftp_out.side = SideMatch::inside;
    ftp_out.protocol = kProtoTcp;
    ftp_out.dst_ports = {PortRange{21, 21}};
    ftp_out.action = Action::allow;
    std::string error;
    policy = Policy::compile({ftp_out}, Action::deny, &error);
    ASSERT_NE(policy, nullptr) << error;
    pipe = Pipeline::create(settings, policy.get(), &ids, 0, &error);
    ASSERT_NE(pipe, nullptr) << error;
  }
  Verdict send(const Frame& f, uint64_t ms = kT0) {
    const ParsedPacket p = parse(f);
    Verdict v;
    pipe->process(&p, 1, ms * 1'000'000, &v);
    return v;
  }
  void control_handshake(uint16_t port = kCtlPort) {
    const Verdict syn =
        send(segment(kClient, port, kServer, 21, kSyn, kClientIsn, 0, "", Side::inside));
    ASSERT_EQ(syn.reason, Reason::new_connection);
    control_id = syn.conn_id;
    ASSERT_EQ(send(segment(kServer, 21, kClient, port, kSyn | kAck, kServerIsn, kClientIsn + 1, "",
                           Side::outside))
                  .reason,
              Reason::established);
    ASSERT_EQ(send(segment(kClient, port, kServer, 21, kAck, kClientIsn + 1, kServerIsn + 1, "",
                           Side::inside))
                  .reason,
              Reason::established);
  }
  Verdict from_client(const std::string& text, uint64_t ms = kT0) {
    const Verdict v = send(segment(kClient, kCtlPort, kServer, 21, kAck | kPsh, client_seq,
                                   server_seq, text, Side::inside),
                           ms);
    client_seq += static_cast<uint32_t>(text.size());
    return v;
  }
  Verdict from_server(const std::string& text, uint64_t ms = kT0) {
    const Verdict v = send(segment(kServer, 21, kClient, kCtlPort, kAck | kPsh, server_seq,
                                   client_seq, text, Side::outside),
                           ms);
    server_seq += static_cast<uint32_t>(text.size());
    return v;
  }
  const Connection* find(const char* src, uint16_t sport, const char* dst, uint16_t dport) const {
    bool lo = false;
    const FlowKey k =
        make_flow_key(*IpAddr::parse(src), sport, *IpAddr::parse(dst), dport, kProtoTcp, 0, &lo);
    const int32_t pos = pipe->flows().lookup(k);
    return pos < 0 ? nullptr : &pipe->flows().at(static_cast<uint32_t>(pos));
  }
  const FtpCounters& ftp() const { return pipe->counters().ftp; }
  uint64_t count(Reason r) const { return pipe->counters().reasons[static_cast<size_t>(r)]; }
};

TEST_F(FtpPipelineTest, PassiveDataConnectionIsAdmittedAsExpected) {
  start();
  control_handshake();
  EXPECT_EQ(ftp().sessions, 1u);
  ASSERT_EQ(from_client("PASV\r\n").reason, Reason::established);
  ASSERT_EQ(from_server("227 Entering Passive Mode (192,0,2,10,156,64).\r\n").reason,
            Reason::established);
  EXPECT_EQ(pipe->expectations().size(), 1u);
  const uint64_t hits_before = pipe->rule_hits()[0] + pipe->rule_hits()[1];
  const Verdict data = send(segment(kClient, 50000, kServer, 40000, kSyn, 77, 0, "", Side::inside));
  EXPECT_EQ(data.reason, Reason::expected);
  EXPECT_TRUE(data.pass());
  const Connection* c = find(kClient, 50000, kServer, 40000);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, data.conn_id);
  EXPECT_EQ(c->master_id, control_id);
  EXPECT_EQ(c->l7, ModuleId::none);
  // Admitted by expectation, not by a rule; the expectation is used up.
  EXPECT_EQ(pipe->rule_hits()[0] + pipe->rule_hits()[1], hits_before);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(ftp().data_connections, 1u);
  const Connection* control = find(kClient, kCtlPort, kServer, 21);
  ASSERT_NE(control, nullptr);
  EXPECT_EQ(pipe->ftp_slice(*control).pending_count, 0u);
  // The rest of the data connection is ordinary state.
  EXPECT_EQ(
      send(segment(kServer, 40000, kClient, 50000, kSyn | kAck, 900, 78, "", Side::outside)).reason,
      Reason::established);
  // A second connection to the same port is not expected any more.
  EXPECT_EQ(send(segment(kClient, 50001, kServer, 40000, kSyn, 77, 0, "", Side::inside)).reason,
            Reason::default_deny);
}

TEST_F(FtpPipelineTest, ActiveDataConnectionFromOutsideIsAdmittedAsExpected) {
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  const Verdict data =
      send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside));
  EXPECT_EQ(data.reason, Reason::expected);
  EXPECT_EQ(find(kServer, 20, kClient, 117 * 256 + 49)->master_id, control_id);
}

TEST_F(FtpPipelineTest, WithoutTheModuleTheDataConnectionMeetsPolicy) {
  settings.ftp.enabled = false;
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(ftp().sessions, 0u);
  EXPECT_EQ(
      send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside)).reason,
      Reason::default_deny);
}

TEST_F(FtpPipelineTest, ADataSynOnTheWrongPortIsNotExpected) {
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  // The server's address, but arriving from the inside: a forgery.
  EXPECT_EQ(
      send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::inside)).reason,
      Reason::default_deny);
  EXPECT_EQ(pipe->expectations().size(), 1u);
}

TEST_F(FtpPipelineTest, BounceIsRefusedAndTheThirdHostMeetsPolicy) {
  start();
  control_handshake();
  from_client("PORT 203,0,113,9,117,49\r\n");
  EXPECT_EQ(ftp().refused_bounce, 1u);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(
      send(segment(kServer, 20, kOther, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside)).reason,
      Reason::default_deny);
}

TEST_F(FtpPipelineTest, ExpectationsExpire) {
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  const uint64_t later = kT0 + settings.ftp.expectation_timeout_ms + 1;
  EXPECT_EQ(
      send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside), later)
          .reason,
      Reason::default_deny);
  pipe->clean(later * 1'000'000, 1 << 20);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(ftp().expectations_expired, 1u);
}

TEST_F(FtpPipelineTest, ClosingTheControlConnectionClosesItsExpectations) {
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(pipe->expectations().size(), 1u);
  // The control connection idles out (its expectation lives longer than
  // the shortened TCP timeout).
  pipe.reset();
  settings.tracker.tcp.established = 1000;
  settings.ftp.expectation_timeout_ms = 600'000;
  start();
  client_seq = kClientIsn + 1;
  server_seq = kServerIsn + 1;
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(pipe->expectations().size(), 1u);
  pipe->clean((kT0 + 2000) * 1'000'000, 1 << 20);
  EXPECT_EQ(pipe->flows().size(), 0u);
  EXPECT_EQ(pipe->expectations().size(), 0u);
  EXPECT_EQ(send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside),
                 kT0 + 2000)
                .reason,
            Reason::default_deny);
}

TEST_F(FtpPipelineTest, AnIdleMasterExpectsNothingWhetherCleanedOrNot) {
  settings.tracker.tcp.established = 1000;
  settings.ftp.expectation_timeout_ms = 600'000;
  settings.connections = 64;
  start();
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  // Fill the table: the data SYN must reclaim room, and the control
  // connection is among what it reclaims.
  for (uint16_t i = 1; pipe->flows().size() < pipe->flows().capacity(); ++i) {
    ASSERT_EQ(send(segment(kClient, static_cast<uint16_t>(kCtlPort + i), kServer, 21, kSyn,
                           kClientIsn, 0, "", Side::inside))
                  .reason,
              Reason::new_connection);
  }
  EXPECT_EQ(pipe->expectations().size(), 1u);
  const Verdict data = send(
      segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside), kT0 + 5000);
  EXPECT_EQ(data.reason, Reason::default_deny);
  // Not cleaned, the same: the master is idle, so is its expectation.
  pipe.reset();
  settings.connections = 1024;
  start();
  client_seq = kClientIsn + 1;
  server_seq = kServerIsn + 1;
  control_handshake();
  from_client("PORT 10,0,0,1,117,49\r\n");
  EXPECT_EQ(send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside),
                 kT0 + 5000)
                .reason,
            Reason::default_deny);
}

TEST_F(FtpPipelineTest, SessionsBeyondThePoolAreCountedAndStillPass) {
  settings.ftp.sessions = 1;
  start();
  control_handshake(kCtlPort);
  const Verdict second =
      send(segment(kClient, kCtlPort + 1, kServer, 21, kSyn, kClientIsn, 0, "", Side::inside));
  EXPECT_EQ(second.reason, Reason::new_connection);
  EXPECT_EQ(ftp().sessions, 1u);
  EXPECT_EQ(ftp().sessions_full, 1u);
  EXPECT_EQ(find(kClient, kCtlPort + 1, kServer, 21)->l7, ModuleId::none);
}

TEST_F(FtpPipelineTest, AnotherSessionCannotTakeAnExpectedConnection) {
  start();
  control_handshake(kCtlPort);
  from_client("PORT 10,0,0,1,117,49\r\n");
  // A second session from the same client announces the same port.
  const uint16_t port2 = kCtlPort + 1;
  ASSERT_EQ(
      send(segment(kClient, port2, kServer, 21, kSyn, kClientIsn, 0, "", Side::inside)).reason,
      Reason::new_connection);
  send(segment(kServer, 21, kClient, port2, kSyn | kAck, kServerIsn, kClientIsn + 1, "",
               Side::outside));
  send(segment(kClient, port2, kServer, 21, kAck | kPsh, kClientIsn + 1, kServerIsn + 1,
               "PORT 10,0,0,1,117,49\r\n", Side::inside));
  EXPECT_EQ(ftp().refused_in_use, 1u);
  EXPECT_EQ(
      send(segment(kServer, 20, kClient, 117 * 256 + 49, kSyn, 77, 0, "", Side::outside)).conn_id,
      make_conn_id(1, 3));
  EXPECT_EQ(find(kServer, 20, kClient, 117 * 256 + 49)->master_id, control_id);
}

TEST_F(FtpPipelineTest, FinishedControlConnectionReusedFreesItsSlice) {
  settings.ftp.sessions = 1;
  start();
  control_handshake();
  from_client("QUIT\r\n");
  send(segment(kClient, kCtlPort, kServer, 21, kFin | kAck, client_seq, server_seq, "",
               Side::inside));
  send(segment(kServer, 21, kClient, kCtlPort, kFin | kAck, server_seq, client_seq + 1, "",
               Side::outside));
  send(segment(kClient, kCtlPort, kServer, 21, kAck, client_seq + 1, server_seq + 1, "",
               Side::inside));
  // Port reuse after TIME_WAIT's start: a new SYN reopens the connection and
  // the session's slice is released and taken again.
  const Verdict again =
      send(segment(kClient, kCtlPort, kServer, 21, kSyn, kClientIsn + 100000, 0, "", Side::inside),
           kT0 + 1000);
  EXPECT_EQ(again.reason, Reason::new_connection);
  EXPECT_EQ(ftp().sessions, 2u);
  EXPECT_EQ(ftp().sessions_full, 0u);
}

}  // namespace
}  // namespace holdfast
