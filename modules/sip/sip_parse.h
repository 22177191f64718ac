// SIP signalling and its SDP bodies, as far as a firewall must read them.
//
// Theory of operation: a SIP call announces the address and port of each of
// its media streams in an SDP body (RFC 4566) carried by its signalling
// messages (RFC 3261). This file reads those messages and nothing more:
//
//   message   start line, header lines, empty line, body (RFC 3261 7).
//             Request line `Method SP Request-URI SP SIP/2.0` (7.1), status
//             line `SIP/2.0 SP 3DIGIT SP Reason-Phrase` (7.2), single spaces,
//             no other whitespace. Lines end with LF, a CR before it is
//             stripped; empty lines before a start line are skipped (7.5, and
//             RFC 5626 4.4.1 keepalives).
//   headers   `name LWS ":" value`, names case-insensitive with the compact
//             forms of 7.3.3; a line starting with SP or HT continues the
//             previous header and is joined with one space (7.3.1). Read:
//             Call-ID (20.8), CSeq (20.16; in a request its method must be
//             the request's, 8.1.1.5), From and To (20.20, 20.39; the tag
//             parameter, 19.3), Content-Length (20.14) and Content-Type
//             (20.15). Call-ID, CSeq, From and To are required (8.1.1);
//             Content-Length too on a stream transport (18.3), where it is
//             the only message delimiter.
//   body      SDP when Content-Type is application/sdp: every line
//             `<type>=<value>` (RFC 4566 5), c= (5.7) gives the address,
//             m= (5.14) the media, port and port count, a=rtcp (RFC 3605)
//             and a=rtcp-mux (RFC 5761 5.1.1) the RTCP port. Any other body
//             is counted, not read.
//
// Nothing is buffered but one line: a header line is held until the first
// byte of the next line shows whether it is continued, SDP lines are parsed
// as the body streams in, and a line longer than kMaxLine is malformed when
// its content matters and skipped when it does not. Everything here works on
// bytes given with their length, never reads past them and allocates
// nothing: the dataplane calls it on packet payloads, and StreamReader lives
// in a checkpointed slice (trivially copyable, valid() checks a copy read
// back from the store).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "dataplane/ip_address.h"

namespace holdfast::sip {

inline constexpr size_t kMaxLine = 256;     // a header line after unfolding, or an SDP line
inline constexpr size_t kMaxStreams = 4;    // m= sections read per SDP
inline constexpr size_t kMaxCallId = 64;    // Call-ID bytes kept for display
inline constexpr uint32_t kMaxBody = 8192;  // larger Content-Length: malformed

// Methods of RFC 3261, RFC 3262 (PRACK) and RFC 3311 (UPDATE); any other
// token is `other`. Method names are case-sensitive (RFC 3261 7.1).
enum class Method : uint8_t {
  none,
  invite,
  ack,
  bye,
  cancel,
  update,
  prack,
  options,
  register_,
  other
};
enum class MediaKind : uint8_t { audio, video, other };

// Why a message is malformed (the first reason found).
enum class Error : uint8_t {
  none,
  start_line,      // not a request or status line
  header,          // a header line that does not parse, or a bad Call-ID/CSeq/From/To
  missing_header,  // Call-ID, CSeq, From or To absent; Content-Length absent on TCP
  content_length,  // not digits, or duplicates that disagree
  body_too_large,  // Content-Length above kMaxBody
  line_too_long,   // a line longer than kMaxLine whose content is read
  sdp,             // an SDP line that breaks RFC 4566 as read here
  truncated,       // UDP: the datagram ends before the message does
};
const char* error_name(Error e);

// One m= section. Zero when unused.
struct MediaStream {
  IpAddr address;          // its own c=, else the session-level c=
  uint16_t port = 0;       // 0: stream refused or disabled (RFC 3264 6)
  uint16_t rtcp_port = 0;  // a=rtcp, a=rtcp-mux (== port), else port + 1; 0 for port 0, 65535
  MediaKind kind = MediaKind::audio;
  uint8_t reserved[3] = {};
};
static_assert(sizeof(MediaStream) == 24 && std::is_trivially_copyable_v<MediaStream>);

struct SessionDescription {
  MediaStream streams[kMaxStreams];
  uint8_t count = 0;    // m= sections read (<= kMaxStreams)
  uint8_t ignored = 0;  // m= sections beyond kMaxStreams (saturates at 255)
};
static_assert(sizeof(SessionDescription) == 98 && std::is_trivially_copyable_v<SessionDescription>);

// What a complete message said. Fields are filled as far as the message
// parsed; when error is not none the message is malformed and only error is
// to be trusted.
struct Message {
  bool request = false;
  Method method = Method::none;  // request: its method; response: the CSeq method
  uint16_t status = 0;           // responses: 100..699
  uint32_t cseq = 0;
  uint64_t call_id_hash = 0;      // 64-bit FNV-1a of the Call-ID value, whitespace trimmed
  uint64_t from_tag = 0;          // FNV-1a of From's tag parameter (0: none)
  uint64_t to_tag = 0;            // FNV-1a of To's tag parameter (0: none)
  char call_id[kMaxCallId] = {};  // the first kMaxCallId bytes of the Call-ID, for display
  uint8_t call_id_len = 0;
  bool has_sdp = false;  // Content-Type application/sdp and a non-empty body
  SessionDescription sdp;
  Error error = Error::none;
  uint8_t reserved[3] = {};
};
static_assert(sizeof(Message) == 200 && std::is_trivially_copyable_v<Message> &&
              std::has_unique_object_representations_v<Message>);

// Reads one direction of a SIP-over-TCP stream. Bytes arrive in order (the
// caller handles sequence numbers); messages are delimited by Content-Length.
// After a malformed message whose end is known (its Content-Length was read)
// reading goes on with the next message; when its end is not known (a bad
// start line, a bad or missing Content-Length) the reader is lost and skips
// lines up to one that is a SIP start line, as it does after resync().
class StreamReader {
 public:
  // Calls on_message(const Message&) for each complete message, in order,
  // including malformed ones (error != none).
  template <typename OnMessage>
  void feed(const uint8_t* data, size_t n, OnMessage&& on_message) {
    while (n != 0) {
      bool done = false;
      const size_t used = consume(data, n, /*datagram=*/false, &done);
      data += used;
      n -= used;
      if (done) {
        on_message(static_cast<const Message&>(message_));
        reset_message();
      }
    }
  }
  // Gives up the message in progress (a gap in the stream): skips to the
  // next start line.
  void resync();
  // No message in progress: between messages, or lost and between lines.
  bool idle() const;
  // For a copy read back from the checkpoint store: every length and state
  // field in range (the bytes may be anything).
  bool valid() const;

