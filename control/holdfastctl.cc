// holdfastctl: the operator's tool.
//   holdfastctl supervise [--max-restarts N] -- COMMAND [ARGS...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "control/log.h"
#include "control/supervise.h"

namespace {

constexpr const char* kUsage =
    "usage: holdfastctl supervise [--max-restarts N] -- COMMAND [ARGS...]\n"
    "  Runs COMMAND (the dataplane) and restarts it with --recover appended after\n"
    "  every abnormal exit, with a backoff from 0.1 s doubling to 5 s. A clean exit\n"
    "  ends supervision; SIGINT/SIGTERM are passed to COMMAND.\n";

int supervise_main(int argc, char** argv) {
  holdfast::SuperviseOptions options;
  int i = 0;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--max-restarts" && i + 1 < argc) {
      char* end = nullptr;
      const long n = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 0) {
        std::fprintf(stderr, "holdfastctl: --max-restarts wants a count, got \"%s\"\n", argv[i]);
        return 2;
      }
      options.max_restarts = static_cast<int>(n);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "holdfastctl: unknown supervise option \"%s\"\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  for (; i < argc; ++i) options.command.emplace_back(argv[i]);
  if (options.command.empty()) {
    std::fprintf(stderr, "holdfastctl: supervise needs a command after \"--\"\n%s", kUsage);
    return 2;
  }
  return holdfast::supervise(options);
}

}  // namespace

int main(int argc, char** argv) {
  holdfast::set_log_program("holdfastctl");
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "supervise") == 0) return supervise_main(argc - 2, argv + 2);
  std::fprintf(stderr, "holdfastctl: unknown command \"%s\"\n%s", argv[1], kUsage);
  return 2;
}
