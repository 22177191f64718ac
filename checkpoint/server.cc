#include "checkpoint/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <set>
#include <utility>
#include <vector>

#include "checkpoint/protocol.h"
#include "control/log.h"

namespace holdfast::ckpt {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using boost::system::error_code;
using nlohmann::json;

constexpr const char* kComponent = "ckptd";
constexpr uint64_t kMaxWorkers = 64;
constexpr uint64_t kMaxModule = 255;
constexpr uint64_t kMaxSlotSize = 4096;
// A client that lets this much of its replies pile up unread is dropped.
constexpr size_t kMaxQueuedBytes = size_t{1} << 20;
// A recovery report is a summary: counts and times, kept in memory and
// shown by stats, which has to fit in one message with everything else.
constexpr size_t kMaxReportBytes = 4096;
constexpr size_t kMaxReportDepth = 8;
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

std::string errno_text(int e) {
  return std::strerror(e);
}

unsigned long long ull(uint64_t v) {
  return static_cast<unsigned long long>(v);
}

// Client-supplied text for a log line: printable ASCII only, bounded, so a
// client cannot forge or flood log lines.
std::string printable(const std::string& s) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : s) {
    if (out.size() == kMax) return out + "...";
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

// Never throws: strings in our replies come from parsed (valid UTF-8)
// messages or from us, but a reply must not be able to become an exception.
std::string serialise(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Compares in time that depends on the length of what the client gave,
// never on where it first differs from the secret.
bool token_matches(const std::string& secret, const std::string& given) {
  unsigned diff = secret.size() != given.size() ? 1u : 0u;
  for (size_t i = 0; i < given.size(); ++i) {
    const unsigned char s = i < secret.size() ? static_cast<unsigned char>(secret[i]) : 0;
    diff |= s ^ static_cast<unsigned char>(given[i]);
  }
  return diff == 0;
}

// Iterative, since the value is client input and may nest deeply.
bool nests_deeper_than(const json& j, size_t max) {
  std::vector<std::pair<const json*, size_t>> todo{{&j, 1}};
  while (!todo.empty()) {
    const auto [node, depth] = todo.back();
    todo.pop_back();
    if (depth > max) return true;
    if (node->is_structured()) {
      for (const json& child : *node) todo.emplace_back(&child, depth + 1);
    }
  }
  return false;
}

// A string member that must be present.
bool get_string(const json& msg, const char* key, std::string* out, std::string* error) {
  const auto it = msg.find(key);
  if (it == msg.end()) {
    *error = std::string("\"") + key + "\" is missing";
    return false;
  }
  if (!it->is_string()) {
    *error = std::string("\"") + key + "\" must be a string";
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

// The "app" of a query or clear: absent means the client's own.
bool get_app(const json& msg, const std::string& own, std::string* app, std::string* error) {
  if (!msg.contains("app")) {
    *app = own;
    return true;
  }
  if (!get_string(msg, "app", app, error)) return false;
  if (!app_id_valid(*app)) {
    *error = "\"app\" must be 1 to 31 letters, digits, '-', '_' or '.'";
    return false;
  }
  return true;
}

// The "layout" of a writer's hello, validated whole before anything is
// allocated.
bool parse_layout(const json& layout, const std::string& app, SetRequest* req, uint32_t* min_slots,
                  std::string* error) {
  if (!layout.is_object()) {
    *error = "\"layout\" must be an object";
    return false;
  }
  uint64_t workers, slots, min = 0;
  if (!get_uint(layout, "workers", 1, kMaxWorkers, &workers, error) ||
      !get_uint(layout, "slots", 1, UINT32_MAX, &slots, error)) {
    return false;
  }
  if (layout.contains("min_slots")) {
    if (!get_uint(layout, "min_slots", 1, slots, &min, error)) return false;
  } else {
    min = slots;
  }
  const auto modules = layout.find("modules");
  if (modules == layout.end() || !modules->is_array() || modules->empty()) {
    *error = "\"modules\" must be a non-empty array";
    return false;
  }
  req->app = app;
  req->workers = static_cast<uint32_t>(workers);
  req->slots = static_cast<uint32_t>(slots);
  req->modules.clear();
  std::set<uint64_t> seen;
  for (size_t i = 0; i < modules->size(); ++i) {
    const json& m = (*modules)[i];
    const std::string where = "modules[" + std::to_string(i) + "]: ";
    uint64_t module, schema, slot_size, own_slots = 0;
    std::string why;
    if (!m.is_object()) {
      *error = where + "must be an object";
      return false;
    }
    if (!get_uint(m, "module", 0, kMaxModule, &module, &why) ||
        !get_uint(m, "schema", 1, UINT8_MAX, &schema, &why) ||
        !get_uint(m, "slot_size", sizeof(SlotHeader), kMaxSlotSize, &slot_size, &why)) {
      *error = where + why;
      return false;
    }
    if (slot_size % 8 != 0) {
      *error = where + "\"slot_size\" must be a multiple of 8";
      return false;
    }
    if (m.contains("slots") && !get_uint(m, "slots", 1, UINT32_MAX, &own_slots, &why)) {
      *error = where + why;
      return false;
    }
    if (!seen.insert(module).second) {
      *error = where + "module " + std::to_string(module) + " is listed twice";
      return false;
    }
    req->modules.push_back({static_cast<uint16_t>(module), static_cast<uint16_t>(schema),
                            static_cast<uint32_t>(slot_size), static_cast<uint32_t>(own_slots)});
  }
  if (seen.count(kBaseModule) == 0) {
    *error = "\"modules\" must include the base layer, module 0";
    return false;
  }
  const uint64_t regions = workers * req->modules.size();
  if (regions > kMaxSetRegions) {
    *error = "the layout has " + std::to_string(regions) + " regions (" + std::to_string(workers) +
             " workers x " + std::to_string(req->modules.size()) + " modules), at most " +
             std::to_string(kMaxSetRegions);
    return false;
  }
  *min_slots = static_cast<uint32_t>(min);
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// One client connection

class Server::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, local::socket socket, uint64_t id)
      : server_(server), socket_(std::move(socket)), hello_timer_(server.io_), id_(id) {}
  ~Session() {
    for (Outgoing& o : out_) {
      if (o.fd >= 0) ::close(o.fd);
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t id() const { return id_; }
  pid_t pid() const { return pid_; }
  uid_t uid() const { return uid_; }
  bool closed() const { return closed_; }

  // Who this is, for log lines.
  std::string who() const {
    std::string out = "client " + std::to_string(id_) + " (pid " + std::to_string(pid_) + ", uid " +
                      std::to_string(uid_);
    if (role != Role::none) out += ", " + app + " " + role_name(role);
    return out + ")";
  }

  void start() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      pid_ = cred.pid;
      uid_ = cred.uid;
    }
    log(LogLevel::info, kComponent, "client %llu connected: pid %d, uid %u", ull(id_),
        static_cast<int>(pid_), static_cast<unsigned>(uid_));
    hello_timer_.expires_after(server_.options_.hello_timeout);
    hello_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed_ || self->closing_ || self->role != Role::none) return;
      log(LogLevel::warning, kComponent, "%s: no hello within %lld ms, closing",
          self->who().c_str(),
          static_cast<long long>(self->server_.options_.hello_timeout.count()));
      self->send_error("no hello within " +
                       std::to_string(self->server_.options_.hello_timeout.count()) +
                       " ms; closing the connection");
      self->close_after_flush();
    });
    read();
  }

  void hello_accepted() { hello_timer_.cancel(); }

  // Queues a reply; `fd` (owned from here on) goes with it.
  void send(const json& msg, int fd = -1) {
    if (closed_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    std::string body = serialise(msg);
    if (body.size() > kMaxMessage) {
      log(LogLevel::error, kComponent, "%s: a reply of %zu bytes is over the message limit",
          who().c_str(), body.size());
      if (fd >= 0) ::close(fd);
      fd = -1;
      body = serialise({{"type", "error"},
                        {"error", "the reply (" + std::to_string(body.size()) +
                                      " bytes) does not fit in one message"}});
    }
    Outgoing o;
    const auto n = static_cast<uint32_t>(body.size());
    o.bytes = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
               static_cast<char>(n)};
    o.bytes += body;
    o.fd = fd;
    queued_ += o.bytes.size();
    out_.push_back(std::move(o));
    if (queued_ > kMaxQueuedBytes) {
      log(LogLevel::warning, kComponent, "%s does not read its replies (%zu bytes queued), closing",
          who().c_str(), queued_);
      close();
      return;
    }
    flush();
  }

  void send_error(const std::string& text) { send({{"type", "error"}, {"error", text}}); }

  // Stops reading; closes once the queued replies are out.
  void close_after_flush() {
    closing_ = true;
    if (out_.empty()) close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    hello_timer_.cancel();
    error_code ec;
    socket_.close(ec);
    for (Outgoing& o : out_) {
      if (o.fd >= 0) ::close(o.fd);
    }
    out_.clear();
    server_.forget(*this);
  }

  // Set by the server once hello succeeds.
  Role role = Role::none;
  std::string app;
  uint32_t epoch = 0;      // writer: the epoch it writes with
  uint32_t set = 0;        // writer: the set it writes
  bool committed = false;  // writer: that set is the committed one

 private:
  struct Outgoing {
    std::string bytes;  // the whole frame
    int fd = -1;        // sent with the frame's first byte
    size_t sent = 0;
  };

  void read() {
    socket_.async_read_some(
        asio::buffer(buffer_),
        [self = shared_from_this()](const error_code& ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(const error_code& ec, size_t n) {
    if (closed_ || closing_) return;
    if (ec == asio::error::eof) {
      if (decoder_.buffered() == 0) {
        close();
        return;
      }
      // The peer may only have shut down its side: it can still read.
      log(LogLevel::warning, kComponent, "%s closed the connection mid-frame (%zu bytes pending)",
          who().c_str(), decoder_.buffered());
      send_error("connection closed mid-frame");
      close_after_flush();
      return;
    }
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        log(LogLevel::warning, kComponent, "%s: receive: %s", who().c_str(), ec.message().c_str());
        close();
      }
      return;
    }
    decoder_.feed(buffer_.data(), n);
    std::string payload;
    for (;;) {
      const FrameDecoder::Status status = decoder_.next(&payload);
      if (status == FrameDecoder::Status::need_more) break;
      if (status == FrameDecoder::Status::bad_length) {
        log(LogLevel::warning, kComponent, "%s sent a bad frame length, closing", who().c_str());
        send_error("bad frame: a message is 1 to " + std::to_string(kMaxMessage) +
                   " bytes; closing the connection");
        close_after_flush();
        return;
      }
      server_.handle(*this, payload);
      if (closed_ || closing_) return;
    }
    read();
  }

  void flush() {
    if (waiting_ || closed_) return;
    while (!out_.empty()) {
      Outgoing& o = out_.front();
      const long w = send_with_fd(socket_.native_handle(), o.bytes.data() + o.sent,
                                  o.bytes.size() - o.sent, o.fd, MSG_DONTWAIT);
      if (w < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
          waiting_ = true;
          socket_.async_wait(local::socket::wait_write,
                             [self = shared_from_this()](const error_code& ec) {
                               self->waiting_ = false;
                               if (!ec) self->flush();
                             });
          return;
        }
        log(LogLevel::info, kComponent, "%s: send: %s", who().c_str(), errno_text(e).c_str());
        close();
        return;
      }
      if (o.fd >= 0) {
        ::close(o.fd);  // the client has its own now
        o.fd = -1;
      }
      o.sent += static_cast<size_t>(w);
      queued_ -= static_cast<size_t>(w);
      if (o.sent == o.bytes.size()) out_.pop_front();
    }
    if (closing_) close();
  }

  Server& server_;
  local::socket socket_;
  asio::steady_timer hello_timer_;
  const uint64_t id_;
  pid_t pid_ = 0;
  uid_t uid_ = static_cast<uid_t>(-1);  // unknown: never the server's
  FrameDecoder decoder_;
  std::array<uint8_t, 16384> buffer_;
  std::deque<Outgoing> out_;
  size_t queued_ = 0;
  bool waiting_ = false;  // for the socket to take more
  bool closing_ = false;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------
// Starting and stopping

Server::Server(const ServerOptions& options)
    : options_(options), acceptor_(io_), accept_retry_(io_) {}

std::unique_ptr<Server> Server::create(const ServerOptions& options, std::string* error) {
  std::unique_ptr<Server> s(new Server(options));
  // The socket is checked first so that nothing is created when another
  // server is running, and bound last so that clients never find a socket
  // without a store behind it.
  bool stale = false;
  if (!s->check_socket(&stale, error)) return nullptr;
  struct stat st;
  const bool existed = stat(options.store_path.c_str(), &st) == 0;
  s->store_ = Store::open(options.store_path, options.store_bytes, error);
  if (s->store_ == nullptr) return nullptr;
  const StoreMeta& m = s->store_->meta();
  size_t apps = 0;
  for (const AppEntry& a : m.apps) apps += a.in_use ? 1 : 0;
  if (existed) {
    log(LogLevel::info, kComponent,
        "store %s validated: %llu MiB, generation %llu, last epoch %u, %zu application(s)",
        options.store_path.c_str(), ull(s->store_->bytes() >> 20), ull(m.generation), m.epoch,
        apps);
  } else {
    log(LogLevel::info, kComponent, "store %s created: %llu MiB", options.store_path.c_str(),
        ull(s->store_->bytes() >> 20));
  }
  if (!s->listen(stale, error)) return nullptr;
  if (options.token.has_value()) {
    log(LogLevel::info, kComponent, "listening on %s: clients of any uid with the token",
        options.socket_path.c_str());
  } else {
    log(LogLevel::info, kComponent, "listening on %s: clients of uid %u only",
        options.socket_path.c_str(), static_cast<unsigned>(getuid()));
  }
  s->accept();
  return s;
}

bool Server::check_socket(bool* stale, std::string* error) const {
  const std::string& path = options_.socket_path;
  sockaddr_un addr{};
  *stale = false;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    *error = "the socket path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) +
             " bytes long: \"" + path + "\"";
    return false;
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    *error = "cannot check the socket " + path + ": " + errno_text(errno);
    return false;
  }
  if (!S_ISSOCK(st.st_mode)) {
    *error = path + " exists and is not a socket; refusing to replace it";
    return false;
  }
  // A server answers on a live socket; a stale one, left by a server that
  // did not stop cleanly, refuses the connection.
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) {
    *error = "socket: " + errno_text(errno);
    return false;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int rc = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int e = errno;
  ::close(probe);
  if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
    *error = "another holdfast-ckptd is listening on " + path;
    return false;
  }
  if (e != ECONNREFUSED) {
    *error = "cannot check the socket " + path + ": " + errno_text(e);
    return false;
  }
  *stale = true;
  return true;
}