 private:
  friend bool parse_datagram(const uint8_t* data, size_t n, Message* out);

  enum class Phase : uint8_t { start, headers, body, lost };
  static constexpr size_t kLineCapacity = kMaxLine + 1;  // room for the CR before LF

  size_t consume(const uint8_t* data, size_t n, bool datagram, bool* done);
  bool gather(const uint8_t** p, const uint8_t* end);
  void append(const uint8_t* s, size_t len);
  void end_line();
  void clear_line();
  void reset_message();
  void set_error(Error e);
  bool start_line();
  void unfold();
  void header_line();
  bool end_headers(bool datagram, size_t rest);
  void sdp_line();
  void sdp_connection(std::string_view value);
  void sdp_attribute(std::string_view value);
  void end_body();
  void end_datagram();

  Message message_;           // the message in progress
  uint64_t method_hash_ = 0;  // FNV-1a of the request method, for CSeq
  IpAddr session_address_;    // the session-level c=
  uint32_t content_length_ = 0;
  uint32_t body_left_ = 0;  // body bytes still to read
  uint16_t line_len_ = 0;   // bytes in line_ (<= kLineCapacity)
  Phase phase_ = Phase::start;
  // Flags are bytes, not bools: a copy read back from the store may hold any byte.
  uint8_t overflow_ = 0;      // the line is longer than kMaxLine
  uint8_t held_ = 0;          // line_ holds a complete header line, maybe continued
  uint8_t skip_ws_ = 0;       // skipping the leading whitespace of a continuation
  uint8_t seen_ = 0;          // header bits (sip_parse.cc) seen in this message
  uint8_t length_state_ = 0;  // Content-Length: 0 none, 1 good, 2 bad
  uint8_t content_sdp_ = 0;   // Content-Type is application/sdp
  uint8_t body_sdp_ = 0;      // the body is being read as SDP
  uint8_t sdp_level_ = 0;     // 0 session, 1..kMaxStreams that stream, kMaxStreams + 1 skipped
  uint8_t session_has_address_ = 0;
  uint8_t own_address_ = 0;                // bit per stream: it has its own c=
  uint8_t rtcp_mux_ = 0;                   // bit per stream: a=rtcp-mux
  [[maybe_unused]] uint8_t reserved_ = 0;  // no padding: equal states are equal bytes
  char line_[kLineCapacity] = {};
};
static_assert(std::is_trivially_copyable_v<StreamReader> &&
              std::has_unique_object_representations_v<StreamReader>);
static_assert(sizeof(StreamReader) == 504, "a checkpointed slice: keep it compact");

// Reads one UDP datagram, which is one message (RFC 3261 18.3): Content-Length
// is optional (without it the body is the rest of the datagram); if present it
// must not exceed the bytes after the headers (else Error::truncated), and
// bytes beyond it are ignored. Returns false for a datagram of CR and LF bytes
// only (a keepalive, RFC 5626 4.4.1); otherwise fills *out and returns true.
bool parse_datagram(const uint8_t* data, size_t n, Message* out);

}  // namespace holdfast::sip
