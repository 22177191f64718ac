// The SIP/SDP parser: the messages of a real call, every header rule of
// RFC 3261 7 that the firewall reads (compact forms, folding, CSeq, required
// headers, Content-Length), the SDP rules of RFC 4566 / 3605 / 5761, TCP
// framing across segments and resynchronisation, UDP datagrams, and the
// checks on a reader read back from the checkpoint store.
#include "modules/sip/sip_parse.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace holdfast::sip {
namespace {

IpAddr addr(const char* text) {
  return *IpAddr::parse(text);
}

uint64_t fnv(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Headers (each ending in CRLF) plus a Content-Length that fits the body.
std::string with_body(const std::string& headers, const std::string& body) {
  return headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

const uint8_t* bytes(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

std::vector<Message> feed(StreamReader& r, std::string_view s) {
  std::vector<Message> out;
  r.feed(bytes(s), s.size(), [&](const Message& m) { out.push_back(m); });
  return out;
}

// One message over TCP, alone in a fresh reader.
Message tcp_one(std::string_view s) {
  StreamReader r;
  const std::vector<Message> got = feed(r, s);
  EXPECT_EQ(got.size(), 1u) << s;
  EXPECT_TRUE(r.idle());
  return got.empty() ? Message{} : got[0];
}

Message udp(std::string_view s) {
  Message m;
  EXPECT_TRUE(parse_datagram(bytes(s), s.size(), &m)) << s;
  return m;
}

// Message has no padding (asserted in the header): equal bytes, equal messages.
bool same(const Message& a, const Message& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

std::string call_id(const Message& m) {
  return std::string(m.call_id, m.call_id_len);
}

// A SIPp uac scenario, with a video stream added.
const std::string kSdpOffer =
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 6002 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n";

const std::string kInvite = with_body(
    "INVITE sip:service@192.0.2.20:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.10:5061;branch=z9hG4bK-4711-1-0\r\n"
    "From: sipp <sip:sipp@192.0.2.10:5061>;tag=4711SIPpTag001\r\n"
    "To: service <sip:service@192.0.2.20:5060>\r\n"
    "Call-ID: 1-4711@192.0.2.10\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@192.0.2.10:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n",
    kSdpOffer);

const std::string kSdpAnswer =
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 192.0.2.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.20\r\n"
    "t=0 0\r\n"
    "m=audio 7000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 0 RTP/AVP 96\r\n";

const std::string kOk = with_body(
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/TCP 192.0.2.10:5061;branch=z9hG4bK-4711-1-0\r\n"
    "From: sipp <sip:sipp@192.0.2.10:5061>;tag=4711SIPpTag001\r\n"
    "To: service <sip:service@192.0.2.20:5060>;tag=4712SIPpTag011\r\n"
    "Call-ID: 1-4711@192.0.2.10\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:192.0.2.20:5060;transport=TCP>\r\n"
    "Content-Type: application/sdp\r\n",
    kSdpAnswer);

const std::string kAck = with_body(
    "ACK sip:service@192.0.2.20:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.10:5061;branch=z9hG4bK-4711-1-5\r\n"
    "From: sipp <sip:sipp@192.0.2.10:5061>;tag=4711SIPpTag001\r\n"
    "To: service <sip:service@192.0.2.20:5060>;tag=4712SIPpTag011\r\n"
    "Call-ID: 1-4711@192.0.2.10\r\n"
    "CSeq: 1 ACK\r\n"
    "Max-Forwards: 70\r\n",
    "");

const std::string kBye = with_body(
    "BYE sip:service@192.0.2.20:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.10:5061;branch=z9hG4bK-4711-1-7\r\n"
    "From: sipp <sip:sipp@192.0.2.10:5061>;tag=4711SIPpTag001\r\n"
    "To: service <sip:service@192.0.2.20:5060>;tag=4712SIPpTag011\r\n"
    "Call-ID: 1-4711@192.0.2.10\r\n"
    "CSeq: 2 BYE\r\n"
    "Max-Forwards: 70\r\n",
    "");

// A minimal request with the required headers, for rule-by-rule tests.
std::string request(const std::string& extra_headers, const std::string& body = "",
                    const char* content_type = "application/sdp") {
  return with_body(std::string("INVITE sip:bob@192.0.2.20 SIP/2.0\r\n"
                               "Call-ID: abc@192.0.2.10\r\n"
                               "CSeq: 7 INVITE\r\n"
                               "From: <sip:alice@192.0.2.10>;tag=a1\r\n"
                               "To: <sip:bob@192.0.2.20>\r\n") +
                       extra_headers + "Content-Type: " + content_type + "\r\n",
                   body);
}

// A message whose only subject is its SDP body.
Message sdp_message(const std::string& body) {
  return tcp_one(request("", body));
}

TEST(SipParse, InviteWithAudioAndVideo) {
  const Message m = tcp_one(kInvite);
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  EXPECT_TRUE(m.request);
  EXPECT_EQ(m.method, Method::invite);
  EXPECT_EQ(m.status, 0);
  EXPECT_EQ(m.cseq, 1u);
  EXPECT_EQ(call_id(m), "1-4711@192.0.2.10");
  EXPECT_EQ(m.call_id_hash, fnv("1-4711@192.0.2.10"));
  EXPECT_EQ(m.from_tag, fnv("4711SIPpTag001"));
  EXPECT_EQ(m.to_tag, 0u);
  ASSERT_TRUE(m.has_sdp);
  ASSERT_EQ(m.sdp.count, 2);
  EXPECT_EQ(m.sdp.ignored, 0);
  EXPECT_EQ(m.sdp.streams[0].kind, MediaKind::audio);
  EXPECT_EQ(m.sdp.streams[0].address, addr("192.0.2.10"));
  EXPECT_EQ(m.sdp.streams[0].port, 6000);
  EXPECT_EQ(m.sdp.streams[0].rtcp_port, 6001);
  EXPECT_EQ(m.sdp.streams[1].kind, MediaKind::video);
  EXPECT_EQ(m.sdp.streams[1].address, addr("192.0.2.10"));
  EXPECT_EQ(m.sdp.streams[1].port, 6002);
  EXPECT_EQ(m.sdp.streams[1].rtcp_port, 6003);
  // Unused streams stay zero.
  EXPECT_EQ(m.sdp.streams[2].port, 0);
  EXPECT_EQ(m.sdp.streams[3].address, IpAddr{});
}

TEST(SipParse, OkAnswerAckAndBye) {
  const Message ok = tcp_one(kOk);
  EXPECT_EQ(ok.error, Error::none) << error_name(ok.error);
  EXPECT_FALSE(ok.request);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.method, Method::invite);  // a response carries its CSeq method
  EXPECT_EQ(ok.cseq, 1u);
  EXPECT_EQ(ok.from_tag, fnv("4711SIPpTag001"));
  EXPECT_EQ(ok.to_tag, fnv("4712SIPpTag011"));
  ASSERT_TRUE(ok.has_sdp);
  ASSERT_EQ(ok.sdp.count, 2);
  EXPECT_EQ(ok.sdp.streams[0].address, addr("192.0.2.20"));
  EXPECT_EQ(ok.sdp.streams[0].port, 7000);
  EXPECT_EQ(ok.sdp.streams[0].rtcp_port, 7001);
  EXPECT_EQ(ok.sdp.streams[1].kind, MediaKind::video);
  EXPECT_EQ(ok.sdp.streams[1].port, 0);  // refused (RFC 3264 6)
  EXPECT_EQ(ok.sdp.streams[1].rtcp_port, 0);

  const Message ack = tcp_one(kAck);
  EXPECT_EQ(ack.error, Error::none);
  EXPECT_EQ(ack.method, Method::ack);
  EXPECT_EQ(ack.cseq, 1u);
  EXPECT_FALSE(ack.has_sdp);
  EXPECT_EQ(ack.call_id_hash, ok.call_id_hash);

  const Message bye = tcp_one(kBye);
  EXPECT_EQ(bye.error, Error::none);
  EXPECT_EQ(bye.method, Method::bye);
  EXPECT_EQ(bye.cseq, 2u);
  EXPECT_EQ(bye.to_tag, fnv("4712SIPpTag011"));
}

TEST(SipParse, StartLines) {
  struct Case {
    const char* line;
    bool request;
    Method method;
    uint16_t status;
  };
  const Case good[] = {
      {"INVITE sip:a@b SIP/2.0", true, Method::invite, 0},
      {"ACK sip:a@b SIP/2.0", true, Method::ack, 0},
      {"BYE sip:a@b SIP/2.0", true, Method::bye, 0},
      {"CANCEL sip:a@b SIP/2.0", true, Method::cancel, 0},
      {"UPDATE sip:a@b SIP/2.0", true, Method::update, 0},
      {"PRACK sip:a@b SIP/2.0", true, Method::prack, 0},
      {"OPTIONS sip:a@b SIP/2.0", true, Method::options, 0},
      {"REGISTER sip:b SIP/2.0", true, Method::register_, 0},
      {"SUBSCRIBE sip:a@b SIP/2.0", true, Method::other, 0},
      {"invite sip:a@b SIP/2.0", true, Method::other, 0},   // methods are case-sensitive
      {"INVITE sip:a@b sip/2.0", true, Method::invite, 0},  // the version is not
      {"SIP/2.0 100 Trying", false, Method::none, 100},
      {"SIP/2.0 180 Ringing", false, Method::none, 180},
      {"SIP/2.0 699 Whatever it says", false, Method::none, 699},
      {"SIP/2.0 200 ", false, Method::none, 200},  // an empty reason phrase
  };
  for (const Case& c : good) {
    // Without a CSeq the message is malformed, but its start line was read.
    const Message m = udp(std::string(c.line) + "\r\n\r\n");
    EXPECT_EQ(m.error, Error::missing_header) << c.line;
    EXPECT_EQ(m.request, c.request) << c.line;
    EXPECT_EQ(m.method, c.method) << c.line;
    EXPECT_EQ(m.status, c.status) << c.line;
  }
  for (const char* bad :
       {"INVITE sip:a@b SIP/2.1", "INVITE sip:a@b SIP/2.0 ", "INVITE  sip:a@b SIP/2.0",
        "INVITE sip:a@b  SIP/2.0", "INVITE sip:a@b", "INVITE SIP/2.0", "INV(TE sip:a@b SIP/2.0",
        " INVITE sip:a@b SIP/2.0", "INVITE sip:a\x01@b SIP/2.0", "SIP/2.0 99 Too low",
        "SIP/2.0 700 Too high", "SIP/2.0 200", "SIP/2.0 2000 OK", "SIP/2.0 2x0 OK",
        "SIP/1.0 200 OK", "HTTP/1.1 200 OK", "hello", "\t"}) {
    const Message m = udp(std::string(bad) + "\r\n\r\n");
    EXPECT_EQ(m.error, Error::start_line) << bad;
    // Over TCP the end is unknown: reported, and the reader is lost.
    StreamReader r;
    const auto got = feed(r, std::string(bad) + "\r\n");
    ASSERT_EQ(got.size(), 1u) << bad;
    EXPECT_EQ(got[0].error, Error::start_line) << bad;
  }
}

TEST(SipParse, CompactForms) {
  const std::string body = "v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r\n";
  const std::string text =
      "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
      "v: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKnashds8\r\n"
      "i: compact@192.0.2.10\r\n"
      "f: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
      "t: Bob <sip:bob@biloxi.example.com>\r\n"
      "m: <sip:alice@192.0.2.10>\r\n"
      "CSEQ: 314159 INVITE\r\n"
      "c: Application/SDP\r\n"
      "l: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const Message m = tcp_one(text);
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  EXPECT_EQ(call_id(m), "compact@192.0.2.10");
  EXPECT_EQ(m.cseq, 314159u);
  EXPECT_EQ(m.from_tag, fnv("9fxced76sl"));
  ASSERT_TRUE(m.has_sdp);
  EXPECT_EQ(m.sdp.streams[0].port, 4000);
  // Long names in any case, whitespace before the colon.
  const Message n = tcp_one(
      "OPTIONS sip:x SIP/2.0\r\n"
      "cAlL-iD  : mixed\r\n"
      "cseq\t: 3 OPTIONS\r\n"
      "FROM:<sip:a>;tag=1\r\n"
      "tO : <sip:b>\r\n"
      "content-length  :  0  \r\n\r\n");
  EXPECT_EQ(n.error, Error::none) << error_name(n.error);
  EXPECT_EQ(call_id(n), "mixed");
  EXPECT_EQ(n.cseq, 3u);
}

TEST(SipParse, FoldedHeaders) {
  // RFC 3261 7.3.1: a line starting with SP or HT continues the header; the
  // fold and its whitespace read as one space.
  const std::string text =
      "INVITE sip:bob@192.0.2.20 SIP/2.0\r\n"
      "Call-ID:\r\n"
      "   folded-call@192.0.2.10\r\n"
      "CSeq: 9\r\n"
      "\tINVITE\r\n"
      "From: \"Alice\r\n"
      "  Liddell\" <sip:alice@192.0.2.10>  \r\n"
      " \t ;tag=folded-tag\r\n"
      "Subject: one\r\n"
      " two\r\n"
      "\t three\r\n"
      "To: <sip:bob@192.0.2.20>\r\n"
      "Content-Length: 0\r\n\r\n";
  const Message m = tcp_one(text);
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  EXPECT_EQ(call_id(m), "folded-call@192.0.2.10");
  EXPECT_EQ(m.call_id_hash, fnv("folded-call@192.0.2.10"));
  EXPECT_EQ(m.cseq, 9u);
  EXPECT_EQ(m.from_tag, fnv("folded-tag"));
  // A folded value joins with one space: a Call-ID folded inside reads with it.
  const Message inner = tcp_one(
      "OPTIONS sip:x SIP/2.0\r\nCall-ID: abc\r\n   def\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a>\r\n"
      "To: <sip:b>\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(inner.error, Error::none);
  EXPECT_EQ(call_id(inner), "abc def");
  // A continuation with nothing to continue is a header that does not parse.
  EXPECT_EQ(tcp_one("OPTIONS sip:x SIP/2.0\r\n folded\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n"
                    "From: <sip:a>\r\nTo: <sip:b>\r\nContent-Length: 0\r\n\r\n")
                .error,
            Error::header);
}

TEST(SipParse, CSeqMustNameTheRequestMethod) {
  const auto with_cseq = [](const char* method, const char* cseq) {
    return tcp_one(std::string(method) + " sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: " + cseq +
                   "\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nContent-Length: 0\r\n\r\n");
  };
  EXPECT_EQ(with_cseq("INVITE", "1 INVITE").error, Error::none);
  EXPECT_EQ(with_cseq("INVITE", "1 BYE").error, Error::header);
  EXPECT_EQ(with_cseq("INVITE", "1 invite").error, Error::header);
  EXPECT_EQ(with_cseq("NOTIFY", "5 NOTIFY").error, Error::none);
  EXPECT_EQ(with_cseq("NOTIFY", "5 SUBSCRIBE").error, Error::header);  // both Method::other
  EXPECT_EQ(with_cseq("ACK", "1 INVITE").error, Error::header);
  EXPECT_EQ(with_cseq("BYE", "4294967295 BYE").cseq, 4294967295u);
  for (const char* bad : {"", "INVITE", "1", "1INVITE", "x INVITE", "-1 INVITE",
                          "4294967296 INVITE", "1 INVITE extra", "1 INV@TE"}) {
    EXPECT_EQ(with_cseq("INVITE", bad).error, Error::header) << bad;
  }
  // A response takes its method from CSeq, whatever it is.
  const Message r = tcp_one(
      "SIP/2.0 487 Request Terminated\r\nCall-ID: a\r\nCSeq: 1 CANCEL\r\nFrom: <sip:a>\r\n"
      "To: <sip:b>\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.error, Error::none);
  EXPECT_EQ(r.method, Method::cancel);
  EXPECT_EQ(r.status, 487);
}

TEST(SipParse, MissingRequiredHeaders) {
  const std::vector<std::string> lines = {"Call-ID: a\r\n", "CSeq: 1 OPTIONS\r\n",
                                          "From: <sip:a>\r\n", "To: <sip:b>\r\n"};
  for (size_t skip = 0; skip < lines.size(); ++skip) {
    std::string text = "OPTIONS sip:x SIP/2.0\r\n";
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i != skip) text += lines[i];
    }
    const std::string message = with_body(text, "");
    EXPECT_EQ(tcp_one(message).error, Error::missing_header) << lines[skip];
    EXPECT_EQ(udp(message).error, Error::missing_header) << lines[skip];
    // The end was known: the next message reads normally.
    StreamReader r;
    const auto got = feed(r, message + kBye);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].error, Error::none);
  }
  // Empty values do not count as present.
  EXPECT_EQ(tcp_one("OPTIONS sip:x SIP/2.0\r\nCall-ID:  \r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a>\r\n"
                    "To: <sip:b>\r\nContent-Length: 0\r\n\r\n")
                .error,
            Error::header);
}

TEST(SipParse, ContentLengthIsRequiredOnTcp) {
  const std::string text =
      "BYE sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 2 BYE\r\nFrom: <sip:a>\r\nTo: <sip:b>\r\n\r\n";
  StreamReader r;
  auto got = feed(r, text);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].error, Error::missing_header);
  // The end was not known: lost, the following body-like lines are skipped up
  // to the next start line.
  got = feed(r, "v=0\r\nnot a start line\r\n" + kBye);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].error, Error::none);
  EXPECT_EQ(got[0].method, Method::bye);
  // Over UDP it is optional.
  EXPECT_EQ(udp(text).error, Error::none);
}

