#include "modules/sip/sip_parse.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace holdfast::sip {
namespace {

// Headers read, as bits of StreamReader::seen_.
enum HeaderBit : uint8_t {
  kOtherHeader = 0,
  kCallId = 1 << 0,
  kCSeq = 1 << 1,
  kFrom = 1 << 2,
  kTo = 1 << 3,
  kContentLength = 1 << 4,
  kContentType = 1 << 5,
};
constexpr uint8_t kRequiredHeaders = kCallId | kCSeq | kFrom | kTo;
constexpr uint8_t kAllHeaders = kRequiredHeaders | kContentLength | kContentType;

enum LengthState : uint8_t { kLengthNone, kLengthGood, kLengthBad };

constexpr uint8_t kSkippedSection = kMaxStreams + 1;

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv1a(std::string_view s) {
  uint64_t h = kFnvOffset;
  for (const char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnvPrime;
  }
  return h;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_ws(char c) {
  return c == ' ' || c == '\t';
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `lower_text` is given in lower case.
bool equals_nocase(std::string_view s, std::string_view lower_text) {
  if (s.size() != lower_text.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (lower(s[i]) != lower_text[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" /
// "+" / "`" / "'" / "~").
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '!':
    case '%':
    case '*':
    case '_':
    case '+':
    case '`':
    case '\'':
    case '~':
      return true;
    default:
      return false;
  }
}

size_t token_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_token_char(s[i])) ++i;
  return i;
}

bool is_token(std::string_view s) {
  return !s.empty() && token_length(s) == s.size();
}

// Decimal digits only, at most `max`.
bool parse_uint(std::string_view s, uint32_t max, uint32_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (const char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > max) return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

Method method_from(std::string_view token) {
  struct Name {
    std::string_view text;
    Method method;
  };
  static constexpr Name kNames[] = {
      {"INVITE", Method::invite},   {"ACK", Method::ack},
      {"BYE", Method::bye},         {"CANCEL", Method::cancel},
      {"UPDATE", Method::update},   {"PRACK", Method::prack},
      {"OPTIONS", Method::options}, {"REGISTER", Method::register_},
  };
  for (const Name& n : kNames) {
    if (n.text == token) return n.method;
  }
  return Method::other;
}

// The names this file reads, long and compact (RFC 3261 7.3.3).
uint8_t header_bit(std::string_view name) {
  if (name.size() == 1) {
    switch (lower(name[0])) {
      case 'i':
        return kCallId;
      case 'f':
        return kFrom;
      case 't':
        return kTo;
      case 'l':
        return kContentLength;
      case 'c':
        return kContentType;
      default:
        return kOtherHeader;
    }
  }
  if (equals_nocase(name, "call-id")) return kCallId;
  if (equals_nocase(name, "cseq")) return kCSeq;
  if (equals_nocase(name, "from")) return kFrom;
  if (equals_nocase(name, "to")) return kTo;
  if (equals_nocase(name, "content-length")) return kContentLength;
  if (equals_nocase(name, "content-type")) return kContentType;
  return kOtherHeader;
}

// "SIP/2.0": the version string is case-insensitive (RFC 3261 7.1).
bool is_version(std::string_view s) {
  return equals_nocase(s, "sip/2.0");
}

// RFC 3261 7.1 and 7.2: single spaces between the elements, no other
// whitespace. Fills request, method, status; *method_hash for a request.
bool parse_start_line(std::string_view line, Message* m, uint64_t* method_hash) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  const std::string_view first = line.substr(0, sp1);
  const std::string_view rest = line.substr(sp1 + 1);
  if (is_version(first)) {
    // Status-Line: SIP/2.0 SP 3DIGIT SP Reason-Phrase (which may be empty).
    if (rest.size() < 4 || rest[3] != ' ') return false;
    uint32_t status;
    if (!parse_uint(rest.substr(0, 3), 699, &status) || status < 100) return false;
    m->request = false;
    m->status = static_cast<uint16_t>(status);
    return true;
  }
  // Request-Line: Method SP Request-URI SP SIP-Version.
  if (!is_token(first)) return false;
  const size_t sp2 = rest.find(' ');
  if (sp2 == 0 || sp2 == std::string_view::npos) return false;
  for (size_t i = 0; i < sp2; ++i) {
    const auto c = static_cast<uint8_t>(rest[i]);
    if (c < 0x21 || c == 0x7f) return false;  // the URI has no whitespace or controls
  }
  if (!is_version(rest.substr(sp2 + 1))) return false;
  m->request = true;
  m->method = method_from(first);
  *method_hash = fnv1a(first);
  return true;
}

// The tag parameter of a From or To value (RFC 3261 19.3, 20.20): a header
// parameter, so outside the <...> of the URI and outside quoted strings.
uint64_t tag_hash(std::string_view v) {
  bool quoted = false;
  bool in_angle = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // quoted-pair
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (in_angle) {
      if (c == '>') in_angle = false;
      continue;
    }
    if (c == '"') {
      quoted = true;
      continue;
    }
    if (c == '<') {
      in_angle = true;
      continue;
    }
    if (c != ';') continue;
    size_t j = i + 1;
    while (j < v.size() && is_ws(v[j])) ++j;
    const size_t name_start = j;
    while (j < v.size() && is_token_char(v[j])) ++j;
    if (!equals_nocase(v.substr(name_start, j - name_start), "tag")) continue;
    while (j < v.size() && is_ws(v[j])) ++j;
    if (j == v.size() || v[j] != '=') return 0;
    ++j;
    while (j < v.size() && is_ws(v[j])) ++j;
    const size_t value_start = j;
    while (j < v.size() && v[j] != ';' && v[j] != ',' && !is_ws(v[j])) ++j;
    const std::string_view tag = v.substr(value_start, j - value_start);
    return tag.empty() ? 0 : fnv1a(tag);
  }
  return 0;
}

// application/sdp, case-insensitive, parameters allowed (RFC 3261 20.15;
// SLASH allows whitespace around "/", 25.1).
bool is_sdp_type(std::string_view v) {
  const std::string_view media_type = v.substr(0, v.find(';'));
  const size_t slash = media_type.find('/');
  if (slash == std::string_view::npos) return false;
  return equals_nocase(trim(media_type.substr(0, slash)), "application") &&
         equals_nocase(trim(media_type.substr(slash + 1)), "sdp");
}

// SDP fields are separated by spaces (RFC 4566 5); empty at the end.
std::string_view next_field(std::string_view s, size_t* i) {
  while (*i < s.size() && s[*i] == ' ') ++*i;
  const size_t start = *i;
  while (*i < s.size() && s[*i] != ' ') ++*i;
  return s.substr(start, *i - start);
}

bool parse_address(std::string_view text, bool v6, IpAddr* out) {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, raw) != 1) return false;
  *out = v6 ? IpAddr::from_v6_wire(raw) : IpAddr::from_v4_wire(raw);
  // An IP6 address written IPv4-mapped would read back as IPv4 (IpAddr holds
  // IPv4 that way): the announcement would not say what it seems to.
  return !v6 || !out->is_v4();
}

