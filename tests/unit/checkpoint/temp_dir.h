// A private directory for one test's files, removed with everything in it
// when the test ends, passed or failed. In /dev/shm when there is one, as
// the real store would be (tmpfs: sparse files, SEEK_DATA, hole punching).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace holdfast::ckpt::testing_support {

class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    const std::string parent =
        std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0
            ? "/dev/shm"
            : ::testing::TempDir();
    std::string pattern = parent + "/holdfast-ckpt-test-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace holdfast::ckpt::testing_support
