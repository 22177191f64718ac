// DPDK environment for programs that use DPDK libraries (rte_acl,
// rte_malloc, rte_ring) but drive no NIC: holdfast-replay, tests and
// benchmarks. They run with --no-huge --in-memory, so they need no
// hugepages, no root and leave nothing behind in /dev/hugepages or
// /var/run/dpdk.
#pragma once

#include <cstddef>
#include <string>

#include "dataplane/pipeline.h"

namespace holdfast {

// Initialises the EAL once per process with `memory_mb` of ordinary memory.
// Returns false and sets *error on failure. Later calls return true.
bool init_eal_without_devices(const char* program, size_t memory_mb, std::string* error);

// DPDK memory a pipeline with these settings needs (its tables and
// layer-7 pools), in MiB, with margin.
size_t pipeline_memory_mb(const PipelineSettings& settings);

}  // namespace holdfast
