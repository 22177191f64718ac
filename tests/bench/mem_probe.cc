// holdfast-memprobe: what this machine's memory gives one core, to read the
// flow-table figures of docs/benchmarks.md against. For each working-set
// size it reports
//   - chase: the latency of one random cache line (a pointer chase, each
//     load waiting for the one before), and
//   - batch B: TSC cycles per random line when B independent lines are
//     prefetched together and then read, which is how the bulk lookup asks
//     for a burst's buckets and entries: the rate at which lines arrive
//     when many are in flight.
// usage: holdfast-memprobe [--hugepages] [MiB ...]   (default 2 4 8 16 64 256)
// With --hugepages the buffer is on 2 MiB pages (reserve them first:
// /proc/sys/vm/nr_hugepages), as the flow tables are in production.
#include <sys/mman.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr size_t kLine = 64;
// Results stored here are observable, so the timed loads are kept.
volatile uint64_t g_sink;

double tsc_per_ns() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t c0 = __rdtsc();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(100)) {
  }
  const uint64_t c1 = __rdtsc();
  const auto ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(c1 - c0) / ns;
}

struct Buffer {
  uint8_t* bytes = nullptr;
  size_t size = 0;
  Buffer(size_t n, bool huge) : size(n) {
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0);
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "holdfast-memprobe: cannot map %zu MiB%s: %s\n", n >> 20,
                   huge ? " of 2 MiB hugepages" : "", std::strerror(errno));
      std::exit(1);
    }
    bytes = static_cast<uint8_t*>(p);
    std::memset(bytes, 0, n);  // every page present before timing
  }
  ~Buffer() { munmap(bytes, size); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint64_t& word(size_t line) { return *reinterpret_cast<uint64_t*>(bytes + line * kLine); }
};

// TSC cycles per load of a pointer chase through every line in random order.
double chase(Buffer& b, std::mt19937_64& rng) {
  const size_t lines = b.size / kLine;
  std::vector<uint32_t> order(lines);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < lines; ++i) b.word(order[i]) = order[(i + 1) % lines];
  const size_t loads = std::max<size_t>(lines, 2'000'000);
  uint64_t at = order[0];
  const uint64_t t0 = __rdtsc();
  for (size_t i = 0; i < loads; ++i) at = b.word(at);
  const uint64_t t1 = __rdtsc();
  g_sink = at;
  return static_cast<double>(t1 - t0) / static_cast<double>(loads);
}

// TSC cycles per line when `batch` random lines are prefetched, then read.
double batched(Buffer& b, const std::vector<uint32_t>& lines, size_t batch) {
  uint64_t sum = 0;
  const size_t n = lines.size() / batch * batch;
  const uint64_t t0 = __rdtsc();
  for (size_t i = 0; i < n; i += batch) {
    for (size_t k = 0; k < batch; ++k) __builtin_prefetch(&b.word(lines[i + k]), 0, 3);
    for (size_t k = 0; k < batch; ++k) sum += b.word(lines[i + k]);
  }
  const uint64_t t1 = __rdtsc();
  g_sink = sum;
  return static_cast<double>(t1 - t0) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  bool huge = false;
  std::vector<size_t> sizes;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--hugepages") {
      huge = true;
    } else if (!a.empty() && a.size() < 7 &&
               a.find_first_not_of("0123456789") == std::string::npos && std::stoul(a) > 0) {
      sizes.push_back(std::stoul(a));
    } else {
      std::fprintf(stderr, "usage: holdfast-memprobe [--hugepages] [MiB ...]\n");
      return 2;
    }
  }
  if (sizes.empty()) sizes = {2, 4, 8, 16, 64, 256};
  const double per_ns = tsc_per_ns();
  std::printf("TSC %.2f GHz, %s pages; TSC cycles per random line\n", per_ns,
              huge ? "2 MiB" : "4 KiB");
  std::printf("%8s %14s %9s %9s %9s %9s\n", "MiB", "chase (ns)", "batch 1", "batch 8", "batch 32",
              "batch 64");
  std::mt19937_64 rng(1);
  for (size_t mib : sizes) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t size = huge ? ((mib << 20) + kHuge - 1) / kHuge * kHuge : mib << 20;
    Buffer b(size, huge);
    const double c = chase(b, rng);
    std::vector<uint32_t> lines(1u << 22);
    for (uint32_t& l : lines) l = static_cast<uint32_t>(rng() % (size / kLine));
    std::printf("%8zu %6.0f (%5.1f)", mib, c, c / per_ns);
    for (size_t batch : {1, 8, 32, 64}) std::printf(" %9.1f", batched(b, lines, batch));
    std::printf("\n");
  }
  return 0;
}