TEST(SipParse, BadAndDuplicateContentLength) {
  const std::string start =
      "BYE sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 2 BYE\r\nFrom: <sip:a>\r\nTo: <sip:b>\r\n";
  for (const char* bad :
       {"Content-Length: -1\r\n", "Content-Length: 1 0\r\n", "Content-Length: 0x10\r\n",
        "Content-Length:\r\n", "Content-Length: +5\r\n", "Content-Length: 5\r\nl: 6\r\n"}) {
    StreamReader r;
    const auto got = feed(r, start + bad + "\r\n" + kBye);
    ASSERT_EQ(got.size(), 2u) << bad;
    EXPECT_EQ(got[0].error, Error::content_length) << bad;
    EXPECT_EQ(got[1].error, Error::none) << bad;  // found again at its start line
    Message m;
    ASSERT_TRUE(parse_datagram(bytes(start + bad + "\r\n"), start.size() + strlen(bad) + 2, &m));
    EXPECT_EQ(m.error, Error::content_length) << bad;
  }
  // Duplicates that agree are fine; leading zeros are digits.
  const Message m = tcp_one(start + "Content-Length: 3\r\nl: 003\r\n\r\nabc");
  EXPECT_EQ(m.error, Error::none);
  EXPECT_FALSE(m.has_sdp);  // no Content-Type
}

