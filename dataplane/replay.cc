#include "dataplane/replay.h"

#include "dataplane/parser.h"
#include "dataplane/stats.h"
#include "dataplane/steering.h"

namespace holdfast {

std::unique_ptr<Replay> Replay::create(const Config& config, unsigned workers, std::string* error) {
  std::unique_ptr<Replay> r(new Replay());
  r->config_ = config;
  r->policy_ = Policy::compile(config.rules, config.default_action, error);
  if (!r->policy_) return nullptr;
  if (workers > 1) {
    r->mail_ = PinholeMail::create(std::vector<int>(workers, 0), error);
    if (!r->mail_) return nullptr;
  }
  for (unsigned w = 0; w < workers; ++w) {
    auto p = Pipeline::create(config.pipeline, r->policy_.get(), &r->ids_, 0, error);
    if (!p) return nullptr;
    p->set_steering(w, workers, r->mail_.get());
    r->pipelines_.push_back(std::move(p));
  }
  return r;
}

Replay::Result Replay::feed(const uint8_t* frame, uint32_t len, uint64_t ts_ns) {
  ParsedPacket p;
  parse_frame(frame, len, Side::outside, 0, config_.parse, p);
  // Malformed packets count too once their source address was read.
  if (p.ip_version != 0 && config_.is_inside(p.src)) p.side = Side::inside;
  Pipeline& pipeline = *pipelines_[owner_worker(p, workers())];
  Result r;
  r.side = p.side;
  pipeline.process(&p, 1, ts_ns, &r.verdict);
  if (r.verdict.reason == Reason::expected) {
    // The connection it opened names its master.
    bool src_is_lo = false;
    const int32_t pos = pipeline.flows().lookup(
        make_flow_key(p.src, p.sport, p.dst, p.dport, p.proto, p.zone, &src_is_lo));
    if (pos >= 0) r.master = pipeline.flows().at(static_cast<uint32_t>(pos)).master_id;
  }
  // The dataplane runs its cleaner between bursts; so does the replay.
  pipeline.clean(ts_ns, 16);
  // Other workers read what it posted before their next packet, as they do
  // at the top of every loop.
  if (mail_) {
    for (auto& q : pipelines_) q->read_mail();
  }
  return r;
}

void Replay::finish(uint64_t ts_ns) {
  for (auto& p : pipelines_) p->clean(ts_ns, p->flows().capacity());
}

uint64_t Replay::connections() const {
  uint64_t n = 0;
  for (const auto& p : pipelines_) n += p->flows().size();
  return n;
}

std::vector<Pipeline*> Replay::pipelines() const {
  std::vector<Pipeline*> out;
  for (const auto& p : pipelines_) out.push_back(p.get());
  return out;
}

bool Replay::enable_checkpoint(ckpt::Client& client, bool store_full_allow, std::string* error) {
  writers_.assign(pipelines_.size(), ckpt::WorkerCheckpoint{});
  if (!ckpt::attach_writers(client.store(), client.write(), &writers_, error)) return false;
  for (size_t w = 0; w < pipelines_.size(); ++w) {
    pipelines_[w]->set_checkpoint(&writers_[w], store_full_allow);
  }
  ids_.epoch = client.epoch();
  return true;
}

ckpt::RecoveryReport Replay::recover(const ckpt::Client& client) {
  return ckpt::recover_connections(client.store(), client.store_bytes(), client.store_fd(),
                                   *client.recover(), pipelines(), client.epoch());
}

nlohmann::json Replay::stats() const {
  std::vector<const Pipeline*> ps;
  for (const auto& p : pipelines_) ps.push_back(p.get());
  nlohmann::json s = pipeline_stats(ps);
  s["workers"] = pipelines_.size();
  return s;
}

}  // namespace holdfast
