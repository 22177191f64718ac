// The control protocol's framing (checkpoint/protocol.h, docs/checkpoint.md
// "The control protocol"): frames over a socketpair, descriptors passed with
// SCM_RIGHTS, the length limits both ways, the incremental decoder the
// server uses, and the region description.
#include "checkpoint/protocol.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "tests/unit/checkpoint/temp_dir.h"

namespace holdfast::ckpt {
namespace {

using nlohmann::json;
using testing_support::TempDir;

std::string frame(const std::string& body) {
  const auto n = static_cast<uint32_t>(body.size());
  std::string out;
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  return out + body;
}

std::string raw_length(uint32_t n) {
  std::string out(4, '\0');
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out;
}

// A JSON object whose serialisation is exactly `bytes` long.
json object_of_size(size_t bytes) {
  const size_t overhead = json{{"type", "pad"}, {"pad", ""}}.dump().size();
  return json{{"type", "pad"}, {"pad", std::string(bytes - overhead, 'p')}};
}

class ProtocolTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  void TearDown() override {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  void write_raw(const std::string& bytes) {
    ASSERT_EQ(write(fds_[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  // Receives on fds_[1]; the message must not come.
  std::string receive_error(int timeout_ms = 2000) {
    json msg;
    int fd = -1;
    std::string error;
    EXPECT_FALSE(receive_message(fds_[1], &msg, &fd, timeout_ms, &error));
    EXPECT_EQ(fd, -1);
    return error;
  }

  int fds_[2] = {-1, -1};
};

TEST_F(ProtocolTest, AMessageArrivesWhole) {
  const json sent = {{"type", "hello"}, {"app", "holdfast"}, {"n", 3}};
  std::string error;
  ASSERT_TRUE(send_message(fds_[0], sent, -1, &error)) << error;
  json got;
  int fd = 7;
  ASSERT_TRUE(receive_message(fds_[1], &got, &fd, 2000, &error)) << error;
  EXPECT_EQ(got, sent);
  EXPECT_EQ(fd, -1);
}

TEST_F(ProtocolTest, TheFrameIsABigEndianLengthThenTheJson) {
  const json sent = {{"type", "stats"}};
  std::string error;
  ASSERT_TRUE(send_message(fds_[0], sent, -1, &error)) << error;
  char buf[64];
  const ssize_t n = read(fds_[1], buf, sizeof buf);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))),
            frame(R"({"type":"stats"})"));
}

TEST_F(ProtocolTest, ADescriptorRidesAlongAndStaysCloseOnExec) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.file("passed");
  const int file = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(write(file, "abc", 3), 3);
  std::string error;
  ASSERT_TRUE(send_message(fds_[0], {{"type", "first"}}, -1, &error)) << error;
  ASSERT_TRUE(send_message(fds_[0], {{"type", "welcome"}}, file, &error)) << error;

