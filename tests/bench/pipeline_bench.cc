// holdfast-bench: one worker's packet path (parse_frame + Pipeline::process
// in bursts of 32, as the dataplane worker runs it) fed from prebuilt frames.
//
//   established/conns:N/csum:on|off   pure ACKs of N established TCP
//                                     connections, both directions, shuffled
//   established/conns:N/csum:on/cleaner
//                                     the same with Pipeline::clean_paced between
//                                     bursts, as the worker calls it
//   new_connections/fill              SYNs of fresh tuples into an empty table
//                                     (1M into a 1.25M table, then rebuilt)
//   new_connections/churn             SYNs of fresh tuples into the same
//                                     table holding 0.5M-1.1M live
//                                     connections, the cleaner expiring them
//
// One benchmark iteration is one burst of 32 frames. The machine this runs
// on is shared, so the timed loop is cut into chunks of 64 bursts (2048
// packets, a fraction of a scheduler time slice) timed with rte_rdtsc; a
// chunk that took more than twice the median was preempted and is left out.
// Counters:
//   cycles_per_pkt      TSC cycles per packet over the chunks kept (TSC
//                       cycles, not core cycles: the TSC runs at a fixed rate)
//   ns_per_pkt, Mpps    the same in time and rate
//   cycles_per_pkt_all  TSC cycles of the whole loop / packets, preempted
//                       chunks included
//   chunks_dropped      the fraction of chunks left out
// and the library's own items_per_second, from CPU time.
// A benchmark whose frames get any verdict but the expected one exits with
// an error instead of timing drops. docs/benchmarks.md has the figures.
//
// Own flags (before the benchmark library's):
//   --hugepages   initialise the EAL with 2 MiB hugepages (--in-memory; reserve
//                 them first in /proc/sys/vm/nr_hugepages) instead of
//                 init_eal_without_devices' ordinary 4 KiB pages.
// The EAL pins the main thread to its lcore; holdfast-bench puts it back on
// the CPUs it was started on, so `taskset -c N` chooses the core.
#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/eal.h"
#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "tests/bench/traffic.h"

namespace holdfast::bench {
namespace {

constexpr uint16_t kBurst = 32;
constexpr size_t kAckStride = 64;   // a 60-byte ACK per cache line
constexpr size_t kSynStride = 128;  // a 66-byte SYN per two lines
// Simulated clock: a 2025 Unix time, advanced per burst by the time 32
// minimum-size frames take at 10 GbE (67.2 ns each).
constexpr uint64_t kStartNs = 1'750'000'000ull * 1'000'000'000ull;
constexpr uint64_t kLineRateBurstNs = 32 * 67;
constexpr uint64_t kSeed = 0x686f6c6466617374ull;  // "holdfast"

constexpr size_t kMaxConnections = 1'000'000;
// new_connections/fill inserts this many connections into an empty table;
// new_connections/churn cycles through kChurnFrames SYNs in the same table.
constexpr size_t kFillConnections = 1'000'000;
constexpr size_t kChurnFrames = 2'000'000;

// Flow table sizing: 25% headroom over the connections it must hold, as an
// operator would configure it.
uint32_t capacity_for(size_t connections) {
  return static_cast<uint32_t>(connections + connections / 4);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "holdfast-bench: %s\n", what.c_str());
  std::exit(2);
}

std::string reasons_seen(const PipelineCounters& before, const PipelineCounters& after) {
  std::string out;
  for (size_t i = 0; i < kReasonCount; ++i) {
    const uint64_t n = after.reasons[i] - before.reasons[i];
    if (n == 0) continue;
    if (!out.empty()) out += ", ";
    out += std::string(kReasonNames[i]) + " " + std::to_string(n);
  }
  return out.empty() ? "no verdicts" : out;
}

// Every packet since `before` must have had reason `expected`.
void require_only(const char* what, Reason expected, const PipelineCounters& before,
                  const PipelineCounters& after, uint64_t packets) {
  const uint64_t got =
      after.reasons[static_cast<size_t>(expected)] - before.reasons[static_cast<size_t>(expected)];
  if (got != packets || after.packets() - before.packets() != packets) {
    fail(std::string(what) + ": expected " + std::to_string(packets) + " x " +
         std::string(reason_name(expected)) + ", got " + reasons_seen(before, after));
  }
}

std::unique_ptr<Pipeline> make_pipeline(uint32_t capacity, const Policy* policy,
                                        ConnIdSource* ids) {
  PipelineSettings settings;
  settings.connections = capacity;
  std::string error;
  std::unique_ptr<Pipeline> p =
      Pipeline::create(settings, policy, ids, static_cast<int>(rte_socket_id()), &error);
  if (!p) fail(error);
  return p;
}

std::unique_ptr<FrameStore> make_store(size_t count, size_t stride) {
  std::string error;
  std::unique_ptr<FrameStore> s = FrameStore::create(count, stride, &error);
  if (!s) fail(error);
  return s;
}

}  // namespace

