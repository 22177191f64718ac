// holdfastctl supervise: keeps the dataplane running.
//
// Runs the command it is given; when the command exits abnormally (a
// non-zero status or a signal) it is started again with --recover appended,
// so the new process rebuilds every connection from the checkpoint store,
// after a backoff that doubles from 100 ms up to 5 s and falls back to
// 100 ms once a process has run for 30 s. Each exit and restart is logged.
// A clean exit (status 0) ends supervision with status 0; SIGINT and SIGTERM
// to the supervisor are passed to the child, and the supervisor exits when
// it does.
#pragma once

#include <string>
#include <vector>

namespace holdfast {

struct SuperviseOptions {
  std::vector<std::string> command;  // program and arguments
  int max_restarts = -1;             // -1: no limit
  double initial_backoff_s = 0.1;
  double max_backoff_s = 5.0;
  double healthy_after_s = 30.0;  // a run this long resets the backoff
};

// Supervises until the command exits cleanly, is stopped, or exceeds
// max_restarts. Returns the exit status for holdfastctl.
int supervise(const SuperviseOptions& options);

// The command to restart with: `--recover` appended unless already there.
std::vector<std::string> with_recover(const std::vector<std::string>& command);

}  // namespace holdfast
