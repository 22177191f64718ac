#include "dataplane/policy.h"

#include <rte_acl.h>
#include <rte_errno.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <type_traits>
#include <vector>

#include "dataplane/byteorder.h"

namespace holdfast {
namespace {

// Classifier input, in network byte order as rte_acl expects. The first
// field must be one byte (rte_acl); fields sharing an input index lie in the
// same four bytes.
// rte_acl consumes the first byte alone and every later input index as four
// consecutive bytes, so side is a 32-bit field of its own.
struct AclInputV4 {
  uint8_t proto;
  uint8_t pad0[3];
  uint32_t side;  // kSideBit*, network order
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
};
static_assert(sizeof(AclInputV4) == 20);

struct AclInputV6 {
  uint8_t proto;
  uint8_t pad0[3];
  uint32_t side;
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t sport;
  uint16_t dport;
};
static_assert(sizeof(AclInputV6) == 44);
static_assert(offsetof(AclInputV4, side) == offsetof(AclInputV6, side));

constexpr uint8_t kSideBitInside = 1;
constexpr uint8_t kSideBitOutside = 2;

enum FieldV4 { kV4Proto, kV4Side, kV4Src, kV4Dst, kV4Sport, kV4Dport, kV4FieldCount };
enum FieldV6 {
  kV6Proto,
  kV6Side,
  kV6Src0,
  kV6Dst0 = kV6Src0 + 4,
  kV6Sport = kV6Dst0 + 4,
  kV6Dport,
  kV6FieldCount
};

RTE_ACL_RULE_DEF(AclRuleV4, kV4FieldCount);
RTE_ACL_RULE_DEF(AclRuleV6, kV6FieldCount);

void define_common(rte_acl_config& cfg) {
  cfg.defs[0] = {RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, offsetof(AclInputV4, proto)};
  cfg.defs[1] = {RTE_ACL_FIELD_TYPE_BITMASK, 4, 1, 1, offsetof(AclInputV4, side)};
}

rte_acl_config config_v4() {
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = kV4FieldCount;
  define_common(cfg);
  cfg.defs[kV4Src] = {RTE_ACL_FIELD_TYPE_MASK, 4, kV4Src, 2, offsetof(AclInputV4, src)};
  cfg.defs[kV4Dst] = {RTE_ACL_FIELD_TYPE_MASK, 4, kV4Dst, 3, offsetof(AclInputV4, dst)};
  cfg.defs[kV4Sport] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV4Sport, 4, offsetof(AclInputV4, sport)};
  cfg.defs[kV4Dport] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV4Dport, 4, offsetof(AclInputV4, dport)};
  return cfg;
}

rte_acl_config config_v6() {
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = kV6FieldCount;
  define_common(cfg);
  for (uint8_t i = 0; i < 4; ++i) {
    cfg.defs[kV6Src0 + i] = {RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<uint8_t>(kV6Src0 + i),
                             static_cast<uint8_t>(2 + i),
                             static_cast<uint32_t>(offsetof(AclInputV6, src) + 4 * i)};
    cfg.defs[kV6Dst0 + i] = {RTE_ACL_FIELD_TYPE_MASK, 4, static_cast<uint8_t>(kV6Dst0 + i),
                             static_cast<uint8_t>(6 + i),
                             static_cast<uint32_t>(offsetof(AclInputV6, dst) + 4 * i)};
  }
  cfg.defs[kV6Sport] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV6Sport, 10, offsetof(AclInputV6, sport)};
  cfg.defs[kV6Dport] = {RTE_ACL_FIELD_TYPE_RANGE, 2, kV6Dport, 10, offsetof(AclInputV6, dport)};
  return cfg;
}

void set_common(rte_acl_field* f, const Rule& r) {
  if (r.protocol >= 0) {
    f[0].value.u8 = static_cast<uint8_t>(r.protocol);
    f[0].mask_range.u8 = 0xff;
  }
  switch (r.side) {
    case SideMatch::any:
      break;
    case SideMatch::inside:
      f[1].value.u32 = f[1].mask_range.u32 = kSideBitInside;
      break;
    case SideMatch::outside:
      f[1].value.u32 = f[1].mask_range.u32 = kSideBitOutside;
      break;
  }
}

