#include "dataplane/ip_address.h"

#include <arpa/inet.h>

#include <charconv>

namespace holdfast {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  uint8_t buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return from_v4_wire(buf);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return from_v6_wire(buf);
  return std::nullopt;
}

std::string IpAddr::to_string(uint16_t port) const {
  std::string out;
  if (!is_v4()) out.push_back('[');
  out.append(to_string());
  if (!is_v4()) out.push_back(']');
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

std::string IpAddr::to_string() const {
  char out[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, &bytes[12], out, sizeof out);
  } else {
    inet_ntop(AF_INET6, bytes.data(), out, sizeof out);
  }
  return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* error) {
  std::string_view addr_text = text;
  std::optional<int> prefix;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    std::string_view len_text = text.substr(slash + 1);
    int value = -1;
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), value);
    if (ec != std::errc() || end != len_text.data() + len_text.size() || len_text.empty()) {
      *error = "bad CIDR \"" + std::string(text) + "\": prefix length is not a number";
      return std::nullopt;
    }
    prefix = value;
  }
  auto addr = IpAddr::parse(addr_text);
  if (!addr) {
    *error = "bad CIDR \"" + std::string(text) + "\": \"" + std::string(addr_text) +
             "\" is not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  Cidr c;
  c.v4 = addr->is_v4();
  if (c.v4 && addr_text.find(':') != std::string_view::npos) {
    // The dataplane drops IPv6 packets carrying mapped addresses (RFC 4942
    // section 2.2), so a rule written this way could never match.
    *error = "bad CIDR \"" + std::string(text) +
             "\": IPv4-mapped IPv6 addresses never match; write the IPv4 address";
    return std::nullopt;
  }
  int max = c.v4 ? 32 : 128;
  int len = prefix.value_or(max);
  if (len < 0 || len > max) {
    *error =
        "bad CIDR \"" + std::string(text) + "\": prefix length must be 0.." + std::to_string(max);
    return std::nullopt;
  }
  c.prefix = static_cast<uint8_t>(len);
  // Host bits must be zero: "10.1.2.3/8" is almost always a typo for a host
  // rule or for 10.0.0.0/8, and silently masking would hide it.
  int offset_bits = c.v4 ? 96 : 0;
  for (int bit = offset_bits + len; bit < 128; ++bit) {
    if (addr->bytes[bit / 8] & (0x80 >> (bit % 8))) {
      *error =
          "bad CIDR \"" + std::string(text) + "\": host bits set beyond /" + std::to_string(len);
      return std::nullopt;
    }
  }
  c.addr = *addr;
  return c;
}

bool Cidr::contains(const IpAddr& a) const {
  if (v4 != a.is_v4()) return false;
  int start = v4 ? 96 : 0;
  int end = start + prefix;
  int bit = start;
  for (; bit + 8 <= end; bit += 8) {
    if (a.bytes[bit / 8] != addr.bytes[bit / 8]) return false;
  }
  if (bit < end) {
    uint8_t mask = static_cast<uint8_t>(0xff00 >> (end - bit));
    if ((a.bytes[bit / 8] & mask) != (addr.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

std::string Cidr::to_string() const {
  return addr.to_string() + "/" + std::to_string(prefix);
}

}  // namespace holdfast
