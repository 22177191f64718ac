// holdfastctl metrics (control/metrics.h, docs/metrics.md): a full sample of
// the dataplane's and holdfast-ckptd's objects gives every family once, with
// its HELP and TYPE before all its samples; the values and labels are the
// input's; label values are escaped; unreachable processes leave only their
// up gauges; input of the wrong shape never throws and still gives valid
// text. Every line is checked against the format's grammar here, without
// Python (tests/control/prom_check.py checks the same text with the
// prometheus_client parser).
//
// HOLDFAST_METRICS_DUMP=FILE writes the full sample's exposition to FILE.
#include "control/metrics.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/verdict.h"
#include "modules/ftp/ftp.h"
#include "modules/sip/sip.h"

namespace holdfast::ctl {
namespace {

using json = nlohmann::json;

json sample_dataplane() {
  return R"({
    "info": {"version": "0.1.0", "pid": 4242, "uptime_s": 3600, "workers": 2, "ports": 2,
             "config": "/etc/holdfast/holdfast.json", "rules": 2, "default": "deny",
             "ckpt": "connected", "ckpt_app": "holdfast", "ckpt_epoch": 8, "ckpt_set": 5,
             "ckpt_outages": 1, "recovered": true},
    "stats": {
      "totals": {"packets": 1000, "passed": 900, "dropped": 100, "opened": 50, "expired": 20,
                 "reopened": 2, "fragments_expired": 3, "reload_closed": 4, "unprotected": 6,
                 "active": 30, "restored": 4},
      "pass_reasons": {"new_connection": 50, "established": 850},
      "drop_reasons": {"default_deny": 90, "tcp_bad_flags": 10},
      "opened": {"tcp": 40, "udp": 8, "icmp": 2, "other": 0},
      "expired": {"tcp": 15, "udp": 5, "icmp": 0, "other": 0},
      "restored": {"tcp": 3, "udp": 0, "icmp": 1, "other": 0},
      "ftp": {"sessions": 3, "expectations_opened": 4, "open_sessions_total": 1,
              "open_sessions": [{"control": 1, "data": []}]},
      "sip": {"calls": 2, "calls_timed_out": 1, "open_calls_total": 1, "open_calls": []},
      "checkpoint": {"status": "connected", "epoch": 8, "set": 5, "outages": 1}},
    "ports": {
      "0": {"name": "0000:01:00.0", "side": "inside", "pair": 0, "rx_packets": 600,
            "tx_packets": 400, "rx_bytes": 60000, "tx_bytes": 40000, "rx_missed": 1, "rx_errors": 2, "tx_errors": 0, "rx_no_mbuf": 0},
      "1": {"name": "0000:01:00.1", "side": "outside", "pair": 0, "rx_packets": 400,
            "tx_packets": 500, "rx_bytes": 40000, "tx_bytes": 50000, "rx_missed": 0, "rx_errors": 0, "tx_errors": 3, "rx_no_mbuf": 7}},
    "workers": {
      "0": {"lcore": 1, "rx": 500, "tx": 450, "tx_dropped": 0, "handoff_out": 10,
            "handoff_in": 12, "handoff_full": 0, "loops": 99999, "connections": 20,
            "capacity": 65536},
      "1": {"lcore": 2, "rx": 500, "tx": 450, "tx_dropped": 1, "handoff_out": 12,
            "handoff_in": 10, "handoff_full": 2, "loops": 88888, "connections": 10,
            "capacity": 65536}},
    "states": {"tcp": {"established": 25, "syn_sent": 2}, "udp": {"assured": 3}},
    "rules": [{"index": 1, "name": "web", "action": "allow", "hits": 40},
              {"index": 2, "name": "ssh \"admin\" \\ net\nnext", "action": "allow", "hits": 2},
              {"index": 0, "name": "default", "action": "deny", "hits": 90}]
  })"_json;
}

