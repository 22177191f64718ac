// holdfast-bench: one worker's packet path (parse_frame + Pipeline::process
// in bursts of 32, as the dataplane worker runs it) fed from prebuilt frames,
// with and without checkpointing, and recovery from the checkpoint store.
//
//   established/conns:N/csum:on|off   pure ACKs of N established TCP
//                                     connections, both directions, shuffled
//   established/conns:N/csum:on/cleaner
//                                     the same with Pipeline::clean_paced between
//                                     bursts, as the worker calls it
//   established/conns:N/csum:on/ckpt  the same pure ACKs, checkpointing into a
//                                     store in /dev/shm (the same table and
//                                     frames as csum:on, whose runs have the
//                                     checkpoint detached)
//   established/conns:N/csum:on/ckpt/lap:1s
//                                     the same, the clock jumping a second per
//                                     lap: every packet puts its base slot
//   established_data/conns:N/ckpt:off|on[/lap:1s]
//                                     every packet carries 6 bytes of new data
//                                     and acknowledges all the other end sent,
//                                     so every packet changes the TCP slice
//                                     (with ckpt:on, every packet is a put;
//                                     lap:1s: and a base put too)
//   new_connections/fill[/ckpt[:cold]] SYNs of fresh tuples into an empty table
//                                     (1M into a 1.25M table, then rebuilt);
//                                     ckpt: with checkpointing into a store
//                                     whose pages are present (a running
//                                     dataplane's), ckpt:cold: into a freshly
//                                     punched one (a dataplane just started)
//   new_connections/churn[/ckpt]      SYNs of fresh tuples, 500k per simulated
//                                     second, into the same table holding
//                                     0.5M-1M live connections, the paced
//                                     cleaner expiring them (SYN_SENT 1 s)
//   recovery/conns:N/workers:AtoB[/prefaulted[/threads:1|/rules:changed]]
//                                     recover_connections of N established
//                                     TCP connections checkpointed by A
//                                     workers into B fresh pipelines, writing
//                                     into a freshly punched set (prefaulted:
//                                     one whose pages are all present), on
//                                     as many threads as it finds cores
//                                     (threads:1: on one), under the rules
//                                     they were admitted by (rules:changed:
//                                     under rules of another digest, so
//                                     every connection is classified again)
//   checkpoint/bytes_per_connection   store bytes per connection (counters)
//   steering/owner/ipv4|ipv6          the owner of an address pair
//                                     (address_pair_hash, then the RETA),
//                                     as a worker of several asks for every
//                                     packet it receives: 4096 random pairs
//                                     in a loop, 32 per iteration
//
// One benchmark iteration is one burst of 32 frames (recovery: one
// recovery, timed manually). The machine this runs
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
//   base_puts_per_pkt, tcp_puts_per_pkt, erases_per_pkt
//                       checkpoint writes per packet (ckpt runs), read from
//                       the slots' sequence counters after the run
// and the library's own items_per_second, from CPU time.
// A benchmark whose frames get any verdict but the expected one exits with
// an error instead of timing drops. docs/benchmarks.md has the figures.
//
// Own flags (before the benchmark library's):
//   --hugepages   initialise the EAL with 2 MiB hugepages (--in-memory; reserve
//                 them first in /proc/sys/vm/nr_hugepages) instead of
//                 init_eal_without_devices' ordinary 4 KiB pages; the
//                 checkpoint store goes to /dev/hugepages when that is a
//                 hugetlbfs mount (else it stays in /dev/shm, and the
//                 context says so).
//   --store-dir D the directory of the checkpoint store file (default
//                 /dev/shm); the file is unlinked as soon as it is mapped.
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
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/recovery.h"
#include "dataplane/eal.h"
#include "dataplane/parser.h"
#include "dataplane/pipeline.h"
#include "dataplane/steering.h"
#include "tests/bench/bench_store.h"
#include "tests/bench/traffic.h"