// The timed unit: parse a burst of frames from the store, then decide it.
// Not inlined, and outside the anonymous namespace, so that callgrind can
// collect exactly this (--toggle-collect='holdfast::bench::measured_burst*').
[[gnu::noinline]] void measured_burst(Pipeline& pipeline, const FrameStore& frames, size_t first,
                                      const ParseOptions& options, uint64_t now_ns,
                                      ParsedPacket* parsed, Verdict* verdicts) {
  for (uint16_t i = 0; i < kBurst; ++i) {
    const size_t k = first + i;
    parse_frame(frames.frame(k), frames.len(k), frames.side(k), 0, options, parsed[i]);
  }
  pipeline.process(parsed, kBurst, now_ns, verdicts);
}

namespace {

// Untimed: parses and processes frames[first, first + n) and checks that
// every verdict is `expected`.
void feed_checked(Pipeline& pipeline, const FrameStore& frames, size_t first, size_t n,
                  uint64_t now_ns, Reason expected, const char* what) {
  const ParseOptions options;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  for (size_t done = 0; done < n; done += kBurst) {
    const auto m = static_cast<uint16_t>(std::min<size_t>(kBurst, n - done));
    for (uint16_t i = 0; i < m; ++i) {
      const size_t k = first + done + i;
      parse_frame(frames.frame(k), frames.len(k), frames.side(k), 0, options, parsed[i]);
    }
    pipeline.process(parsed, m, now_ns, verdicts);
    for (uint16_t i = 0; i < m; ++i) {
      if (verdicts[i].reason != expected) {
        fail(std::string(what) + ": frame " + std::to_string(first + done + i) + " got " +
             std::string(reason_name(verdicts[i].reason)) + ", expected " +
             std::string(reason_name(expected)));
      }
    }
  }
}

// Builds frames for segment s of every tuple into a store.
std::unique_ptr<FrameStore> frames_for(const std::vector<Tuple>& tuples, Segment s, size_t stride) {
  std::unique_ptr<FrameStore> store = make_store(tuples.size(), stride);
  for (size_t i = 0; i < tuples.size(); ++i) {
    store->set(i, build_frame(tuples[i], s, store->slot(i)), side_of(s));
  }
  return store;
}

// Benchmarks share a scenario (tables, frames) across their repetitions;
// building 1M connections takes seconds. One scenario lives at a time.
struct Scenario {
  virtual ~Scenario() = default;
};
std::string g_scenario_key;
std::unique_ptr<Scenario> g_scenario;

void release_scenario() {
  g_scenario.reset();
  g_scenario_key.clear();
}

template <typename S, typename Build>
S& scenario(const std::string& key, Build&& build) {
  if (g_scenario_key != key) {
    release_scenario();  // free its DPDK memory before the next one takes some
    g_scenario = build();
    g_scenario_key = key;
  }
  return static_cast<S&>(*g_scenario);
}

// N connections taken through SYN, SYN/ACK, ACK by the pipeline itself, and
// one pure ACK per connection (direction random, order shuffled) to replay.
struct Established : Scenario {
  std::unique_ptr<Policy> policy;
  ConnIdSource ids;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<FrameStore> acks;
  size_t cursor = 0;
  uint64_t now_ns = kStartNs;

