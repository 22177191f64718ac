// Verdicts and their reasons. Every packet gets exactly one reason; every
// reason is a counter with a stable name that appears in statistics, replay
// verdict files and documentation (docs/counters.md). The list is declared once
// here and everything else is derived from it.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace holdfast {

// X(name, passes): name is the counter name users see.
#define HOLDFAST_REASONS(X)                                                               \
  /* passed */                                                                            \
  X(new_connection, true) /* first packet, allowed by policy, connection created */       \
  X(established, true)    /* belongs to a tracked connection */                           \
  X(related, true)        /* ICMP error about a tracked connection */                     \
  X(untracked, true)      /* stateless ICMP type allowed by policy */                     \
  X(arp, true)            /* ARP frame, passed by l2.arp */                               \
  X(non_ip, true)         /* other non-IP frame, passed by l2.non_ip */                   \
  X(ipv6_nd, true)        /* IPv6 neighbour discovery, passed by l2.ipv6_nd */            \
  X(fragment, true)       /* later fragment of a datagram whose first passed */           \
  /* dropped: layer 2 */                                                                  \
  X(eth_truncated, false)                                                                 \
  X(vlan_truncated, false)                                                                \
  X(vlan_too_many_tags, false)                                                            \
  X(arp_denied, false)                                                                    \
  X(non_ip_denied, false)                                                                 \
  /* dropped: IPv4 */                                                                     \
  X(ipv4_truncated, false)                                                                \
  X(ipv4_bad_header, false)                                                               \
  X(ipv4_bad_length, false)                                                               \
  X(ipv4_bad_checksum, false)                                                             \
  X(ipv4_bad_options, false)                                                              \
  X(ipv4_source_route, false) /* LSRR/SSRR options, RFC 7126 section 4.3/4.4 */           \
  /* dropped: IPv6 */                                                                     \
  X(ipv6_truncated, false)                                                                \
  X(ipv6_bad_header, false)                                                               \
  X(ipv6_bad_length, false)                                                               \
  X(ipv6_bad_extension, false)                                                            \
  X(ipv6_too_many_extensions, false)                                                      \
  X(ipv6_routing_type0, false) /* deprecated by RFC 5095 */                               \
  X(ipv6_mapped_address, false)                                                           \
  X(ipv6_nd_denied, false)                                                                \
  X(ipv6_nd_bad_hop_limit, false)                                                         \
  /* dropped: fragments */                                                                \
  X(frag_bad_offset, false)                                                               \
  X(frag_bad_length, false)                                                               \
  X(frag_first_too_small, false)                                                          \
  X(frag_overlaps_header, false)                                                          \
  X(frag_without_first, false)                                                            \
  X(frag_of_dropped, false)                                                               \
  X(frag_table_full, false)                                                               \
  /* dropped: layer 4 headers */                                                          \
  X(tcp_truncated, false)                                                                 \
  X(tcp_bad_header, false)                                                                \
  X(tcp_bad_options, false)                                                               \
  X(tcp_bad_flags, false)                                                                 \
  X(udp_truncated, false)                                                                 \
  X(udp_bad_length, false)                                                                \
  X(icmp_truncated, false)                                                                \
  X(icmp_bad_inner, false)                                                                \
  X(icmp_error_fragmented, false)                                                         \
  X(bad_l4_checksum, false)                                                               \
  X(unsupported_protocol, false)                                                          \
  /* dropped: policy */                                                                   \
  X(policy_deny, false)                                                                   \
  X(default_deny, false)                                                                  \
  /* dropped: state */                                                                    \
  X(side_mismatch, false)     /* tracked flow's packet on the wrong port: spoofed */      \
  X(tcp_mid_stream, false)    /* no state and not a SYN (loose pickup off) */             \
  X(tcp_invalid_state, false) /* not allowed in the connection's state */                 \
  X(tcp_out_of_window, false) /* sequence or ack outside the tracked window */            \
  X(tcp_rst_out_of_window, false)                                                         \
  X(tcp_bad_synack, false)       /* SYN/ACK that does not acknowledge the SYN */          \
  X(icmp_no_request, false)      /* echo reply with no tracked request */                 \
  X(icmp_error_unrelated, false) /* ICMP error about no tracked connection */             \
  X(conn_table_full, false)                                                               \
  X(ckpt_store_full, false) /* no checkpoint slot, and checkpoint.store_full is refuse */ \
  /* passed (appended: fragment records in the store hold reasons by number) */           \
  X(expected, true) /* first packet of a connection a layer-7 module announced */         \
  /* dropped: layer 7 (appended, as above) */                                             \
  X(sip_malformed, false) /* a SIP message on a signalling connection that does not parse */

enum class Reason : uint8_t {
#define HOLDFAST_REASON_ENUM(name, passes) name,
  HOLDFAST_REASONS(HOLDFAST_REASON_ENUM)
#undef HOLDFAST_REASON_ENUM
};

inline constexpr size_t kReasonCount = 0
#define HOLDFAST_REASON_COUNT(name, passes) +1
    HOLDFAST_REASONS(HOLDFAST_REASON_COUNT)
#undef HOLDFAST_REASON_COUNT
    ;

inline constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
#define HOLDFAST_REASON_NAME(name, passes) #name,
    HOLDFAST_REASONS(HOLDFAST_REASON_NAME)
#undef HOLDFAST_REASON_NAME
};

inline constexpr std::array<bool, kReasonCount> kReasonPasses = {
#define HOLDFAST_REASON_PASSES(name, passes) passes,
    HOLDFAST_REASONS(HOLDFAST_REASON_PASSES)
#undef HOLDFAST_REASON_PASSES
};

constexpr std::string_view reason_name(Reason r) {
  return kReasonNames[static_cast<size_t>(r)];
}
constexpr bool reason_passes(Reason r) {
  return kReasonPasses[static_cast<size_t>(r)];
}

// What the pipeline decided for one packet.
struct Verdict {
  uint64_t conn_id = 0;  // 0 when the packet belongs to no connection
  Reason reason = Reason::default_deny;
  bool pass() const { return reason_passes(reason); }
};

}  // namespace holdfast
