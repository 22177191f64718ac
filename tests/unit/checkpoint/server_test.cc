// holdfast-ckptd's server (checkpoint/server.h, docs/checkpoint.md "The
// control protocol"), run in a thread on a private socket and store: hello
// for each role and what it hands out, one writer per application, commit,
// resume, query, stats, report, clear, authentication, and every kind of
// malformed input, after which the server still serves everyone.
#include "checkpoint/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/protocol.h"
#include "checkpoint/store.h"
#include "tests/unit/checkpoint/temp_dir.h"

namespace holdfast::ckpt {
namespace {

using nlohmann::json;
using testing_support::TempDir;

constexpr uint64_t kMiB = 1 << 20;
constexpr int kTimeoutMs = 5000;

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

std::string frame(const std::string& body) {
  const auto n = static_cast<uint32_t>(body.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out + body;
}

sockaddr_un address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
  return a;
}

// One client connection, speaking the protocol with the blocking helpers.
class Client {
 public:
  explicit Client(const std::string& path) {
    sock_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un a = address(path);
    if (connect(sock_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      error_ = std::string("connect: ") + std::strerror(errno);
      close(sock_);
      sock_ = -1;
    }
  }
  ~Client() {
    if (sock_ >= 0) close(sock_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return sock_ >= 0; }
  const std::string& error() const { return error_; }
  int sock() const { return sock_; }

  bool send(const json& msg) {
    std::string error;
    return send_message(sock_, msg, -1, &error);
  }
  void send_raw(const std::string& bytes) {
    EXPECT_EQ(write(sock_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The next reply; {"type": "receive failed", ...} when there is none.
  // A descriptor that came with it goes to *fd, or is closed.
  json receive(Fd* fd = nullptr) {
    json msg;
    int got = -1;
    std::string error;
    if (!receive_message(sock_, &msg, &got, kTimeoutMs, &error)) {
      return {{"type", "receive failed"}, {"error", error}};
    }
    if (fd != nullptr) {
      *fd = Fd(got);
    } else if (got >= 0) {
      close(got);  // the test does not look at it
    }
    return msg;
  }
  // Sends and receives the reply; a request the server had no chance to
  // read (it closed first) still gets the reply the server sent.
  json call(const json& msg, Fd* fd = nullptr) {
    send(msg);
    return receive(fd);
  }
  // The server closed the connection (after any replies still unread).
  bool closed_by_server() {
    pollfd p{sock_, POLLIN, 0};
    if (poll(&p, 1, kTimeoutMs) <= 0) return false;
    char c;
    return recv(sock_, &c, 1, 0) == 0;
  }
  void shutdown_write() { ::shutdown(sock_, SHUT_WR); }
  void disconnect() {
    if (sock_ >= 0) close(sock_);
    sock_ = -1;
  }

 private:
  int sock_ = -1;
  std::string error_;
};

json module_shape(int module, int slot_size) {
  return {{"module", module}, {"schema", 1}, {"slot_size", slot_size}};
}

json layout(uint32_t workers = 2, uint32_t slots = 1000, uint32_t min_slots = 1) {
  return {{"workers", workers},
          {"slots", slots},
          {"min_slots", min_slots},
          {"modules", json::array({module_shape(0, 72), module_shape(1, 56)})}};
}

json hello(const std::string& role, const std::string& app = "holdfast") {
  return {{"type", "hello"}, {"app", app}, {"role", role}};
}

json writer_hello(const json& l = layout(), const std::string& app = "holdfast") {
  json h = hello("writer", app);
  h["layout"] = l;
  return h;
}

bool is_error(const json& reply, const std::string& text) {
  return reply.value("type", "") == "error" &&
         reply.value("error", "").find(text) != std::string::npos;
}

#define EXPECT_ERROR(reply, text)                                            \
  do {                                                                       \
    const json r_ = (reply);                                                 \
    EXPECT_TRUE(is_error(r_, text))                                          \
        << "expected an error with \"" << (text) << "\", got " << r_.dump(); \
  } while (0)

// Polls `done` until it holds or the time is up.
bool eventually(const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// Sends stderr (where the server logs) to a file for as long as it lives.
class LogCapture {
 public:
  explicit LogCapture(const std::string& path) : path_(path) {
    fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~LogCapture() {
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    // What was captured still shows in the test's output.
    const std::string captured = text();
    if (write(STDERR_FILENO, captured.data(), captured.size()) < 0) return;
  }
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string path_;
  int saved_ = -1;
};

class ServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    options_.socket_path = dir_.file("ckptd.sock");
    options_.store_path = dir_.file("holdfast.store");
    options_.store_bytes = 64 * kMiB;
  }
  void TearDown() override {
    stop_server();
    for (const auto& [p, n] : maps_) munmap(p, n);
  }

  void start_server() {
    std::string error;
    server_ = Server::create(options_, &error);
    ASSERT_NE(server_, nullptr) << error;
    thread_ = std::thread([s = server_.get()] { s->run(); });
  }
  void stop_server() {
    if (server_ == nullptr) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }

  std::unique_ptr<Client> client() {
    auto c = std::make_unique<Client>(options_.socket_path);
    EXPECT_TRUE(c->connected()) << c->error();
    return c;
  }
  std::unique_ptr<Client> monitor() {
    auto c = client();
    const json w = c->call(hello("monitor"));
    EXPECT_EQ(w.value("type", ""), "welcome") << w.dump();
    return c;
  }

  uint8_t* map(int fd, int prot) {
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    maps_.push_back({p, static_cast<size_t>(st.st_size)});
    return static_cast<uint8_t*>(p);
  }

  static void write_slot(uint8_t* map, const json& region, uint32_t index, uint64_t conn_id,
                         uint32_t seq = 2) {
    SlotHeader h{};
    h.seq = seq;
    h.conn_id = conn_id;
    h.module = region["module"].get<uint8_t>();
    const uint64_t at =
        region["offset"].get<uint64_t>() + uint64_t{index} * region["slot_size"].get<uint64_t>();
    std::memcpy(map + at, &h, sizeof h);
  }

  TempDir dir_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::vector<std::pair<void*, size_t>> maps_;
};

// ---------------------------------------------------------------------------
// hello, by role

TEST_F(ServerTest, AWriterGetsAnEpochItsRegionsAndAWritableStore) {
  start_server();
  auto c = client();
  Fd fd;
  const json w = c->call(writer_hello(layout(2, 1000)), &fd);
  ASSERT_EQ(w.value("type", ""), "welcome") << w.dump();
  EXPECT_EQ(w["epoch"], 1);
  EXPECT_EQ(w["store_bytes"], 64 * kMiB);
  EXPECT_GT(w["generation"].get<uint64_t>(), 0u);
  EXPECT_TRUE(w["recover"].is_null());
  EXPECT_EQ(w["write"]["set"], 1);
  const json& regions = w["write"]["regions"];
  ASSERT_EQ(regions.size(), 4u);
  for (size_t i = 0; i < regions.size(); ++i) {
    EXPECT_EQ(regions[i]["worker"], i / 2);
    EXPECT_EQ(regions[i]["module"], i % 2 == 0 ? 0 : 1);
    EXPECT_EQ(regions[i]["slot_size"], i % 2 == 0 ? 72 : 56);
    EXPECT_EQ(regions[i]["schema"], 1);
    EXPECT_EQ(regions[i]["slot_count"], 1000);
    std::string error;
    EXPECT_TRUE(region_from_json(regions[i], &error).has_value()) << error;
  }

  ASSERT_GE(fd.fd, 0);
  EXPECT_EQ(fcntl(fd.fd, F_GETFL) & O_ACCMODE, O_RDWR);
  uint8_t* store = map(fd.fd, PROT_READ | PROT_WRITE);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(std::memcmp(store, kMagic, sizeof kMagic), 0);
  write_slot(store, regions[0], 0, 1);  // the mapping is shared with the store
  const json q = c->call({{"type", "query"}});
  EXPECT_EQ(q["data"], false);  // nothing committed yet
}

TEST_F(ServerTest, TheDescriptorAClientHoldsDoesNotLockTheStore) {
  start_server();
  auto c = client();
  Fd fd;
  ASSERT_EQ(c->call(writer_hello(), &fd).value("type", ""), "welcome");
  ASSERT_NE(map(fd.fd, PROT_READ | PROT_WRITE), nullptr);
  // The dataplane outlives holdfast-ckptd; the next one must get the store.
  c.reset();
  stop_server();
  std::string error;
  EXPECT_NE(Store::open(options_.store_path, 0, &error), nullptr) << error;
}

TEST_F(ServerTest, AReaderGetsTheCommittedSetAndAReadOnlyStore) {
  start_server();
  auto writer = client();
  const json w = writer->call(writer_hello());
  ASSERT_EQ(writer->call({{"type", "commit"}, {"set", w["write"]["set"]}})["type"], "committed");

  auto reader = client();
  Fd fd;
  const json r = reader->call(hello("reader"), &fd);
  ASSERT_EQ(r.value("type", ""), "welcome") << r.dump();
  EXPECT_EQ(r["recover"]["set"], 1);
  EXPECT_EQ(r["recover"]["epoch"], 1);
  EXPECT_EQ(r["recover"]["regions"], w["write"]["regions"]);
  EXPECT_TRUE(r["write"].is_null());
  ASSERT_GE(fd.fd, 0);
  EXPECT_EQ(fcntl(fd.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  uint8_t* store = map(fd.fd, PROT_READ);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(std::memcmp(store, kMagic, sizeof kMagic), 0);
  errno = 0;
  EXPECT_EQ(map(fd.fd, PROT_READ | PROT_WRITE), nullptr);
  EXPECT_EQ(errno, EACCES);
}

TEST_F(ServerTest, AMonitorGetsNoDescriptor) {
  start_server();
  auto c = client();
  Fd fd;
  const json m = c->call(hello("monitor"), &fd);
  ASSERT_EQ(m.value("type", ""), "welcome") << m.dump();
  EXPECT_EQ(fd.fd, -1);
  EXPECT_TRUE(m["recover"].is_null());
  EXPECT_TRUE(m["write"].is_null());
  EXPECT_EQ(m["epoch"], 0);
}

TEST_F(ServerTest, OneWriterPerApplication) {
  start_server();
  auto first = client();
  ASSERT_EQ(first->call(writer_hello()).value("type", ""), "welcome");
  auto second = client();
  EXPECT_ERROR(second->call(writer_hello()), "application holdfast already has a writer connected");
  // Another application has its own writer.
  auto other = client();
  EXPECT_EQ(other->call(writer_hello(layout(), "standby")).value("type", ""), "welcome");
  // The refused client may try again once the first one is gone.
  first.reset();
  json w;
  EXPECT_TRUE(eventually([&] {
    w = second->call(writer_hello());
    return w.value("type", "") == "welcome";
  })) << w.dump();
}

TEST_F(ServerTest, CommitMakesTheSetTheOneTheNextWriterRecovers) {
  start_server();
  json first_regions;
  {
    auto c = client();
    Fd fd;
    const json w = c->call(writer_hello(), &fd);
    ASSERT_EQ(w.value("type", ""), "welcome") << w.dump();
    first_regions = w["write"]["regions"];
    uint8_t* store = map(fd.fd, PROT_READ | PROT_WRITE);
    ASSERT_NE(store, nullptr);
    write_slot(store, first_regions[0], 7, (uint64_t{1} << 40) | 7);
    const json done = c->call({{"type", "commit"}, {"set", 1}});
    EXPECT_EQ(done, json({{"type", "committed"}, {"set", 1}}));
  }
  auto c = client();
  json w;
  Fd fd;
  ASSERT_TRUE(eventually([&] {
    w = c->call(writer_hello(), &fd);
    return w.value("type", "") == "welcome";
  })) << w.dump();
  EXPECT_EQ(w["epoch"], 2);
  EXPECT_EQ(w["recover"]["set"], 1);
  EXPECT_EQ(w["recover"]["epoch"], 1);
  EXPECT_EQ(w["recover"]["regions"], first_regions);
  EXPECT_EQ(w["write"]["set"], 2);
  // What the first writer wrote is there to recover.
  const uint8_t* store = map(fd.fd, PROT_READ | PROT_WRITE);
  ASSERT_NE(store, nullptr);
  SlotHeader h;
  std::memcpy(&h, store + first_regions[0]["offset"].get<uint64_t>() + 7 * 72, sizeof h);
  EXPECT_EQ(h.conn_id, (uint64_t{1} << 40) | 7);
  // No region of the new set overlaps the one being recovered.
  for (const json& n : w["write"]["regions"]) {
    for (const json& o : first_regions) {
      const uint64_t a = n["offset"], a_end = a + n["slot_size"].get<uint64_t>() * 1000;
      const uint64_t b = o["offset"], b_end = b + o["slot_size"].get<uint64_t>() * 1000;
      EXPECT_TRUE(a_end <= b || b_end <= a);
    }
  }
}

TEST_F(ServerTest, AnUncommittedSetIsNotRecovered) {
  start_server();
  {
    auto c = client();
    ASSERT_EQ(c->call(writer_hello()).value("type", ""), "welcome");
  }
  auto c = client();
  json w;
  ASSERT_TRUE(eventually([&] {
    w = c->call(writer_hello());
    return w.value("type", "") == "welcome";
  })) << w.dump();
  EXPECT_TRUE(w["recover"].is_null());
  EXPECT_EQ(w["write"]["set"], 2);
  const json stats = monitor()->call({{"type", "stats"}});
  ASSERT_EQ(stats["apps"].size(), 1u);
  EXPECT_EQ(stats["apps"][0]["staging"]["set"], 2);  // set 1 is gone
  EXPECT_TRUE(stats["apps"][0]["committed"].is_null());
}

TEST_F(ServerTest, CommitOnlyTheWritersOwnSetOnce) {
  start_server();
  auto m = monitor();
  EXPECT_ERROR(m->call({{"type", "commit"}, {"set", 1}}), "commit: only a writer commits");
  auto c = client();
  ASSERT_EQ(c->call(writer_hello()).value("type", ""), "welcome");
  EXPECT_ERROR(c->call({{"type", "commit"}}), "commit: \"set\" is missing");
  EXPECT_ERROR(c->call({{"type", "commit"}, {"set", "1"}}), "commit: \"set\" must be an integer");
  EXPECT_ERROR(c->call({{"type", "commit"}, {"set", 2}}),
               "commit: set 2 is not the set this writer was given (1)");
  EXPECT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  EXPECT_ERROR(c->call({{"type", "commit"}, {"set", 1}}), "commit: set 1 is already committed");
}

TEST_F(ServerTest, ResumeReattachesToTheCommittedSetWithoutANewEpoch) {
  start_server();
  json regions;
  {
    auto c = client();
    const json w = c->call(writer_hello());
    regions = w["write"]["regions"];
    ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  }
  auto c = client();
  auto resume = [](const json& what) {
    json h = hello("writer");
    h["resume"] = what;
    return h;
  };
  json w;
  Fd fd;
  ASSERT_TRUE(eventually([&] {
    w = c->call(resume({{"set", 1}, {"epoch", 1}}), &fd);
    return w.value("type", "") == "welcome";
  })) << w.dump();
  EXPECT_EQ(w["epoch"], 1);
  EXPECT_EQ(w["write"]["set"], 1);
  EXPECT_EQ(w["write"]["regions"], regions);
  EXPECT_EQ(w["recover"]["set"], 1);
  ASSERT_GE(fd.fd, 0);
  EXPECT_EQ(fcntl(fd.fd, F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_ERROR(c->call({{"type", "commit"}, {"set", 1}}), "already committed");
  const json stats = monitor()->call({{"type", "stats"}});
  EXPECT_EQ(stats["store"]["epoch"], 1);  // no epoch handed out
  c.reset();

  auto other = client();
  EXPECT_TRUE(eventually([&] {
    return is_error(other->call(resume({{"set", 2}, {"epoch", 1}})),
                    "hello: resume: set 2 epoch 1 is not the committed set of holdfast (that is "
                    "set 1 epoch 1)");
  }));
  EXPECT_ERROR(other->call(resume({{"set", 1}, {"epoch", 2}})), "is not the committed set");
  EXPECT_ERROR(other->call(resume({{"set", 1}})), "hello: resume: \"epoch\" is missing");
  EXPECT_ERROR(other->call(resume(json::array())), "hello: \"resume\" must be an object");
  json both = resume({{"set", 1}, {"epoch", 1}});
  both["layout"] = layout();
  EXPECT_ERROR(other->call(both), "not both");
  EXPECT_ERROR(other->call(hello("writer")), "a writer must send \"layout\" or \"resume\"");
  EXPECT_ERROR(other->call(hello("writer", "nothing-here")), "a writer must send");
  json none = resume({{"set", 1}, {"epoch", 1}});
  none["app"] = "nothing-here";
  EXPECT_ERROR(other->call(none), "is not the committed set of nothing-here (that is none)");
}

// ---------------------------------------------------------------------------
// query, stats, report, clear

TEST_F(ServerTest, QueryCountsTheStableBaseSlots) {
  start_server();
  auto c = client();
  Fd fd;
  const json w = c->call(writer_hello(layout(2, 1000)), &fd);
  uint8_t* store = map(fd.fd, PROT_READ | PROT_WRITE);
  ASSERT_NE(store, nullptr);
  const json& r = w["write"]["regions"];
  for (uint32_t i : {0u, 10u, 999u}) write_slot(store, r[0], i, 100 + i);   // worker 0 base
  for (uint32_t i : {3u, 4u}) write_slot(store, r[2], i, 200 + i);          // worker 1 base
  write_slot(store, r[2], 5, 300, 7);                                       // being written
  for (uint32_t i : {0u, 1u, 2u, 3u}) write_slot(store, r[1], i, 100 + i);  // tcp slices
  ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");

  const json q = c->call({{"type", "query"}});
  EXPECT_EQ(q, json({{"type", "query"},
                     {"app", "holdfast"},
                     {"data", true},
                     {"set", 1},
                     {"epoch", 1},
                     {"workers", 2},
                     {"connections", 5},
                     {"bytes", 2 * 1000 * (72 + 56)}}));
  auto m = monitor();
  EXPECT_EQ(m->call({{"type", "query"}})["connections"], 5);  // the monitor's app
  EXPECT_EQ(m->call({{"type", "query"}, {"app", "other"}}),
            json({{"type", "query"}, {"app", "other"}, {"data", false}}));
  EXPECT_ERROR(m->call({{"type", "query"}, {"app", "no/such"}}), "query: \"app\" must be");
  EXPECT_ERROR(m->call({{"type", "query"}, {"app", 3}}), "query: \"app\" must be a string");
}

TEST_F(ServerTest, StatsDescribeTheStoreTheApplicationsAndTheClients) {
  start_server();
  auto c = client();
  Fd fd;
  const json w = c->call(writer_hello(layout(1, 100)), &fd);
  uint8_t* store = map(fd.fd, PROT_READ | PROT_WRITE);
  ASSERT_NE(store, nullptr);
  write_slot(store, w["write"]["regions"][0], 1, 11);
  write_slot(store, w["write"]["regions"][1], 1, 11);
  auto m = monitor();
  const json s = m->call({{"type", "stats"}});
  ASSERT_EQ(s.value("type", ""), "stats") << s.dump();
  EXPECT_EQ(s["store"]["path"], options_.store_path);
  EXPECT_EQ(s["store"]["bytes"], 64 * kMiB);
  EXPECT_GT(s["store"]["used_bytes"].get<uint64_t>(), kDataOffset);
  EXPECT_EQ(s["store"]["epoch"], 1);
  EXPECT_GT(s["store"]["generation"].get<uint64_t>(), 0u);
  ASSERT_EQ(s["apps"].size(), 1u);
  const json& app = s["apps"][0];
  EXPECT_EQ(app["app"], "holdfast");
  EXPECT_TRUE(app["committed"].is_null());
  EXPECT_EQ(app["staging"]["set"], 1);
  EXPECT_EQ(app["staging"]["connections"], 1);
  EXPECT_EQ(app["staging"]["bytes"], 100 * (72 + 56));
  EXPECT_EQ(app["staging"]["regions"],
            json::parse(R"([{"worker": 0, "module": 0, "slots": 100, "used": 1},
                            {"worker": 0, "module": 1, "slots": 100, "used": 1}])"));
  EXPECT_EQ(app["writer"], 1);
  EXPECT_TRUE(app["report"].is_null());
  ASSERT_EQ(s["clients"].size(), 2u);
  EXPECT_EQ(s["clients"][0]["role"], "writer");
  EXPECT_EQ(s["clients"][0]["app"], "holdfast");
  EXPECT_EQ(s["clients"][0]["pid"], getpid());
  EXPECT_EQ(s["clients"][0]["uid"], getuid());
  EXPECT_EQ(s["clients"][1]["role"], "monitor");
}

TEST_F(ServerTest, AWritersRecoveryReportIsKeptAndShown) {
  start_server();
  auto c = client();
  ASSERT_EQ(c->call(writer_hello()).value("type", ""), "welcome");
  const json report = {{"recovered", 12}, {"discarded", {{"torn", 1}}}, {"ms", 3.5}};
  EXPECT_EQ(c->call({{"type", "report"}, {"report", report}}), json({{"type", "ok"}}));
  auto m = monitor();
  EXPECT_EQ(m->call({{"type", "stats"}})["apps"][0]["report"], report);

  EXPECT_ERROR(m->call({{"type", "report"}, {"report", report}}), "only a writer reports");
  EXPECT_ERROR(c->call({{"type", "report"}}), "\"report\" must be an object");
  EXPECT_ERROR(c->call({{"type", "report"}, {"report", "text"}}), "must be an object");
  EXPECT_ERROR(c->call({{"type", "report"}, {"report", {{"pad", std::string(5000, 'x')}}}}),
               "a report is at most 4096 bytes");
  json deep = json::object();
  for (int i = 0; i < 20; ++i) deep = json{{"d", deep}};
  EXPECT_ERROR(c->call({{"type", "report"}, {"report", deep}}), "levels deep");
  EXPECT_EQ(m->call({{"type", "stats"}})["apps"][0]["report"], report);  // the good one stays
}

TEST_F(ServerTest, AWriterTakesFurtherEpochsForWhenItsCountersRunOut) {
  start_server();
  auto c = client();
  const json welcome = c->call(writer_hello());
  ASSERT_EQ(welcome.value("type", ""), "welcome");
  const uint32_t first = welcome["epoch"].get<uint32_t>();
  const json next = c->call({{"type", "epoch"}});
  ASSERT_EQ(next.value("type", ""), "epoch") << next.dump();
  EXPECT_GT(next["epoch"].get<uint32_t>(), first);
  // Persisted: the next writer's epoch is newer still, so none repeats.
  c.reset();
  auto again = client();
  json w;
  EXPECT_TRUE(eventually([&] {
    w = again->call(writer_hello());
    return w.value("type", "") == "welcome";
  })) << w.dump();
  EXPECT_GT(w["epoch"].get<uint32_t>(), next["epoch"].get<uint32_t>());
  EXPECT_ERROR(monitor()->call({{"type", "epoch"}}), "only a writer takes epochs");
}

TEST_F(ServerTest, ClearIsRefusedWhileAWriterIsConnected) {
  start_server();
  auto c = client();
  ASSERT_EQ(c->call(writer_hello()).value("type", ""), "welcome");
  ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  EXPECT_ERROR(c->call({{"type", "clear"}}), "clear: only a monitor (holdfastctl) clears");
  auto m = monitor();
  EXPECT_ERROR(m->call({{"type", "clear"}}),
               "clear: application holdfast has a writer connected (client 1, pid " +
                   std::to_string(getpid()) + "); stop it first");
  EXPECT_EQ(m->call({{"type", "query"}})["data"], true);
  EXPECT_ERROR(m->call({{"type", "clear"}, {"app", ""}}), "clear: \"app\" must be");
  c.reset();
  json cleared;
  EXPECT_TRUE(eventually([&] {
    cleared = m->call({{"type", "clear"}});
    return cleared.value("type", "") == "cleared";
  })) << cleared.dump();
  EXPECT_EQ(cleared, json({{"type", "cleared"}, {"app", "holdfast"}}));
  EXPECT_EQ(m->call({{"type", "query"}})["data"], false);
  // A new writer starts from nothing.
  auto again = client();
  const json w = again->call(writer_hello());
  EXPECT_TRUE(w["recover"].is_null());
}

// ---------------------------------------------------------------------------
// Authentication

TEST_F(ServerTest, TheSameUidNeedsNoToken) {
  start_server();
  auto c = client();
  EXPECT_EQ(c->call(hello("monitor")).value("type", ""), "welcome");
}

TEST_F(ServerTest, AWrongTokenIsRefusedLoggedAndDisconnected) {
  options_.token = "s3cret-token";
  start_server();
  LogCapture log(dir_.file("log"));
  {
    auto c = client();
    json h = hello("writer");
    h["token"] = "s3cret-tokeN";
    h["layout"] = layout();
    EXPECT_EQ(c->call(h),
              json({{"type", "error"}, {"error", "authentication failed: wrong token"}}));
    EXPECT_TRUE(c->closed_by_server());
  }
  {
    auto c = client();
    EXPECT_ERROR(c->call(hello("monitor")), "authentication failed: no token given");
    EXPECT_TRUE(c->closed_by_server());
  }
  {
    auto c = client();
    json h = hello("monitor");
    h["token"] = 42;
    EXPECT_ERROR(c->call(h), "authentication failed: no token given");
  }
  {
    auto c = client();
    json h = hello("monitor");
    h["token"] = "s3cret-token";
    EXPECT_EQ(c->call(h).value("type", ""), "welcome");
  }
  const std::string who =
      "(pid " + std::to_string(getpid()) + ", uid " + std::to_string(getuid()) + ")";
  EXPECT_TRUE(eventually([&] {
    return log.text().find(who + " refused: authentication failed: wrong token") !=
           std::string::npos;
  })) << log.text();
  EXPECT_NE(log.text().find(who + " refused: authentication failed: no token given"),
            std::string::npos);
  EXPECT_EQ(log.text().find("s3cret"), std::string::npos);  // never logged
}

// Runs one request as another uid in a child process: raw syscalls only
// after fork, since the server's thread is running. Returns the reply's
// bytes, or "" when there was none.
std::string request_as_uid(uid_t uid, const std::string& socket_path, const json& request) {
  const std::string bytes = frame(request.dump());
  const sockaddr_un a = address(socket_path);
  int out[2];
  if (pipe(out) != 0) return "";
  const pid_t pid = fork();
  if (pid == 0) {
    close(out[0]);
    if (setgid(uid) != 0 || setuid(uid) != 0) _exit(2);
    const int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) _exit(3);
    if (write(s, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(4);
    // One frame: its length, then that many bytes.
    static char reply[4 + 65536];
    size_t got = 0;
    size_t want = 4;
    while (got < want) {
      const ssize_t n = read(s, reply + got, want - got);
      if (n <= 0) _exit(5);
      got += static_cast<size_t>(n);
      if (got == 4) {
        const auto* b = reinterpret_cast<const unsigned char*>(reply);
        want = 4 + (size_t{b[0]} << 24 | size_t{b[1]} << 16 | size_t{b[2]} << 8 | b[3]);
        if (want > sizeof reply) _exit(6);
      }
    }
    if (write(out[1], reply, got) != static_cast<ssize_t>(got)) _exit(7);
    _exit(0);
  }
  close(out[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  return got.size() > 4 ? got.substr(4) : "";
}

TEST_F(ServerTest, AnotherUidNeedsTheToken) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to act as another uid";
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  start_server();
  ASSERT_EQ(chmod(options_.socket_path.c_str(), 0666), 0);
  const std::string refused = request_as_uid(kNobody, options_.socket_path, hello("monitor"));
  EXPECT_EQ(json::parse(refused, nullptr, false),
            json({{"type", "error"},
                  {"error",
                   "authentication failed: uid 65534 is not the server's uid 0 (start "
                   "holdfast-ckptd with --token-file to admit others)"}}))
      << refused;
  stop_server();

  options_.token = "t0ken";
  start_server();
  ASSERT_EQ(chmod(options_.socket_path.c_str(), 0666), 0);
  json h = hello("monitor");
  h["token"] = "t0ken";
  const std::string accepted = request_as_uid(kNobody, options_.socket_path, h);
  ASSERT_FALSE(accepted.empty());
  EXPECT_EQ(json::parse(accepted, nullptr, false).value("type", ""), "welcome") << accepted;
}

// ---------------------------------------------------------------------------
// Malformed input

TEST_F(ServerTest, EveryBadMessageGetsAnErrorAndTheConnectionStays) {
  start_server();
  auto bystander = monitor();
  auto c = client();
  const std::vector<std::pair<std::string, std::string>> raw = {
      {"not json", "the message is not valid JSON"},
      {"{\"type\": \"hello\"", "the message is not valid JSON"},
      {"[1, 2, 3]", "the message must be a JSON object"},
      {"\"hello\"", "the message must be a JSON object"},
      {"{}", "bad message: \"type\" is missing"},
      {"{\"type\": 5}", "bad message: \"type\" must be a string"},
      {"{\"type\": \"stats\"}", "the first message must be hello (got \"stats\")"},
      {"{\"type\": \"query\"}", "the first message must be hello"},
      {"{\"type\": \"bogus\"}", "the first message must be hello (got \"bogus\")"},
      {std::string("\xff\xfe\x00\x01", 4), "the message is not valid JSON"},
  };
  for (const auto& [body, error] : raw) {
    c->send_raw(frame(body));
    EXPECT_ERROR(c->receive(), error);
  }
  auto with = [](json h, const std::string& key, const json& value) {
    h[key] = value;
    return h;
  };
  auto bad_layout = [&](const std::string& key, const json& value) {
    return with(hello("writer"), "layout", with(layout(), key, value));
  };
  auto bad_module = [&](const std::string& key, const json& value) {
    json l = layout();
    l["modules"][1][key] = value;
    return with(hello("writer"), "layout", l);
  };
  json no_app = hello("writer");
  no_app.erase("app");
  json no_role = hello("monitor");
  no_role.erase("role");
  json no_base = layout();
  no_base["modules"].erase(0);
  json twice = layout();
  twice["modules"].push_back(module_shape(1, 24));
  json six = layout(64);
  for (int m = 2; m < 6; ++m) six["modules"].push_back(module_shape(m, 24));
  json no_workers = layout();
  no_workers.erase("workers");
  const std::vector<std::pair<json, std::string>> bad = {
      {no_app, "hello: \"app\" is missing"},
      {with(hello("writer"), "app", 7), "hello: \"app\" must be a string"},
      {with(hello("writer"), "app", "has space"), "hello: \"app\" must be 1 to 31 letters"},
      {with(hello("writer"), "app", std::string(32, 'a')), "hello: \"app\" must be 1 to 31"},
      {no_role, "hello: \"role\" is missing"},
      {with(hello("monitor"), "role", "admin"),
       "hello: \"role\" must be writer, reader or monitor"},
      {with(hello("monitor"), "role", json::array()), "hello: \"role\" must be a string"},
      {with(hello("reader"), "layout", layout()), "only a writer sends \"layout\" or \"resume\""},
      {with(hello("writer"), "layout", json::array()),
       "hello: layout: \"layout\" must be an object"},
      {with(hello("writer"), "layout", no_workers), "hello: layout: \"workers\" is missing"},
      {bad_layout("workers", "2"), "\"workers\" must be an integer from 1 to 64"},
      {bad_layout("workers", 0), "\"workers\" must be an integer from 1 to 64"},
      {bad_layout("workers", 65), "\"workers\" must be an integer from 1 to 64"},
      {bad_layout("workers", -1), "\"workers\" must be an integer from 1 to 64"},
      {bad_layout("workers", 1.5), "\"workers\" must be an integer from 1 to 64"},
      {bad_layout("slots", 0), "\"slots\" must be an integer from 1 to 4294967295"},
      {bad_layout("slots", 4294967296), "\"slots\" must be an integer from 1 to 4294967295"},
      {bad_layout("min_slots", 1001), "\"min_slots\" must be an integer from 1 to 1000"},
      {bad_layout("min_slots", 0), "\"min_slots\" must be an integer from 1 to 1000"},
      {bad_layout("modules", json::array()), "\"modules\" must be a non-empty array"},
      {bad_layout("modules", json::object()), "\"modules\" must be a non-empty array"},
      {bad_layout("modules", json::array({1})), "modules[0]: must be an object"},
      {bad_module("module", 256), "modules[1]: \"module\" must be an integer from 0 to 255"},
      // The slot header keeps the schema version in one byte.
      {bad_module("schema", 0), "modules[1]: \"schema\" must be an integer from 1 to 255"},
      {bad_module("schema", 256), "modules[1]: \"schema\" must be an integer from 1 to 255"},
      {bad_module("slots", 0), "modules[1]: \"slots\" must be an integer from 1 to 4294967295"},
      {bad_module("slot_size", 8), "modules[1]: \"slot_size\" must be an integer from 16 to 4096"},
      {bad_module("slot_size", 4104), "\"slot_size\" must be an integer from 16 to 4096"},
      {bad_module("slot_size", 60), "modules[1]: \"slot_size\" must be a multiple of 8"},
      {bad_module("slot_size", nullptr), "modules[1]: \"slot_size\" must be an integer"},
      {with(hello("writer"), "layout", no_base), "\"modules\" must include the base layer"},
      {with(hello("writer"), "layout", twice), "modules[2]: module 1 is listed twice"},
      {with(hello("writer"), "layout", six),
       "the layout has 384 regions (64 workers x 6 modules), at most 320"},
  };
  for (const auto& [msg, error] : bad) EXPECT_ERROR(c->call(msg), error);

  // After all that, the same connection says hello and works.
  const json w = c->call(writer_hello());
  ASSERT_EQ(w.value("type", ""), "welcome") << w.dump();
  EXPECT_EQ(w["epoch"], 1);  // no bad hello took an epoch
  EXPECT_EQ(w["write"]["set"], 1);
  EXPECT_ERROR(c->call(writer_hello()), "hello: already accepted on this connection");
  EXPECT_ERROR(c->call({{"type", "bogus"}}), "unknown message type \"bogus\"");
  EXPECT_ERROR(c->call({{"type", "x\n\x01y"}}), "unknown message type \"x??y\"");
  EXPECT_EQ(bystander->call({{"type", "stats"}})["clients"].size(), 2u);
}

TEST_F(ServerTest, BadFramesGetAnErrorAndTheConnectionCloses) {
  start_server();
  auto bystander = monitor();
  const std::vector<std::string> bad = {
      std::string("\0\0\0\0", 4),           // zero length
      std::string("\0\1\0\1", 4),           // 65537
      std::string("\xff\xff\xff\xff", 4),   // huge
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",  // garbage
  };
  for (const std::string& bytes : bad) {
    auto c = client();
    c->send_raw(bytes);
    EXPECT_ERROR(c->receive(), "bad frame: a message is 1 to 65536 bytes; closing the connection");
    EXPECT_TRUE(c->closed_by_server());
  }
  {
    // After hello too.
    auto c = client();
    ASSERT_EQ(c->call(hello("monitor")).value("type", ""), "welcome");
    c->send_raw(std::string("\0\0\0\0", 4));
    EXPECT_ERROR(c->receive(), "bad frame");
    EXPECT_TRUE(c->closed_by_server());
  }
  {
    // The peer stops sending mid-frame but still reads.
    auto c = client();
    c->send_raw(frame(hello("monitor").dump()).substr(0, 10));
    c->shutdown_write();
    EXPECT_ERROR(c->receive(), "connection closed mid-frame");
    EXPECT_TRUE(c->closed_by_server());
  }
  for (size_t cut : {2u, 4u, 30u}) {
    // The peer goes away mid-frame.
    auto c = client();
    c->send_raw(frame(writer_hello().dump()).substr(0, cut));
    c->disconnect();
  }
  // The largest frame is still a frame.
  {
    auto c = client();
    json big = hello("monitor");
    const size_t overhead = json(big).dump().size() + std::string(",\"pad\":\"\"").size();
    big["pad"] = std::string(kMaxMessage - overhead, 'p');
    ASSERT_EQ(big.dump().size(), kMaxMessage);
    EXPECT_EQ(c->call(big).value("type", ""), "welcome");
  }
  const json s = bystander->call({{"type", "stats"}});
  EXPECT_EQ(s.value("type", ""), "stats") << s.dump();
  EXPECT_TRUE(eventually([&] {
    return bystander->call({{"type", "stats"}})["clients"].size() == 1;
  }));
}

TEST_F(ServerTest, DeeplyNestedJsonIsHarmless) {
  start_server();
  auto c = client();
  const std::string deep = std::string(32000, '[') + std::string(32000, ']');
  c->send_raw(frame(deep));
  EXPECT_ERROR(c->receive(), "the message must be a JSON object");
  const std::string deep_object =
      "{\"type\":\"hello\",\"x\":" + std::string(30000, '[') + std::string(30000, ']') + "}";
  c->send_raw(frame(deep_object));
  EXPECT_ERROR(c->receive(), "hello: \"app\" is missing");
  EXPECT_EQ(c->call(hello("monitor")).value("type", ""), "welcome");
}

TEST_F(ServerTest, AClientThatNeverSaysHelloIsDropped) {
  options_.hello_timeout = std::chrono::milliseconds(200);
  start_server();
  auto c = client();
  EXPECT_ERROR(c->receive(), "no hello within 200 ms; closing the connection");
  EXPECT_TRUE(c->closed_by_server());
  // A client that did say hello stays.
  auto m = monitor();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(m->call({{"type", "stats"}}).value("type", ""), "stats");
}

TEST_F(ServerTest, ClientsBeyondTheLimitAreTurnedAway) {
  options_.max_clients = 2;
  start_server();
  auto a = monitor();
  auto b = monitor();
  auto c = client();
  EXPECT_ERROR(c->receive(), "too many clients");
  EXPECT_TRUE(c->closed_by_server());
  b.reset();
  EXPECT_TRUE(eventually([&] {
    auto d = client();
    return d->call(hello("monitor")).value("type", "") == "welcome";
  }));
}

TEST_F(ServerTest, AClientThatDoesNotReadItsRepliesIsDroppedAndBlocksNobody) {
  start_server();
  auto m = monitor();
  auto slow = client();
  ASSERT_EQ(slow->call(hello("monitor")).value("type", ""), "welcome");
  // Replies it never reads: far more than the socket buffer and the queue.
  const std::string request = frame(json({{"type", "stats"}}).dump());
  std::string many;
  for (int i = 0; i < 500; ++i) many += request;
  const int flags = fcntl(slow->sock(), F_GETFL);
  fcntl(slow->sock(), F_SETFL, flags | O_NONBLOCK);
  bool dropped = false;
  for (int round = 0; round < 200 && !dropped; ++round) {
    for (size_t sent = 0; sent < many.size();) {
      const ssize_t n = send(slow->sock(), many.data() + sent, many.size() - sent, MSG_NOSIGNAL);
      if (n < 0) {
        dropped = errno == EPIPE || errno == ECONNRESET;
        break;
      }
      sent += static_cast<size_t>(n);
    }
    // Meanwhile the others are served.
    ASSERT_EQ(m->call({{"type", "stats"}}).value("type", ""), "stats");
  }
  EXPECT_TRUE(dropped);
}

// ---------------------------------------------------------------------------
// Sizes

TEST_F(ServerTest, ASmallStoreGivesFewerSlotsOrSaysItIsFull) {
  options_.store_bytes = 2 * kMiB;
  start_server();
  auto c = client();
  const json w = c->call(writer_hello(layout(2, 100000, 1000)));
  ASSERT_EQ(w.value("type", ""), "welcome") << w.dump();
  const uint32_t slots = w["write"]["regions"][0]["slot_count"];
  EXPECT_LT(slots, 100000u);
  EXPECT_GE(slots, 1000u);
  ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  c.reset();
  auto d = client();
  json refused;
  EXPECT_TRUE(eventually([&] {
    refused = d->call(writer_hello(layout(2, 100000, 50000)));
    return is_error(refused, "hello: store full: 2 MiB cannot hold 50000 connections");
  })) << refused.dump();
}

TEST_F(ServerTest, TheLargestLayoutRestartsWithinOneMessage) {
  json l = layout(64, 100, 100);
  for (int m = 2; m <= 4; ++m) l["modules"].push_back(module_shape(m, 24));
  start_server();
  {
    auto c = client();
    const json w = c->call(writer_hello(l));
    ASSERT_EQ(w.value("type", ""), "welcome") << w.dump().substr(0, 200);
    EXPECT_EQ(w["write"]["regions"].size(), 320u);
    ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  }
  auto c = client();
  json w;
  ASSERT_TRUE(eventually([&] {
    w = c->call(writer_hello(l));
    return w.value("type", "") == "welcome";
  })) << w.dump().substr(0, 200);
  EXPECT_EQ(w["recover"]["regions"].size(), 320u);
  EXPECT_EQ(w["write"]["regions"].size(), 320u);
  EXPECT_LE(w.dump().size(), kMaxMessage);
  EXPECT_EQ(monitor()->call({{"type", "stats"}}).value("type", ""), "stats");
}

// ---------------------------------------------------------------------------
// Starting and stopping

TEST_F(ServerTest, StopClosesClientsRemovesTheSocketAndKeepsTheStore) {
  start_server();
  auto c = client();
  ASSERT_EQ(c->call(writer_hello()).value("type", ""), "welcome");
  ASSERT_EQ(c->call({{"type", "commit"}, {"set", 1}})["type"], "committed");
  stop_server();
  EXPECT_TRUE(c->closed_by_server());
  struct stat st;
  EXPECT_NE(lstat(options_.socket_path.c_str(), &st), 0);
  EXPECT_EQ(stat(options_.store_path.c_str(), &st), 0);

  LogCapture log(dir_.file("log"));
  start_server();
  EXPECT_NE(log.text().find("store " + options_.store_path + " validated"), std::string::npos)
      << log.text();
  auto d = client();
  const json w = d->call(writer_hello());
  EXPECT_EQ(w["epoch"], 2);  // epochs carry on
  EXPECT_EQ(w["recover"]["set"], 1);
}

TEST_F(ServerTest, ASecondServerIsRefusedOnTheSameStoreOrSocket) {
  start_server();
  std::string error;
  ServerOptions same_store = options_;
  same_store.socket_path = dir_.file("other.sock");
  EXPECT_EQ(Server::create(same_store, &error), nullptr);
  EXPECT_EQ(error, options_.store_path + " is in use by another holdfast-ckptd");
  struct stat st;
  EXPECT_NE(lstat(same_store.socket_path.c_str(), &st), 0);

  ServerOptions same_socket = options_;
  same_socket.store_path = dir_.file("other.store");
  EXPECT_EQ(Server::create(same_socket, &error), nullptr);
  EXPECT_EQ(error, "another holdfast-ckptd is listening on " + options_.socket_path);
  // The first server is untouched.
  EXPECT_EQ(client()->call(hello("monitor")).value("type", ""), "welcome");
}

TEST_F(ServerTest, AStaleSocketIsReplacedAnythingElseIsNot) {
  {
    // What a killed server leaves: a socket file nobody listens on.
    const int s = socket(AF_UNIX, SOCK_STREAM, 0);
    const sockaddr_un a = address(options_.socket_path);
    ASSERT_EQ(bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
    close(s);
  }
  {
    LogCapture log(dir_.file("log"));
    start_server();
    EXPECT_NE(log.text().find("replaced the stale socket " + options_.socket_path),
              std::string::npos);
  }
  struct stat st;
  ASSERT_EQ(stat(options_.socket_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(client()->call(hello("monitor")).value("type", ""), "welcome");
  stop_server();

  std::ofstream(options_.socket_path) << "not a socket";
  std::string error;
  EXPECT_EQ(Server::create(options_, &error), nullptr);
  EXPECT_EQ(error, options_.socket_path + " exists and is not a socket; refusing to replace it");

  ServerOptions long_path = options_;
  long_path.socket_path = dir_.path() + "/" + std::string(120, 's');
  EXPECT_EQ(Server::create(long_path, &error), nullptr);
  EXPECT_NE(error.find("the socket path must be 1 to 107 bytes long"), std::string::npos);
}

TEST_F(ServerTest, AForeignStoreIsRefused) {
  std::ofstream(options_.store_path) << std::string(1 << 20, 'x');
  std::string error;
  EXPECT_EQ(Server::create(options_, &error), nullptr);
  EXPECT_EQ(error, options_.store_path +
                       " is not a holdfast checkpoint store (bad magic); refusing to touch it");
  struct stat st;
  EXPECT_NE(lstat(options_.socket_path.c_str(), &st), 0);  // no socket either
}

}  // namespace
}  // namespace holdfast::ckpt