bool Server::listen(bool stale, std::string* error) {
  const std::string& path = options_.socket_path;
  if (stale && unlink(path.c_str()) != 0 && errno != ENOENT) {
    *error = "cannot remove the stale socket " + path + ": " + errno_text(errno);
    return false;
  }
  error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) {
    // 0660: the server's user and group may connect, nobody else.
    const mode_t old = umask(0117);
    acceptor_.bind(local::endpoint(path), ec);
    umask(old);
    struct stat st;
    if (!ec && stat(path.c_str(), &st) == 0) {
      socket_dev_ = st.st_dev;
      socket_ino_ = st.st_ino;
    }
  }
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "cannot listen on " + path + ": " + ec.message();
    return false;
  }
  listening_ = true;
  if (stale) {
    log(LogLevel::warning, kComponent,
        "replaced the stale socket %s (left by a server that did not stop cleanly)", path.c_str());
  }
  return true;
}

Server::~Server() {
  shutdown();
  // Let the handlers cancelled by the shutdown run, so that every session
  // is released while the server it refers to still exists.
  io_.restart();
  io_.poll();
}

void Server::run() {
  io_.run();
}

void Server::stop() {
  asio::post(io_, [this] { shutdown(); });
}

void Server::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  std::vector<std::shared_ptr<Session>> all;
  for (const auto& [id, session] : sessions_) all.push_back(session);
  for (const auto& session : all) session->close();
  sessions_.clear();
  // Remove the socket only if it is still ours: a socket file another
  // server has put there since is its own.
  struct stat st;
  if (socket_ino_ != 0 && stat(options_.socket_path.c_str(), &st) == 0 &&
      st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    unlink(options_.socket_path.c_str());
  }
  if (listening_) {
    log(LogLevel::info, kComponent, "stopped: socket %s removed, store %s kept",
        options_.socket_path.c_str(), options_.store_path.c_str());
  }
}