  json got;
  int fd = -1;
  ASSERT_TRUE(receive_message(fds_[1], &got, &fd, 2000, &error)) << error;
  EXPECT_EQ(got["type"], "first");
  EXPECT_EQ(fd, -1);
  ASSERT_TRUE(receive_message(fds_[1], &got, &fd, 2000, &error)) << error;
  EXPECT_EQ(got["type"], "welcome");
  ASSERT_GE(fd, 0);
  EXPECT_NE(fd, file);
  struct stat a;
  struct stat b;
  ASSERT_EQ(fstat(file, &a), 0);
  ASSERT_EQ(fstat(fd, &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_dev, b.st_dev);
  char buf[3];
  EXPECT_EQ(pread(fd, buf, 3, 0), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  close(fd);
  close(file);
}

TEST_F(ProtocolTest, TheLargestMessageFitsAndOneByteMoreIsNotSent) {
  const json largest = object_of_size(kMaxMessage);
  ASSERT_EQ(largest.dump().size(), kMaxMessage);
  std::string send_error;
  bool sent = false;
  std::thread sender([&] { sent = send_message(fds_[0], largest, -1, &send_error); });
  json got;
  int fd = -1;
  std::string error;
  const bool received = receive_message(fds_[1], &got, &fd, 5000, &error);
  sender.join();
  ASSERT_TRUE(sent) << send_error;
  ASSERT_TRUE(received) << error;
  EXPECT_EQ(got, largest);

  EXPECT_FALSE(send_message(fds_[0], object_of_size(kMaxMessage + 1), -1, &error));
  EXPECT_EQ(error, "message of 65537 bytes exceeds the protocol limit");
  EXPECT_EQ(receive_error(50), "timed out waiting for holdfast-ckptd");  // nothing was written
}

TEST_F(ProtocolTest, ReceiveRefusesZeroAndOversizedLengths) {
  write_raw(raw_length(0));
  EXPECT_EQ(receive_error(), "bad frame length 0");
  write_raw(raw_length(kMaxMessage + 1));
  EXPECT_EQ(receive_error(), "bad frame length 65537");
  write_raw("\xff\xff\xff\xff");
  EXPECT_EQ(receive_error(), "bad frame length 4294967295");
}

TEST_F(ProtocolTest, ReceiveRefusesWhatIsNotAJsonObject) {
  for (const char* body : {"not json", "[1,2,3]", "\"text\"", "42", "{\"a\":", "\x01\x02\x03"}) {
    write_raw(frame(body));
    EXPECT_EQ(receive_error(), "message is not a JSON object") << body;
  }
  // The stream is still in step after each of them.
  write_raw(frame(R"({"type":"ok"})"));
  json got;
  int fd = -1;
  std::string error;
  ASSERT_TRUE(receive_message(fds_[1], &got, &fd, 2000, &error)) << error;
  EXPECT_EQ(got["type"], "ok");
}

TEST_F(ProtocolTest, ADescriptorWithABadMessageIsClosedNotReturned) {
  // A descriptor, then a body that is not an object: the caller gets no
  // descriptor to leak.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const int probe = dup(pipe_fds[0]);
  ASSERT_GE(probe, 0);
  close(probe);  // the lowest free descriptor number
  const std::string body = "[1]";
  const std::string bytes = frame(body);
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pipe_fds[0], sizeof pipe_fds[0]);
  ASSERT_EQ(sendmsg(fds_[0], &m, 0), static_cast<ssize_t>(bytes.size()));
  EXPECT_EQ(receive_error(), "message is not a JSON object");
  const int next = dup(pipe_fds[0]);
  EXPECT_EQ(next, probe);  // the received descriptor was closed again
  close(next);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

TEST_F(ProtocolTest, ReceiveTimesOut) {
  EXPECT_EQ(receive_error(50), "timed out waiting for holdfast-ckptd");
}

TEST_F(ProtocolTest, ReceiveSeesThePeerClose) {
  close(fds_[0]);
  fds_[0] = -1;
  EXPECT_EQ(receive_error(), "holdfast-ckptd closed the connection");
}

TEST_F(ProtocolTest, ReceiveSeesThePeerCloseMidFrame) {
  write_raw(frame(R"({"type":"hello"})").substr(0, 9));
  close(fds_[0]);
  fds_[0] = -1;
  EXPECT_EQ(receive_error(), "holdfast-ckptd closed the connection");
}

TEST_F(ProtocolTest, SendingToAClosedPeerFailsWithoutASignal) {
  close(fds_[1]);
  fds_[1] = -1;
  std::string error;
  EXPECT_FALSE(send_message(fds_[0], {{"type", "x"}}, -1, &error));
  EXPECT_EQ(error, "send: Broken pipe");
}

// ---------------------------------------------------------------------------
// FrameDecoder

TEST(FrameDecoder, AssemblesAFrameFedOneByteAtATime) {
  FrameDecoder d;
  const std::string bytes = frame(R"({"type":"query"})");
  std::string payload;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    d.feed(reinterpret_cast<const uint8_t*>(&bytes[i]), 1);
    ASSERT_EQ(d.next(&payload), FrameDecoder::Status::need_more) << i;
  }
  d.feed(reinterpret_cast<const uint8_t*>(&bytes.back()), 1);
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, R"({"type":"query"})");
  EXPECT_EQ(d.next(&payload), FrameDecoder::Status::need_more);
}

TEST(FrameDecoder, SplitsSeveralFramesFedAtOnce) {
  FrameDecoder d;
  const std::string bytes = frame("{\"a\":1}") + frame("{}") + frame("x") + frame("{\"b\"");
  d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() - 2);
  std::string payload;
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, "{\"a\":1}");
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, "{}");
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, "x");
  EXPECT_EQ(d.next(&payload), FrameDecoder::Status::need_more);
  d.feed(reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size() - 2, 2);
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, "{\"b\"");
}