TEST(SipParse, BodyTooLarge) {
  const std::string start =
      "BYE sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 2 BYE\r\nFrom: <sip:a>\r\nTo: <sip:b>\r\n";
  EXPECT_EQ(udp(start + "Content-Length: 8193\r\n\r\n" + std::string(8193, 'x')).error,
            Error::body_too_large);
  EXPECT_EQ(udp(start + "Content-Length: 99999999999999999999\r\n\r\n").error,
            Error::body_too_large);
  StreamReader r;
  auto got = feed(r, start + "Content-Length: 10000\r\n\r\n");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].error, Error::body_too_large);
  got = feed(r, std::string(100, 'x') + "\r\n" + kAck);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, Method::ack);
  // The limit itself is allowed.
  const Message m = tcp_one(start + "Content-Length: 8192\r\n\r\n" + std::string(8192, 'x'));
  EXPECT_EQ(m.error, Error::none);
}

TEST(SipParse, LongLines) {
  const std::string start = "OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a>\r\n";
  const std::string end = "To: <sip:b>\r\nContent-Length: 0\r\n\r\n";
  // An unrelated header longer than kMaxLine is skipped.
  const std::string long_subject = "Subject: " + std::string(600, 's') + "\r\n";
  Message m = tcp_one(start + long_subject + "Call-ID: a\r\n" + end);
  EXPECT_EQ(m.error, Error::none);
  EXPECT_EQ(call_id(m), "a");
  // A Call-ID of exactly kMaxLine bytes is read (its first kMaxCallId kept),
  // one byte more is malformed.
  const std::string id_at_limit(kMaxLine - std::strlen("Call-ID: "), 'i');
  m = tcp_one(start + "Call-ID: " + id_at_limit + "\r\n" + end);
  EXPECT_EQ(m.error, Error::none);
  EXPECT_EQ(m.call_id_len, kMaxCallId);
  EXPECT_EQ(call_id(m), id_at_limit.substr(0, kMaxCallId));
  EXPECT_EQ(m.call_id_hash, fnv(id_at_limit));
  m = tcp_one(start + "Call-ID: " + id_at_limit + "i\r\n" + end);
  EXPECT_EQ(m.error, Error::line_too_long);
  m = tcp_one(start + "i: " + std::string(kMaxLine - 2, 'i') + "\r\n" + end);  // compact too
  EXPECT_EQ(m.error, Error::line_too_long);
  // The length is counted after unfolding.
  m = tcp_one(start + "Call-ID: " + std::string(200, 'i') + "\r\n    " + std::string(60, 'j') +
              "\r\n" + end);
  EXPECT_EQ(m.error, Error::line_too_long);
  m = tcp_one(start + "Call-ID: " + std::string(200, 'i') + "\r\n    " + std::string(40, 'j') +
              "\r\n" + end);
  EXPECT_EQ(m.error, Error::none);
  EXPECT_EQ(m.call_id_hash, fnv(std::string(200, 'i') + " " + std::string(40, 'j')));
  // Whitespace before a colon beyond the line limit still names the header.
  m = tcp_one(start + "Call-ID" + std::string(300, ' ') + ": a\r\n" + end);
  EXPECT_EQ(m.error, Error::line_too_long);
  // A long Content-Length leaves the end unknown.
  StreamReader r;
  auto got =
      feed(r, start + "Call-ID: a\r\nTo: <sip:b>\r\nContent-Length: " + std::string(300, '0') +
                  "\r\n\r\n" + kBye);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].error, Error::line_too_long);
  EXPECT_EQ(got[1].method, Method::bye);
  // A start line longer than kMaxLine.
  got = feed(r, "INVITE sip:" + std::string(300, 'u') + " SIP/2.0\r\n" + kBye);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].error, Error::line_too_long);
  EXPECT_EQ(got[1].method, Method::bye);
}

