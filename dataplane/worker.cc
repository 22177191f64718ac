#include "dataplane/worker.h"

#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <csignal>

namespace holdfast {
namespace {

OffloadHints hints_of(const rte_mbuf* m) {
  OffloadHints h;
  switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
    case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
      h.l3 = ChecksumHint::good;
      break;
    case RTE_MBUF_F_RX_IP_CKSUM_BAD:
      h.l3 = ChecksumHint::bad;
      break;
    default:
      break;
  }
  switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
    case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
      h.l4 = ChecksumHint::good;
      break;
    case RTE_MBUF_F_RX_L4_CKSUM_BAD:
      h.l4 = ChecksumHint::bad;
      break;
    default:
      break;
  }
  return h;
}

}  // namespace

Worker::Worker(uint32_t index, const WorkerShared* shared, std::unique_ptr<Pipeline> pipeline)
    : index_(index), shared_(shared), pipeline_(std::move(pipeline)) {}

Worker::~Worker() {
  for (rte_eth_dev_tx_buffer* b : tx_) rte_free(b);
}

bool Worker::init(int socket, std::string* error) {
  for (size_t i = 0; i < shared_->ports.size(); ++i) {
    auto* b = static_cast<rte_eth_dev_tx_buffer*>(
        rte_zmalloc_socket("hf_tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kRxBurst), 0, socket));
    if (b == nullptr) {
      *error = "cannot allocate TX buffers";
      return false;
    }
    rte_eth_tx_buffer_init(b, kRxBurst);
    // Frames the NIC would not take are freed and counted, not retried:
    // retrying would stall every other port of this worker.
    rte_eth_tx_buffer_set_err_callback(b, rte_eth_tx_buffer_count_callback, &counters_.tx_dropped);
    tx_.push_back(b);
  }
  return true;
}

void Worker::run() {
  const WorkerShared& s = *shared_;
  rte_mbuf* mbufs[kRxBurst];
  while (!s.stop->load(std::memory_order_relaxed)) {
    now_ns_ = clock_.now_ns();
    ++counters_.loops;
    // Pinholes other workers opened, before the packets they are for.
    if (s.workers > 1) pipeline_->read_mail();
    for (uint16_t i = 0; i < s.ports.size(); ++i) {
      const PortInfo& port = s.ports[i];
      if (index_ >= port.rx_queues) continue;
      const uint16_t n =
          rte_eth_rx_burst(port.port_id, static_cast<uint16_t>(index_), mbufs, kRxBurst);
      if (n != 0) receive(i, mbufs, n, false);
    }
    if (s.workers > 1) {
      for (uint32_t from = 0; from < s.workers; ++from) {
        rte_ring* ring = s.rings[from][index_];
        if (ring == nullptr) continue;
        const unsigned n =
            rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(mbufs), kRxBurst, nullptr);
        for (unsigned k = 0; k < n; ++k) {
          // Handed-off frames keep their arrival port in mbuf->port.
          const int16_t pi = s.port_index[mbufs[k]->port];
          receive(static_cast<uint16_t>(pi), &mbufs[k], 1, true);
        }
      }
    }
    flush();
    pipeline_->clean_paced(now_ns_);
    if (control_.state.load(std::memory_order_acquire) == ControlSlot::kPosted) [[unlikely]] {
      serve_control();
    }
  }
  flush();
}

void Worker::serve_control() {
  uint32_t posted = ControlSlot::kPosted;
  // The control thread may take a request back (timeout) until it is served.
  if (!control_.state.compare_exchange_strong(posted, ControlSlot::kServing,
                                              std::memory_order_acquire)) {
    return;
  }
  const bool done = pipeline_->serve_control(control_.request);
  control_.state.store(done ? ControlSlot::kDone : ControlSlot::kPosted, std::memory_order_release);
}

void Worker::maybe_crash(uint16_t received) {
  CrashTrigger& c = *shared_->crash;
  if (c.after.fetch_sub(received, std::memory_order_relaxed) > received) return;
  // Control path from here: the test asked for this process to die.
  std::raise(c.signal.load(std::memory_order_relaxed));
}

void Worker::receive(uint16_t port_index, rte_mbuf** mbufs, uint16_t n, bool from_handoff) {
  const WorkerShared& s = *shared_;
  const PortInfo& port = s.ports[port_index];
  ParsedPacket parsed[kRxBurst];
  rte_mbuf* mine[kRxBurst];
  uint16_t k = 0;
  if (from_handoff) {
    counters_.handoff_in += n;
  } else {
    counters_.rx += n;
    if (s.crash != nullptr && s.crash->signal.load(std::memory_order_relaxed) != 0) [[unlikely]] {
      maybe_crash(n);
    }
  }
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = mbufs[i];
    const OffloadHints hints = port.rx_checksum ? hints_of(m) : OffloadHints{};
    parse_frame(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), port.side, port.zone,
                s.parse, parsed[k], hints);
    if (!from_handoff && s.workers > 1) {
      const uint32_t owner = owner_worker(parsed[k], s.workers);
      if (owner != index_) {
        if (rte_ring_sp_enqueue(s.rings[index_][owner], m) == 0) {
          ++counters_.handoff_out;
        } else {
          ++counters_.handoff_full;
          rte_pktmbuf_free(m);
        }
        continue;
      }
    }
    mine[k++] = m;
  }
  if (k == 0) return;
  Verdict verdicts[kRxBurst];
  pipeline_->process(parsed, k, now_ns_, verdicts);
  rte_eth_dev_tx_buffer* out = tx_[static_cast<size_t>(s.port_index[port.peer_id])];
  for (uint16_t i = 0; i < k; ++i) {
    if (verdicts[i].pass()) {
      counters_.tx += rte_eth_tx_buffer(port.peer_id, static_cast<uint16_t>(index_), out, mine[i]);
    } else {
      rte_pktmbuf_free(mine[i]);
    }
  }
}

void Worker::flush() {
  const WorkerShared& s = *shared_;
  for (size_t i = 0; i < s.ports.size(); ++i) {
    counters_.tx +=
        rte_eth_tx_buffer_flush(s.ports[i].port_id, static_cast<uint16_t>(index_), tx_[i]);
  }
  // For the recovery report: how long after start forwarding resumed.
  if (counters_.tx != 0 && first_tx_ns_.load(std::memory_order_relaxed) == 0) {
    first_tx_ns_.store(now_ns_, std::memory_order_relaxed);
  }
}

nlohmann::json Worker::stats() const {
  return {{"worker", index_},
          {"rx", counters_.rx},
          {"tx", counters_.tx},
          {"tx_dropped", counters_.tx_dropped},
          {"handoff_out", counters_.handoff_out},
          {"handoff_in", counters_.handoff_in},
          {"handoff_full", counters_.handoff_full},
          {"connections", pipeline_->flows().size()}};
}

}  // namespace holdfast
