// holdfast-replay: runs the dataplane pipeline over a capture.
// Usage: see kUsage below and docs/replay.md.
#include <getopt.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "control/config.h"
#include "dataplane/eal.h"
#include "dataplane/replay.h"
#include "dataplane/stats.h"

namespace {

constexpr const char* kUsage =
    "usage: holdfast-replay --config FILE --pcap IN [options]\n"
    "  --verdicts OUT.jsonl   one JSON line per packet: index (1-based), verdict, reason, conn\n"
    "                         (and master, the announcing connection, for reason expected)\n"
    "  --out-inside F.pcap    frames that leave by the inside port (passed from outside)\n"
    "  --out-outside F.pcap   frames that leave by the outside port (passed from inside)\n"
    "  --workers N            pipelines, frames spread by the symmetric hash (default 1)\n"
    "  --summary-json F       statistics as JSON\n"
    "  --quiet                do not print the summary\n"
    "checkpointing (docs/checkpoint.md):\n"
    "  --ckpt SOCKET          checkpoint into holdfast-ckptd at SOCKET (or config "
    "checkpoint.socket)\n"
    "  --ckpt-app ID          application id in the store (default: config, then holdfast)\n"
    "  --ckpt-token-file F    token for holdfast-ckptd\n"
    "  --recover              first rebuild the connections the store holds\n"
    "  --crash-at N           SIGKILL this process while handling frame N (after its state\n"
    "                         changes, before its verdict), to test recovery\n"
    "  --start-at N           skip frames before N, as a restarted dataplane would\n";

struct Options {
  std::string config;
  std::string pcap;
  std::string verdicts;
  std::string out_inside;
  std::string out_outside;
  std::string summary_json;
  unsigned workers = 1;
  bool quiet = false;
  std::string ckpt_socket;
  std::string ckpt_app;
  std::string ckpt_token_file;
  bool recover = false;
  uint64_t crash_at = 0;  // 0: never
  uint64_t start_at = 1;
};

bool parse_count(const char* text, const char* option, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || n == 0 || text[0] == '-') {
    std::fprintf(stderr, "holdfast-replay: %s wants a frame number from 1, got \"%s\"\n", option,
                 text);
    return false;
  }
  *out = n;
  return true;
}

bool parse_args(int argc, char** argv, Options* o) {
  enum {
    kConfig = 1,
    kPcap,
    kVerdicts,
    kOutInside,
    kOutOutside,
    kWorkers,
    kSummary,
    kQuiet,
    kCkpt,
    kCkptApp,
    kCkptToken,
    kRecover,
    kCrashAt,
    kStartAt,
    kHelp
  };
  static const option longopts[] = {
      {"config", required_argument, nullptr, kConfig},
      {"pcap", required_argument, nullptr, kPcap},
      {"verdicts", required_argument, nullptr, kVerdicts},
      {"out-inside", required_argument, nullptr, kOutInside},
      {"out-outside", required_argument, nullptr, kOutOutside},
      {"workers", required_argument, nullptr, kWorkers},
      {"summary-json", required_argument, nullptr, kSummary},
      {"quiet", no_argument, nullptr, kQuiet},
      {"ckpt", required_argument, nullptr, kCkpt},
      {"ckpt-app", required_argument, nullptr, kCkptApp},
      {"ckpt-token-file", required_argument, nullptr, kCkptToken},
      {"recover", no_argument, nullptr, kRecover},
      {"crash-at", required_argument, nullptr, kCrashAt},
      {"start-at", required_argument, nullptr, kStartAt},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
    switch (c) {
      case kConfig:
        o->config = optarg;
        break;
      case kPcap:
        o->pcap = optarg;
        break;
      case kVerdicts:
        o->verdicts = optarg;
        break;
      case kOutInside:
        o->out_inside = optarg;
        break;
      case kOutOutside:
        o->out_outside = optarg;
        break;
      case kWorkers: {
        char* end = nullptr;
        long n = std::strtol(optarg, &end, 10);
        if (*end != '\0' || n < 1 || n > 64) {
          std::fprintf(stderr, "holdfast-replay: --workers must be 1..64, got \"%s\"\n", optarg);
          return false;
        }
        o->workers = static_cast<unsigned>(n);
        break;
      }
      case kSummary:
        o->summary_json = optarg;
        break;
      case kQuiet:
        o->quiet = true;
        break;
      case kCkpt:
        o->ckpt_socket = optarg;
        break;
      case kCkptApp:
        o->ckpt_app = optarg;
        break;
      case kCkptToken:
        o->ckpt_token_file = optarg;
        break;
      case kRecover:
        o->recover = true;
        break;
      case kCrashAt:
        if (!parse_count(optarg, "--crash-at", &o->crash_at)) return false;
        break;
      case kStartAt:
        if (!parse_count(optarg, "--start-at", &o->start_at)) return false;
        break;
      case kHelp:
        std::fputs(kUsage, stdout);
        std::exit(0);
      default:
        std::fputs(kUsage, stderr);
        return false;
    }
  }
  if (optind != argc) {
    std::fprintf(stderr, "holdfast-replay: unexpected argument \"%s\"\n%s", argv[optind], kUsage);
    return false;
  }
  if (o->config.empty() || o->pcap.empty()) {
    std::fprintf(stderr, "holdfast-replay: --config and --pcap are required\n%s", kUsage);
    return false;
  }
  return true;
}

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* d) const { pcap_dump_close(d); }
};
using PcapPtr = std::unique_ptr<pcap_t, PcapCloser>;
using DumperPtr = std::unique_ptr<pcap_dumper_t, DumperCloser>;