TEST(SipParse, HeaderLinesThatDoNotParse) {
  const std::string start = "OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n";
  const std::string end = "From: <sip:a>\r\nTo: <sip:b>\r\nContent-Length: 0\r\n\r\n";
  for (const char* bad :
       {"no colon\r\n", ": no name\r\n", "Bad Name: x\r\n", "Call-ID: b\r\n", "CSeq: 2 OPTIONS\r\n",
        "From: <sip:c>\r\n", "t: <sip:d>\r\n", "Content-Type: a/b\r\nc: a/b\r\n"}) {
    StreamReader r;
    const auto got = feed(r, start + bad + end + kAck);
    ASSERT_EQ(got.size(), 2u) << bad;
    EXPECT_EQ(got[0].error, Error::header) << bad;
    EXPECT_EQ(got[1].error, Error::none) << bad;  // the end was known
  }
}

TEST(SipParse, Tags) {
  const auto from = [](const std::string& value) {
    return udp("OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nFrom: " + value +
               "\r\nTo: <sip:b>\r\n\r\n")
        .from_tag;
  };
  EXPECT_EQ(from("<sip:a@b>;tag=x1"), fnv("x1"));
  EXPECT_EQ(from("sip:a@b;tag=x2"), fnv("x2"));  // no <...>: the parameters are the header's
  EXPECT_EQ(from("\"A\" <sip:a@b;tag=inside>;tag=x3"), fnv("x3"));
  EXPECT_EQ(from("\"A;tag=quoted \\\" still\" <sip:a@b>;tag=x4"), fnv("x4"));
  EXPECT_EQ(from("<sip:a@b>;foo=\"q;tag=no\";TAG = x5 ;bar"), fnv("x5"));
  EXPECT_EQ(from("<sip:a@b>;tagx=1;tag=x6"), fnv("x6"));
  EXPECT_EQ(from("<sip:a@b;tag=inside>"), 0u);
  EXPECT_EQ(from("<sip:a@b>;tag="), 0u);
  EXPECT_EQ(from("<sip:a@b>;tag"), 0u);
  EXPECT_EQ(from("\"unterminated;tag=x <sip:a@b>"), 0u);
}