// c=IN IP4 <address>[/<ttl>[/<count>]] or c=IN IP6 <address> (RFC 4566 5.7).
bool parse_connection(std::string_view v, IpAddr* out) {
  size_t i = 0;
  const std::string_view nettype = next_field(v, &i);
  const std::string_view addrtype = next_field(v, &i);
  const std::string_view address = next_field(v, &i);
  if (nettype != "IN" || !next_field(v, &i).empty()) return false;
  if (addrtype == "IP6")
    return address.find('/') == std::string_view::npos && parse_address(address, true, out);
  if (addrtype != "IP4") return false;
  const size_t slash = address.find('/');
  if (slash == std::string_view::npos) return parse_address(address, false, out);
  std::string_view suffix = address.substr(slash + 1);
  const size_t slash2 = suffix.find('/');
  uint32_t ttl;
  uint32_t count = 1;
  if (!parse_uint(suffix.substr(0, slash2), 255, &ttl)) return false;
  if (slash2 != std::string_view::npos &&
      (!parse_uint(suffix.substr(slash2 + 1), 65535, &count) || count == 0)) {
    return false;
  }
  return parse_address(address.substr(0, slash), false, out);
}

// m=<media> <port>[/<count>] <proto> <fmt> ... (RFC 4566 5.14); a port
// count other than 1 would announce several streams in one section.
bool parse_media(std::string_view v, MediaStream* s) {
  size_t i = 0;
  const std::string_view media = next_field(v, &i);
  const std::string_view port_text = next_field(v, &i);
  const std::string_view proto = next_field(v, &i);
  const std::string_view format = next_field(v, &i);
  if (media.empty() || proto.empty() || format.empty()) return false;
  const size_t slash = port_text.find('/');
  uint32_t port;
  if (!parse_uint(port_text.substr(0, slash), 65535, &port)) return false;
  if (slash != std::string_view::npos) {
    uint32_t count;
    if (!parse_uint(port_text.substr(slash + 1), 65535, &count) || count != 1) return false;
  }
  *s = MediaStream{};
  s->kind = media == "audio"   ? MediaKind::audio
            : media == "video" ? MediaKind::video
                               : MediaKind::other;
  s->port = static_cast<uint16_t>(port);
  s->rtcp_port = port == 0 || port == 65535 ? 0 : static_cast<uint16_t>(port + 1);
  return true;
}