namespace holdfast::bench {
namespace {

// Default settings with `fragments` fragment records per worker.
inline PipelineSettings fragment_settings(uint32_t fragments) {
  PipelineSettings s;
  s.fragments = fragments;
  return s;
}

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

// Routes every frame of frames[0, n) to its owner among the pipelines (as
// the NIC's symmetric RSS and the handoff rings do) and checks that every
// verdict is `expected`. Untimed.
void feed_steered(const std::vector<Pipeline*>& pipelines, const FrameStore& frames, size_t n,
                  uint64_t now_ns, Reason expected, const char* what) {
  const ParseOptions options;
  const auto workers = static_cast<uint32_t>(pipelines.size());
  std::vector<std::vector<ParsedPacket>> parsed(workers, std::vector<ParsedPacket>(kBurst));
  std::vector<uint16_t> count(workers);
  Verdict verdicts[kBurst];
  auto flush = [&](uint32_t w) {
    pipelines[w]->process(parsed[w].data(), count[w], now_ns, verdicts);
    for (uint16_t i = 0; i < count[w]; ++i) {
      if (verdicts[i].reason != expected) {
        fail(std::string(what) + ": got " + std::string(reason_name(verdicts[i].reason)) +
             ", expected " + std::string(reason_name(expected)));
      }
    }
    count[w] = 0;
  };
  for (size_t k = 0; k < n; ++k) {
    ParsedPacket p;
    parse_frame(frames.frame(k), frames.len(k), frames.side(k), 0, options, p);
    const uint32_t w = owner_worker(p, workers);
    parsed[w][count[w]++] = p;
    if (count[w] == kBurst) flush(w);
  }
  for (uint32_t w = 0; w < workers; ++w) {
    if (count[w] != 0) flush(w);
  }
}

// Where the checkpoint store file goes (--store-dir, --hugepages).
std::string g_store_dir = "/dev/shm";

uint32_t fragments_per_worker() {
  return PipelineSettings{}.fragments;
}

// A checkpoint store in g_store_dir with one region set of `workers` x
// `slots` connection slots (written in epoch 1), and one writer per worker
// pointed at it, as the dataplane's start_checkpointing does it.
struct Checkpoint {
  std::unique_ptr<BenchStore> store;
  ckpt::RegionSet set;
  std::vector<ckpt::WorkerCheckpoint> writers;  // never resized: pipelines point into it

  ckpt::WorkerCheckpoint* writer(uint32_t w) { return &writers[w]; }
};

std::unique_ptr<Checkpoint> make_checkpoint(uint32_t workers, uint32_t slots) {
  auto c = std::make_unique<Checkpoint>();
  const uint32_t fragments = fragments_per_worker();
  std::string error;
  c->store =
      BenchStore::create(g_store_dir, BenchStore::set_bytes(workers, slots, fragments), &error);
  if (!c->store) fail(error);
  if (!c->store->add_set(1, 1, workers, slots, fragments, &c->set, &error)) fail(error);
  c->writers.assign(workers, ckpt::WorkerCheckpoint{});
  if (!c->store->attach(c->set, &c->writers, &error)) fail(error);
  return c;
}

// Checkpoint writes (puts and erases) so far, per module, as the writers
// counted them.
struct Writes {
  uint64_t base = 0;
  uint64_t tcp = 0;
};

Writes count_writes(const Checkpoint& c) {
  Writes w;
  for (const ckpt::WorkerCheckpoint& writer : c.writers) {
    w.base += writer.writes(ckpt::kBaseModule);
    w.tcp += writer.writes(static_cast<uint8_t>(ModuleId::tcp));
  }
  return w;
}

void report_writes(benchmark::State& state, const Writes& before, const Writes& after,
                   uint64_t packets) {
  const auto per_packet = [packets](uint64_t n) {
    return packets == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(packets);
  };
  state.counters["base_writes_per_pkt"] = per_packet(after.base - before.base);
  state.counters["tcp_writes_per_pkt"] = per_packet(after.tcp - before.tcp);
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

// N connections taken through SYN, SYN/ACK, ACK by the pipeline itself,
// checkpointing into a store as they are (so every slot they use holds them
// and its pages are present), and the frames to replay. Benchmarks attach
// or detach the checkpoint for their run: the same table and frames serve
// both.
struct Established : Scenario {
  std::unique_ptr<Policy> policy;
  ConnIdSource ids;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<Tuple> tuples;
  size_t cursor = 0;
  uint64_t now_ns = kStartNs;

  void checkpointing(bool on) { pipeline->set_checkpoint(on ? ckpt->writer(0) : nullptr, false); }

  void handshake(size_t n) {
    std::fprintf(stderr, "holdfast-bench: establishing %zu connections...\n", n);
    tuples = make_tuples(n, kSeed);
    policy = compile_benchmark_policy();
    pipeline = make_pipeline(capacity_for(n), policy.get(), &ids);
    ckpt = make_checkpoint(1, capacity_for(n));
    checkpointing(true);

    const struct {
      Segment segment;
      Reason expected;
    } handshake[] = {{Segment::syn, Reason::new_connection},
                     {Segment::syn_ack, Reason::established},
                     {Segment::client_ack, Reason::established}};
    for (const auto& step : handshake) {
      std::unique_ptr<FrameStore> frames = frames_for(tuples, step.segment, kSynStride);
      feed_checked(*pipeline, *frames, 0, n, now_ns, step.expected, "handshake");
      now_ns += 1'000'000;  // 1 ms between handshake steps
    }
    if (pipeline->flows().size() != n) {
      fail("handshake left " + std::to_string(pipeline->flows().size()) + " connections, not " +
           std::to_string(n));
    }
  }
};

// One pure ACK per connection (direction random, order shuffled) to replay.
struct EstablishedAcks : Established {
  std::unique_ptr<FrameStore> acks;
  // Memory the store file held once the connections were established,
  // before anything read it (on tmpfs, reading a hole allocates a page).
  uint64_t store_resident = 0;

  static std::unique_ptr<Scenario> build(size_t n) {
    auto s = std::make_unique<EstablishedAcks>();
    s->handshake(n);
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
      s->acks->set(i, build_frame(s->tuples[c], seg, s->acks->slot(i)), side_of(seg));
    }
    s->now_ns += 1'000'000'000;
    feed_checked(*s->pipeline, *s->acks, 0, count, s->now_ns, Reason::established, "ACK replay");
    s->store_resident = s->ckpt->store->resident_bytes();
    return s;
  }
};

// Data segments: each frame carries kDataBytes of new data from one end and
// acknowledges everything the other end has sent, so each moves its
// sender's end and the other end's window edge: every packet changes the
// TCP slice. Connections are visited in a fixed shuffled order, the sending
// end drawn at random per visit; the frames are regenerated, with the
// sequence numbers going on, whenever they have all been fed.
struct EstablishedData : Established {
  // 6 bytes keep the frame at 60 bytes, the size of the pure ACKs.
  static constexpr uint32_t kDataBytes = 6;
  // At least this many frames per fill, so that small tables still give the
  // meter whole chunks between two refills.
  static constexpr size_t kMinFrames = 65'536;