// The messages of a call, with keepalives between them.
const std::string kCall = kInvite + "\r\n\r\n" + kOk + kAck + "\r\n" + kBye;

std::vector<Message> read_whole(const std::string& stream) {
  StreamReader r;
  return feed(r, stream);
}

TEST(SipParse, SplitAtEveryByteBoundary) {
  const std::vector<Message> whole = read_whole(kCall);
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].method, Method::invite);
  EXPECT_EQ(whole[1].status, 200);
  EXPECT_EQ(whole[2].method, Method::ack);
  EXPECT_EQ(whole[3].method, Method::bye);
  for (const Message& m : whole) EXPECT_EQ(m.error, Error::none);
  for (size_t split = 0; split <= kCall.size(); ++split) {
    StreamReader r;
    std::vector<Message> got = feed(r, std::string_view(kCall).substr(0, split));
    EXPECT_TRUE(r.valid());
    const std::vector<Message> rest = feed(r, std::string_view(kCall).substr(split));
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got.size(), whole.size()) << "split at " << split;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(same(got[i], whole[i])) << "split at " << split << ", message " << i;
    }
  }
  // One byte at a time, copying the reader between bytes as the checkpoint does.
  StreamReader r;
  std::vector<Message> got;
  for (const char c : kCall) {
    StreamReader copy;
    std::memcpy(static_cast<void*>(&copy), &r, sizeof r);
    ASSERT_TRUE(copy.valid());
    const std::vector<Message> one = feed(copy, std::string_view(&c, 1));
    got.insert(got.end(), one.begin(), one.end());
    r = copy;
  }
  ASSERT_EQ(got.size(), whole.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(same(got[i], whole[i])) << i;
}

TEST(SipParse, SplitFoldedAndMalformedMessagesToo) {
  // Folding decisions and errors do not depend on where segments end.
  const std::string stream =
      "OPTIONS sip:x SIP/2.0\r\nCall-ID:\r\n abc\r\nCSeq: 1\r\n OPTIONS\r\nFrom: <sip:a>\r\n"
      "\t;tag=t\r\nTo: <sip:b>\r\nContent-Length: 0\r\n\r\n" +
      request("", "v=0\r\nm=audio 1 RTP/AVP 0\r\nbad line\r\nm=audio 2 RTP/AVP 0") + "garbage\r\n" +
      request("", "c=IN IP4 192.0.2.1\r\nm=audio 9 RTP/AVP 0");
  const std::vector<Message> whole = read_whole(stream);
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].error, Error::none);
  EXPECT_EQ(whole[0].from_tag, fnv("t"));
  EXPECT_EQ(whole[1].error, Error::sdp);
  EXPECT_EQ(whole[2].error, Error::start_line);
  EXPECT_EQ(whole[3].error, Error::none);
  EXPECT_EQ(whole[3].sdp.streams[0].port, 9);  // the last line ends with the body
  for (size_t split = 0; split <= stream.size(); ++split) {
    StreamReader r;
    std::vector<Message> got = feed(r, std::string_view(stream).substr(0, split));
    const std::vector<Message> rest = feed(r, std::string_view(stream).substr(split));
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got.size(), whole.size()) << "split at " << split;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(same(got[i], whole[i])) << "split at " << split << ", message " << i;
    }
  }
}

TEST(SipParse, TwoMessagesInOneFeed) {
  StreamReader r;
  const auto got = feed(r, kAck + kBye);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].method, Method::ack);
  EXPECT_EQ(got[1].method, Method::bye);
  EXPECT_TRUE(r.idle());
}

TEST(SipParse, KeepalivesBetweenMessages) {
  StreamReader r;
  EXPECT_TRUE(r.idle());
  EXPECT_TRUE(feed(r, "\r\n\r\n").empty());
  EXPECT_TRUE(r.idle());
  EXPECT_TRUE(feed(r, "\r").empty());
  EXPECT_TRUE(r.idle());  // half a keepalive
  EXPECT_TRUE(feed(r, "\n\n\r\n").empty());
  EXPECT_TRUE(feed(r, kAck.substr(0, 10)).empty());
  EXPECT_FALSE(r.idle());
  auto got = feed(r, kAck.substr(10) + "\r\n\r\n");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].error, Error::none);
  EXPECT_TRUE(r.idle());
  // Mid-body is not idle.
  got = feed(r, kInvite.substr(0, kInvite.size() - 5));
  EXPECT_TRUE(got.empty());
  EXPECT_FALSE(r.idle());
}

TEST(SipParse, ResyncAfterALostStartLine) {
  StreamReader r;
  // The start of a message was lost: its headers and body arrive first.
  const size_t cut = kInvite.find("Via:");
  auto got = feed(r, kInvite.substr(cut) + kBye);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].error, Error::start_line);
  EXPECT_EQ(got[1].error, Error::none);
  EXPECT_EQ(got[1].method, Method::bye);
  // Nothing but the start line found again is reported.
  got = feed(r, "junk\r\n");
  ASSERT_EQ(got.size(), 1u);
  got = feed(r, "more junk\r\nv=0\r\n\r\n" + kAck);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, Method::ack);
}

