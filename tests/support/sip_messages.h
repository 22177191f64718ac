// SIP messages with SDP bodies for tests (RFC 3261, RFC 4566): what SIPp
// and real phones send, reduced to what the SIP module reads.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace holdfast::test {

struct Stream {
  Stream(std::string k, uint16_t p, std::string e = "")
      : kind(std::move(k)), port(p), extra(std::move(e)) {}
  std::string kind;
  uint16_t port;
  std::string extra;  // more a= lines, each ending in \r\n
};

inline std::string sdp(const char* addr, const std::vector<Stream>& streams) {
  std::string s = "v=0\r\no=- 1 1 IN IP4 " + std::string(addr) + "\r\ns=call\r\nc=IN IP4 " + addr +
                  "\r\nt=0 0\r\n";
  for (const Stream& m : streams) {
    s += "m=" + m.kind + " " + std::to_string(m.port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
         m.extra;
  }
  return s;
}

// A SIP message; body non-empty => application/sdp.
inline std::string message(const std::string& start, const std::string& call_id, uint32_t cseq,
                           const std::string& method, const std::string& body,
                           const std::string& to_tag = "") {
  std::string m = start + "\r\n";
  m += "Via: SIP/2.0/UDP 10.0.0.10:5061;branch=z9hG4bK-" + std::to_string(cseq) + "\r\n";
  m += "From: <sip:caller@10.0.0.10>;tag=caller1\r\n";
  m += "To: <sip:callee@198.51.100.20>" + (to_tag.empty() ? "" : ";tag=" + to_tag) + "\r\n";
  m += "Call-ID: " + call_id + "\r\n";
  m += "CSeq: " + std::to_string(cseq) + " " + method + "\r\n";
  m += "Max-Forwards: 70\r\n";
  if (!body.empty()) m += "Content-Type: application/sdp\r\n";
  m += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return m;
}

inline std::string request(const std::string& method, const std::string& call_id, uint32_t cseq,
                           const std::string& body = "") {
  return message(method + " sip:callee@198.51.100.20 SIP/2.0", call_id, cseq, method, body,
                 method == "INVITE" && cseq == 1 ? "" : "callee1");
}

inline std::string response(int status, const std::string& call_id, uint32_t cseq,
                            const std::string& method, const std::string& body = "") {
  return message("SIP/2.0 " + std::to_string(status) + " Reason", call_id, cseq, method, body,
                 "callee1");
}

}  // namespace holdfast::test