  static std::unique_ptr<Scenario> build(size_t n) {
    std::fprintf(stderr, "holdfast-bench: establishing %zu connections...\n", n);
    auto s = std::make_unique<Established>();
    const std::vector<Tuple> tuples = make_tuples(n, kSeed);
    s->policy = compile_benchmark_policy();
    s->pipeline = make_pipeline(capacity_for(n), s->policy.get(), &s->ids);

    const struct {
      Segment segment;
      Reason expected;
    } handshake[] = {{Segment::syn, Reason::new_connection},
                     {Segment::syn_ack, Reason::established},
                     {Segment::client_ack, Reason::established}};
    for (const auto& step : handshake) {
      std::unique_ptr<FrameStore> frames = frames_for(tuples, step.segment, kSynStride);
      feed_checked(*s->pipeline, *frames, 0, n, s->now_ns, step.expected, "handshake");
      s->now_ns += 1'000'000;  // 1 ms between handshake steps
    }
    if (s->pipeline->flows().size() != n) {
      fail("handshake left " + std::to_string(s->pipeline->flows().size()) + " connections, not " +
           std::to_string(n));
    }

    // The replay set: a whole number of bursts, so the cursor wraps cleanly;
    // the few frames beyond n repeat the first connections in the other
    // direction.
    const size_t count = (n + kBurst - 1) / kBurst * kBurst;
    std::mt19937_64 rng(kSeed + 1);
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<bool> from_client(n);
    for (size_t i = 0; i < n; ++i) from_client[i] = (rng() & 1) != 0;
    s->acks = make_store(count, kAckStride);
    for (size_t i = 0; i < count; ++i) {
      const uint32_t c = order[i % n];
      const bool client = i < n ? from_client[c] : !from_client[c];
      const Segment seg = client ? Segment::client_ack : Segment::server_ack;
      s->acks->set(i, build_frame(tuples[c], seg, s->acks->slot(i)), side_of(seg));
    }
    s->now_ns += 1'000'000'000;
    feed_checked(*s->pipeline, *s->acks, 0, count, s->now_ns, Reason::established, "ACK replay");
    return s;
  }
};

// Fresh SYNs, each of a distinct tuple allowed by policy.
struct NewConnections : Scenario {
  std::unique_ptr<Policy> policy;
  ConnIdSource ids;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<FrameStore> syns;
  size_t cursor = 0;
  uint64_t now_ns = kStartNs;
  uint64_t burst_ns = kLineRateBurstNs;

  static std::unique_ptr<NewConnections> with_syns(size_t count) {
    std::fprintf(stderr, "holdfast-bench: building %zu SYNs...\n", count);
    auto s = std::make_unique<NewConnections>();
    s->policy = compile_benchmark_policy();
    s->syns = frames_for(make_tuples(count, kSeed + 2), Segment::syn, kSynStride);
    return s;
  }
};

// Times the loop in chunks of kChunkBursts bursts with the TSC.
class TscMeter {
 public:
  static constexpr uint32_t kChunkBursts = 64;

  explicit TscMeter(const benchmark::State& state) {
    chunks_.reserve(static_cast<size_t>(state.max_iterations) / kChunkBursts + 1);
  }
  void start() {
    chunk_start_ = rte_rdtsc();
    in_chunk_ = 0;
  }
  void burst_done() {
    if (++in_chunk_ != kChunkBursts) return;
    const uint64_t now = rte_rdtsc();
    chunks_.push_back(now - chunk_start_);
    total_ += now - chunk_start_;
    chunk_start_ = now;
    in_chunk_ = 0;
  }
  // Ends the timed stretch; a partial chunk counts in the total only.
  void stop() { total_ += rte_rdtsc() - chunk_start_; }