TEST(SipParse, ResyncAfterAGap) {
  StreamReader r;
  EXPECT_TRUE(feed(r, kInvite.substr(0, 200)).empty());
  EXPECT_FALSE(r.idle());
  r.resync();  // bytes were lost
  EXPECT_TRUE(r.idle());
  EXPECT_TRUE(r.valid());
  // The reader skips the rest of the INVITE, even its body, up to a start line.
  auto got = feed(r, kInvite.substr(300) + kOk);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 200);
  EXPECT_EQ(got[0].error, Error::none);
  // Also from the middle of a line: the partial line is not a start line.
  r.resync();
  got = feed(r, "ip:service@192.0.2.20:5060 SIP/2.0\r\nCSeq: 1 INVITE\r\n" + kBye);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, Method::bye);
  // resync() between messages: the gap may have held a start line.
  r.resync();
  got = feed(r, "Content-Length: 0\r\n\r\n" + kAck);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, Method::ack);
}

TEST(SipParse, MalformedMessageWithAKnownEnd) {
  StreamReader r;
  const std::string bad_sdp = request("", "v=0\r\nthis is not sdp\r\nm=audio 1 RTP/AVP 0\r\n");
  const auto got = feed(r, bad_sdp + kBye);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].error, Error::sdp);
  EXPECT_TRUE(got[0].has_sdp);
  EXPECT_EQ(got[1].error, Error::none);
}

TEST(SipParse, Datagrams) {
  // The same message reads the same over UDP and TCP.
  for (const std::string* text : {&kInvite, &kOk, &kAck, &kBye}) {
    EXPECT_TRUE(same(udp(*text), tcp_one(*text)));
  }
  // Leading CRLFs are skipped, bytes after Content-Length ignored.
  EXPECT_TRUE(same(udp("\r\n" + kInvite + "trailing junk"), tcp_one(kInvite)));
  // Without Content-Length the body is the rest of the datagram.
  const std::string no_length =
      "INVITE sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nFrom: <sip:a>\r\nTo: <sip:b>\r\n"
      "Content-Type: application/sdp\r\n\r\n" +
      kSdpOffer;
  Message m = udp(no_length);
  EXPECT_EQ(m.error, Error::none);
  ASSERT_TRUE(m.has_sdp);
  EXPECT_EQ(m.sdp.count, 2);
  // The last SDP line may end with the datagram.
  m = udp(no_length + "m=audio 8000 RTP/AVP 0");
  EXPECT_EQ(m.error, Error::none);
  ASSERT_EQ(m.sdp.count, 3);
  EXPECT_EQ(m.sdp.streams[2].port, 8000);
  // A Content-Length beyond the datagram: truncated.
  const std::string full = kInvite;
  m = udp(full.substr(0, full.size() - 1));
  EXPECT_EQ(m.error, Error::truncated);
  EXPECT_EQ(m.method, Method::invite);
  // Headers that do not end: truncated.
  m = udp(kAck.substr(0, kAck.size() - 2));
  EXPECT_EQ(m.error, Error::truncated);
  EXPECT_EQ(m.call_id_hash, fnv("1-4711@192.0.2.10"));  // the last complete header counted
  m = udp(kAck.substr(0, kAck.find("\r\n") + 10));      // in a header line
  EXPECT_EQ(m.error, Error::truncated);
  EXPECT_EQ(m.method, Method::ack);
  m = udp(kAck.substr(0, 20));  // in the start line: not one, as far as it goes
  EXPECT_EQ(m.error, Error::start_line);
  m = udp("INVITE sip:x SIP/2.0");
  EXPECT_EQ(m.error, Error::truncated);
  m = udp("hello");
  EXPECT_EQ(m.error, Error::start_line);
  m = udp("\r\n\x16\x03\x01");
  EXPECT_EQ(m.error, Error::start_line);
  // Keepalives (RFC 5626 4.4.1) are not messages.
  for (const char* keepalive : {"", "\r\n", "\r\n\r\n", "\n", "\r"}) {
    EXPECT_FALSE(parse_datagram(bytes(keepalive), std::strlen(keepalive), &m)) << keepalive;
  }
}

TEST(SipParse, SessionAndMediaConnectionAddresses) {
  const Message m = sdp_message(
      "v=0\r\n"
      "o=- 1 1 IN IP4 192.0.2.1\r\n"
      "s=-\r\n"
      "c=IN IP4 192.0.2.1\r\n"
      "t=0 0\r\n"
      "m=audio 10000 RTP/AVP 0\r\n"
      "m=video 10002 RTP/AVP 96\r\n"
      "c=IN IP4 198.51.100.7/127\r\n"
      "m=audio 10004 RTP/AVP 0\r\n"
      "c=IN IP6 2001:db8::7\r\n");
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  ASSERT_EQ(m.sdp.count, 3);
  EXPECT_EQ(m.sdp.streams[0].address, addr("192.0.2.1"));
  EXPECT_EQ(m.sdp.streams[1].address, addr("198.51.100.7"));
  EXPECT_EQ(m.sdp.streams[2].address, addr("2001:db8::7"));
  // Only media-level addresses.
  const Message media_only = sdp_message(
      "v=0\r\nm=audio 10000 RTP/AVP 0\r\nc=IN IP6 ::1\r\nm=audio 2 RTP/AVP 0\r\n"
      "c=IN IP4 224.2.1.1/127/1\r\n");
  EXPECT_EQ(media_only.error, Error::none);
  EXPECT_EQ(media_only.sdp.streams[0].address, addr("::1"));
  EXPECT_EQ(media_only.sdp.streams[1].address, addr("224.2.1.1"));
  // A section with no address at all, even refused.
  EXPECT_EQ(sdp_message("v=0\r\nm=audio 10000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n"
                        "m=audio 0 RTP/AVP 0\r\n")
                .error,
            Error::sdp);
  EXPECT_EQ(sdp_message("v=0\r\nm=audio 10000 RTP/AVP 0\r\n").error, Error::sdp);
  // A session-level c= after an m= line belongs to that section.
  EXPECT_EQ(sdp_message("v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n"
                        "m=audio 2 RTP/AVP 0\r\n")
                .error,
            Error::sdp);
}