TEST(FrameDecoder, TakesTheLargestFrame) {
  FrameDecoder d;
  const std::string body(kMaxMessage, 'z');
  const std::string bytes = frame(body);
  d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  std::string payload;
  ASSERT_EQ(d.next(&payload), FrameDecoder::Status::frame);
  EXPECT_EQ(payload, body);
}

TEST(FrameDecoder, RefusesZeroAndOversizedLengthsAsSoonAsTheyArrive) {
  for (uint32_t n : {0u, kMaxMessage + 1, 0x47455420u /* "GET " */, 0xffffffffu}) {
    FrameDecoder d;
    const std::string bytes = raw_length(n);
    d.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    std::string payload;
    EXPECT_EQ(d.next(&payload), FrameDecoder::Status::bad_length) << n;
    // Framing is lost for good: more bytes do not bring it back.
    d.feed(reinterpret_cast<const uint8_t*>("{}"), 2);
    EXPECT_EQ(d.next(&payload), FrameDecoder::Status::bad_length) << n;
  }
}

// ---------------------------------------------------------------------------
// Regions

TEST(RegionJson, RoundTrips) {
  RegionEntry r{};
  r.worker = 3;
  r.module = 1;
  r.schema = 2;
  r.slot_size = 56;
  r.slot_count = 65536;
  r.offset = 8388608;
  const json j = region_to_json(r);
  EXPECT_EQ(j, json::parse(R"({"worker": 3, "module": 1, "schema": 2, "slot_size": 56,
                               "slot_count": 65536, "offset": 8388608})"));
  std::string error;
  const std::optional<RegionEntry> back = region_from_json(j, &error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(back->worker, 3);
  EXPECT_EQ(back->module, 1);
  EXPECT_EQ(back->schema, 2);
  EXPECT_EQ(back->slot_size, 56u);
  EXPECT_EQ(back->slot_count, 65536u);
  EXPECT_EQ(back->offset, 8388608u);
  EXPECT_EQ(back->in_use, 1);
}

TEST(RegionJson, RefusesBadDescriptions) {
  const json good = json::parse(R"({"worker": 0, "module": 0, "schema": 1, "slot_size": 72,
                                    "slot_count": 10, "offset": 4096})");
  std::string error;
  ASSERT_TRUE(region_from_json(good, &error).has_value()) << error;
  auto with = [&good](const char* key, const json& value) {
    json j = good;
    j[key] = value;
    return j;
  };
  json missing = good;
  missing.erase("offset");
  const json bad[] = {
      missing,
      json::array(),
      with("worker", "0"),
      with("worker", -1),
      with("worker", 70000),
      with("slot_size", 1.5),
      with("slot_size", 12),
      with("slot_size", 73),
      with("offset", 100),
      with("slot_count", nullptr),
  };
  for (const json& j : bad) {
    error.clear();
    EXPECT_FALSE(region_from_json(j, &error).has_value()) << j.dump();
    EXPECT_EQ(error.rfind("bad region description", 0), 0u) << error;
  }
}

}  // namespace
}  // namespace holdfast::ckpt