json sample_ckpt() {
  return R"({"type": "stats",
    "store": {"path": "/dev/shm/holdfast.store", "bytes": 1073741824,
              "used_bytes": 25296896, "generation": 41, "epoch": 8},
    "apps": [{"app": "holdfast", "writer": 3,
              "report": {"from_set": 4, "from_epoch": 7, "epoch": 8, "workers_before": 1,
                         "workers_now": 2, "restored": {"tcp": 3, "udp": 0, "icmp": 1, "other": 0},
                         "restored_total": 4, "restored_l7": {"ftp": 1}, "sip_calls": 0,
                         "sip_media_linked": 0, "fragment_records": 0,
                         "discarded": {"torn": 1}, "rules": {"classified": 1, "unchanged": 3},
                         "phase_ms": {"connections": 3.25, "layer7": 4.0, "write": 3.5},
                         "total_ms": 10.75, "first_packet_ms": 434.5},
              "committed": {"set": 4, "epoch": 7, "bytes": 25165824, "connections": 1234,
                            "regions": [{"worker": 0, "module": 0, "slots": 65536, "used": 610},
                                        {"worker": 0, "module": 1, "slots": 65536, "used": 600},
                                        {"worker": 0, "module": 8, "slots": 256, "used": 1},
                                        {"worker": 0, "module": 9, "slots": 1, "used": 1}]},
              "staging": {"set": 5, "bytes": 25165824, "connections": 0, "regions": []}},
             {"app": "lab", "writer": null, "report": null, "committed": null, "staging": null}],
    "clients": [{"id": 3, "pid": 4242, "uid": 0, "app": "holdfast", "role": "writer"},
                {"id": 4, "pid": 4343, "uid": 0, "app": "holdfast", "role": "monitor"},
                {"id": 5, "pid": 4444, "uid": 0, "app": null, "role": null}]})"_json;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The text format 0.0.4, one line at a time. Not std::regex: GCC 12's
// <regex> does not build with -Werror under the sanitizers (a false
// maybe-uninitialized inside std::function), and this is much faster.
class Scanner {
 public:
  explicit Scanner(std::string_view line) : s_(line) {}

  bool done() const { return pos_ == s_.size(); }

  bool take(std::string_view word) {
    if (!s_.substr(pos_).starts_with(word)) return false;
    pos_ += word.size();
    return true;
  }