TEST(SipParse, BadConnectionLines) {
  for (const char* bad : {
           "c=IN IP4 192.0.2.256",
           "c=IN IP4 192.0.2",
           "c=IN IP4 host.example.com",
           "c=IN IP4 2001:db8::1",
           "c=IN IP6 192.0.2.1",
           "c=IN IP6 ::ffff:192.0.2.1",
           "c=IN IP6 ff15::1/3",
           "c=IN IP4",
           "c=IN",
           "c=",
           "c=IN IP5 192.0.2.1",
           "c=ATM IP4 192.0.2.1",
           "c=in ip4 192.0.2.1",
           "c=IN IP4 192.0.2.1 extra",
           "c=IN IP4 192.0.2.1/",
           "c=IN IP4 192.0.2.1/256",
           "c=IN IP4 192.0.2.1/1/0",
           "c=IN IP4 192.0.2.1/1/x",
           "c=IN IP4 192.0.2.1/1/2/3",
           "c=IN IP4 01.2.3.4",
       }) {
    const Message m = sdp_message(std::string("v=0\r\n") + bad + "\r\nm=audio 1 RTP/AVP 0\r\n");
    EXPECT_EQ(m.error, Error::sdp) << bad;
  }
  // One c= per level.
  EXPECT_EQ(
      sdp_message("c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\nm=audio 1 RTP/AVP 0\r\n").error,
      Error::sdp);
  EXPECT_EQ(
      sdp_message("m=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n").error,
      Error::sdp);
}

TEST(SipParse, MediaLines) {
  const Message m = sdp_message(
      "c=IN IP4 192.0.2.1\r\n"
      "m=audio 0 RTP/AVP 0\r\n"
      "m=image 5000 udptl t38\r\n"
      "m=video 65535/1 RTP/SAVPF 96 97\r\n"
      "m=audio 1 RTP/AVP 0\r\n");
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  ASSERT_EQ(m.sdp.count, 4);
  EXPECT_EQ(m.sdp.streams[0].port, 0);
  EXPECT_EQ(m.sdp.streams[0].rtcp_port, 0);
  EXPECT_EQ(m.sdp.streams[1].kind, MediaKind::other);
  EXPECT_EQ(m.sdp.streams[1].port, 5000);
  EXPECT_EQ(m.sdp.streams[2].kind, MediaKind::video);
  EXPECT_EQ(m.sdp.streams[2].port, 65535);
  EXPECT_EQ(m.sdp.streams[2].rtcp_port, 0);  // no port + 1
  EXPECT_EQ(m.sdp.streams[3].rtcp_port, 2);
  for (const char* bad :
       {"m=audio 5000/2 RTP/AVP 0", "m=audio 5000/0 RTP/AVP 0", "m=audio 5000/ RTP/AVP 0",
        "m=audio 65536 RTP/AVP 0", "m=audio -1 RTP/AVP 0", "m=audio x RTP/AVP 0",
        "m=audio 5000 RTP/AVP", "m=audio 5000", "m=audio", "m="}) {
    EXPECT_EQ(sdp_message(std::string("c=IN IP4 192.0.2.1\r\n") + bad + "\r\n").error, Error::sdp)
        << bad;
  }
}

TEST(SipParse, RtcpPorts) {
  const Message m = sdp_message(
      "c=IN IP4 192.0.2.1\r\n"
      "a=rtcp:1\r\n"  // session level: not an RTCP port of any stream
      "m=audio 10000 RTP/AVP 0\r\n"
      "a=rtcp:10101\r\n"
      "m=audio 10002 RTP/AVP 0\r\n"
      "a=rtcp:10201 IN IP4 192.0.2.1\r\n"
      "m=audio 10004 RTP/AVP 0\r\n"
      "a=rtcp-mux\r\n"
      "a=rtcp:10301\r\n"  // mux wins, in either order
      "a=rtcp-fb:* nack\r\n"
      "m=video 10006 RTP/AVP 96\r\n"
      "a=rtcp:10401\r\n"
      "a=rtcp-mux\r\n");
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  ASSERT_EQ(m.sdp.count, 4);
  EXPECT_EQ(m.sdp.streams[0].rtcp_port, 10101);
  EXPECT_EQ(m.sdp.streams[1].rtcp_port, 10201);
  EXPECT_EQ(m.sdp.streams[2].rtcp_port, 10004);
  EXPECT_EQ(m.sdp.streams[3].rtcp_port, 10006);
  for (const char* bad :
       {"a=rtcp", "a=rtcp:", "a=rtcp:x", "a=rtcp:65536", "a=rtcp:1x", "a=rtcp-mux:1"}) {
    EXPECT_EQ(
        sdp_message(std::string("c=IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0\r\n") + bad + "\r\n")
            .error,
        Error::sdp)
        << bad;
  }
}

TEST(SipParse, AtMostFourStreamsAreRead) {
  std::string body = "v=0\r\nc=IN IP4 192.0.2.1\r\n";
  for (int i = 0; i < 6; ++i) {
    body += "m=audio " + std::to_string(20000 + 2 * i) + " RTP/AVP 0\r\n";
    // Lines of ignored sections are not read, even their addresses.
    body += i < 4 ? "a=rtcp-mux\r\n" : "c=IN IP4 not-an-address\r\nm=audio 5/3 x y\r\n";
  }
  const Message m = sdp_message(body);
  EXPECT_EQ(m.error, Error::none) << error_name(m.error);
  EXPECT_EQ(m.sdp.count, kMaxStreams);
  EXPECT_EQ(m.sdp.ignored, 4);
  EXPECT_EQ(m.sdp.streams[3].port, 20006);
  EXPECT_EQ(m.sdp.streams[3].rtcp_port, 20006);
  // Exactly five: four read, one ignored.
  std::string five = "c=IN IP4 192.0.2.1\r\n";
  for (int i = 0; i < 5; ++i) five += "m=audio " + std::to_string(1000 + i) + " RTP/AVP 0\r\n";
  const Message n = sdp_message(five);
  EXPECT_EQ(n.error, Error::none);
  EXPECT_EQ(n.sdp.count, 4);
  EXPECT_EQ(n.sdp.ignored, 1);
  // Ignored sections' lines must still be SDP lines.
  EXPECT_EQ(sdp_message(five + "junk\r\n").error, Error::sdp);
}