  std::unique_ptr<FrameStore> data;
  std::vector<uint32_t> order;
  std::vector<uint32_t> next_seq;  // [2c]: client's next sequence number, [2c + 1]: server's
  std::mt19937_64 rng{kSeed + 3};
  size_t laps = 1;

  void refill() {
    size_t k = 0;
    for (size_t lap = 0; lap < laps; ++lap) {
      for (uint32_t c : order) {
        const bool client = (rng() & 1) != 0;
        uint32_t& mine = next_seq[2 * c + (client ? 0 : 1)];
        const uint32_t theirs = next_seq[2 * c + (client ? 1 : 0)];
        data->set(k, build_data_frame(tuples[c], client, mine, theirs, kDataBytes, data->slot(k)),
                  client ? Side::inside : Side::outside);
        mine += kDataBytes;
        ++k;
      }
    }
  }

  static std::unique_ptr<Scenario> build(size_t n) {
    auto s = std::make_unique<EstablishedData>();
    s->handshake(n);
    // Whole laps, a whole number of bursts, at least kMinFrames.
    s->laps = (kMinFrames + n - 1) / n;
    while (s->laps * n % kBurst != 0) ++s->laps;
    std::mt19937_64 shuffle(kSeed + 1);
    s->order.resize(n);
    for (size_t i = 0; i < n; ++i) s->order[i] = static_cast<uint32_t>(i);
    std::shuffle(s->order.begin(), s->order.end(), shuffle);
    s->next_seq.resize(2 * n);
    for (size_t c = 0; c < n; ++c) {
      s->next_seq[2 * c] = s->tuples[c].client_isn + 1;
      s->next_seq[2 * c + 1] = s->tuples[c].server_isn + 1;
    }
    s->data = make_store(s->laps * n, kAckStride);
    s->refill();
    s->now_ns += 1'000'000'000;
    feed_checked(*s->pipeline, *s->data, 0, s->data->size(), s->now_ns, Reason::established,
                 "data replay");
    s->refill();
    return s;
  }
};

// Fresh SYNs, each of a distinct tuple allowed by policy.
struct NewConnections : Scenario {
  std::unique_ptr<Policy> policy;
  ConnIdSource ids;
  std::unique_ptr<Checkpoint> ckpt;
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
    s->ckpt = make_checkpoint(1, capacity_for(kFillConnections));
    return s;
  }
  void checkpointing(bool on) { pipeline->set_checkpoint(on ? ckpt->writer(0) : nullptr, false); }
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

// How an established benchmark runs.
struct EstablishedRun {
  bool verify_checksums = true;
  bool cleaner = false;     // Pipeline::clean_paced between bursts
  bool checkpoint = false;  // checkpointing into the scenario's store
  // The clock jumps a second at every lap over the connections, so that
  // every connection's next packet is the first of a new second and puts
  // its base slot (last seen), which at line rate happens once a second per
  // connection: at most one packet in 15 at 1M connections, one in 15,000
  // at 1k. The upper bound of the base writes.
  bool second_per_lap = false;
};

void bm_established(benchmark::State& state, size_t n, EstablishedRun run) {
  auto& s = scenario<EstablishedAcks>("established/" + std::to_string(n),
                                      [n] { return EstablishedAcks::build(n); });
  ParseOptions options;
  options.verify_checksums = run.verify_checksums;
  const bool checkpoint = run.checkpoint;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  Pipeline& pipeline = *s.pipeline;
  const FrameStore& frames = *s.acks;
  s.checkpointing(checkpoint);
  const Writes writes_before = checkpoint ? count_writes(*s.ckpt) : Writes{};
  const PipelineCounters before = pipeline.counters();

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    measured_burst(pipeline, frames, s.cursor, options, s.now_ns, parsed, verdicts);
    if (run.cleaner) pipeline.clean_paced(s.now_ns);
    s.cursor += kBurst;
    s.now_ns += kLineRateBurstNs;
    if (s.cursor == frames.size()) {
      s.cursor = 0;
      if (run.second_per_lap) s.now_ns += 1'000'000'000;
    }
    meter.burst_done();
  }
  meter.stop();