void Server::accept() {
  acceptor_.async_accept([this](const error_code& ec, local::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors, typically: try again shortly, do not spin.
      log(LogLevel::warning, kComponent, "accept: %s; retrying", ec.message().c_str());
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this](const error_code& e) {
        if (!e && !stopped_) accept();
      });
      return;
    }
    on_accept(std::move(socket));
    accept();
  });
}

void Server::on_accept(local::socket socket) {
  if (sessions_.size() >= options_.max_clients) {
    log(LogLevel::warning, kComponent, "refused a client: %zu clients are connected already",
        sessions_.size());
    std::string ignored;
    send_message(socket.native_handle(),
                 {{"type", "error"}, {"error", "too many clients; try again later"}}, -1, &ignored);
    return;
  }
  auto session = std::make_shared<Session>(*this, std::move(socket), next_session_++);
  sessions_[session->id()] = session;
  session->start();
}

void Server::forget(const Session& s) {
  if (s.role == Role::writer && !s.committed) {
    log(LogLevel::info, kComponent,
        "%s disconnected before committing set %u (freed at the next writer hello)",
        s.who().c_str(), s.set);
  } else {
    log(LogLevel::info, kComponent, "%s disconnected", s.who().c_str());
  }
  sessions_.erase(s.id());
}

