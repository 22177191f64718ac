#include "dataplane/pinhole_mail.h"

#include <rte_errno.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <cstdio>

namespace holdfast {

std::unique_ptr<PinholeMail> PinholeMail::create(const std::vector<int>& sockets,
                                                 std::string* error) {
  // Ring names are global to the process; tests create several sets.
  static std::atomic<uint32_t> sets{0};
  const uint32_t set = sets.fetch_add(1);
  std::unique_ptr<PinholeMail> mail(new PinholeMail());
  for (size_t w = 0; w < sockets.size(); ++w) {
    char name[RTE_RING_NAMESIZE];
    std::snprintf(name, sizeof name, "hf_ph%u_%u", set, static_cast<unsigned>(w));
    // Single consumer (the owner); any worker may post.
    rte_ring* r =
        rte_ring_create_elem(name, sizeof(PinholeMessage), kRingSize, sockets[w], RING_F_SC_DEQ);
    if (r == nullptr) {
      *error = std::string("cannot create pinhole mail ring: ") + rte_strerror(rte_errno);
      return nullptr;
    }
    mail->rings_.push_back(r);
  }
  return mail;
}

PinholeMail::~PinholeMail() {
  for (rte_ring* r : rings_) rte_ring_free(r);
}

bool PinholeMail::post(uint32_t to, const PinholeMessage& m) {
  return rte_ring_mp_enqueue_elem(rings_[to], const_cast<PinholeMessage*>(&m), sizeof m) == 0;
}

uint32_t PinholeMail::receive(uint32_t to, PinholeMessage* out, uint32_t max) {
  return rte_ring_sc_dequeue_burst_elem(rings_[to], out, sizeof *out, max, nullptr);
}

}  // namespace holdfast
