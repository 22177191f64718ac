// holdfast-ckptd, the checkpoint server (docs/checkpoint.md):
//
//   holdfast-ckptd --socket PATH --store PATH [--size-mb N] [--token-file FILE]
//
// Runs in the foreground and logs to stderr. Exit status: 0 when stopped by
// SIGTERM or SIGINT, 1 when it cannot start (store refused, socket taken,
// token file unusable), 2 for a bad command line.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>

#include "checkpoint/server.h"
#include "control/log.h"

namespace {

using holdfast::LogLevel;

constexpr const char* kComponent = "ckptd";
constexpr uint64_t kMaxSizeMb = uint64_t{1} << 20;  // 1 TiB
constexpr size_t kMaxTokenBytes = 4096;

constexpr const char* kUsage =
    "usage: holdfast-ckptd --socket PATH --store PATH [--size-mb N] [--token-file FILE]\n"
    "\n"
    "  --socket PATH      Unix socket to serve clients on (created with mode 0660)\n"
    "  --store PATH       checkpoint store file, created if missing, else validated\n"
    "                     (e.g. /dev/shm/holdfast.store, or a file on hugetlbfs)\n"
    "  --size-mb N        size of a new store in MiB (default 1024; the file is sparse)\n"
    "  --token-file FILE  clients must send the secret in FILE (one line); clients of\n"
    "                     any uid are then admitted. Without it only this uid is.\n"
    "  --help             this text\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT: closes clients, removes the socket, keeps the store.\n";

struct Args {
  std::string socket;
  std::string store;
  std::string token_file;
  uint64_t size_mb = 1024;
  bool size_given = false;
  bool help = false;
};

bool parse_args(int argc, char** argv, Args* a, std::string* error) {
  bool seen_socket = false;
  bool seen_store = false;
  bool seen_token = false;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--help" || name == "-h") {
      a->help = true;
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (const size_t eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      inline_value = true;
    }
    bool* seen = nullptr;
    if (name == "--socket") seen = &seen_socket;
    if (name == "--store") seen = &seen_store;
    if (name == "--token-file") seen = &seen_token;
    if (name == "--size-mb") seen = &a->size_given;
    if (seen == nullptr) {
      *error = "unknown argument \"" + name + "\"";
      return false;
    }
    if (*seen) {
      *error = name + " is given twice";
      return false;
    }
    *seen = true;
    if (!inline_value) {
      if (i + 1 >= argc) {
        *error = name + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    if (value.empty()) {
      *error = name + " needs a value";
      return false;
    }
    if (name == "--socket") a->socket = value;
    if (name == "--store") a->store = value;
    if (name == "--token-file") a->token_file = value;
    if (name == "--size-mb") {
      uint64_t mb = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mb);
      if (ec != std::errc() || end != value.data() + value.size() || mb == 0 || mb > kMaxSizeMb) {
        *error = "--size-mb must be a whole number of MiB from 1 to " + std::to_string(kMaxSizeMb) +
                 ", not \"" + value + "\"";
        return false;
      }
      a->size_mb = mb;
    }
  }
  if (a->help) return true;
  if (a->socket.empty()) {
    *error = "--socket is required";
    return false;
  }
  if (a->store.empty()) {
    *error = "--store is required";
    return false;
  }
  return true;
}

// The secret: the file's one line, without its line ending.
bool read_token(const std::string& path, std::string* token, std::string* error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open the token file " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > off_t{kMaxTokenBytes}) {
    close(fd);
    *error = "the token file " + path + " must be a regular file of at most " +
             std::to_string(kMaxTokenBytes) + " bytes";
    return false;
  }
  std::string text(kMaxTokenBytes, '\0');
  ssize_t n;
  size_t got = 0;
  while ((n = read(fd, text.data() + got, text.size() - got)) > 0) got += static_cast<size_t>(n);
  const int read_errno = errno;
  close(fd);
  if (n < 0) {
    *error = "cannot read the token file " + path + ": " + std::strerror(read_errno);
    return false;
  }
  text.resize(got);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) {
    *error = "the token file " + path + " is empty";
    return false;
  }
  if (text.find('\n') != std::string::npos) {
    *error = "the token file " + path + " must hold one line";
    return false;
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    holdfast::log(LogLevel::warning, kComponent,
                  "the token file %s is open to its group or others (mode %04o); chmod 600 it",
                  path.c_str(), static_cast<unsigned>(st.st_mode & 07777));
  }
  *token = std::move(text);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  holdfast::set_log_program("holdfast-ckptd");
  Args args;
  std::string error;
  if (!parse_args(argc, argv, &args, &error)) {
    std::fprintf(stderr, "holdfast-ckptd: %s\n%.*s(--help for more)\n", error.c_str(),
                 static_cast<int>(std::strchr(kUsage, '\n') - kUsage + 1), kUsage);
    return 2;
  }
  if (args.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  // Held until the io_context listens for them, so that a stop request
  // arriving during start-up still stops cleanly.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  holdfast::ckpt::ServerOptions options;
  options.socket_path = args.socket;
  options.store_path = args.store;
  options.store_bytes = args.size_mb << 20;
  if (!args.token_file.empty()) {
    std::string token;
    if (!read_token(args.token_file, &token, &error)) {
      holdfast::log(LogLevel::error, kComponent, "%s", error.c_str());
      return 1;
    }
    options.token = std::move(token);
  }
  try {
    std::unique_ptr<holdfast::ckpt::Server> server =
        holdfast::ckpt::Server::create(options, &error);
    if (server == nullptr) {
      holdfast::log(LogLevel::error, kComponent, "%s", error.c_str());
      return 1;
    }
    boost::asio::signal_set signals(server->io_context(), SIGTERM, SIGINT);
    signals.async_wait([&server](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      holdfast::log(LogLevel::info, kComponent, "%s received, stopping",
                    signo == SIGTERM ? "SIGTERM" : "SIGINT");
      server->stop();
    });
    sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);
    server->run();
  } catch (const std::exception& e) {
    holdfast::log(LogLevel::error, kComponent, "fatal: %s", e.what());
    return 1;
  }
  return 0;
}
