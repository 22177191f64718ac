#include "control/supervise.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "control/log.h"

namespace holdfast {
namespace {

std::atomic<int> g_signal{0};
std::atomic<pid_t> g_child{0};

void forward(int sig) {
  g_signal.store(sig);
  const pid_t child = g_child.load();
  if (child > 0) kill(child, sig);
}

pid_t start(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // The child takes default signal handling back.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "holdfastctl: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  return pid;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) + " (SIG" + (name ? name : "?") + ")";
  }
  return "stopped with status " + std::to_string(status);
}

}  // namespace

std::vector<std::string> with_recover(const std::vector<std::string>& command) {
  std::vector<std::string> out = command;
  if (std::find(out.begin(), out.end(), "--recover") == out.end()) out.push_back("--recover");
  return out;
}

int supervise(const SuperviseOptions& options) {
  if (options.command.empty()) {
    log(LogLevel::error, "supervise", "no command to supervise");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = forward;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<std::string> command = options.command;
  double backoff = options.initial_backoff_s;
  int restarts = 0;
  for (;;) {
    const auto started = std::chrono::steady_clock::now();
    const pid_t pid = start(command);
    if (pid < 0) {
      log(LogLevel::error, "supervise", "cannot fork: %s", std::strerror(errno));
      return 1;
    }
    g_child.store(pid);
    log(LogLevel::info, "supervise", "started %s (pid %d)", command[0].c_str(), pid);
    // A signal that arrived between fork and here is passed on now.
    if (g_signal.load() != 0) kill(pid, g_signal.load());
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        log(LogLevel::error, "supervise", "waitpid: %s", std::strerror(errno));
        return 1;
      }
    }
    g_child.store(0);
    const double ran =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (g_signal.load() != 0) {
      log(LogLevel::info, "supervise", "%s (pid %d) %s after being told to stop",
          command[0].c_str(), pid, describe(status).c_str());
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      log(LogLevel::info, "supervise", "%s (pid %d) exited cleanly after %.1f s",
          command[0].c_str(), pid, ran);
      return 0;
    }
    if (options.max_restarts >= 0 && restarts >= options.max_restarts) {
      log(LogLevel::error, "supervise", "%s (pid %d) %s after %.1f s; giving up after %d restarts",
          command[0].c_str(), pid, describe(status).c_str(), ran, restarts);
      return 1;
    }
    if (ran >= options.healthy_after_s) backoff = options.initial_backoff_s;
    ++restarts;
    command = with_recover(options.command);
    log(LogLevel::warning, "supervise",
        "%s (pid %d) %s after %.1f s; restart %d with --recover in %.1f s", command[0].c_str(), pid,
        describe(status).c_str(), ran, restarts, backoff);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(backoff);
    while (std::chrono::steady_clock::now() < until && g_signal.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (g_signal.load() != 0) return 128 + g_signal.load();
    backoff = std::min(backoff * 2, options.max_backoff_s);
  }
}

}  // namespace holdfast
