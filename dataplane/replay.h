// holdfast-replay's engine: the dataplane's pipelines fed from a capture.
//
// A frame whose source address lies in inside_networks arrives on the inside
// port, any other frame on the outside port. Frames go to pipelines by the
// dataplane's steering (dataplane/steering.h), in capture order, and
// the clock is the capture's timestamps, so every run over the same capture
// gives the same verdicts, whatever the number of pipelines.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/recovery.h"
#include "checkpoint/writer.h"
#include "control/config.h"
#include "dataplane/pipeline.h"
#include "dataplane/policy.h"

namespace holdfast {

class Replay {
 public:
  static std::unique_ptr<Replay> create(const Config& config, unsigned workers, std::string* error);

  struct Result {
    Verdict verdict;
    Side side;            // the port the frame arrived on; a passed frame leaves by the other
    uint64_t master = 0;  // for reason expected: the connection that announced it
  };
  Result feed(const uint8_t* frame, uint32_t len, uint64_t ts_ns);

  // Expires everything idle at ts_ns, so the summary shows what is still open.
  void finish(uint64_t ts_ns);

  nlohmann::json stats() const;
  unsigned workers() const { return static_cast<unsigned>(pipelines_.size()); }
  uint64_t connections() const;

  // Checkpoints every pipeline into the set `client` writes, with
  // connection IDs of the client's epoch.
  bool enable_checkpoint(ckpt::Client& client, bool store_full_allow, std::string* error);
  // Rebuilds the connections of the set `client` recovers from.
  ckpt::RecoveryReport recover(const ckpt::Client& client);

 private:
  Replay() = default;
  std::vector<Pipeline*> pipelines() const;

  Config config_;
  std::unique_ptr<Policy> policy_;
  ConnIdSource ids_;
  std::unique_ptr<PinholeMail> mail_;  // with more than one worker
  std::vector<std::unique_ptr<Pipeline>> pipelines_;
  std::vector<ckpt::WorkerCheckpoint> writers_;  // one per pipeline, never resized once set
};

}  // namespace holdfast
