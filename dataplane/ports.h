// NIC ports: resolving the configured device names, configuring queues,
// symmetric IP-only RSS and the redirection table, and starting them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/config.h"
#include "dataplane/packet.h"

struct rte_mempool;

namespace holdfast {

struct PortInfo {
  std::string name;
  uint16_t port_id = 0;
  uint16_t peer_id = 0;  // the other port of the pair: where passed frames leave
  Side side = Side::inside;
  uint8_t zone = 0;          // index of the pair
  uint16_t rx_queues = 0;    // workers below this poll their own queue
  bool rss = false;          // NIC spreads packets over rx_queues by address pair
  bool rx_checksum = false;  // NIC reports checksum status
  // net_af_packet: its rings may hold other interfaces' frames at start.
  bool hears_others_at_start = false;
};

// Finds and configures every port of every pair for `workers` workers: one
// TX queue per worker (required), up to one RX queue per worker. Returns
// false and sets *error with a message naming the port on failure.
bool setup_ports(const std::vector<PortPairConfig>& pairs, uint32_t workers, rte_mempool* pool,
                 std::vector<PortInfo>* ports, std::string* error);

// Mbufs needed for the queues of `ports` ports with `workers` workers.
uint32_t mbufs_needed(size_t ports, uint32_t workers);

// Frees every frame already waiting in the receive queues of the ports
// that hear_others_at_start; returns how many. Called once the ports are
// up, before anything is judged: a net_af_packet socket hears every
// interface from its creation until the driver binds it to its own, so
// frames of the other port can wait in its ring, and a frame judged as
// arriving on the wrong port would be judged by the wrong side's rules and
// set up state with the wrong side. Other devices' waiting frames are
// their own (a net_pcap port's capture, a NIC's traffic) and stay.
uint64_t discard_received(const std::vector<PortInfo>& ports);

void stop_ports(const std::vector<PortInfo>& ports);

// A port's identity and its NIC counters (rte_eth_stats), for the exit
// statistics and /holdfast/ports.
nlohmann::json port_stats(const PortInfo& p);

}  // namespace holdfast