// Whether an SDP attribute (the value of an a= line) is one read here; for
// a line too long to keep whole, its name is in the part kept.
bool is_rtcp_attribute(std::string_view value) {
  const std::string_view name = value.substr(0, value.find(':'));
  return name == "rtcp" || name == "rtcp-mux";
}

// The byte at `p` as a number, whatever it holds (a bool read back from the
// store may not be 0 or 1, and reading it as bool would be undefined).
uint8_t byte_at(const void* p) {
  uint8_t b;
  std::memcpy(&b, p, 1);
  return b;
}

}  // namespace

const char* error_name(Error e) {
  switch (e) {
    case Error::none:
      return "none";
    case Error::start_line:
      return "start_line";
    case Error::header:
      return "header";
    case Error::missing_header:
      return "missing_header";
    case Error::content_length:
      return "content_length";
    case Error::body_too_large:
      return "body_too_large";
    case Error::line_too_long:
      return "line_too_long";
    case Error::sdp:
      return "sdp";
    case Error::truncated:
      return "truncated";
  }
  return "unknown";
}

void StreamReader::resync() {
  clear_line();
  reset_message();
  phase_ = Phase::lost;
}

bool StreamReader::idle() const {
  // A lone CR may be the first half of a keepalive's CRLF.
  return (phase_ == Phase::start || phase_ == Phase::lost) && overflow_ == 0 &&
         (line_len_ == 0 || (line_len_ == 1 && line_[0] == '\r'));
}

bool StreamReader::valid() const {
  if (phase_ > Phase::lost || line_len_ > kLineCapacity || overflow_ > 1 || held_ > 1 ||
      skip_ws_ > 1 || (seen_ & ~kAllHeaders) != 0 || length_state_ > kLengthBad ||
      content_sdp_ > 1 || body_sdp_ > 1 || sdp_level_ > kSkippedSection ||
      session_has_address_ > 1 || own_address_ >= (1u << kMaxStreams) ||
      rtcp_mux_ >= (1u << kMaxStreams) || content_length_ > kMaxBody ||
      body_left_ > content_length_) {
    return false;
  }
  if ((held_ || skip_ws_) && phase_ != Phase::headers) return false;
  if ((phase_ == Phase::body) != (body_left_ != 0)) return false;
  const Message& m = message_;
  if (byte_at(&m.request) > 1 || byte_at(&m.has_sdp) > 1 || m.method > Method::other ||
      m.error > Error::truncated || m.call_id_len > kMaxCallId || m.sdp.count > kMaxStreams) {
    return false;
  }
  if (sdp_level_ != kSkippedSection && sdp_level_ > m.sdp.count) return false;
  for (const MediaStream& s : m.sdp.streams) {
    if (s.kind > MediaKind::other) return false;
  }
  return true;
}

void StreamReader::clear_line() {
  line_len_ = 0;
  overflow_ = 0;
  skip_ws_ = 0;
}

void StreamReader::reset_message() {
  message_ = Message{};
  method_hash_ = 0;
  session_address_ = IpAddr{};
  content_length_ = 0;
  body_left_ = 0;
  held_ = 0;
  seen_ = 0;
  length_state_ = kLengthNone;
  content_sdp_ = 0;
  body_sdp_ = 0;
  sdp_level_ = 0;
  session_has_address_ = 0;
  own_address_ = 0;
  rtcp_mux_ = 0;
}

void StreamReader::set_error(Error e) {
  if (message_.error == Error::none) message_.error = e;
}