// ---------------------------------------------------------------------------
// Messages

const char* Server::role_name(Role role) {
  switch (role) {
    case Role::writer:
      return "writer";
    case Role::reader:
      return "reader";
    case Role::monitor:
      return "monitor";
    case Role::none:
      break;
  }
  return "none";
}

void Server::fail(Session& s, const std::string& error) {
  log(LogLevel::warning, kComponent, "%s: %s", s.who().c_str(), error.c_str());
  s.send_error(error);
}

void Server::handle(Session& s, const std::string& payload) {
  try {
    const json msg = json::parse(payload, nullptr, false);
    if (msg.is_discarded()) {
      fail(s, "the message is not valid JSON");
      return;
    }
    if (!msg.is_object()) {
      fail(s, "the message must be a JSON object");
      return;
    }
    std::string type;
    std::string error;
    if (!get_string(msg, "type", &type, &error)) {
      fail(s, "bad message: " + error);
      return;
    }
    if (s.role == Role::none) {
      if (type == "hello") {
        handle_hello(s, msg);
      } else {
        fail(s, "the first message must be hello (got \"" + printable(type) + "\")");
      }
      return;
    }
    if (type == "hello") {
      fail(s, "hello: already accepted on this connection");
    } else if (type == "commit") {
      handle_commit(s, msg);
    } else if (type == "query") {
      handle_query(s, msg);
    } else if (type == "stats") {
      handle_stats(s);
    } else if (type == "clear") {
      handle_clear(s, msg);
    } else if (type == "report") {
      handle_report(s, msg);
    } else if (type == "epoch") {
      handle_epoch(s);
    } else {
      fail(s, "unknown message type \"" + printable(type) + "\"");
    }
  } catch (const std::exception& e) {
    // Nothing a client sends may stop the server.
    log(LogLevel::error, kComponent, "%s: internal error: %s", s.who().c_str(), e.what());
    s.send_error(std::string("internal error: ") + e.what());
  }
}