void set_ports(rte_acl_field& sport, rte_acl_field& dport, const PortRange& s, const PortRange& d) {
  sport.value.u16 = s.lo;
  sport.mask_range.u16 = s.hi;
  dport.value.u16 = d.lo;
  dport.mask_range.u16 = d.hi;
}

// Sets four 32-bit MASK fields from a 128-bit address and prefix.
void set_v6_address(rte_acl_field* f, const Cidr* c) {
  for (int i = 0; i < 4; ++i) {
    if (c == nullptr) continue;  // any
    f[i].value.u32 = load_be32(&c->addr.bytes[4 * i]);
    int bits = c->prefix - 32 * i;
    f[i].mask_range.u32 = static_cast<uint32_t>(bits < 0 ? 0 : bits > 32 ? 32 : bits);
  }
}

// The address lists of one rule restricted to one family. An empty list in
// the rule means "any"; a list with no entry of this family means the rule
// cannot match the family at all (returns false).
bool family_addresses(const std::vector<Cidr>& list, bool v4, std::vector<const Cidr*>* out) {
  out->clear();
  if (list.empty()) {
    out->push_back(nullptr);
    return true;
  }
  for (const Cidr& c : list) {
    if (c.v4 == v4) out->push_back(&c);
  }
  return !out->empty();
}

// How many entries of one family a rule becomes (0: it cannot match the
// family), counted without building them.
uint64_t family_entries(const Rule& r, bool v4) {
  auto addresses = [v4](const std::vector<Cidr>& list) -> uint64_t {
    if (list.empty()) return 1;
    uint64_t n = 0;
    for (const Cidr& c : list) n += c.v4 == v4 ? 1 : 0;
    return n;
  };
  auto ports = [](const std::vector<PortRange>& list) -> uint64_t {
    return list.empty() ? 1 : list.size();
  };
  return addresses(r.src) * addresses(r.dst) * ports(r.src_ports) * ports(r.dst_ports);
}

const std::vector<PortRange>& ports_or_any(const std::vector<PortRange>& p) {
  static const std::vector<PortRange> kAny{PortRange{}};
  return p.empty() ? kAny : p;
}

rte_acl_ctx* create_context(const char* family, size_t rule_size, uint32_t max_rules,
                            std::string* error) {
  static std::atomic<uint32_t> instance{0};
  char name[RTE_ACL_NAMESIZE];
  std::snprintf(name, sizeof name, "hf_acl_%s_%u", family, instance.fetch_add(1));
  rte_acl_param param{};
  param.name = name;
  param.socket_id = SOCKET_ID_ANY;
  param.rule_size = static_cast<uint32_t>(rule_size);
  param.max_rule_num = max_rules;
  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr) *error = std::string("cannot create ACL context: ") + rte_strerror(rte_errno);
  return ctx;
}

template <typename AclRule>
bool build(rte_acl_ctx** out, const char* family, std::vector<AclRule>& acl_rules,
           const rte_acl_config& cfg, std::string* error) {
  if (acl_rules.empty()) return true;
  rte_acl_ctx* ctx =
      create_context(family, sizeof(AclRule), static_cast<uint32_t>(acl_rules.size()), error);
  if (ctx == nullptr) return false;
  int rc = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(acl_rules.data()),
                             static_cast<uint32_t>(acl_rules.size()));
  if (rc == 0) rc = rte_acl_build(ctx, &cfg);
  if (rc != 0) {
    *error = std::string("cannot build ") + family + " rules: " + rte_strerror(-rc);
    rte_acl_free(ctx);
    return false;
  }
  *out = ctx;
  return true;
}