void StreamReader::append(const uint8_t* s, size_t len) {
  if (skip_ws_) {
    while (len != 0 && is_ws(static_cast<char>(*s))) {
      ++s;
      --len;
    }
    if (len != 0) skip_ws_ = 0;
  }
  const size_t room = kLineCapacity - std::min<size_t>(line_len_, kLineCapacity);
  const size_t k = std::min(len, room);
  std::memcpy(line_ + line_len_, s, k);
  line_len_ = static_cast<uint16_t>(line_len_ + k);
  if (k < len) overflow_ = 1;
}

// Takes bytes of the current line from *p up to `end`; true when its LF was
// taken (the line is then complete in line_, without its line end).
bool StreamReader::gather(const uint8_t** p, const uint8_t* end) {
  const auto* lf =
      static_cast<const uint8_t*>(std::memchr(*p, '\n', static_cast<size_t>(end - *p)));
  append(*p, static_cast<size_t>((lf != nullptr ? lf : end) - *p));
  if (lf == nullptr) {
    *p = end;
    return false;
  }
  *p = lf + 1;
  end_line();
  return true;
}

void StreamReader::end_line() {
  skip_ws_ = 0;
  if (!overflow_ && line_len_ != 0 && line_[line_len_ - 1] == '\r') --line_len_;
  if (line_len_ > kMaxLine) overflow_ = 1;
}

// The line in line_ is where a start line is expected: begins a message with
// it if it is one.
bool StreamReader::start_line() {
  reset_message();
  return !overflow_ &&
         parse_start_line(std::string_view(line_, line_len_), &message_, &method_hash_);
}

// The line after a held header starts with SP or HT: it continues that
// header (RFC 3261 7.3.1), and the fold with its whitespace becomes one space.
void StreamReader::unfold() {
  held_ = 0;
  if (!overflow_) {
    while (line_len_ != 0 && is_ws(line_[line_len_ - 1])) --line_len_;
  }
  static constexpr uint8_t kSpace = ' ';
  append(&kSpace, 1);
  skip_ws_ = 1;
}

// A complete (unfolded) header line.
void StreamReader::header_line() {
  const std::string_view line(line_, line_len_);
  const size_t name_len = token_length(line);
  size_t i = name_len;
  while (i < line.size() && is_ws(line[i])) ++i;
  const bool colon = i < line.size() && line[i] == ':';
  // Of a line too long to keep whole, the colon may lie beyond what was kept.
  const bool cut = overflow_ && i == line.size();
  if (name_len == 0 || (!colon && !cut)) {
    set_error(Error::header);
    return;
  }
  const uint8_t bit = header_bit(line.substr(0, name_len));
  if (bit == kOtherHeader) return;
  if (overflow_) {
    set_error(Error::line_too_long);
    seen_ |= bit;
    if (bit == kContentLength) length_state_ = kLengthBad;
    return;
  }
  const std::string_view value = trim(line.substr(i + 1));
  if (bit == kContentLength) {
    // RFC 3261 20.14: digits. Duplicates must agree (else which one frames
    // the message would depend on who reads it).
    seen_ |= bit;
    uint32_t length;
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
      set_error(Error::content_length);
      length_state_ = kLengthBad;
    } else if (!parse_uint(value, kMaxBody, &length)) {
      set_error(Error::body_too_large);
      length_state_ = kLengthBad;
    } else if (length_state_ == kLengthGood && length != content_length_) {
      set_error(Error::content_length);
      length_state_ = kLengthBad;
    } else if (length_state_ == kLengthNone) {
      content_length_ = length;
      length_state_ = kLengthGood;
    }
    return;
  }
  // The others appear once (RFC 3261 7.3.1: only comma-separated lists may repeat).
  if (seen_ & bit) {
    set_error(Error::header);
    return;
  }
  seen_ |= bit;
  switch (bit) {
    case kCallId: {
      if (value.empty()) {
        set_error(Error::header);
        return;
      }
      message_.call_id_hash = fnv1a(value);
      message_.call_id_len = static_cast<uint8_t>(std::min(value.size(), kMaxCallId));
      std::memcpy(message_.call_id, value.data(), message_.call_id_len);
      return;
    }
    case kCSeq: {
      // RFC 3261 20.16: 1*DIGIT LWS Method.
      size_t j = 0;
      while (j < value.size() && is_digit(value[j])) ++j;
      uint32_t number;
      if (!parse_uint(value.substr(0, j), UINT32_MAX, &number) || j == value.size() ||
          !is_ws(value[j])) {
        set_error(Error::header);
        return;
      }
      const std::string_view method = trim(value.substr(j));
      if (!is_token(method)) {
        set_error(Error::header);
        return;
      }
      message_.cseq = number;
      if (!message_.request) {
        message_.method = method_from(method);
      } else if (fnv1a(method) != method_hash_) {
        set_error(Error::header);  // RFC 3261 8.1.1.5: the method of the request
      }
      return;
    }
    case kFrom:
    case kTo: {
      if (value.empty()) {
        set_error(Error::header);
        return;
      }
      (bit == kFrom ? message_.from_tag : message_.to_tag) = tag_hash(value);
      return;
    }
    case kContentType:
      content_sdp_ = is_sdp_type(value);
      return;
    default:
      return;
  }
}