bool Server::authenticate(Session& s, const json& msg) {
  std::string why;
  if (options_.token.has_value()) {
    const auto token = msg.find("token");
    if (token == msg.end() || !token->is_string()) {
      why = "no token given";
    } else if (!token_matches(*options_.token, token->get<std::string>())) {
      why = "wrong token";
    }
  } else if (s.uid() != getuid()) {
    why = "uid " + std::to_string(s.uid()) + " is not the server's uid " +
          std::to_string(getuid()) + " (start holdfast-ckptd with --token-file to admit others)";
  }
  if (why.empty()) return true;
  log(LogLevel::warning, kComponent, "%s refused: authentication failed: %s", s.who().c_str(),
      why.c_str());
  s.send_error("authentication failed: " + why);
  s.close_after_flush();
  return false;
}

void Server::handle_hello(Session& s, const json& msg) {
  if (!authenticate(s, msg)) return;
  std::string app;
  std::string role;
  std::string error;
  if (!get_string(msg, "app", &app, &error) || !get_string(msg, "role", &role, &error)) {
    fail(s, "hello: " + error);
    return;
  }
  if (!app_id_valid(app)) {
    fail(s, "hello: \"app\" must be 1 to 31 letters, digits, '-', '_' or '.'");
    return;
  }
  Role r = Role::none;
  if (role == "writer") r = Role::writer;
  if (role == "reader") r = Role::reader;
  if (role == "monitor") r = Role::monitor;
  if (r == Role::none) {
    fail(s, "hello: \"role\" must be writer, reader or monitor");
    return;
  }
  if (r == Role::writer) {
    hello_writer(s, app, msg);
    return;
  }
  if (msg.contains("layout") || msg.contains("resume")) {
    fail(s, "hello: only a writer sends \"layout\" or \"resume\"");
    return;
  }
  int fd = -1;
  if (r == Role::reader) {
    fd = open_store_for_client(O_RDONLY, &error);
    if (fd < 0) {
      log(LogLevel::error, kComponent, "%s: %s", s.who().c_str(), error.c_str());
      s.send_error(error);
      return;
    }
  }
  s.role = r;
  s.app = app;
  s.hello_accepted();
  const json recover = committed_json(app);
  log(LogLevel::info, kComponent, "%s: hello accepted: app %s, role %s, recover set %s",
      s.who().c_str(), app.c_str(), role_name(r),
      recover.is_null() ? "none" : std::to_string(recover["set"].get<uint32_t>()).c_str());
  s.send(welcome(recover, nullptr, store_->meta().epoch), fd);
}