DumperPtr open_dumper(pcap_t* dead, const std::string& path) {
  if (path.empty()) return nullptr;
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  if (d == nullptr) {
    std::fprintf(stderr, "holdfast-replay: cannot write %s: %s\n", path.c_str(), pcap_geterr(dead));
    std::exit(1);
  }
  return DumperPtr(d);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, &o)) return 2;

  holdfast::ConfigResult loaded = holdfast::load_config_file(o.config);
  if (!loaded.config) {
    for (const std::string& e : loaded.errors)
      std::fprintf(stderr, "holdfast-replay: %s\n", e.c_str());
    return 1;
  }
  const holdfast::Config& config = *loaded.config;

  char errbuf[PCAP_ERRBUF_SIZE];
  PcapPtr in(
      pcap_open_offline_with_tstamp_precision(o.pcap.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!in) {
    std::fprintf(stderr, "holdfast-replay: cannot read %s: %s\n", o.pcap.c_str(), errbuf);
    return 1;
  }
  if (pcap_datalink(in.get()) != DLT_EN10MB) {
    std::fprintf(stderr,
                 "holdfast-replay: %s has link type %s; only Ethernet captures can be replayed "
                 "(capture on an Ethernet interface, not \"any\")\n",
                 o.pcap.c_str(), pcap_datalink_val_to_name(pcap_datalink(in.get())));
    return 1;
  }

  std::string error;
  const size_t memory = o.workers * holdfast::pipeline_memory_mb(config.pipeline);
  if (!holdfast::init_eal_without_devices(argv[0], memory, &error)) {
    std::fprintf(stderr, "holdfast-replay: %s\n", error.c_str());
    return 1;
  }
  auto replay = holdfast::Replay::create(config, o.workers, &error);
  if (!replay) {
    std::fprintf(stderr, "holdfast-replay: %s\n", error.c_str());
    return 1;
  }

  // Checkpointing: command line over config.
  holdfast::ckpt::ClientOptions ckpt;
  ckpt.socket = o.ckpt_socket.empty() ? config.checkpoint.socket : o.ckpt_socket;
  ckpt.app = o.ckpt_app.empty() ? config.checkpoint.app : o.ckpt_app;
  ckpt.token_file = o.ckpt_token_file.empty() ? config.checkpoint.token_file : o.ckpt_token_file;
  std::unique_ptr<holdfast::ckpt::Client> client;
  nlohmann::json recovery;
  if (ckpt.socket.empty()) {
    if (o.recover || o.crash_at != 0) {
      std::fprintf(stderr,
                   "holdfast-replay: --recover and --crash-at need a checkpoint server (--ckpt "
                   "SOCKET or checkpoint.socket in the config)\n");
      return 2;
    }
  } else {
    if (!holdfast::ckpt::app_id_valid(ckpt.app)) {
      std::fprintf(stderr, "holdfast-replay: invalid checkpoint application id \"%s\"\n",
                   ckpt.app.c_str());
      return 2;
    }
    holdfast::ckpt::Layout layout;
    layout.workers = o.workers;
    layout.slots = config.pipeline.connections;
    layout.modules = holdfast::ckpt::module_shapes(config.pipeline);
    client = holdfast::ckpt::Client::connect(ckpt, layout, &error);
    if (!client ||
        !replay->enable_checkpoint(*client, config.checkpoint.store_full_allow, &error)) {
      std::fprintf(stderr, "holdfast-replay: %s\n", error.c_str());
      return 1;
    }
    if (o.recover) {
      if (client->recover()) {
        const holdfast::ckpt::RecoveryReport report = replay->recover(*client);
        recovery = report.to_json();
        std::fputs(report.text().c_str(), stderr);
        if (!client->send_report(recovery, &error)) {
          std::fprintf(stderr, "holdfast-replay: %s\n", error.c_str());
        }
      } else {
        std::fprintf(stderr, "holdfast-replay: the store holds nothing to recover for %s\n",
                     ckpt.app.c_str());
      }
    }
    // Committed before the first verdict: from here on the store is what a
    // restart recovers from.
    if (!client->commit(&error)) {
      std::fprintf(stderr, "holdfast-replay: %s\n", error.c_str());
      return 1;
    }
  }

  std::FILE* verdicts = nullptr;
  if (!o.verdicts.empty()) {
    verdicts = std::fopen(o.verdicts.c_str(), "w");
    if (verdicts == nullptr) {
      std::fprintf(stderr, "holdfast-replay: cannot write %s: %s\n", o.verdicts.c_str(),
                   std::strerror(errno));
      return 1;
    }
    // A crash must leave every verdict given so far on disk.
    if (o.crash_at != 0) std::setvbuf(verdicts, nullptr, _IOLBF, 0);
  }
  PcapPtr dead(
      pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO));
  DumperPtr out_inside = open_dumper(dead.get(), o.out_inside);
  DumperPtr out_outside = open_dumper(dead.get(), o.out_outside);

  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  uint64_t index = 0;
  uint64_t last_ts = 0;
  int rc;
  while ((rc = pcap_next_ex(in.get(), &hdr, &data)) == 1) {
    ++index;
    const uint64_t ts = uint64_t(hdr->ts.tv_sec) * 1'000'000'000 + uint64_t(hdr->ts.tv_usec);
    last_ts = ts;
    if (index < o.start_at) continue;
    // A frame cut short by the capture's snapshot length is judged on the
    // bytes present, like a truncated frame on the wire.
    const holdfast::Replay::Result r = replay->feed(data, hdr->caplen, ts);
    // The state change is made and checkpointed; the verdict is not out yet.
    if (index == o.crash_at) {
      std::fprintf(stderr, "holdfast-replay: SIGKILL at frame %llu, %llu connections open\n",
                   static_cast<unsigned long long>(index),
                   static_cast<unsigned long long>(replay->connections()));
      kill(getpid(), SIGKILL);
    }
    if (verdicts != nullptr) {
      std::fprintf(verdicts, "{\"index\":%llu,\"verdict\":\"%s\",\"reason\":\"%.*s\",\"conn\":%llu",
                   static_cast<unsigned long long>(index), r.verdict.pass() ? "pass" : "drop",
                   static_cast<int>(holdfast::reason_name(r.verdict.reason).size()),
                   holdfast::reason_name(r.verdict.reason).data(),
                   static_cast<unsigned long long>(r.verdict.conn_id));
      if (r.master != 0) {
        std::fprintf(verdicts, ",\"master\":%llu", static_cast<unsigned long long>(r.master));
      }
      std::fputs("}\n", verdicts);
    }
    if (r.verdict.pass()) {
      pcap_dumper_t* d = r.side == holdfast::Side::inside ? out_outside.get() : out_inside.get();
      if (d != nullptr) pcap_dump(reinterpret_cast<u_char*>(d), hdr, data);
    }
  }
  if (rc == -1) {
    std::fprintf(stderr, "holdfast-replay: error reading %s after packet %llu: %s\n",
                 o.pcap.c_str(), static_cast<unsigned long long>(index), pcap_geterr(in.get()));
    return 1;
  }
  if (verdicts != nullptr && std::fclose(verdicts) != 0) {
    std::fprintf(stderr, "holdfast-replay: cannot write %s\n", o.verdicts.c_str());
    return 1;
  }
  replay->finish(last_ts);
  nlohmann::json stats = replay->stats();
  stats["capture"] = o.pcap;
  if (!recovery.is_null()) stats["recovery"] = recovery;
  if (!o.summary_json.empty()) {
    std::ofstream f(o.summary_json);
    f << stats.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "holdfast-replay: cannot write %s\n", o.summary_json.c_str());
      return 1;
    }
  }
  if (!o.quiet) {
    std::printf("holdfast-replay: %s, %llu frames, %u worker%s\n", o.pcap.c_str(),
                static_cast<unsigned long long>(index), replay->workers(),
                replay->workers() == 1 ? "" : "s");
    std::fputs(holdfast::format_stats(stats).c_str(), stdout);
  }
  return 0;
}
