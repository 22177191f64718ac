// Policy: an ordered rule list, first match wins, default action for the
// rest. Evaluated only on the first packet of a connection; replies and
// later packets pass by state.
//
// Theory of operation: the control side expands every rule into DPDK ACL
// rules (one per combination of its source CIDRs, destination CIDRs and
// port ranges, per address family), gives them priorities that encode the
// rule order, and builds one immutable rte_acl context per family
// (rte_acl_build). The data path only classifies (rte_acl_classify), which
// is read-only and safe from any number of workers. A new rule set is a new
// Policy object; the old one stays valid for whoever still holds it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/packet.h"

struct rte_acl_ctx;

namespace holdfast {

enum class Action : uint8_t { allow, deny };
enum class SideMatch : uint8_t { any, inside, outside };

inline const char* action_name(Action a) {
  return a == Action::allow ? "allow" : "deny";
}

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 65535;
};

struct Rule {
  std::string name;
  SideMatch side = SideMatch::any;
  int protocol = -1;      // IP protocol number; -1: any
  std::vector<Cidr> src;  // empty: any address
  std::vector<Cidr> dst;
  std::vector<PortRange> src_ports;  // empty: any port (TCP and UDP only)
  std::vector<PortRange> dst_ports;
  Action action = Action::deny;
};

class Policy {
 public:
  // Largest number of ACL entries one rule may expand to, and all rules
  // together; beyond these the build would take seconds and gigabytes.
  static constexpr uint64_t kMaxExpansionPerRule = 65536;
  static constexpr uint64_t kMaxAclRules = 1 << 20;

  // How many ACL entries a rule becomes (for validation before compiling).
  static uint64_t expansion(const Rule& rule);

  // Compiles rules. Returns nullptr and sets *error if DPDK cannot build them.
  static std::unique_ptr<Policy> compile(std::vector<Rule> rules, Action default_action,
                                         std::string* error);
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  struct Match {
    int32_t rule;  // index into rules(), or -1 for the default action
    Action action;
  };
  // Classifies the first packet of a would-be connection by its side,
  // protocol, addresses and ports.
  Match classify(const ParsedPacket& p) const;
  // The same for n <= kMaxBulk packets at once (much faster per packet).
  static constexpr uint32_t kMaxBulk = 64;
  void classify_bulk(const ParsedPacket* const* packets, uint32_t n, Match* out) const;

  // What classify reads of a packet, for judging a connection that exists
  // without one (recovery re-checks every restored connection, a rule
  // reload every live one): 40 bytes to fill, where a ParsedPacket is 176
  // to construct.
  struct Query {
    IpAddr src;
    IpAddr dst;
    uint16_t sport;
    uint16_t dport;
    uint8_t proto;
    uint8_t ip_version;  // 4 or 6
    Side side;
  };
  void classify_bulk(const Query* queries, uint32_t n, Match* out) const;

  const std::vector<Rule>& rules() const { return rules_; }
  Action default_action() const { return default_action_; }

  // What decides a verdict, digested: every rule's side, protocol,
  // addresses, ports and action in order, the default action, and
  // kSemantics. Two policies with the same digest judge every query alike,
  // so a connection one admitted the other admits too (recovery trusts
  // that instead of classifying again: docs/checkpoint.md#recovery). Rule
  // names are left out: they decide nothing. Never 0.
  uint64_t digest() const { return digest_; }
  // Raised whenever what a rule means changes (how a field is matched),
  // so that a digest from before never vouches for rules read anew.
  static constexpr uint32_t kSemantics = 1;

 private:
  Policy() = default;
  Match match_of(uint32_t acl_result) const;
  // at(i): the i-th packet or query (anything with Query's fields).
  template <typename Input, typename At>
  void classify_family(const rte_acl_ctx* ctx, const At& at, uint32_t n, int version,
                       Match* out) const;

  std::vector<Rule> rules_;
  Action default_action_ = Action::deny;
  uint64_t digest_ = 0;
  rte_acl_ctx* v4_ = nullptr;  // nullptr: no rule applies to the family
  rte_acl_ctx* v6_ = nullptr;
};

}  // namespace holdfast