  const uint64_t packets = static_cast<uint64_t>(state.iterations()) * kBurst;
  require_only(("established/conns:" + std::to_string(n)).c_str(), Reason::established, before,
               pipeline.counters(), packets);
  report(state, packets, meter);
  if (checkpoint) {
    report_writes(state, writes_before, count_writes(*s.ckpt), packets);
    state.counters["store_resident_per_conn"] =
        static_cast<double>(s.store_resident) / static_cast<double>(n);
  }
}

// Data segments of N established connections, every packet a change of
// the TCP slice. The frames are regenerated (untimed) once all were fed.
void bm_established_data(benchmark::State& state, size_t n, bool checkpoint, bool second_per_lap) {
  auto& s = scenario<EstablishedData>("established_data/" + std::to_string(n),
                                      [n] { return EstablishedData::build(n); });
  const ParseOptions options;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  Pipeline& pipeline = *s.pipeline;
  const FrameStore& frames = *s.data;
  s.checkpointing(checkpoint);
  const Writes writes_before = checkpoint ? count_writes(*s.ckpt) : Writes{};
  const PipelineCounters before = pipeline.counters();

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    if (s.cursor == frames.size()) {
      meter.stop();
      state.PauseTiming();
      s.refill();
      s.cursor = 0;
      state.ResumeTiming();
      meter.start();
    }
    measured_burst(pipeline, frames, s.cursor, options, s.now_ns, parsed, verdicts);
    const size_t lap = s.cursor / n;
    s.cursor += kBurst;
    s.now_ns += kLineRateBurstNs;
    if (second_per_lap && s.cursor / n != lap) s.now_ns += 1'000'000'000;
    meter.burst_done();
  }
  meter.stop();

  const uint64_t packets = static_cast<uint64_t>(state.iterations()) * kBurst;
  require_only(("established_data/conns:" + std::to_string(n)).c_str(), Reason::established, before,
               pipeline.counters(), packets);
  report(state, packets, meter);
  if (checkpoint) report_writes(state, writes_before, count_writes(*s.ckpt), packets);
}

// What the checkpoint store is like during a fill.
enum class FillStore : uint8_t {
  none,  // no checkpointing
  warm,  // every page of the store present, as in a dataplane that has run a while
  cold,  // the set punched before each fill: every first write to a page faults
         // it in, as in a dataplane just started on a freshly allocated set
};