// The empty line after the headers. Returns true when the message is
// complete (no body, or its end is not known).
bool StreamReader::end_headers(bool datagram, size_t rest) {
  clear_line();
  if ((seen_ & kRequiredHeaders) != kRequiredHeaders) set_error(Error::missing_header);
  uint32_t body;
  if (!(seen_ & kContentLength)) {
    if (!datagram) {
      // RFC 3261 18.3: required on a stream; without it the end is unknown.
      set_error(Error::missing_header);
      phase_ = Phase::lost;
      return true;
    }
    body = static_cast<uint32_t>(std::min<size_t>(rest, UINT32_MAX));
  } else if (length_state_ != kLengthGood) {
    phase_ = Phase::lost;
    return true;
  } else {
    body = content_length_;
    if (datagram && body > rest) {
      set_error(Error::truncated);
      phase_ = Phase::start;
      return true;
    }
  }
  body_left_ = body;
  body_sdp_ = content_sdp_ && body != 0;
  message_.has_sdp = body_sdp_;
  if (body == 0) {
    phase_ = Phase::start;
    return true;
  }
  phase_ = Phase::body;
  return false;
}

// A complete SDP line in line_ (RFC 4566 5).
void StreamReader::sdp_line() {
  const std::string_view line(line_, line_len_);
  const bool too_long = overflow_;
  clear_line();  // line_ keeps its bytes until the next append
  if (line.size() < 2 || line[0] < 'a' || line[0] > 'z' || line[1] != '=') {
    set_error(Error::sdp);
    return;
  }
  const char type = line[0];
  const std::string_view value = line.substr(2);
  SessionDescription& sdp = message_.sdp;
  if (type == 'm') {
    if (sdp.count == kMaxStreams) {
      if (sdp.ignored != UINT8_MAX) ++sdp.ignored;
      sdp_level_ = kSkippedSection;
      return;
    }
    MediaStream stream;
    if (too_long || !parse_media(value, &stream)) {
      set_error(too_long ? Error::line_too_long : Error::sdp);
      sdp_level_ = kSkippedSection;
      return;
    }
    if (session_has_address_) stream.address = session_address_;
    sdp.streams[sdp.count++] = stream;
    sdp_level_ = sdp.count;
    return;
  }
  if (sdp_level_ == kSkippedSection) return;
  if (too_long) {
    if (type == 'c' || (type == 'a' && sdp_level_ != 0 && is_rtcp_attribute(value))) {
      set_error(Error::line_too_long);
    }
    return;
  }
  if (type == 'c') {
    sdp_connection(value);
  } else if (type == 'a' && sdp_level_ != 0) {
    sdp_attribute(value);  // rtcp and rtcp-mux are media-level attributes
  }
}

void StreamReader::sdp_connection(std::string_view value) {
  IpAddr address;
  if (!parse_connection(value, &address)) {
    set_error(Error::sdp);
    return;
  }
  if (sdp_level_ == 0) {
    if (session_has_address_) {
      set_error(Error::sdp);  // one c= per level: which would the peer use?
      return;
    }
    session_has_address_ = 1;
    session_address_ = address;
    return;
  }
  const uint8_t bit = static_cast<uint8_t>(1u << (sdp_level_ - 1));
  if (own_address_ & bit) {
    set_error(Error::sdp);
    return;
  }
  own_address_ |= bit;
  message_.sdp.streams[sdp_level_ - 1].address = address;
}