  // [a-zA-Z_:][a-zA-Z0-9_:]*, a metric name; a label name has no ':'.
  std::string_view name(bool metric) {
    const size_t start = pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
      if (!letter && !(metric && c == ':') && !(pos_ > start && digit(c))) break;
      ++pos_;
    }
    return s_.substr(start, pos_ - start);
  }

  // Up to `end` (not taken) or the end of the line, where a backslash
  // stands only before one of `escapes`.
  bool escaped(char end, std::string_view escapes) {
    for (; pos_ < s_.size() && s_[pos_] != end; ++pos_) {
      if (s_[pos_] != '\\') continue;
      if (pos_ + 1 == s_.size() || escapes.find(s_[pos_ + 1]) == std::string_view::npos) {
        return false;
      }
      ++pos_;
    }
    return true;
  }

  // The rest is -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?, NaN, +Inf or -Inf.
  bool value() {
    if (take("NaN") || take("+Inf") || take("-Inf")) return done();
    take("-");
    if (!digits() || (take(".") && !digits())) return false;
    if (take("e") || take("E")) {
      if (!take("+")) take("-");
      if (!digits()) return false;
    }
    return done();
  }

 private:
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  bool digits() {
    const size_t start = pos_;
    while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    return pos_ > start;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

struct Line {
  enum class Kind { help, type, sample } kind;
  std::string name;
  std::string type;  // of a TYPE line
};

// "# HELP name text", "# TYPE name counter|gauge|untyped" or
// "name{label=\"value\",...} value"; nothing else.
std::optional<Line> parse_line(std::string_view text) {
  Scanner s(text);
  if (s.take("# HELP ")) {
    Line line{Line::Kind::help, std::string(s.name(true)), ""};
    if (line.name.empty() || !s.take(" ") || !s.escaped('\n', "\\n")) return std::nullopt;
    return line;
  }
  if (s.take("# TYPE ")) {
    Line line{Line::Kind::type, std::string(s.name(true)), ""};
    if (line.name.empty() || !s.take(" ")) return std::nullopt;
    for (const char* type : {"counter", "gauge", "untyped"}) {
      if (s.take(type) && s.done()) {
        line.type = type;
        return line;
      }
    }
    return std::nullopt;
  }
  Line line{Line::Kind::sample, std::string(s.name(true)), ""};
  if (line.name.empty()) return std::nullopt;
  if (s.take("{")) {
    do {
      if (s.name(false).empty() || !s.take("=\"") || !s.escaped('"', "\\\"n") || !s.take("\"")) {
        return std::nullopt;
      }
    } while (s.take(","));
    if (!s.take("}")) return std::nullopt;
  }
  if (!s.take(" ") || !s.value()) return std::nullopt;
  return line;
}

// Every line is HELP, TYPE or a sample; each family has exactly one HELP
// then one TYPE, then all its samples, and at least one; no family comes
// back later. Fills *types (family -> type) when given.
testing::AssertionResult WellFormed(const std::string& text,
                                    std::map<std::string, std::string>* types = nullptr) {
  if (text.empty() || text.back() != '\n') {
    return testing::AssertionFailure() << "the text does not end with a newline";
  }
  std::map<std::string, std::string> seen;
  std::string family;
  size_t samples = 1;
  int n = 0;
  for (const std::string& text_line : lines_of(text)) {
    ++n;
    auto fail = [&](const std::string& why) {
      return testing::AssertionFailure() << "line " << n << ": " << why << ": " << text_line;
    };
    const std::optional<Line> line = parse_line(text_line);
    if (!line) return fail("not HELP, TYPE or a sample");
    if (line->kind == Line::Kind::help) {
      if (samples == 0) return fail("family " + family + " has no samples");
      family = line->name;
      if (seen.count(family)) return fail("family declared again");
      seen[family] = "";
      samples = 0;
    } else if (line->kind == Line::Kind::type) {
      if (line->name != family || !seen[family].empty()) {
        return fail("TYPE not right after its HELP");
      }
      seen[family] = line->type;
    } else {
      if (line->name != family || seen[family].empty()) return fail("sample outside its family");
      ++samples;
    }
  }
  if (samples == 0) return testing::AssertionFailure() << family << " has no samples";
  if (types != nullptr) *types = seen;
  return testing::AssertionSuccess();
}

// The sample lines, as a set.
std::set<std::string> samples_of(const std::string& text) {
  std::set<std::string> out;
  for (const std::string& line : lines_of(text)) {
    if (!line.starts_with("#")) out.insert(line);
  }
  return out;
}

size_t count_prefix(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  for (const std::string& line : lines_of(text)) n += line.starts_with(prefix);
  return n;
}

#define EXPECT_SAMPLE(text, line) EXPECT_TRUE(samples_of(text).count(line)) << "missing: " << line

// Every one of lines is a sample line of text, to the letter.
void expect_samples(const std::string& text, std::initializer_list<const char*> lines) {
  const std::set<std::string> samples = samples_of(text);
  for (const char* line : lines) EXPECT_TRUE(samples.count(line)) << "missing: " << line;
}

// The checker itself: the subset of the format holdfastctl writes (no
// summaries, no empty or trailing-comma label sets), and nothing else.
TEST(Metrics, LineGrammar) {
  for (const char* good : {
           "# HELP a_b:c Some text, with \\\\ and \\n escaped",
           "# TYPE a counter",
           "# TYPE a untyped",
           "a 1",
           "a -3",
           "a 0.00325",
           "a 1e+20",
           "a 2.5E-3",
           "a NaN",
           "a +Inf",
           "a{l=\"\"} 1",
           "a{l=\"x\\\"y\\\\z\\n\",m_2=\"{},=\"} 18446744073709551615",
       }) {
    EXPECT_TRUE(parse_line(good)) << good;
  }
  for (const char* bad : {
           "",
           "# HELP a",
           "# HELP 1a text",
           "# HELP a bad \\q escape",
           "# TYPE a summary",
           "# TYPE a gauge ",
           "# comment",
           "a",
           "a  1",
           "a 1 ",
           "a 1.",
           "a .5",
           "a 1e",
           "a one",
           "1a 1",
           "a-b 1",
           "a{} 1",
           "a{l=x} 1",
           "a{l=\"x} 1",
           "a{l=\"x\"\"} 1",
           "a{l=\"x\",} 1",
           "a{l:m=\"x\"} 1",
           "a{l=\"a\\qb\"} 1",
       }) {
    EXPECT_FALSE(parse_line(bad)) << bad;
  }
}

TEST(Metrics, FullSampleIsWellFormed) {
  const std::string text = prometheus_text(sample_dataplane(), sample_ckpt());
  if (const char* dump = std::getenv("HOLDFAST_METRICS_DUMP")) std::ofstream(dump) << text;
  std::map<std::string, std::string> types;
  ASSERT_TRUE(WellFormed(text, &types)) << text;
  // Counters end in _total, gauges do not; every family is holdfast's.
  for (const auto& [name, type] : types) {
    EXPECT_TRUE(name.starts_with("holdfast_")) << name;
    if (type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    } else {
      EXPECT_FALSE(name.ends_with("_total")) << name;
    }
  }
  EXPECT_EQ(types["holdfast_up"], "gauge");
  EXPECT_EQ(types["holdfast_packets_total"], "counter");
  EXPECT_EQ(types["holdfast_connections_open"], "gauge");
  EXPECT_EQ(types["holdfast_worker_connections"], "gauge");
  EXPECT_EQ(types["holdfast_ftp_open_sessions"], "gauge");
  EXPECT_EQ(types["holdfast_sip_open_calls"], "gauge");
  EXPECT_EQ(types["holdfast_ckptd_recovery_phase_seconds"], "gauge");
  // Nothing unknown in the sample: nothing untyped.
  for (const auto& [name, type] : types) EXPECT_NE(type, "untyped") << name;
}

TEST(Metrics, DataplaneSamples) {
  const std::string text = prometheus_text(sample_dataplane(), nullptr);
  ASSERT_TRUE(WellFormed(text)) << text;
  expect_samples(
      text,
      {
          "holdfast_up 1",
          "holdfast_info{version=\"0.1.0\",config=\"/etc/holdfast/holdfast.json\","
          "default=\"deny\",app=\"holdfast\"} 1",
          "holdfast_uptime_seconds 3600",
          "holdfast_workers 2",
          "holdfast_checkpoint_enabled 1",
          "holdfast_checkpoint_connected 1",
          "holdfast_checkpoint_epoch 8",
          "holdfast_checkpoint_set 5",
          "holdfast_checkpoint_outages_total 1",
          "holdfast_recovered 1",
          "holdfast_packets_total{verdict=\"pass\"} 900",
          "holdfast_packets_total{verdict=\"drop\"} 100",
          "holdfast_verdicts_total{verdict=\"pass\",reason=\"established\"} 850",
          "holdfast_verdicts_total{verdict=\"drop\",reason=\"default_deny\"} 90",
          "holdfast_verdicts_total{verdict=\"drop\",reason=\"conn_table_full\"} 0",
          "holdfast_connections_opened_total{protocol=\"tcp\"} 40",
          "holdfast_connections_expired_total{protocol=\"udp\"} 5",
          "holdfast_connections_reopened_total 2",
          "holdfast_connections_reload_closed_total 4",
          "holdfast_connections_unprotected_total 6",
          "holdfast_connections_restored_total{protocol=\"icmp\"} 1",
          "holdfast_fragments_expired_total 3",
          "holdfast_connections_open{protocol=\"tcp\",state=\"established\"} 25",
          "holdfast_connections_open{protocol=\"udp\",state=\"assured\"} 3",
          "holdfast_port_info{port=\"1\",name=\"0000:01:00.1\",side=\"outside\",pair=\"0\"} 1",
          "holdfast_port_rx_packets_total{port=\"0\",side=\"inside\",pair=\"0\"} 600",
          "holdfast_port_tx_bytes_total{port=\"1\",side=\"outside\",pair=\"0\"} 50000",
          "holdfast_port_rx_no_mbuf_total{port=\"1\",side=\"outside\",pair=\"0\"} 7",
          "holdfast_worker_lcore{worker=\"1\"} 2",
          "holdfast_worker_rx_packets_total{worker=\"0\"} 500",
          "holdfast_worker_handoff_full_total{worker=\"1\"} 2",
          "holdfast_worker_loops_total{worker=\"1\"} 88888",
          "holdfast_worker_connections{worker=\"0\"} 20",
          "holdfast_worker_capacity{worker=\"1\"} 65536",
          "holdfast_rule_hits_total{rule=\"web\",action=\"allow\",index=\"1\"} 40",
          "holdfast_rule_hits_total{rule=\"default\",action=\"deny\",index=\"0\"} 90",
          "holdfast_ftp_sessions_total 3",
          "holdfast_ftp_expectations_opened_total 4",
          "holdfast_ftp_refused_bounce_total 0",
          "holdfast_ftp_open_sessions 1",
          "holdfast_sip_calls_total 2",
          "holdfast_sip_calls_timed_out_total 1",
          "holdfast_sip_open_calls 1",
          "holdfast_ckptd_up 0",
      });
  // Sums of other series are not series of their own (totals.packets,
  // .opened, .active, ...); info and stats.checkpoint give the same series.
  EXPECT_EQ(count_prefix(text, "holdfast_packets_total{"), 2u);
  EXPECT_EQ(text.find("active"), std::string::npos);
  EXPECT_EQ(count_prefix(text, "holdfast_checkpoint_epoch "), 1u);
  EXPECT_EQ(count_prefix(text, "holdfast_checkpoint_"), 5u);
}

TEST(Metrics, EveryReasonAndModuleCounterEvenAtZero) {
  const std::string text = prometheus_text(sample_dataplane(), nullptr);
  EXPECT_EQ(count_prefix(text, "holdfast_verdicts_total{"), kReasonCount);
  for (size_t i = 0; i < kReasonCount; ++i) {
    const std::string series = std::string("holdfast_verdicts_total{verdict=\"") +
                               (kReasonPasses[i] ? "pass" : "drop") + "\",reason=\"" +
                               std::string(kReasonNames[i]) + "\"} ";
    EXPECT_EQ(count_prefix(text, series), 1u) << series;
  }
#define EXPECT_MODULE_COUNTER(prefix, name) \
  EXPECT_EQ(count_prefix(text, prefix #name "_total "), 1u);
#define EXPECT_FTP(name) EXPECT_MODULE_COUNTER("holdfast_ftp_", name)
#define EXPECT_SIP(name) EXPECT_MODULE_COUNTER("holdfast_sip_", name)
  HOLDFAST_FTP_COUNTERS(EXPECT_FTP)
  HOLDFAST_SIP_COUNTERS(EXPECT_SIP)
#undef EXPECT_SIP
#undef EXPECT_FTP
#undef EXPECT_MODULE_COUNTER
}

TEST(Metrics, CkptdSamples) {
  const std::string text = prometheus_text(nullptr, sample_ckpt());
  ASSERT_TRUE(WellFormed(text)) << text;
  expect_samples(
      text,
      {
          "holdfast_up 0",
          "holdfast_ckptd_up 1",
          "holdfast_ckptd_store_info{path=\"/dev/shm/holdfast.store\"} 1",
          "holdfast_ckptd_store_bytes 1073741824",
          "holdfast_ckptd_store_used_bytes 25296896",
          "holdfast_ckptd_generation 41",
          "holdfast_ckptd_epoch 8",
          "holdfast_ckptd_writer_connected{app=\"holdfast\"} 1",
          "holdfast_ckptd_writer_connected{app=\"lab\"} 0",
          "holdfast_ckptd_set_number{app=\"holdfast\",set=\"committed\"} 4",
          "holdfast_ckptd_set_epoch{app=\"holdfast\",set=\"committed\"} 7",
          "holdfast_ckptd_set_connections{app=\"holdfast\",set=\"committed\"} 1234",
          "holdfast_ckptd_set_connections{app=\"holdfast\",set=\"staging\"} 0",
          "holdfast_ckptd_set_bytes{app=\"holdfast\",set=\"staging\"} 25165824",
          "holdfast_ckptd_region_slots{app=\"holdfast\",set=\"committed\",worker=\"0\","
          "module=\"base\"} 65536",
          "holdfast_ckptd_region_used_slots{app=\"holdfast\",set=\"committed\",worker=\"0\","
          "module=\"tcp\"} 600",
          "holdfast_ckptd_region_used_slots{app=\"holdfast\",set=\"committed\",worker=\"0\","
          "module=\"sip_calls\"} 1",
          "holdfast_ckptd_clients{role=\"writer\"} 1",
          "holdfast_ckptd_clients{role=\"monitor\"} 1",
          "holdfast_ckptd_clients{role=\"reader\"} 0",
          "holdfast_ckptd_clients{role=\"none\"} 1",
          "holdfast_ckptd_recovery_from_set{app=\"holdfast\"} 4",
          "holdfast_ckptd_recovery_workers_now{app=\"holdfast\"} 2",
          "holdfast_ckptd_recovery_restored{app=\"holdfast\",protocol=\"tcp\"} 3",
          "holdfast_ckptd_recovery_restored{app=\"holdfast\",protocol=\"other\"} 0",
          "holdfast_ckptd_recovery_restored_l7{app=\"holdfast\",module=\"ftp\"} 1",
          "holdfast_ckptd_recovery_discarded{app=\"holdfast\",reason=\"torn\"} 1",
          "holdfast_ckptd_recovery_rules{app=\"holdfast\",judged=\"classified\"} 1",
          "holdfast_ckptd_recovery_rules{app=\"holdfast\",judged=\"unchanged\"} 3",
          "holdfast_ckptd_region_used_slots{app=\"holdfast\",set=\"committed\",worker=\"0\","
          "module=\"rules\"} 1",
          "holdfast_ckptd_recovery_phase_seconds{app=\"holdfast\",phase=\"connections\"} 0.00325",
          "holdfast_ckptd_recovery_duration_seconds{app=\"holdfast\"} 0.01075",
          "holdfast_ckptd_recovery_first_packet_seconds{app=\"holdfast\"} 0.4345",
      });
  // An application without sets or report has only its writer gauge.
  EXPECT_EQ(count_prefix(text, "holdfast_ckptd_set_bytes{app=\"lab\""), 0u);
  // restored_total is the sum of restored: not a series of its own.
  EXPECT_EQ(text.find("restored_total"), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
  json dp = sample_dataplane();
  dp["info"]["config"] = "C:\\holdfast \"lab\"\n.json";
  const std::string text = prometheus_text(dp, nullptr);
  ASSERT_TRUE(WellFormed(text)) << text;
  EXPECT_SAMPLE(text,
                "holdfast_rule_hits_total{rule=\"ssh \\\"admin\\\" \\\\ net\\nnext\","
                "action=\"allow\",index=\"2\"} 2");
  EXPECT_SAMPLE(text,
                "holdfast_info{version=\"0.1.0\",config=\"C:\\\\holdfast \\\"lab\\\"\\n.json\","
                "default=\"deny\",app=\"holdfast\"} 1");
}

TEST(Metrics, UnreachableLeavesOnlyTheUpGauges) {
  EXPECT_EQ(prometheus_text(nullptr, nullptr),
            "# HELP holdfast_up 1 if the dataplane's telemetry socket answered\n"
            "# TYPE holdfast_up gauge\n"
            "holdfast_up 0\n"
            "# HELP holdfast_ckptd_up 1 if holdfast-ckptd answered\n"
            "# TYPE holdfast_ckptd_up gauge\n"
            "holdfast_ckptd_up 0\n");
  // Reached but empty: up, and nothing made up.
  const std::string text = prometheus_text(json::object(), json::object());
  EXPECT_EQ(samples_of(text), (std::set<std::string>{"holdfast_up 1", "holdfast_ckptd_up 1"}));
}

TEST(Metrics, ExactIntegersAndOtherValues) {
  json dp = sample_dataplane();
  dp["stats"]["totals"]["passed"] = UINT64_MAX;
  dp["stats"]["totals"]["dropped"] = -3;
  dp["info"]["uptime_s"] = 1.5;
  dp["info"]["recovered"] = false;
  dp["info"]["workers"] = "two";  // not a number: left out
  const std::string text = prometheus_text(dp, nullptr);
  ASSERT_TRUE(WellFormed(text)) << text;
  EXPECT_SAMPLE(text, "holdfast_packets_total{verdict=\"pass\"} 18446744073709551615");
  EXPECT_SAMPLE(text, "holdfast_packets_total{verdict=\"drop\"} -3");
  EXPECT_SAMPLE(text, "holdfast_uptime_seconds 1.5");
  EXPECT_SAMPLE(text, "holdfast_recovered 0");
  EXPECT_EQ(text.find("holdfast_workers "), std::string::npos);
}

TEST(Metrics, UnknownNamesAreSanitisedAndCollisionsDropped) {
  json dp = sample_dataplane();
  dp["stats"]["ftp"]["new-counter"] = 5;      // a newer dataplane's: untyped
  dp["stats"]["checkpoint"]["outages"] = 99;  // same series as info's ckpt_outages
  dp["stats"]["checkpoint"]["puts"] = 1234;
  dp["stats"]["pass_reasons"]["future_reason"] = 6;
  dp["states"]["sctp/established"] = 1;  // the flat form
  dp["states"]["weird"] = 2;             // no state
  const std::string text = prometheus_text(dp, nullptr);
  std::map<std::string, std::string> types;
  ASSERT_TRUE(WellFormed(text, &types)) << text;
  EXPECT_EQ(types["holdfast_ftp_new_counter"], "untyped");
  EXPECT_SAMPLE(text, "holdfast_ftp_new_counter 5");
  EXPECT_EQ(count_prefix(text, "holdfast_checkpoint_outages_total "), 1u);
  EXPECT_SAMPLE(text, "holdfast_checkpoint_outages_total 1");
  EXPECT_EQ(types["holdfast_checkpoint_puts"], "untyped");
  EXPECT_SAMPLE(text, "holdfast_checkpoint_puts 1234");
  EXPECT_SAMPLE(text, "holdfast_verdicts_total{verdict=\"pass\",reason=\"future_reason\"} 6");
  EXPECT_SAMPLE(text, "holdfast_connections_open{protocol=\"sctp\",state=\"established\"} 1");
  EXPECT_SAMPLE(text, "holdfast_connections_open{protocol=\"weird\",state=\"\"} 2");
}

// Every member of the samples, at every depth, replaced in turn by each
// value of another type: no throw, and the text stays well formed.
void replace_everywhere(const json& whole, json& node, const std::function<void(const json&)>& f) {
  static const std::vector<json> kGarbage = {
      nullptr, 7, -1.5, "text", true, json::array(), json::object(), json::array({1, "x"})};
  if (!node.is_structured()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    json& child = *it;
    const json saved = child;
    for (const json& g : kGarbage) {
      child = g;
      f(whole);
    }
    child = saved;
    replace_everywhere(whole, child, f);
  }
}

TEST(Metrics, GarbageNeverThrows) {
  json dp = sample_dataplane();
  json ck = sample_ckpt();
  size_t runs = 0;
  replace_everywhere(dp, dp, [&](const json& d) {
    ++runs;
    std::string text;
    ASSERT_NO_THROW(text = prometheus_text(d, ck)) << d.dump();
    ASSERT_TRUE(WellFormed(text)) << d.dump();
  });
  replace_everywhere(ck, ck, [&](const json& c) {
    ++runs;
    std::string text;
    ASSERT_NO_THROW(text = prometheus_text(dp, c)) << c.dump();
    ASSERT_TRUE(WellFormed(text)) << c.dump();
  });
  EXPECT_GT(runs, 1000u);
  for (const json& g : {json(7), json("text"), json::array({1, 2}), json(true)}) {
    std::string text;
    ASSERT_NO_THROW(text = prometheus_text(g, g));
    EXPECT_EQ(samples_of(text), (std::set<std::string>{"holdfast_up 1", "holdfast_ckptd_up 1"}));
  }
}

}  // namespace
}  // namespace holdfast::ctl