  // TSC cycles per packet over the chunks that took at most twice the
  // median chunk; over the whole loop when it had no complete chunk.
  double per_packet(uint64_t packets, double* dropped) {
    *dropped = 0;
    if (chunks_.empty()) return packets == 0 ? 0 : static_cast<double>(total_) / packets;
    std::vector<uint64_t> sorted = chunks_;
    auto mid = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
    std::nth_element(sorted.begin(), mid, sorted.end());
    const uint64_t limit = 2 * *mid;
    uint64_t cycles = 0;
    size_t kept = 0;
    for (uint64_t c : chunks_) {
      if (c > limit) continue;
      cycles += c;
      ++kept;
    }
    *dropped = 1.0 - static_cast<double>(kept) / static_cast<double>(chunks_.size());
    return static_cast<double>(cycles) / static_cast<double>(kept * kChunkBursts * kBurst);
  }
  uint64_t total() const { return total_; }

 private:
  std::vector<uint64_t> chunks_;
  uint64_t total_ = 0;
  uint64_t chunk_start_ = 0;
  uint32_t in_chunk_ = 0;
};

void report(benchmark::State& state, uint64_t packets, TscMeter& meter) {
  double dropped = 0;
  const double cycles = meter.per_packet(packets, &dropped);
  const double ns = cycles * 1e9 / static_cast<double>(rte_get_tsc_hz());
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["cycles_per_pkt"] = cycles;
  state.counters["ns_per_pkt"] = ns;
  state.counters["Mpps"] = ns == 0 ? 0 : 1e3 / ns;
  state.counters["cycles_per_pkt_all"] =
      packets == 0 ? 0 : static_cast<double>(meter.total()) / static_cast<double>(packets);
  state.counters["chunks_dropped"] = dropped;
}

void bm_established(benchmark::State& state, size_t n, bool verify_checksums, bool cleaner) {
  auto& s = scenario<Established>("established/" + std::to_string(n),
                                  [n] { return Established::build(n); });
  ParseOptions options;
  options.verify_checksums = verify_checksums;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  Pipeline& pipeline = *s.pipeline;
  const FrameStore& frames = *s.acks;
  const PipelineCounters before = pipeline.counters();

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    measured_burst(pipeline, frames, s.cursor, options, s.now_ns, parsed, verdicts);
    if (cleaner) pipeline.clean_paced(s.now_ns);
    s.cursor += kBurst;
    if (s.cursor == frames.size()) s.cursor = 0;
    s.now_ns += kLineRateBurstNs;
    meter.burst_done();
  }
  meter.stop();

  const uint64_t packets = static_cast<uint64_t>(state.iterations()) * kBurst;
  require_only(("established/conns:" + std::to_string(n)).c_str(), Reason::established, before,
               pipeline.counters(), packets);
  report(state, packets, meter);
}

// SYNs into an empty table until it holds kFillConnections connections; the table
// is then rebuilt outside the timed region. Pure creation: lookup miss,
// policy (rte_acl), insert, slice init; no expiry.
void bm_new_fill(benchmark::State& state) {
  auto& s = scenario<NewConnections>("new_connections/fill", [] {
    auto s = NewConnections::with_syns(kFillConnections);
    s->pipeline = make_pipeline(capacity_for(kFillConnections), s->policy.get(), &s->ids);
    return s;
  });
  const ParseOptions options;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  const size_t usable = s.syns->size() / kBurst * kBurst;
  PipelineCounters before = s.pipeline->counters();
  uint64_t packets = 0;  // since the table was last rebuilt

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    if (s.cursor == usable) {
      meter.stop();
      state.PauseTiming();
      require_only("new_connections/fill", Reason::new_connection, before, s.pipeline->counters(),
                   packets);
      s.pipeline.reset();
      s.pipeline = make_pipeline(capacity_for(kFillConnections), s.policy.get(), &s.ids);
      s.cursor = 0;
      before = s.pipeline->counters();
      packets = 0;
      state.ResumeTiming();
      meter.start();
    }
    measured_burst(*s.pipeline, *s.syns, s.cursor, options, s.now_ns, parsed, verdicts);
    s.cursor += kBurst;
    s.now_ns += kLineRateBurstNs;
    packets += kBurst;
    meter.burst_done();
  }
  meter.stop();

  require_only("new_connections/fill", Reason::new_connection, before, s.pipeline->counters(),
               packets);
  report(state, static_cast<uint64_t>(state.iterations()) * kBurst, meter);
}

