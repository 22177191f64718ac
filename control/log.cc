#include "control/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace holdfast {
namespace {

std::atomic<LogLevel> g_min{LogLevel::info};
std::atomic<const char*> g_program{"holdfast"};

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "?";
}

}  // namespace

void set_log_level(LogLevel min) {
  g_min = min;
}
void set_log_program(const char* name) {
  g_program = name;
}

void log(LogLevel level, const char* component, const char* format, ...) {
  if (level < g_min.load()) return;
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);
  // One write per line so lines from several threads never interleave.
  char line[1200];
  const int n = std::snprintf(line, sizeof line, "%s[%d] %s %s: %s\n", g_program.load(),
                              static_cast<int>(getpid()), level_name(level), component, message);
  if (n > 0) {
    ssize_t ignored =
        write(STDERR_FILENO, line,
              static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1);
    (void)ignored;
  }
}

}  // namespace holdfast
