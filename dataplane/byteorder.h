// Network byte order lives only at the wire: the parser reads every field
// through load_be16/load_be32 and everything above it holds host order, so no
// structure mixes the two.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace holdfast {

inline constexpr uint16_t bswap16(uint16_t v) {
  return static_cast<uint16_t>((v << 8) | (v >> 8));
}
inline constexpr uint32_t bswap32(uint32_t v) {
  return ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
}

static_assert(std::endian::native == std::endian::little, "holdfast assumes a little-endian host");

// Reads an unaligned big-endian value from packet memory.
inline uint16_t load_be16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return bswap16(v);
}
inline uint32_t load_be32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return bswap32(v);
}
// Loads in the host's (little-endian) order: one's complement sums add
// words as they come, whatever their byte order (RFC 1071 2(B)).
inline uint16_t load_le16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_be16(uint8_t* p, uint16_t v) {
  v = bswap16(v);
  std::memcpy(p, &v, sizeof v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  v = bswap32(v);
  std::memcpy(p, &v, sizeof v);
}

}  // namespace holdfast