TEST(SipParse, SdpLinesAreTypeEqualsValue) {
  const std::string good = "c=IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0\r\n";
  for (const char* bad :
       {"line without equals", "v", "=0", "V=0", "1=0", " v=0", "v =0", "", "\xff=x"}) {
    EXPECT_EQ(sdp_message(good + bad + "\r\n").error, Error::sdp) << bad;
  }
  // Unknown types and empty values are lines like any other; LF alone ends a line.
  EXPECT_EQ(sdp_message(good + "z=\nx=whatever\n").error, Error::none);
  // Long lines: skipped unless their content is read.
  const std::string long_value(kMaxLine, 'x');
  EXPECT_EQ(sdp_message(good + "a=candidate:" + long_value + "\r\n").error, Error::none);
  EXPECT_EQ(sdp_message(good + "a=rtcp:1 " + long_value + "\r\n").error, Error::line_too_long);
  EXPECT_EQ(sdp_message(good + "c=IN IP4 " + long_value + "\r\n").error, Error::line_too_long);
  EXPECT_EQ(sdp_message("c=IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP " + long_value + "\r\n").error,
            Error::line_too_long);
  // A line of kMaxLine bytes is read.
  std::string at_limit = "a=x:";
  at_limit += std::string(kMaxLine - at_limit.size(), 'y');
  EXPECT_EQ(sdp_message(good + at_limit + "\r\n").error, Error::none);
}

TEST(SipParse, OnlySdpBodiesAreRead) {
  const std::string not_sdp = "this is <xml/> not SDP\r\n\r\n";
  Message m = tcp_one(request("", not_sdp, "application/pidf+xml"));
  EXPECT_EQ(m.error, Error::none);
  EXPECT_FALSE(m.has_sdp);
  for (const char* type : {"application/sdp", "APPLICATION/SDP", "application / sdp",
                           "application/sdp; charset=utf-8", "application/sdp;version=1"}) {
    m = tcp_one(request("", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5 RTP/AVP 0\r\n", type));
    EXPECT_EQ(m.error, Error::none) << type;
    EXPECT_TRUE(m.has_sdp) << type;
    EXPECT_EQ(m.sdp.streams[0].port, 5) << type;
  }
  for (const char* type :
       {"application/sdpx", "multipart/mixed;boundary=x", "text/plain", "application"}) {
    m = tcp_one(request("", not_sdp, type));
    EXPECT_EQ(m.error, Error::none) << type;
    EXPECT_FALSE(m.has_sdp) << type;
  }
  // An empty body is not SDP, whatever the type says.
  m = tcp_one(request("", ""));
  EXPECT_EQ(m.error, Error::none);
  EXPECT_FALSE(m.has_sdp);
}

TEST(SipParse, ErrorNames) {
  EXPECT_STREQ(error_name(Error::none), "none");
  EXPECT_STREQ(error_name(Error::start_line), "start_line");
  EXPECT_STREQ(error_name(Error::header), "header");
  EXPECT_STREQ(error_name(Error::missing_header), "missing_header");
  EXPECT_STREQ(error_name(Error::content_length), "content_length");
  EXPECT_STREQ(error_name(Error::body_too_large), "body_too_large");
  EXPECT_STREQ(error_name(Error::line_too_long), "line_too_long");
  EXPECT_STREQ(error_name(Error::sdp), "sdp");
  EXPECT_STREQ(error_name(Error::truncated), "truncated");
}

// A reader as its bytes.
struct Image {
  uint8_t b[sizeof(StreamReader)];
};
Image image_of(const StreamReader& r) {
  Image i;
  std::memcpy(i.b, &r, sizeof r);
  return i;
}
StreamReader reader_of(const Image& i) {
  StreamReader r;
  std::memcpy(static_cast<void*>(&r), i.b, sizeof r);
  return r;
}

TEST(SipParse, ValidRejectsCorruptedCopies) {
  EXPECT_TRUE(StreamReader().valid());
  Image zero;
  std::memset(zero.b, 0, sizeof zero.b);
  EXPECT_TRUE(reader_of(zero).valid());  // all zeroes: a fresh reader
  Image ones;
  std::memset(ones.b, 0xff, sizeof ones.b);
  EXPECT_FALSE(reader_of(ones).valid());

  // Readers caught at several points of a call: in headers (with a header
  // held), in an SDP body, lost.
  std::vector<Image> states;
  for (const size_t at :
       {kInvite.find("CSeq"), kInvite.find("\r\n\r\n") + 30, kInvite.size() - 3}) {
    StreamReader r;
    feed(r, kInvite.substr(0, at));
    ASSERT_TRUE(r.valid());
    states.push_back(image_of(r));
  }
  {
    StreamReader r;
    feed(r, "junk\r\nmore");
    ASSERT_TRUE(r.valid());
    states.push_back(image_of(r));
  }
  // Every byte set to values that break lengths and flags: either valid()
  // says no, or the reader goes on safely (run under ASan) and gives
  // messages within bounds.
  size_t rejected = 0;
  size_t tried = 0;
  for (const Image& state : states) {
    for (size_t at = 0; at < sizeof(Image); ++at) {
      for (const uint8_t value : {uint8_t{0xff}, uint8_t{0x80}, uint8_t{0x02}}) {
        Image corrupt = state;
        corrupt.b[at] = value;
        StreamReader r = reader_of(corrupt);
        ++tried;
        if (!r.valid()) {
          ++rejected;
          continue;
        }
        r.feed(bytes(kCall), kCall.size(), [&](const Message& m) {
          EXPECT_LE(m.call_id_len, kMaxCallId);
          EXPECT_LE(m.sdp.count, kMaxStreams);
        });
        EXPECT_TRUE(r.valid()) << "byte " << at;
      }
    }
  }
  EXPECT_GT(rejected, 0u);
  EXPECT_LT(rejected, tried);
}

}  // namespace
}  // namespace holdfast::sip
