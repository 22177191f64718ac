// The FTP control channel's text, as far as a firewall must read it.
//
// Theory of operation: an FTP session announces the address and port of
// every data connection in its control channel, in one of four forms:
//   client: PORT h1,h2,h3,h4,p1,p2          (RFC 959 4.1.2, IPv4 only)
//   client: EPRT |af|address|port|          (RFC 2428 2; af 1 = IPv4, 2 = IPv6)
//   server: 227 ... h1,h2,h3,h4,p1,p2 ...   (RFC 959 4.2, reply to PASV; RFC
//                                           1123 4.1.2.6: scan for the digits)
//   server: 229 ... (<d><d><d>port<d>)      (RFC 2428 3, reply to EPSV; any
//                                           delimiter from 33 to 126)
// Lines end with CRLF (RFC 959 4.1, 4.2); a multi-line reply is "nnn-text"
// up to a line "nnn text" (RFC 959 4.2), and only its last line is read.
//
// Everything here works on bytes given with their length, never reads past
// them, and allocates nothing: the dataplane calls it on packet payloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "dataplane/ip_address.h"

namespace holdfast::ftp {

// Control lines are at most this long (RFC 959 has no limit; real servers
// and clients stay well below); a longer line is skipped, not parsed.
inline constexpr size_t kMaxLine = 512;

// An address and port announced for a data connection.
struct Announcement {
  enum class Kind : uint8_t { port, eprt, pasv_reply, epsv_reply };
  Kind kind = Kind::port;
  bool has_address = false;  // an EPSV reply gives only the port
  IpAddr address;
  uint16_t port = 0;
};

// Why a line that looks like an announcement was not accepted.
enum class ParseError : uint8_t { none, not_announcement, malformed };

// Parses one complete control line (without its CRLF). From the client
// (from_client) it looks for PORT and EPRT, from the server for the final
// line of a 227 or 229 reply. Returns the announcement, or nothing with
// *error set to not_announcement (an ordinary line) or malformed (a PORT,
// EPRT, 227 or 229 line whose arguments do not parse).
std::optional<Announcement> parse_line(std::string_view line, bool from_client, ParseError* error);

// Assembles a byte stream into lines, bounded. Bytes arrive in order (the
// caller handles sequence numbers); a line longer than kMaxLine is dropped
// up to its end.
class LineAssembler {
 public:
  // Feeds bytes; calls on_line(std::string_view) for every complete line.
  template <typename OnLine>
  void feed(const uint8_t* data, size_t n, OnLine&& on_line) {
    for (size_t i = 0; i < n; ++i) {
      const char c = static_cast<char>(data[i]);
      if (c == '\n') {
        if (!overflow_) {
          size_t len = length_;
          if (len != 0 && buffer_[len - 1] == '\r') --len;
          on_line(std::string_view(buffer_, len));
        }
        length_ = 0;
        overflow_ = 0;
        continue;
      }
      if (length_ == kMaxLine) {
        overflow_ = 1;  // keep skipping up to the end of this line
        continue;
      }
      buffer_[length_++] = c;
    }
  }
  size_t pending() const { return length_; }
  // For a copy read back from the checkpoint store.
  bool valid() const { return length_ <= kMaxLine && overflow_ <= 1; }

 private:
  char buffer_[kMaxLine];
  uint16_t length_ = 0;
  uint8_t overflow_ = 0;  // not bool: a slice read back from the store may hold any byte
};

}  // namespace holdfast::ftp
