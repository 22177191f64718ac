// IP addresses of both families in one 16-byte type. IPv4 addresses are held
// IPv4-mapped (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2) so one flow key and
// one table serve both families; the family is recoverable from the prefix.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace holdfast {

struct IpAddr {
  std::array<uint8_t, 16> bytes{};

  static IpAddr from_v4_wire(const uint8_t* p) {
    IpAddr a;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], p, 4);
    return a;
  }
  static IpAddr from_v6_wire(const uint8_t* p) {
    IpAddr a;
    std::memcpy(a.bytes.data(), p, 16);
    return a;
  }
  static IpAddr from_v4_host(uint32_t v) {
    uint8_t w[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    return from_v4_wire(w);
  }

  bool is_v4() const {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(bytes.data(), kMapped, 12) == 0;
  }
  uint32_t v4_host() const {
    return uint32_t(bytes[12]) << 24 | uint32_t(bytes[13]) << 16 | uint32_t(bytes[14]) << 8 |
           bytes[15];
  }

  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return std::memcmp(a.bytes.data(), b.bytes.data(), 16) == 0;
  }
  friend std::strong_ordering operator<=>(const IpAddr& a, const IpAddr& b) {
    int c = std::memcmp(a.bytes.data(), b.bytes.data(), 16);
    return c <=> 0;
  }

  // Control path only.
  static std::optional<IpAddr> parse(std::string_view text);
  std::string to_string() const;
  // "192.0.2.1:80" or "[2001:db8::1]:80".
  std::string to_string(uint16_t port) const;
};
static_assert(sizeof(IpAddr) == 16);

// An address prefix. For IPv4 the prefix length is given in IPv4 terms (0-32)
// and applies to the last four bytes of the mapped address.
struct Cidr {
  IpAddr addr;
  uint8_t prefix = 0;
  bool v4 = false;

  // Accepts "a.b.c.d/n", "a.b.c.d" (/32), "x::y/n", "x::y" (/128).
  // On error returns nullopt and sets *error to a message a user can act on.
  static std::optional<Cidr> parse(std::string_view text, std::string* error);
  bool contains(const IpAddr& a) const;
  std::string to_string() const;
};

}  // namespace holdfast