void Server::hello_writer(Session& s, const std::string& app, const json& msg) {
  if (const Session* w = writer_of(app)) {
    fail(s, "hello: application " + app + " already has a writer connected (client " +
                std::to_string(w->id()) + ", pid " + std::to_string(w->pid()) + ")");
    return;
  }
  const bool has_layout = msg.contains("layout");
  const bool has_resume = msg.contains("resume");
  if (has_layout == has_resume) {
    fail(s, has_layout ? "hello: a writer sends \"layout\" or \"resume\", not both"
                       : "hello: a writer must send \"layout\" or \"resume\"");
    return;
  }
  std::string error;
  const json recover = committed_json(app);

  if (has_resume) {
    const json& resume = msg["resume"];
    uint64_t set, epoch;
    if (!resume.is_object()) {
      fail(s, "hello: \"resume\" must be an object");
      return;
    }
    if (!get_uint(resume, "set", 1, UINT32_MAX, &set, &error) ||
        !get_uint(resume, "epoch", 1, kMaxEpoch, &epoch, &error)) {
      fail(s, "hello: resume: " + error);
      return;
    }
    const AppEntry* a = store_->app(app);
    if (a == nullptr || a->committed_set != set || a->data_epoch != epoch) {
      const std::string has = a != nullptr && a->committed_set != 0
                                  ? "set " + std::to_string(a->committed_set) + " epoch " +
                                        std::to_string(a->data_epoch)
                                  : "none";
      fail(s, "hello: resume: set " + std::to_string(set) + " epoch " + std::to_string(epoch) +
                  " is not the committed set of " + app + " (that is " + has + ")");
      return;
    }
    const int fd = open_store_for_client(O_RDWR, &error);
    if (fd < 0) {
      fail(s, error);
      return;
    }
    s.role = Role::writer;
    s.app = app;
    s.epoch = static_cast<uint32_t>(epoch);
    s.set = static_cast<uint32_t>(set);
    s.committed = true;
    s.hello_accepted();
    log(LogLevel::info, kComponent,
        "%s: hello accepted: app %s, role writer (resume), epoch %u, set %u", s.who().c_str(),
        app.c_str(), s.epoch, s.set);
    s.send(welcome(recover, set_json(app, s.set), s.epoch), fd);
    return;
  }

  SetRequest req;
  uint32_t min_slots = 0;
  if (!parse_layout(msg["layout"], app, &req, &min_slots, &error)) {
    fail(s, "hello: layout: " + error);
    return;
  }
  // The welcome has to fit in one message: measure it with the largest
  // numbers this layout can produce before spending an epoch and a set.
  json largest = {{"set", UINT32_MAX}, {"regions", json::array()}};
  for (uint32_t w = 0; w < req.workers; ++w) {
    for (const ModuleShape& m : req.modules) {
      RegionEntry r{};
      r.worker = static_cast<uint16_t>(w);
      r.module = m.module;
      r.schema = m.schema;
      r.slot_size = m.slot_size;
      r.slot_count = m.slots != 0 ? m.slots : req.slots;
      r.offset = store_->bytes();
      largest["regions"].push_back(region_to_json(r));
    }
  }
  const size_t size = serialise(welcome(recover, largest, kMaxEpoch)).size();
  if (size > kMaxMessage) {
    fail(s, "hello: layout: its welcome would take " + std::to_string(size) +
                " bytes, more than one message holds (" + std::to_string(kMaxMessage) +
                "); use fewer workers or modules");
    return;
  }
  const uint32_t epoch = store_->next_epoch(&error);
  if (epoch == 0) {
    fail(s, "hello: " + error);
    return;
  }
  const std::optional<uint32_t> set = store_->begin_set(req, min_slots, &error);
  if (!set.has_value()) {
    fail(s, "hello: " + error);
    return;
  }
  const int fd = open_store_for_client(O_RDWR, &error);
  if (fd < 0) {
    fail(s, error);
    return;
  }
  s.role = Role::writer;
  s.app = app;
  s.epoch = epoch;
  s.set = *set;
  s.committed = false;
  s.hello_accepted();
  const json write = set_json(app, *set);
  const uint32_t slots = write["regions"][0]["slot_count"].get<uint32_t>();
  log(LogLevel::info, kComponent,
      "%s: hello accepted: app %s, role writer, epoch %u, set %u (%u workers x %zu modules, %u "
      "slots%s), recover set %s",
      s.who().c_str(), app.c_str(), epoch, *set, req.workers, req.modules.size(), slots,
      slots < req.slots ? ", fewer than asked: the store is full" : "",
      recover.is_null() ? "none" : std::to_string(recover["set"].get<uint32_t>()).c_str());
  s.send(welcome(recover, write, epoch), fd);
}