void StreamReader::sdp_attribute(std::string_view value) {
  const size_t colon = value.find(':');
  const std::string_view name = value.substr(0, colon);
  MediaStream& stream = message_.sdp.streams[sdp_level_ - 1];
  const uint8_t bit = static_cast<uint8_t>(1u << (sdp_level_ - 1));
  if (name == "rtcp-mux") {
    // RFC 5761 5.1.1: a property attribute; RTCP shares the RTP port, and
    // this wins over an a=rtcp given for a peer that does not multiplex.
    if (colon != std::string_view::npos) {
      set_error(Error::sdp);
      return;
    }
    rtcp_mux_ |= bit;
    stream.rtcp_port = stream.port;
  } else if (name == "rtcp") {
    // RFC 3605 2.1: a=rtcp:<port>[ <nettype> <addrtype> <address>].
    uint32_t port;
    const std::string_view args =
        colon == std::string_view::npos ? std::string_view() : value.substr(colon + 1);
    if (colon == std::string_view::npos ||
        !parse_uint(args.substr(0, args.find(' ')), 65535, &port)) {
      set_error(Error::sdp);
      return;
    }
    if (!(rtcp_mux_ & bit)) stream.rtcp_port = static_cast<uint16_t>(port);
  }
}

// The last body byte was read.
void StreamReader::end_body() {
  phase_ = Phase::start;
  if (!body_sdp_) return;
  // The last line may end with the body rather than with a line end.
  if (line_len_ != 0 || overflow_) {
    end_line();
    if (line_len_ != 0 || overflow_) sdp_line();
  }
  clear_line();
  SessionDescription& sdp = message_.sdp;
  for (uint8_t i = 0; i < sdp.count; ++i) {
    // RFC 4566 5.7: a c= in the session or in every media section.
    if (!session_has_address_ && !(own_address_ & (1u << i))) set_error(Error::sdp);
    if (sdp.streams[i].port == 0) sdp.streams[i].rtcp_port = 0;  // nothing announced
  }
}

size_t StreamReader::consume(const uint8_t* data, size_t n, bool datagram, bool* done) {
  const uint8_t* p = data;
  const uint8_t* const end = data + n;
  *done = false;
  while (p < end && !*done) {
    switch (phase_) {
      case Phase::start:
      case Phase::lost: {
        if (!gather(&p, end)) break;
        if (line_len_ == 0 && !overflow_) break;  // CRLF before a start line
        const bool ok = start_line();
        const bool too_long = overflow_;
        clear_line();
        if (ok) {
          phase_ = Phase::headers;
        } else if (phase_ == Phase::start) {
          // Its end is unknown: report it, then look for the next start line.
          message_.error = too_long ? Error::line_too_long : Error::start_line;
          phase_ = Phase::lost;
          *done = true;
        } else {
          reset_message();
        }
        break;
      }
      case Phase::headers: {
        if (held_) {
          if (is_ws(static_cast<char>(*p))) {
            unfold();
          } else {
            held_ = 0;
            header_line();
            clear_line();
          }
        }
        if (!gather(&p, end)) break;
        if (line_len_ == 0 && !overflow_) {
          *done = end_headers(datagram, static_cast<size_t>(end - p));
        } else {
          held_ = 1;
        }
        break;
      }
      case Phase::body: {
        const size_t take = std::min<size_t>(static_cast<size_t>(end - p), body_left_);
        if (!body_sdp_) {
          p += take;
          body_left_ -= static_cast<uint32_t>(take);
        } else {
          const uint8_t* const before = p;
          const bool line = gather(&p, p + take);
          body_left_ -= static_cast<uint32_t>(p - before);
          if (line) sdp_line();
        }
        if (body_left_ == 0) {
          end_body();
          *done = true;
        }
        break;
      }
      default:  // not reachable from a valid() state
        resync();
        break;
    }
  }
  return static_cast<size_t>(p - data);
}

// The datagram ended before the message did.
void StreamReader::end_datagram() {
  switch (phase_) {
    case Phase::start: {
      end_line();
      const bool ok = start_line();
      set_error(ok ? Error::truncated : overflow_ ? Error::line_too_long : Error::start_line);
      break;
    }
    case Phase::headers:
      if (held_) header_line();  // the last complete header still counts
      set_error(Error::truncated);
      break;
    default:
      set_error(Error::truncated);
      break;
  }
}

bool parse_datagram(const uint8_t* data, size_t n, Message* out) {
  size_t i = 0;
  while (i < n && (data[i] == '\r' || data[i] == '\n')) ++i;
  if (i == n) return false;
  StreamReader reader;
  bool done = false;
  reader.consume(data, n, /*datagram=*/true, &done);
  if (!done) reader.end_datagram();
  *out = reader.message_;
  return true;
}

}  // namespace holdfast::sip