// Steady state: 2M distinct SYNs replayed in a loop into the flow table of
// new_connections/fill, with the worker's paced cleaner (one sweep of the
// table per simulated second) running between bursts. The simulated clock runs so that SYN_SENT's
// timeout (120 s) passes while 0.4 table's worth of newer connections is
// opened; the cleaner laps the table many times meanwhile. So a
// connection is expired before its tuple comes round again and each packet
// pays for one connection's creation, policy and expiry. The table holds
// between about 0.5M and 1.1M live connections (reported as `live`): rte_hash
// hands freed slots out again in FIFO order, so a slot's position follows
// its connection's age and the sequential sweep meets expired entries in
// waves. Each repetition is one lap over the SYNs, so it spans whole waves.
void bm_new_churn(benchmark::State& state) {
  auto& s = scenario<NewConnections>("new_connections/churn", [] {
    auto s = NewConnections::with_syns(kChurnFrames);
    const uint32_t capacity = capacity_for(kFillConnections);
    s->pipeline = make_pipeline(capacity, s->policy.get(), &s->ids);
    const TrackerSettings tracker;
    const uint64_t timeout_bursts = capacity * 2 / 5 / kBurst;
    // The worker's cleaner sweeps the table once per simulated period.
    const uint64_t lap_bursts = Pipeline::kSweepPeriodNs / (tracker.tcp.syn_sent * 1'000'000ull /
                                                             timeout_bursts + 1) + 1;
    s->burst_ns = tracker.tcp.syn_sent * 1'000'000ull / timeout_bursts + 1;
    if ((timeout_bursts + lap_bursts) * kBurst >= kChurnFrames) {
      fail("churn: tuples would come round before their connections are expired");
    }
    // Warm up into the steady state: one lap over all SYNs fills the table
    // and starts expiring.
    std::fprintf(stderr, "holdfast-bench: churn warm-up...\n");
    const ParseOptions options;
    ParsedPacket parsed[kBurst];
    Verdict verdicts[kBurst];
    for (size_t first = 0; first + kBurst <= s->syns->size(); first += kBurst) {
      measured_burst(*s->pipeline, *s->syns, first, options, s->now_ns, parsed, verdicts);
      s->pipeline->clean_paced(s->now_ns);
      s->now_ns += s->burst_ns;
    }
    return s;
  });
  const ParseOptions options;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  Pipeline& pipeline = *s.pipeline;
  const size_t usable = s.syns->size() / kBurst * kBurst;
  const PipelineCounters before = pipeline.counters();

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    measured_burst(pipeline, *s.syns, s.cursor, options, s.now_ns, parsed, verdicts);
    pipeline.clean_paced(s.now_ns);
    s.cursor += kBurst;
    if (s.cursor == usable) s.cursor = 0;
    s.now_ns += s.burst_ns;
    meter.burst_done();
  }
  meter.stop();

  const uint64_t packets = static_cast<uint64_t>(state.iterations()) * kBurst;
  require_only("new_connections/churn", Reason::new_connection, before, pipeline.counters(),
               packets);
  state.counters["live"] = static_cast<double>(pipeline.flows().size());
  const size_t tcp = static_cast<size_t>(ModuleId::tcp);
  state.counters["expired_per_pkt"] =
      static_cast<double>(pipeline.counters().expired[tcp] - before.expired[tcp]) /
      static_cast<double>(packets);
  report(state, packets, meter);
}