void Server::handle_commit(Session& s, const json& msg) {
  if (s.role != Role::writer) {
    fail(s, "commit: only a writer commits");
    return;
  }
  uint64_t set;
  std::string error;
  if (!get_uint(msg, "set", 1, UINT32_MAX, &set, &error)) {
    fail(s, "commit: " + error);
    return;
  }
  if (set != s.set) {
    fail(s, "commit: set " + std::to_string(set) + " is not the set this writer was given (" +
                std::to_string(s.set) + ")");
    return;
  }
  if (s.committed) {
    fail(s, "commit: set " + std::to_string(set) + " is already committed");
    return;
  }
  if (!store_->commit_set(s.app, s.set, s.epoch, &error)) {
    log(LogLevel::error, kComponent, "%s: commit: %s", s.who().c_str(), error.c_str());
    s.send_error("commit: " + error);
    return;
  }
  s.committed = true;
  log(LogLevel::info, kComponent, "%s: committed set %u (epoch %u)", s.who().c_str(), s.set,
      s.epoch);
  s.send({{"type", "committed"}, {"set", s.set}});
}

void Server::handle_query(Session& s, const json& msg) {
  std::string app;
  std::string error;
  if (!get_app(msg, s.app, &app, &error)) {
    fail(s, "query: " + error);
    return;
  }
  const AppEntry* a = store_->app(app);
  if (a == nullptr || a->committed_set == 0) {
    s.send({{"type", "query"}, {"app", app}, {"data", false}});
    return;
  }
  uint64_t connections = 0;
  uint64_t bytes = 0;
  std::set<uint16_t> workers;
  for (const RegionEntry& r : store_->regions(app, a->committed_set)) {
    workers.insert(r.worker);
    bytes += r.bytes();
    if (r.module == kBaseModule) connections += store_->count_used_slots(r);
  }
  s.send({{"type", "query"},
          {"app", app},
          {"data", true},
          {"set", a->committed_set},
          {"epoch", a->data_epoch},
          {"workers", workers.size()},
          {"connections", connections},
          {"bytes", bytes}});
}

void Server::handle_stats(Session& s) {
  const StoreMeta& m = store_->meta();
  auto describe = [this](const std::string& app, uint32_t set) {
    json regions = json::array();
    uint64_t bytes = 0;
    uint64_t connections = 0;
    for (const RegionEntry& r : store_->regions(app, set)) {
      const uint64_t used = store_->count_used_slots(r);
      bytes += r.bytes();
      if (r.module == kBaseModule) connections += used;
      regions.push_back(
          {{"worker", r.worker}, {"module", r.module}, {"slots", r.slot_count}, {"used", used}});
    }
    return json{{"set", set}, {"bytes", bytes}, {"connections", connections}, {"regions", regions}};
  };
  json apps = json::array();
  for (const AppEntry& a : m.apps) {
    if (!a.in_use) continue;
    const std::string app(a.app, strnlen(a.app, kAppIdSize));
    json entry = {{"app", app}, {"committed", nullptr}, {"staging", nullptr}};
    if (a.committed_set != 0) {
      entry["committed"] = describe(app, a.committed_set);
      entry["committed"]["epoch"] = a.data_epoch;
    }
    if (a.staging_set != 0) entry["staging"] = describe(app, a.staging_set);
    const Session* w = writer_of(app);
    entry["writer"] = w != nullptr ? json(w->id()) : json(nullptr);
    const auto report = reports_.find(app);
    entry["report"] = report != reports_.end() ? report->second : json(nullptr);
    apps.push_back(entry);
  }
  json clients = json::array();
  for (const auto& [id, c] : sessions_) {
    clients.push_back({{"id", id},
                       {"pid", c->pid()},
                       {"uid", c->uid()},
                       {"app", c->role != Role::none ? json(c->app) : json(nullptr)},
                       {"role", c->role != Role::none ? json(role_name(c->role)) : json(nullptr)}});
  }
  json reply = {{"type", "stats"},
                {"store",
                 {{"path", store_->path()},
                  {"bytes", store_->bytes()},
                  {"used_bytes", store_->used_bytes()},
                  {"generation", m.generation},
                  {"epoch", m.epoch}}},
                {"apps", apps},
                {"clients", clients}};
  // Everything fits but with the largest layouts: then the per-region
  // detail goes first, then the reports; the totals always stay.
  if (serialise(reply).size() > kMaxMessage) {
    for (json& app : reply["apps"]) {
      for (const char* which : {"committed", "staging"}) {
        if (!app[which].is_null()) app[which].erase("regions");
      }
    }
    reply["regions_omitted"] = true;
  }
  if (serialise(reply).size() > kMaxMessage) {
    for (json& app : reply["apps"]) app["report"] = nullptr;
    reply["reports_omitted"] = true;
  }
  s.send(reply);
}

