// Logging: one line per event on stderr, "holdfast[<pid>] <level> <component>:
// <message>", which journald and any log shipper split without a parser.
// Control path only; the packet path counts, it does not log.
#pragma once

#include <cstdarg>

namespace holdfast {

enum class LogLevel { debug, info, warning, error };

void set_log_level(LogLevel min);
void set_log_program(const char* name);

[[gnu::format(printf, 3, 4)]] void log(LogLevel level, const char* component, const char* format,
                                       ...);

}  // namespace holdfast
