#include "modules/ftp/ftp_parse.h"

#include <arpa/inet.h>

#include <cstring>

namespace holdfast::ftp {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

// Case-insensitive "does the line start with this command and a space".
bool command_is(std::string_view line, std::string_view command) {
  if (line.size() <= command.size() || line[command.size()] != ' ') return false;
  for (size_t i = 0; i < command.size(); ++i) {
    if (upper(line[i]) != command[i]) return false;
  }
  return true;
}

// A decimal number of at most `max` at s[*i], advancing *i past it.
bool number(std::string_view s, size_t* i, uint32_t max, uint32_t* out) {
  const size_t start = *i;
  uint32_t v = 0;
  while (*i < s.size() && is_digit(s[*i])) {
    v = v * 10 + static_cast<uint32_t>(s[*i] - '0');
    if (v > max) return false;
    ++*i;
  }
  if (*i == start) return false;
  *out = v;
  return true;
}

// h1,h2,h3,h4,p1,p2 at s[*i] (RFC 959 4.1.2): six numbers 0-255 separated by
// commas, optionally with spaces after the commas.
bool six_numbers(std::string_view s, size_t* i, Announcement* a) {
  uint32_t n[6];
  for (int k = 0; k < 6; ++k) {
    if (k > 0) {
      if (*i >= s.size() || s[*i] != ',') return false;
      ++*i;
      while (*i < s.size() && s[*i] == ' ') ++*i;
    }
    if (!number(s, i, 255, &n[k])) return false;
  }
  a->has_address = true;
  a->address = IpAddr::from_v4_host(n[0] << 24 | n[1] << 16 | n[2] << 8 | n[3]);
  a->port = static_cast<uint16_t>(n[4] << 8 | n[5]);
  return true;
}

// RFC 2428 2: <d><af><d><address><d><port><d>, any delimiter from 33 to 126.
bool eprt_argument(std::string_view s, Announcement* a) {
  if (s.size() < 7) return false;
  const char d = s[0];
  if (d < 33 || d > 126) return false;
  size_t i = 1;
  uint32_t af;
  if (!number(s, &i, 2, &af) || (af != 1 && af != 2) || i >= s.size() || s[i] != d) return false;
  const size_t addr_start = ++i;
  while (i < s.size() && s[i] != d) ++i;
  if (i >= s.size()) return false;
  const std::string_view addr_text = s.substr(addr_start, i - addr_start);
  char buf[64];
  if (addr_text.empty() || addr_text.size() >= sizeof buf) return false;
  std::memcpy(buf, addr_text.data(), addr_text.size());
  buf[addr_text.size()] = '\0';
  uint8_t raw[16];
  if (af == 1) {
    if (inet_pton(AF_INET, buf, raw) != 1) return false;
    a->address = IpAddr::from_v4_wire(raw);
  } else {
    if (inet_pton(AF_INET6, buf, raw) != 1) return false;
    a->address = IpAddr::from_v6_wire(raw);
  }
  ++i;
  uint32_t port;
  if (!number(s, &i, 65535, &port) || i >= s.size() || s[i] != d) return false;
  a->has_address = true;
  a->port = static_cast<uint16_t>(port);
  return i + 1 == s.size() || s.find_first_not_of(' ', i + 1) == std::string_view::npos;
}

// RFC 2428 3: the text holds (<d><d><d>port<d>).
bool epsv_reply(std::string_view s, Announcement* a) {
  const size_t open = s.find('(');
  if (open == std::string_view::npos || open + 6 > s.size()) return false;
  const char d = s[open + 1];
  if (d < 33 || d > 126 || s[open + 2] != d || s[open + 3] != d) return false;
  size_t i = open + 4;
  uint32_t port;
  if (!number(s, &i, 65535, &port) || i + 1 >= s.size() || s[i] != d || s[i + 1] != ')') {
    return false;
  }
  a->has_address = false;
  a->port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

std::optional<Announcement> parse_line(std::string_view line, bool from_client, ParseError* error) {
  *error = ParseError::not_announcement;
  Announcement a;
  if (from_client) {
    if (command_is(line, "PORT")) {
      a.kind = Announcement::Kind::port;
      size_t i = 5;
      while (i < line.size() && line[i] == ' ') ++i;
      if (!six_numbers(line, &i, &a) || line.find_first_not_of(' ', i) != std::string_view::npos) {
        *error = ParseError::malformed;
        return std::nullopt;
      }
    } else if (command_is(line, "EPRT")) {
      a.kind = Announcement::Kind::eprt;
      size_t i = 5;
      while (i < line.size() && line[i] == ' ') ++i;
      if (!eprt_argument(line.substr(i), &a)) {
        *error = ParseError::malformed;
        return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
    *error = ParseError::none;
    return a;
  }
  // A reply: three digits, then a space on the final line of a reply (a
  // hyphen marks the lines before it, which carry nothing to act on).
  if (line.size() < 4 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
      line[3] != ' ') {
    return std::nullopt;
  }
  const std::string_view code = line.substr(0, 3);
  if (code == "227") {
    a.kind = Announcement::Kind::pasv_reply;
    // RFC 1123 4.1.2.6: the format is not standardised; take the first run
    // of six comma-separated numbers after the code.
    for (size_t i = 4; i < line.size(); ++i) {
      if (!is_digit(line[i])) continue;
      size_t j = i;
      if (six_numbers(line, &j, &a)) {
        *error = ParseError::none;
        return a;
      }
      while (i < line.size() && is_digit(line[i])) ++i;  // skip this run
    }
    *error = ParseError::malformed;
    return std::nullopt;
  }
  if (code == "229") {
    a.kind = Announcement::Kind::epsv_reply;
    if (!epsv_reply(line.substr(4), &a)) {
      *error = ParseError::malformed;
      return std::nullopt;
    }
    *error = ParseError::none;
    return a;
  }
  return std::nullopt;
}

}  // namespace holdfast::ftp
