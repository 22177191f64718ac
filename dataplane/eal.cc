#include "dataplane/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>

#include <string>
#include <vector>

namespace holdfast {

bool init_eal_without_devices(const char* program, size_t memory_mb, std::string* error) {
  static bool initialised = false;
  if (initialised) return true;
  std::vector<std::string> args = {program,
                                   "--no-huge",
                                   "--no-pci",
                                   "--no-shconf",
                                   "--no-telemetry",
                                   "-l",
                                   "0",
                                   "-m",
                                   std::to_string(memory_mb),
                                   "--log-level",
                                   "*:error"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    *error = std::string("cannot initialise DPDK: ") + rte_strerror(rte_errno);
    return false;
  }
  initialised = true;
  return true;
}

size_t pipeline_memory_mb(const PipelineSettings& s) {
  // Per connection: the entry, its free-stack word and at most 20 bytes of
  // buckets (dataplane/flow_table.h: 64-byte buckets of 8, at least 40%
  // full at capacity); per fragment record and expectation likewise; the
  // layer-7 pools. Doubled for allocator alignment and fragmentation.
  constexpr size_t kPerKey = 4 + 20;
  const size_t bytes = size_t{s.connections} * (sizeof(Connection) + kPerKey) +
                       size_t{s.fragments} * (sizeof(FragmentRecord) + kPerKey) +
                       size_t{Pipeline::expectation_capacity(s)} * (sizeof(Expectation) + kPerKey) +
                       size_t{s.ftp.sessions} * sizeof(ckpt::L7Record<FtpSlice>) +
                       size_t{s.sip.sessions} * sizeof(ckpt::L7Record<SipSession>) +
                       size_t{s.sip.calls} * sizeof(ckpt::L7Record<SipCall>);
  return 2 * (bytes >> 20) + 64;
}

}  // namespace holdfast
