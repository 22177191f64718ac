// The dataplane clock: wall-clock nanoseconds derived from the TSC, read
// once per loop. Wall clock (not monotonic) because connection timestamps
// outlive the process in the checkpoint store and must mean the same thing
// to the next one; the TSC keeps reading it cheap (no system call).
#pragma once

#include <rte_cycles.h>

#include <cstdint>
#include <ctime>

namespace holdfast {

class TscClock {
 public:
  TscClock() {
    hz_ = rte_get_tsc_hz();
    // ns = ticks * mult_ >> 32, exact to within a nanosecond per second.
    mult_ = static_cast<uint64_t>((1'000'000'000.0 * 4294967296.0) / static_cast<double>(hz_));
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    anchor_tsc_ = rte_rdtsc();
    anchor_ns_ =
        static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
  }

  uint64_t now_ns() {
    uint64_t delta = rte_rdtsc() - anchor_tsc_;
    if (delta >= hz_) {
      // Re-anchor on whole seconds so delta * mult_ never overflows.
      const uint64_t seconds = delta / hz_;
      anchor_tsc_ += seconds * hz_;
      anchor_ns_ += seconds * 1'000'000'000;
      delta -= seconds * hz_;
    }
    return anchor_ns_ + ((delta * mult_) >> 32);
  }

 private:
  uint64_t hz_;
  uint64_t mult_;
  uint64_t anchor_tsc_;
  uint64_t anchor_ns_;
};

}  // namespace holdfast