void register_benchmarks() {
  auto common = [](benchmark::internal::Benchmark* b) { return b->Unit(benchmark::kNanosecond); };
  for (size_t n : {size_t{1'000}, size_t{100'000}, kMaxConnections}) {
    for (bool csum : {true, false}) {
      const std::string name =
          "established/conns:" + std::to_string(n) + "/csum:" + (csum ? "on" : "off");
      common(benchmark::RegisterBenchmark(name.c_str(), bm_established, n, csum, false));
    }
    const std::string name = "established/conns:" + std::to_string(n) + "/csum:on/cleaner";
    common(benchmark::RegisterBenchmark(name.c_str(), bm_established, n, true, true));
  }
  // Whole cycles, whatever --benchmark_min_time says: the cost per
  // connection changes as the table fills, and as the cleaner's sweep
  // meets waves of expired entries.
  common(benchmark::RegisterBenchmark("new_connections/fill", bm_new_fill))
      ->Iterations(kFillConnections / kBurst);
  common(benchmark::RegisterBenchmark("new_connections/churn", bm_new_churn))
      ->Iterations(kChurnFrames / kBurst);
}

// DPDK memory for the largest scenario: a flow table for kMaxConnections
// (kFillConnections) plus the churn's SYN frames, with margin.
size_t eal_memory_mb() {
  const size_t table = pipeline_memory_mb(capacity_for(std::max(kMaxConnections, kFillConnections)),
                                          PipelineSettings{}.fragments);
  const size_t frames = (kChurnFrames * kSynStride) >> 20;
  return table + frames + 128;
}

bool init_eal_with_hugepages(const char* program, size_t memory_mb, int cpu, std::string* error) {
  std::vector<std::string> args = {program,       "--in-memory",
                                   "--no-pci",    "--no-telemetry",
                                   "-l",          std::to_string(cpu),
                                   "-m",          std::to_string(memory_mb),
                                   "--log-level", "*:error"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    *error = std::string("cannot initialise DPDK with hugepages (reserve ") +
             std::to_string(memory_mb / 2 + 16) +
             " in /proc/sys/vm/nr_hugepages first): " + rte_strerror(rte_errno);
    return false;
  }
  return true;
}

}  // namespace
}  // namespace holdfast::bench

int main(int argc, char** argv) {
  using namespace holdfast::bench;
  bool hugepages = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--hugepages") == 0) {
      hugepages = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // The EAL pins the main thread to its main lcore; keep the CPU the caller
  // chose (taskset) instead.
  cpu_set_t chosen;
  CPU_ZERO(&chosen);
  if (sched_getaffinity(0, sizeof chosen, &chosen) != 0) {
    std::perror("sched_getaffinity");
    return 1;
  }
  int first_cpu = 0;
  while (first_cpu < CPU_SETSIZE && !CPU_ISSET(first_cpu, &chosen)) ++first_cpu;

  const size_t memory_mb = eal_memory_mb();
  std::string error;
  const bool ok = hugepages
                      ? init_eal_with_hugepages("holdfast-bench", memory_mb, first_cpu, &error)
                      : holdfast::init_eal_without_devices("holdfast-bench", memory_mb, &error);
  if (!ok) {
    std::fprintf(stderr, "holdfast-bench: %s\n", error.c_str());
    return 1;
  }
  if (sched_setaffinity(0, sizeof chosen, &chosen) != 0) {
    std::perror("sched_setaffinity");
    return 1;
  }

  benchmark::AddCustomContext("dpdk_memory", hugepages ? "2 MiB hugepages" : "4 KiB pages");
  benchmark::AddCustomContext("dpdk_memory_mb", std::to_string(memory_mb));
  benchmark::AddCustomContext("tsc_hz", std::to_string(rte_get_tsc_hz()));
  benchmark::AddCustomContext("burst", std::to_string(kBurst));
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  release_scenario();  // its DPDK memory goes with the EAL
  rte_eal_cleanup();
  return 0;
}