// SYNs into an empty table until it holds kFillConnections connections; the table
// is then rebuilt outside the timed region. Pure creation: lookup miss,
// policy (rte_acl), insert, slice init; no expiry.
void bm_new_fill(benchmark::State& state, FillStore store) {
  auto& s = scenario<NewConnections>("new_connections/fill", [] {
    auto s = NewConnections::with_syns(kFillConnections);
    s->pipeline = make_pipeline(capacity_for(kFillConnections), s->policy.get(), &s->ids);
    return s;
  });
  const ParseOptions options;
  ParsedPacket parsed[kBurst];
  Verdict verdicts[kBurst];
  const size_t usable = s.syns->size() / kBurst * kBurst;
  PipelineCounters before;
  uint64_t packets = 0;  // since the table was last rebuilt

  // Untimed: the table must be empty, the store as `store` says.
  auto start_fill = [&] {
    if (s.cursor != 0) {
      s.pipeline.reset();
      s.pipeline = make_pipeline(capacity_for(kFillConnections), s.policy.get(), &s.ids);
      s.cursor = 0;
    }
    if (store == FillStore::cold) s.ckpt->store->punch(s.ckpt->set);
    s.checkpointing(store != FillStore::none);
    before = s.pipeline->counters();
    packets = 0;
  };
  // A whole fill must have checkpointed every connection it opened.
  auto check_fill = [&] {
    require_only("new_connections/fill", Reason::new_connection, before, s.pipeline->counters(),
                 packets);
    if (store == FillStore::none || s.cursor != usable) return;
    const uint64_t base = s.ckpt->store->used_slots(s.ckpt->set, ckpt::kBaseModule);
    const uint64_t tcp =
        s.ckpt->store->used_slots(s.ckpt->set, static_cast<uint8_t>(ModuleId::tcp));
    if (base != s.pipeline->flows().size() || tcp != base) {
      fail("new_connections/fill: the store holds " + std::to_string(base) + " bases and " +
           std::to_string(tcp) + " TCP slices for " + std::to_string(s.pipeline->flows().size()) +
           " connections");
    }
  };
  if (store == FillStore::warm) s.ckpt->store->prefault(s.ckpt->set);
  start_fill();

  TscMeter meter(state);
  meter.start();
  for (auto _ : state) {
    if (s.cursor == usable) {
      meter.stop();
      state.PauseTiming();
      check_fill();
      start_fill();
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

  check_fill();
  report(state, static_cast<uint64_t>(state.iterations()) * kBurst, meter);
}

// Steady state: 2M distinct SYNs replayed in a loop into the flow table of
// new_connections/fill, with the worker's paced cleaner (one sweep of the
// table per simulated second) running between bursts. The simulated clock
// brings kChurnRate SYNs per second, and SYN_SENT's timeout is shortened to
// kChurnSynTimeoutMs (the default, 120 s, would need a table of 60M
// connections at that rate): a connection expires after 1 s and is swept
// within the next second, so the table holds between about 0.5M and 1M live
// connections (reported as `live`), and a tuple comes round again only after
// 4 s, when its connection is long gone. So each packet pays for one
// connection's creation, policy and expiry, and for the cleaner's visits to
// capacity / kChurnRate = 2.5 entries. With checkpointing, each SYN puts a
// base and a TCP slice and each expiry erases both. Each repetition is one
// lap over the SYNs.
constexpr uint64_t kChurnRate = 500'000;
constexpr uint32_t kChurnSynTimeoutMs = 1'000;

void bm_new_churn(benchmark::State& state, bool checkpoint) {
  auto& s = scenario<NewConnections>("new_connections/churn", [] {
    auto s = NewConnections::with_syns(kChurnFrames);
    const uint32_t capacity = capacity_for(kFillConnections);
    PipelineSettings settings;
    settings.connections = capacity;
    settings.tracker.tcp.syn_sent = kChurnSynTimeoutMs;
    std::string error;
    s->pipeline = Pipeline::create(settings, s->policy.get(), &s->ids,
                                   static_cast<int>(rte_socket_id()), &error);
    if (!s->pipeline) fail(error);
    s->checkpointing(true);
    s->burst_ns = kBurst * 1'000'000'000ull / kChurnRate;
    const uint64_t lifetime_ms = kChurnSynTimeoutMs + Pipeline::kSweepPeriodNs / 1'000'000;
    if (kChurnRate * lifetime_ms / 1000 > capacity * 9 / 10 ||
        kChurnFrames * 1000 / kChurnRate <= lifetime_ms) {
      fail("churn: the table would fill up, or tuples come round before their connections expire");
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
  s.checkpointing(checkpoint);
  const Writes writes_before = checkpoint ? count_writes(*s.ckpt) : Writes{};
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
  if (checkpoint) report_writes(state, writes_before, count_writes(*s.ckpt), packets);
}

// Recovery: N TCP connections established by `before` pipelines (each with
// the flow table capacity an operator would configure, capacity_for(N)),
// checkpointing into set 1 of a store; the pipelines are then gone, as
// after a crash. Each recovery rebuilds them into `after` fresh pipelines
// of the same capacity per worker, writing into set 2 (punched before each
// recovery, as holdfast-ckptd hands out a freshly allocated set).
constexpr uint32_t kMaxRecoveryWorkers = 2;
constexpr uint32_t kRecoveryEpoch = 2;

// The benchmark's rules and one more that no benchmark connection meets:
// the same verdicts under another digest, as after an operator's change of
// the rules, so that recovery classifies every connection again.
std::unique_ptr<Policy> compile_changed_policy() {
  std::vector<Rule> rules = benchmark_rules();
  std::string error;
  Rule test_net;
  test_net.name = "deny-test-net-1";
  test_net.src = {*Cidr::parse("192.0.2.0/24", &error)};
  test_net.action = Action::deny;
  rules.insert(rules.begin(), test_net);
  std::unique_ptr<Policy> policy = Policy::compile(std::move(rules), Action::deny, &error);
  if (!policy) fail("cannot compile the changed rules: " + error);
  return policy;
}

struct Recovery : Scenario {
  std::unique_ptr<Policy> policy;
  std::unique_ptr<Policy> changed_policy;  // compile_changed_policy()
  std::unique_ptr<BenchStore> store;
  ckpt::RegionSet crashed;  // set 1, written by the pipelines that "crashed"
  ckpt::RegionSet next;     // set 2, for kMaxRecoveryWorkers workers
  uint32_t capacity = 0;
  size_t connections = 0;

  static std::unique_ptr<Scenario> build(size_t n, uint32_t before) {
    std::fprintf(stderr, "holdfast-bench: establishing %zu connections on %u worker%s...\n", n,
                 before, before == 1 ? "" : "s");
    auto s = std::make_unique<Recovery>();
    s->connections = n;
    s->capacity = capacity_for(n);
    s->policy = compile_benchmark_policy();
    s->changed_policy = compile_changed_policy();
    const uint32_t fragments = fragments_per_worker();
    std::string error;
    s->store =
        BenchStore::create(g_store_dir,
                           BenchStore::set_bytes(before, s->capacity, fragments) +
                               BenchStore::set_bytes(kMaxRecoveryWorkers, s->capacity, fragments),
                           &error);
    if (!s->store) fail(error);
    if (!s->store->add_set(1, 1, before, s->capacity, fragments, &s->crashed, &error) ||
        !s->store->add_set(2, 0, kMaxRecoveryWorkers, s->capacity, fragments, &s->next, &error)) {
      fail(error);
    }

    // The dataplane before the crash: `before` workers, IDs interleaved.
    std::vector<ConnIdSource> ids(before);
    std::vector<ckpt::WorkerCheckpoint> writers(before);
    std::vector<std::unique_ptr<Pipeline>> pipelines;
    std::vector<Pipeline*> raw;
    if (!s->store->attach(s->crashed, &writers, &error)) fail(error);
    for (uint32_t w = 0; w < before; ++w) {
      ids[w].epoch = 1;
      ids[w].next = w + 1;
      ids[w].stride = before;
      pipelines.push_back(make_pipeline(s->capacity, s->policy.get(), &ids[w]));
      pipelines.back()->set_checkpoint(&writers[w], false);
      raw.push_back(pipelines.back().get());
    }
    const std::vector<Tuple> tuples = make_tuples(n, kSeed);
    uint64_t now_ns = kStartNs;
    const struct {
      Segment segment;
      Reason expected;
    } handshake[] = {{Segment::syn, Reason::new_connection},
                     {Segment::syn_ack, Reason::established},
                     {Segment::client_ack, Reason::established}};
    for (const auto& step : handshake) {
      std::unique_ptr<FrameStore> frames = frames_for(tuples, step.segment, kSynStride);
      feed_steered(raw, *frames, n, now_ns, step.expected, "recovery handshake");
      now_ns += 1'000'000;
    }
    const uint64_t bases = s->store->used_slots(s->crashed, ckpt::kBaseModule);
    const uint64_t slices = s->store->used_slots(s->crashed, static_cast<uint8_t>(ModuleId::tcp));
    if (bases != n || slices != n) {
      fail("recovery: the store holds " + std::to_string(bases) + " bases and " +
           std::to_string(slices) + " TCP slices, not " + std::to_string(n));
    }
    return s;
  }

  // The first `workers` workers' regions of set 2.
  ckpt::RegionSet target(uint32_t workers) const {
    ckpt::RegionSet set = next;
    std::erase_if(set.regions,
                  [workers](const ckpt::RegionEntry& r) { return r.worker >= workers; });
    return set;
  }
};

// prefaulted: the set to write has every page present (written once, not
// punched), which takes the page faults of the write phase out: how much of
// it they are.
void bm_recovery(benchmark::State& state, size_t n, uint32_t before, uint32_t after,
                 bool prefaulted, uint32_t threads, bool rules_changed) {
  auto& s = scenario<Recovery>("recovery/" + std::to_string(n) + "/" + std::to_string(before),
                               [n, before] { return Recovery::build(n, before); });
  const ckpt::RegionSet target = s.target(after);
  std::map<std::string, double> phase_sum;
  double total_sum = 0;
  for (auto _ : state) {
    // Untimed (the time is the report's): a fresh dataplane of `after`
    // workers writing into a freshly punched set.
    if (prefaulted) {
      s.store->prefault(target);
    } else {
      s.store->punch(target);
    }
    std::vector<ConnIdSource> ids(after);
    std::vector<ckpt::WorkerCheckpoint> writers(after);
    std::vector<std::unique_ptr<Pipeline>> pipelines;
    std::vector<Pipeline*> raw;
    std::string error;
    if (!s.store->attach(target, &writers, &error)) fail(error);
    for (uint32_t w = 0; w < after; ++w) {
      ids[w].epoch = kRecoveryEpoch;
      ids[w].next = w + 1;
      ids[w].stride = after;
      pipelines.push_back(
          make_pipeline(s.capacity, (rules_changed ? s.changed_policy : s.policy).get(), &ids[w]));
      pipelines.back()->set_checkpoint(&writers[w], false);
      raw.push_back(pipelines.back().get());
    }

    const ckpt::RecoveryReport report =
        ckpt::recover_connections(s.store->data(), s.store->bytes(), s.store->fd(), s.crashed, raw,
                                  kRecoveryEpoch, ckpt::RecoveryOptions{threads});
    state.SetIterationTime(report.total_ms / 1e3);

    if (report.restored_total() != n || !report.discarded.empty() ||
        (rules_changed ? report.rules_classified : report.rules_unchanged) != n) {
      fail("recovery of " + std::to_string(n) + " connections: " + report.text());
    }
    for (const auto& [phase, ms] : report.phase_ms) phase_sum[phase] += ms;
    total_sum += report.total_ms;
    state.counters["threads"] = report.threads;
    state.counters["classified"] = static_cast<double>(report.rules_classified);
  }
  const auto avg = [](double v) {
    return benchmark::Counter(v, benchmark::Counter::kAvgIterations);
  };
  for (const auto& [phase, ms] : phase_sum) state.counters[phase + "_ms"] = avg(ms);
  state.counters["total_ms"] = avg(total_sum);
  state.counters["ns_per_conn"] = avg(total_sum * 1e6 / static_cast<double>(n));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void bm_steering(benchmark::State& state, bool v6) {
  std::mt19937 rng(5);
  std::vector<std::pair<IpAddr, IpAddr>> pairs(4096);
  for (auto& [src, dst] : pairs) {
    for (IpAddr* a : {&src, &dst}) {
      if (v6) {
        for (uint8_t& b : a->bytes) b = static_cast<uint8_t>(rng());
        a->bytes[0] = 0x20;
      } else {
        *a = IpAddr::from_v4_host(static_cast<uint32_t>(rng()));
      }
    }
  }
  TscMeter meter(state);
  uint64_t packets = 0;
  uint32_t owners = 0;
  size_t next = 0;
  meter.start();
  for (auto _ : state) {
    for (uint16_t i = 0; i < kBurst; ++i) {
      const auto& [src, dst] = pairs[next++ % pairs.size()];
      owners += worker_for_hash(address_pair_hash(src, dst), 4);
    }
    packets += kBurst;
    meter.burst_done();
  }
  meter.stop();
  benchmark::DoNotOptimize(owners);
  report(state, packets, meter);
}

// Bytes a connection takes in the store: the slots of its base and layer-4
// module, and what a whole region set costs per connection slot (every
// region of a set is allocated per worker at the flow table's capacity,
// whatever protocol the connection turns out to be, plus the fragment
// records). Computed from module_shapes(), as the dataplane asks for them.
void bm_bytes_per_connection(benchmark::State& state, uint32_t slots) {
  const uint32_t fragments = fragments_per_worker();
  uint32_t base = 0;
  uint32_t tcp = 0;
  uint32_t all_connection_modules = 0;
  for (const ckpt::SlotShape& m : ckpt::module_shapes(fragment_settings(fragments))) {
    if (m.module == ckpt::kBaseModule) base = m.slot_size;
    if (m.module == static_cast<uint8_t>(ModuleId::tcp)) tcp = m.slot_size;
    if (m.slots == 0) all_connection_modules += m.slot_size;
  }
  for (auto _ : state) benchmark::DoNotOptimize(base + tcp);
  state.counters["base_slot"] = base;
  state.counters["tcp_slot"] = tcp;
  state.counters["tcp_connection"] = base + tcp;
  state.counters["target"] = 128;
  state.counters["all_connection_slots"] = all_connection_modules;
  state.counters["set_bytes_per_slot"] =
      static_cast<double>(BenchStore::set_bytes(1, slots, fragments)) / slots;
}

void register_benchmarks() {
  auto common = [](benchmark::internal::Benchmark* b) { return b->Unit(benchmark::kNanosecond); };
  for (size_t n : {size_t{1'000}, size_t{100'000}, kMaxConnections}) {
    const std::string conns = "conns:" + std::to_string(n);
    const struct {
      const char* suffix;
      EstablishedRun run;
    } runs[] = {
        {"/csum:on", {}},
        {"/csum:off", {.verify_checksums = false}},
        {"/csum:on/cleaner", {.cleaner = true}},
        {"/csum:on/ckpt", {.checkpoint = true}},
        {"/csum:on/ckpt/lap:1s", {.checkpoint = true, .second_per_lap = true}},
    };
    for (const auto& r : runs) {
      const std::string name = "established/" + conns + r.suffix;
      common(benchmark::RegisterBenchmark(name.c_str(), bm_established, n, r.run));
    }
    for (bool ckpt : {false, true}) {
      const std::string name = "established_data/" + conns + "/ckpt:" + (ckpt ? "on" : "off");
      common(benchmark::RegisterBenchmark(name.c_str(), bm_established_data, n, ckpt, false));
    }
    const std::string name = "established_data/" + conns + "/ckpt:on/lap:1s";
    common(benchmark::RegisterBenchmark(name.c_str(), bm_established_data, n, true, true));
  }
  // Whole cycles, whatever --benchmark_min_time says: the cost per
  // connection changes as the table fills, and as the cleaner's sweep
  // meets waves of expired entries.
  const struct {
    const char* name;
    FillStore store;
  } fills[] = {{"new_connections/fill", FillStore::none},
               {"new_connections/fill/ckpt", FillStore::warm},
               {"new_connections/fill/ckpt:cold", FillStore::cold}};
  for (const auto& f : fills) {
    common(benchmark::RegisterBenchmark(f.name, bm_new_fill, f.store))
        ->Iterations(kFillConnections / kBurst);
  }
  for (bool ckpt : {false, true}) {
    common(benchmark::RegisterBenchmark(
               ckpt ? "new_connections/churn/ckpt" : "new_connections/churn", bm_new_churn, ckpt))
        ->Iterations(kChurnFrames / kBurst);
  }
  const struct {
    uint32_t before;
    uint32_t after;
  } restarts[] = {{1, 1}, {1, 2}, {2, 2}, {2, 1}};
  for (size_t n : {size_t{10'000}, size_t{100'000}, kMaxConnections}) {
    for (const auto& r : restarts) {
      for (bool prefaulted : {false, true}) {
        // The page faults' share is measured on the same worker count only.
        if (prefaulted && r.before != r.after) continue;
        const std::string name = "recovery/conns:" + std::to_string(n) +
                                 "/workers:" + std::to_string(r.before) + "to" +
                                 std::to_string(r.after) + (prefaulted ? "/prefaulted" : "");
        // Enough recoveries per repetition to take some 200k connections' time.
        const auto iterations =
            static_cast<benchmark::IterationCount>(std::max<size_t>(1, 200'000 / n));
        // With as many workers as cores to spare (here two), the rebuild
        // runs on a thread per worker; threads:1 is the same on one.
        // rules:changed: what classifying every connection again costs.
        const struct {
          const char* suffix;
          uint32_t threads;
          bool rules_changed;
        } variants[] = {{"", 0, false}, {"/threads:1", 1, false}, {"/rules:changed", 0, true}};
        for (const auto& v : variants) {
          if (v.threads == 1 && !(prefaulted && r.before == 2 && r.after == 2)) continue;
          if (v.rules_changed && !prefaulted) continue;
          benchmark::RegisterBenchmark((name + v.suffix).c_str(), bm_recovery, n, r.before, r.after,
                                       prefaulted, v.threads, v.rules_changed)
              ->Unit(benchmark::kMillisecond)
              ->UseManualTime()
              ->Iterations(iterations);
        }
      }
    }
  }
  for (bool v6 : {false, true}) {
    common(benchmark::RegisterBenchmark(v6 ? "steering/owner/ipv6" : "steering/owner/ipv4",
                                        bm_steering, v6));
  }
  for (uint32_t slots : {uint32_t{65'536}, capacity_for(kMaxConnections)}) {
    const std::string name = "checkpoint/bytes_per_connection/slots:" + std::to_string(slots);
    benchmark::RegisterBenchmark(name.c_str(), bm_bytes_per_connection, slots)->Iterations(1);
  }
}

// DPDK memory for the largest scenario: a flow table for kMaxConnections
// (kFillConnections) plus the churn's SYN frames, or the tables of
// kMaxRecoveryWorkers workers recovering kMaxConnections, with margin.
// The checkpoint stores are not DPDK memory.
size_t eal_memory_mb() {
  PipelineSettings largest;
  largest.connections = capacity_for(std::max(kMaxConnections, kFillConnections));
  const size_t table = pipeline_memory_mb(largest);
  const size_t frames = (kChurnFrames * kSynStride) >> 20;
  return std::max(table + frames, kMaxRecoveryWorkers * table) + 128;
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
  bool store_dir_given = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--hugepages") == 0) {
      hugepages = true;
    } else if (std::strcmp(argv[i], "--store-dir") == 0 && i + 1 < argc) {
      g_store_dir = argv[++i];
      store_dir_given = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  std::string store_note;
  if (hugepages && !store_dir_given) {
    if (is_hugetlbfs(kHugetlbfsDir)) {
      g_store_dir = kHugetlbfsDir;
    } else {
      store_note = std::string(" (") + kHugetlbfsDir +
                   " is not a hugetlbfs mount: the store stays on 4 KiB pages)";
      std::fprintf(stderr,
                   "holdfast-bench: %s is not a hugetlbfs mount; the checkpoint store "
                   "stays in %s\n",
                   kHugetlbfsDir, g_store_dir.c_str());
    }
  }

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
  benchmark::AddCustomContext(
      "checkpoint_store",
      g_store_dir + (is_hugetlbfs(g_store_dir) ? " (hugetlbfs)" : "") + store_note);
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  release_scenario();  // its DPDK memory goes with the EAL
  rte_eal_cleanup();
  return 0;
}