// FNV-1a, 64 bits, over every field that decides a verdict, each list led
// by its length so that no two rule sets run together alike. Not a
// defence against a crafted collision: the rules are the operator's own.
class Digest {
 public:
  template <typename T>
  void add(const T& v) {
    static_assert(std::is_trivially_copyable_v<T> && std::has_unique_object_representations_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    for (size_t i = 0; i < sizeof v; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ULL;
  }
  void add(const std::vector<Cidr>& list) {
    add(static_cast<uint64_t>(list.size()));
    for (const Cidr& c : list) {
      add(c.addr.bytes);
      add(c.prefix);
      add(static_cast<uint8_t>(c.v4));
    }
  }
  void add(const std::vector<PortRange>& list) {
    add(static_cast<uint64_t>(list.size()));
    for (const PortRange& r : list) {
      add(r.lo);
      add(r.hi);
    }
  }
  uint64_t value() const { return h_ != 0 ? h_ : 1; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

uint64_t policy_digest(const std::vector<Rule>& rules, Action default_action) {
  Digest d;
  d.add(Policy::kSemantics);
  d.add(default_action);
  d.add(static_cast<uint64_t>(rules.size()));
  for (const Rule& r : rules) {
    d.add(r.side);
    d.add(static_cast<int32_t>(r.protocol));
    d.add(r.action);
    d.add(r.src);
    d.add(r.dst);
    d.add(r.src_ports);
    d.add(r.dst_ports);
  }
  return d.value();
}

}  // namespace

uint64_t Policy::expansion(const Rule& rule) {
  auto count = [](size_t n) -> uint64_t { return n == 0 ? 1 : n; };
  return count(rule.src.size()) * count(rule.dst.size()) * count(rule.src_ports.size()) *
         count(rule.dst_ports.size());
}

std::unique_ptr<Policy> Policy::compile(std::vector<Rule> rules, Action default_action,
                                        std::string* error) {
  std::unique_ptr<Policy> policy(new Policy());
  policy->rules_ = std::move(rules);
  policy->default_action_ = default_action;
  policy->digest_ = policy_digest(policy->rules_, default_action);

  // Check the total before building anything: a rule set far over the
  // limit would otherwise take gigabytes before being refused.
  uint64_t v4_count = 0;
  uint64_t v6_count = 0;
  for (const Rule& r : policy->rules_) {
    v4_count += family_entries(r, true);
    v6_count += family_entries(r, false);
  }
  if (v4_count + v6_count > kMaxAclRules) {
    *error = "rules expand to " + std::to_string(v4_count + v6_count) +
             " ACL entries, more than the limit of " + std::to_string(kMaxAclRules);
    return nullptr;
  }
  std::vector<AclRuleV4> v4;
  std::vector<AclRuleV6> v6;
  v4.reserve(v4_count);
  v6.reserve(v6_count);
  std::vector<const Cidr*> srcs;
  std::vector<const Cidr*> dsts;
  const auto n = static_cast<uint32_t>(policy->rules_.size());
  for (uint32_t index = 0; index < n; ++index) {
    const Rule& r = policy->rules_[index];
    rte_acl_rule_data data{};
    data.category_mask = 1;
    // First match wins: earlier rules get higher priority.
    data.priority = static_cast<int32_t>(RTE_ACL_MAX_PRIORITY - index);
    data.userdata = index + 1;  // 0 means "no match" to rte_acl
    for (bool is_v4 : {true, false}) {
      if (!family_addresses(r.src, is_v4, &srcs) || !family_addresses(r.dst, is_v4, &dsts)) {
        continue;
      }
      for (const Cidr* s : srcs) {
        for (const Cidr* d : dsts) {
          for (const PortRange& sp : ports_or_any(r.src_ports)) {
            for (const PortRange& dp : ports_or_any(r.dst_ports)) {
              if (is_v4) {
                AclRuleV4 a{};
                a.data = data;
                set_common(a.field, r);
                if (s != nullptr) {
                  a.field[kV4Src].value.u32 = s->addr.v4_host();
                  a.field[kV4Src].mask_range.u32 = s->prefix;
                }
                if (d != nullptr) {
                  a.field[kV4Dst].value.u32 = d->addr.v4_host();
                  a.field[kV4Dst].mask_range.u32 = d->prefix;
                }
                set_ports(a.field[kV4Sport], a.field[kV4Dport], sp, dp);
                v4.push_back(a);
              } else {
                AclRuleV6 a{};
                a.data = data;
                set_common(a.field, r);
                set_v6_address(&a.field[kV6Src0], s);
                set_v6_address(&a.field[kV6Dst0], d);
                set_ports(a.field[kV6Sport], a.field[kV6Dport], sp, dp);
                v6.push_back(a);
              }
            }
          }
        }
      }
    }
  }
  if (!build(&policy->v4_, "v4", v4, config_v4(), error)) return nullptr;
  if (!build(&policy->v6_, "v6", v6, config_v6(), error)) return nullptr;
  return policy;
}

Policy::~Policy() {
  rte_acl_free(v4_);
  rte_acl_free(v6_);
}

namespace {

template <typename P>
void fill_input(const P& p, AclInputV4* in) {
  *in = AclInputV4{};
  in->proto = p.proto;
  in->side = bswap32(p.side == Side::inside ? kSideBitInside : kSideBitOutside);
  std::memcpy(&in->src, &p.src.bytes[12], 4);
  std::memcpy(&in->dst, &p.dst.bytes[12], 4);
  in->sport = bswap16(p.sport);
  in->dport = bswap16(p.dport);
}

template <typename P>
void fill_input(const P& p, AclInputV6* in) {
  *in = AclInputV6{};
  in->proto = p.proto;
  in->side = bswap32(p.side == Side::inside ? kSideBitInside : kSideBitOutside);
  std::memcpy(in->src, p.src.bytes.data(), 16);
  std::memcpy(in->dst, p.dst.bytes.data(), 16);
  in->sport = bswap16(p.sport);
  in->dport = bswap16(p.dport);
}

}  // namespace

Policy::Match Policy::match_of(uint32_t result) const {
  if (result == 0) return {-1, default_action_};
  const int32_t index = static_cast<int32_t>(result - 1);
  return {index, rules_[index].action};
}

template <typename Input, typename At>
void Policy::classify_family(const rte_acl_ctx* ctx, const At& at, uint32_t n, int version,
                             Match* out) const {
  Input in[kMaxBulk];
  const uint8_t* data[kMaxBulk];
  uint32_t results[kMaxBulk];
  uint32_t index[kMaxBulk];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const auto& p = at(i);
    if (p.ip_version != version) continue;
    if (ctx == nullptr) {
      out[i] = match_of(0);
      continue;
    }
    fill_input(p, &in[k]);
    data[k] = reinterpret_cast<const uint8_t*>(&in[k]);
    index[k++] = i;
  }
  if (k == 0) return;
  // One call for the whole burst: rte_acl uses its vector classifiers only
  // for several inputs at a time.
  rte_acl_classify(ctx, data, results, k, 1);
  for (uint32_t j = 0; j < k; ++j) out[index[j]] = match_of(results[j]);
}

void Policy::classify_bulk(const ParsedPacket* const* packets, uint32_t n, Match* out) const {
  const auto at = [packets](uint32_t i) -> const ParsedPacket& { return *packets[i]; };
  classify_family<AclInputV4>(v4_, at, n, 4, out);
  classify_family<AclInputV6>(v6_, at, n, 6, out);
}

void Policy::classify_bulk(const Query* queries, uint32_t n, Match* out) const {
  const auto at = [queries](uint32_t i) -> const Query& { return queries[i]; };
  classify_family<AclInputV4>(v4_, at, n, 4, out);
  classify_family<AclInputV6>(v6_, at, n, 6, out);
}

Policy::Match Policy::classify(const ParsedPacket& p) const {
  const ParsedPacket* one = &p;
  Match m{-1, default_action_};
  classify_bulk(&one, 1, &m);
  return m;
}

}  // namespace holdfast