void Server::handle_clear(Session& s, const json& msg) {
  if (s.role != Role::monitor) {
    fail(s, "clear: only a monitor (holdfastctl) clears");
    return;
  }
  std::string app;
  std::string error;
  if (!get_app(msg, s.app, &app, &error)) {
    fail(s, "clear: " + error);
    return;
  }
  if (const Session* w = writer_of(app)) {
    fail(s, "clear: application " + app + " has a writer connected (client " +
                std::to_string(w->id()) + ", pid " + std::to_string(w->pid()) + "); stop it first");
    return;
  }
  if (!store_->clear(app, &error)) {
    log(LogLevel::error, kComponent, "%s: clear %s: %s", s.who().c_str(), app.c_str(),
        error.c_str());
    s.send_error("clear: " + error);
    return;
  }
  reports_.erase(app);
  log(LogLevel::info, kComponent, "%s: cleared application %s", s.who().c_str(), app.c_str());
  s.send({{"type", "cleared"}, {"app", app}});
}

void Server::handle_epoch(Session& s) {
  if (s.role != Role::writer) {
    fail(s, "epoch: only a writer takes epochs");
    return;
  }
  std::string error;
  const uint32_t epoch = store_->next_epoch(&error);
  if (epoch == 0) {
    fail(s, "epoch: " + error);
    return;
  }
  log(LogLevel::info, kComponent, "%s: epoch %u handed out for when its counters run out",
      s.who().c_str(), epoch);
  s.send({{"type", "epoch"}, {"epoch", epoch}});
}

void Server::handle_report(Session& s, const json& msg) {
  if (s.role != Role::writer) {
    fail(s, "report: only a writer reports");
    return;
  }
  const auto report = msg.find("report");
  if (report == msg.end() || !report->is_object()) {
    fail(s, "report: \"report\" must be an object");
    return;
  }
  if (nests_deeper_than(*report, kMaxReportDepth) || serialise(*report).size() > kMaxReportBytes) {
    fail(s, "report: a report is at most " + std::to_string(kMaxReportBytes) + " bytes and " +
                std::to_string(kMaxReportDepth) + " levels deep");
    return;
  }
  reports_[s.app] = *report;
  log(LogLevel::info, kComponent, "%s: recovery report received", s.who().c_str());
  s.send({{"type", "ok"}});
}

// ---------------------------------------------------------------------------
// Helpers

json Server::set_json(const std::string& app, uint32_t set) const {
  json regions = json::array();
  for (const RegionEntry& r : store_->regions(app, set)) regions.push_back(region_to_json(r));
  return {{"set", set}, {"regions", regions}};
}

json Server::committed_json(const std::string& app) const {
  const AppEntry* a = store_->app(app);
  if (a == nullptr || a->committed_set == 0) return nullptr;
  json j = set_json(app, a->committed_set);
  j["epoch"] = a->data_epoch;
  return j;
}

json Server::welcome(const json& recover, const json& write, uint32_t epoch) const {
  return {{"type", "welcome"},
          {"epoch", epoch},
          {"store_bytes", store_->bytes()},
          {"generation", store_->meta().generation},
          {"recover", recover},
          {"write", write}};
}

Server::Session* Server::writer_of(const std::string& app) const {
  for (const auto& [id, s] : sessions_) {
    if (s->role == Role::writer && s->app == app && !s->closed()) return s.get();
  }
  return nullptr;
}

int Server::open_store_for_client(int flags, std::string* error) const {
  // Through /proc, the file the store has open even if its path has been
  // replaced since; a new open file description either way (see server.h).
  const std::string proc = "/proc/self/fd/" + std::to_string(store_->fd());
  int fd = ::open(proc.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fd = ::open(store_->path().c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open the store for the client: " + errno_text(errno);
    return -1;
  }
  struct stat mine;
  struct stat theirs;
  if (fstat(store_->fd(), &mine) != 0 || fstat(fd, &theirs) != 0 || mine.st_dev != theirs.st_dev ||
      mine.st_ino != theirs.st_ino) {
    ::close(fd);
    *error = "cannot open the store for the client: " + store_->path() + " has been replaced";
    return -1;
  }
  return fd;
}

}  // namespace holdfast::ckpt
