#include "dataplane/ports.h"

#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "control/log.h"
#include "dataplane/steering.h"

namespace holdfast {
namespace {

constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;

// Hash only on addresses, so that a flow, its fragments and its replies all
// hash alike (dataplane/steering.h).
constexpr uint64_t kIpOnlyRss = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 |
                                RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 |
                                RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER;

bool program_reta(uint16_t port, uint16_t reta_size, uint16_t queues, std::string* error) {
  std::vector<rte_eth_rss_reta_entry64> reta((reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
                                             RTE_ETH_RETA_GROUP_SIZE);
  for (uint16_t i = 0; i < reta_size; ++i) {
    auto& group = reta[i / RTE_ETH_RETA_GROUP_SIZE];
    group.mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
    group.reta[i % RTE_ETH_RETA_GROUP_SIZE] = static_cast<uint16_t>((i % kRetaSpan) % queues);
  }
  const int rc = rte_eth_dev_rss_reta_update(port, reta.data(), reta_size);
  if (rc != 0) {
    *error = "cannot program the RSS redirection table: " + std::string(rte_strerror(-rc));
    return false;
  }
  return true;
}

bool setup_port(PortInfo& p, uint32_t workers, rte_mempool* pool, std::string* error) {
  rte_eth_dev_info info;
  int rc = rte_eth_dev_info_get(p.port_id, &info);
  if (rc != 0) {
    *error = "cannot read device info: " + std::string(rte_strerror(-rc));
    return false;
  }
  if (info.max_tx_queues < workers) {
    *error = "supports " + std::to_string(info.max_tx_queues) + " TX queue(s) but " +
             std::to_string(workers) +
             " workers need one each; run with fewer worker lcores (EAL -l)";
    return false;
  }
  p.rx_queues = static_cast<uint16_t>(std::min<uint32_t>(workers, info.max_rx_queues));
  p.hears_others_at_start = std::strcmp(info.driver_name, "net_af_packet") == 0;

  rte_eth_conf conf{};
  std::vector<uint8_t> key;
  const uint64_t rss_hf = kIpOnlyRss & info.flow_type_rss_offloads;
  if (p.rx_queues > 1 && rss_hf != 0) {
    p.rss = true;
    // Keys longer than 40 bytes (some NICs take 52) continue the pattern,
    // which keeps the hash symmetric.
    const size_t key_len = info.hash_key_size != 0 ? info.hash_key_size : kRssKeySize;
    key.resize(key_len);
    for (size_t i = 0; i < key_len; ++i) key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = key.data();
    conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(key_len);
    conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
  }
  const uint64_t checksum =
      RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
  if ((info.rx_offload_capa & checksum) == checksum) {
    conf.rxmode.offloads |= checksum;
    p.rx_checksum = true;
  }
  rc = rte_eth_dev_configure(p.port_id, p.rx_queues, static_cast<uint16_t>(workers), &conf);
  if (rc != 0) {
    *error = "cannot configure: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint16_t rxd = kRxDescriptors;
  uint16_t txd = kTxDescriptors;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(p.port_id, &rxd, &txd);
  if (rc != 0) {
    *error = "cannot size descriptor rings: " + std::string(rte_strerror(-rc));
    return false;
  }
  const int socket = rte_eth_dev_socket_id(p.port_id);
  for (uint16_t q = 0; q < p.rx_queues; ++q) {
    rc = rte_eth_rx_queue_setup(p.port_id, q, rxd, socket, nullptr, pool);
    if (rc != 0) {
      *error = "cannot set up RX queue " + std::to_string(q) + ": " + rte_strerror(-rc);
      return false;
    }
  }
  for (uint16_t q = 0; q < workers; ++q) {
    rc = rte_eth_tx_queue_setup(p.port_id, q, txd, socket, nullptr);
    if (rc != 0) {
      *error = "cannot set up TX queue " + std::to_string(q) + ": " + rte_strerror(-rc);
      return false;
    }
  }
  rc = rte_eth_dev_start(p.port_id);
  if (rc != 0) {
    *error = "cannot start: " + std::string(rte_strerror(-rc));
    return false;
  }
  if (p.rss && info.reta_size != 0 &&
      !program_reta(p.port_id, info.reta_size, p.rx_queues, error)) {
    return false;
  }
  // A bump in the wire forwards frames for every address on the segment.
  rc = rte_eth_promiscuous_enable(p.port_id);
  if (rc != 0 && rc != -ENOTSUP) {
    *error = "cannot enable promiscuous mode: " + std::string(rte_strerror(-rc));
    return false;
  }
  rte_eth_link link;
  rte_eth_link_get_nowait(p.port_id, &link);
  log(LogLevel::info, "ports", "%s %s (port %u, pair %u): %u RX / %u TX queues, RSS %s, link %s",
      side_name(p.side), p.name.c_str(), p.port_id, p.zone, p.rx_queues, workers,
      p.rss ? "symmetric by address" : "off", link.link_status ? "up" : "down");
  return true;
}

}  // namespace

bool setup_ports(const std::vector<PortPairConfig>& pairs, uint32_t workers, rte_mempool* pool,
                 std::vector<PortInfo>* ports, std::string* error) {
  ports->clear();
  for (size_t zone = 0; zone < pairs.size(); ++zone) {
    for (Side side : {Side::inside, Side::outside}) {
      PortInfo p;
      p.name = side == Side::inside ? pairs[zone].inside : pairs[zone].outside;
      p.side = side;
      p.zone = static_cast<uint8_t>(zone);
      if (rte_eth_dev_get_port_by_name(p.name.c_str(), &p.port_id) != 0) {
        *error = "port \"" + p.name + "\" (ports/" + std::to_string(zone) + "/" + side_name(side) +
                 ") is not a DPDK device: give its PCI address bound to a DPDK driver, or create "
                 "it with --vdev";
        return false;
      }
      ports->push_back(p);
    }
  }
  for (size_t i = 0; i < ports->size(); i += 2) {
    (*ports)[i].peer_id = (*ports)[i + 1].port_id;
    (*ports)[i + 1].peer_id = (*ports)[i].port_id;
  }
  for (PortInfo& p : *ports) {
    if (!setup_port(p, workers, pool, error)) {
      *error = "port " + p.name + ": " + *error;
      return false;
    }
  }
  return true;
}

uint32_t mbufs_needed(size_t ports, uint32_t workers) {
  // Every descriptor may hold an mbuf, plus bursts and TX buffers in flight
  // and the per-lcore caches, plus the handoff rings.
  const uint64_t n = ports * workers * (kRxDescriptors + kTxDescriptors + 2 * 64) +
                     workers * workers * 1024 + workers * 512 + 4096;
  return static_cast<uint32_t>(n);
}

uint64_t discard_received(const std::vector<PortInfo>& ports) {
  uint64_t n = 0;
  rte_mbuf* mbufs[32];
  for (const PortInfo& p : ports) {
    if (!p.hears_others_at_start) continue;
    for (uint16_t q = 0; q < p.rx_queues; ++q) {
      // Bounded: a queue being filled as fast as it is read stops too.
      for (int burst = 0; burst < 4096; ++burst) {
        const uint16_t got = rte_eth_rx_burst(p.port_id, q, mbufs, 32);
        if (got == 0) break;
        rte_pktmbuf_free_bulk(mbufs, got);
        n += got;
      }
    }
  }
  return n;
}

void stop_ports(const std::vector<PortInfo>& ports) {
  for (const PortInfo& p : ports) {
    rte_eth_dev_stop(p.port_id);
    rte_eth_dev_close(p.port_id);
  }
}

nlohmann::json port_stats(const PortInfo& p) {
  rte_eth_stats st{};
  rte_eth_stats_get(p.port_id, &st);
  return {{"name", p.name},
          {"side", side_name(p.side)},
          {"pair", p.zone},
          {"rx_packets", st.ipackets},
          {"tx_packets", st.opackets},
          {"rx_bytes", st.ibytes},
          {"tx_bytes", st.obytes},
          {"rx_missed", st.imissed},
          {"rx_errors", st.ierrors},
          {"tx_errors", st.oerrors},
          {"rx_no_mbuf", st.rx_nombuf}};
}

}  // namespace holdfast
