// holdfast-ckptd: the checkpoint server (docs/checkpoint.md).
//
// Theory of operation. One thread runs a Boost.Asio io_context that accepts
// clients on a Unix stream socket and serves each of them in a session: reads
// are asynchronous and cut into frames by FrameDecoder; every complete frame
// is handled at once, to the end, and its reply queued. Replies go out with
// sendmsg on the socket's descriptor (a reply may carry the store's file
// descriptor, SCM_RIGHTS, which Asio's writes cannot); a reply that does not
// fit in the socket buffer waits for the socket to become writable, so a
// client that does not read blocks only itself.
//
// The server is the only writer of the store's metadata (Store), and it
// calls Store only from that thread. Nothing a client sends can stop it: a
// message it cannot use gets an error reply, a frame it cannot decode gets an
// error reply and the connection is closed, and every other client is served
// as before.
//
// Authentication is decided at hello from the peer's credentials, read at
// accept (SO_PEERCRED): without a token only the server's own uid; with one,
// any uid that presents it.
//
// The descriptors handed to clients are opened for them, never the Store's
// own: the Store's descriptor holds the lock that keeps a second server off
// the store, and a lock lives as long as any descriptor (or mapping) of its
// open file, so a dataplane holding it would lock out the next holdfast-ckptd.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "checkpoint/store.h"

namespace holdfast::ckpt {

struct ServerOptions {
  std::string socket_path;
  std::string store_path;
  uint64_t store_bytes = uint64_t{1024} << 20;  // when the store is created
  // With a token, clients of any uid that present it are admitted; without,
  // only clients of the server's own uid.
  std::optional<std::string> token;
  // A client that has not said hello by then is dropped.
  std::chrono::milliseconds hello_timeout{10000};
  size_t max_clients = 256;
};

class Server {
 public:
  // Opens (or creates) the store, then binds the socket: replaces a stale
  // socket file, refuses one another server answers on. nullptr and *error
  // when it cannot start. Clients may connect as soon as it returns.
  static std::unique_ptr<Server> create(const ServerOptions& options, std::string* error);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  boost::asio::io_context& io_context() { return io_; }
  // Serves until stop(); returns once every client is closed.
  void run();
  // Closes the clients and the listening socket, removes the socket file and
  // keeps the store. Safe from any thread and from signal handlers run by
  // the io_context (asio::signal_set).
  void stop();

 private:
  class Session;
  enum class Role { none, writer, reader, monitor };

  explicit Server(const ServerOptions& options);
  // Refuses a socket path another server answers on; *stale when a dead
  // server's socket file is there to be replaced.
  bool check_socket(bool* stale, std::string* error) const;
  bool listen(bool stale, std::string* error);
  void accept();
  void on_accept(boost::asio::local::stream_protocol::socket socket);
  void shutdown();
  void forget(const Session& session);

  // Message handling; every function replies on `s`.
  void handle(Session& s, const std::string& payload);
  void handle_hello(Session& s, const nlohmann::json& msg);
  void hello_writer(Session& s, const std::string& app, const nlohmann::json& msg);
  void handle_commit(Session& s, const nlohmann::json& msg);
  void handle_query(Session& s, const nlohmann::json& msg);
  void handle_stats(Session& s);
  void handle_clear(Session& s, const nlohmann::json& msg);
  void handle_epoch(Session& s);
  void handle_report(Session& s, const nlohmann::json& msg);
  bool authenticate(Session& s, const nlohmann::json& msg);
  // Replies with an error and logs it; the connection stays.
  void fail(Session& s, const std::string& error);

  // The app's committed set as "recover" describes it, or null.
  nlohmann::json committed_json(const std::string& app) const;
  nlohmann::json set_json(const std::string& app, uint32_t set) const;
  nlohmann::json welcome(const nlohmann::json& recover, const nlohmann::json& write,
                         uint32_t epoch) const;
  Session* writer_of(const std::string& app) const;
  // A new descriptor of the store file (flags: O_RDWR or O_RDONLY).
  int open_store_for_client(int flags, std::string* error) const;
  static const char* role_name(Role role);

  ServerOptions options_;
  boost::asio::io_context io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  std::unique_ptr<Store> store_;
  std::map<uint64_t, std::shared_ptr<Session>> sessions_;
  std::map<std::string, nlohmann::json> reports_;  // last recovery report per app
  uint64_t next_session_ = 1;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  bool listening_ = false;
  bool stopped_ = false;
};

}  // namespace holdfast::ckpt
