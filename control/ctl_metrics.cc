// holdfastctl metrics: the dataplane's and holdfast-ckptd's counters in the
// Prometheus text format (control/metrics.h, docs/metrics.md), on stdout or,
// with --out FILE, replacing FILE atomically for node_exporter's textfile
// collector, which may read the file at any moment.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "control/ctl.h"
#include "control/metrics.h"

namespace holdfast::ctl {
namespace {

constexpr const char* kMetricsUsage =
    "usage: holdfastctl metrics [--out FILE] [--file-prefix P | --telemetry PATH] "
    "[--ckpt SOCKET] [--app APP] [--ckpt-token-file F]\n";

// Writes text to a new file beside path, then renames it over path: a reader
// sees the old file or the new one, never part of one. The temporary name
// starts with a dot and does not end in .prom, so the textfile collector
// never reads it.
bool write_atomically(const std::string& path, const std::string& text, std::string* error) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = dir + "." + base + ".XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    *error = "cannot create a file beside " + path + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const char* what) {
    *error = std::string(what) + " " + temp + ": " + std::strerror(errno);
    close(fd);
    unlink(temp.c_str());
    return false;
  };
  // mkstemp makes it 0600; the collector usually runs as another user.
  if (fchmod(fd, 0644) != 0) return fail("cannot set the mode of");
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("cannot sync");
  if (close(fd) != 0) {
    *error = "cannot write " + temp + ": " + std::strerror(errno);
    unlink(temp.c_str());
    return false;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + temp + " to " + path + ": " + std::strerror(errno);
    unlink(temp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int metrics_main(const Options& o) {
  std::string out_path;
  for (size_t i = 0; i < o.args.size(); ++i) {
    if (o.args[i] != "--out") {
      std::fprintf(stderr, "holdfastctl: metrics: unexpected \"%s\"\n%s", o.args[i].c_str(),
                   kMetricsUsage);
      return 2;
    }
    if (i + 1 == o.args.size() || o.args[i + 1].empty()) {
      std::fprintf(stderr, "holdfastctl: metrics: --out needs a file name\n%s", kMetricsUsage);
      return 2;
    }
    out_path = o.args[++i];
  }

  // Either may be unreachable: its null reads as holdfast_up 0 or
  // holdfast_ckptd_up 0. Only a dataplane that cannot be reached fails.
  nlohmann::json dataplane;
  nlohmann::json ckpt;
  std::string error;
  const bool dataplane_ok = collect_dataplane(o, &dataplane, &error);
  if (!dataplane_ok) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    dataplane = nullptr;
  }
  error.clear();
  if (!collect_ckpt(o, &ckpt, &error)) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    ckpt = nullptr;
  }

  const std::string text = prometheus_text(dataplane, ckpt);
  if (out_path.empty()) {
    std::fputs(text.c_str(), stdout);
    if (std::fflush(stdout) != 0) {
      std::fprintf(stderr, "holdfastctl: cannot write the metrics: %s\n", std::strerror(errno));
      return 1;
    }
  } else if (!write_atomically(out_path, text, &error)) {
    std::fprintf(stderr, "holdfastctl: %s\n", error.c_str());
    return 1;
  }
  return dataplane_ok ? 0 : 1;
}

}  // namespace holdfast::ctl
