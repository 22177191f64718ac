#include "dataplane/flow_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace holdfast::table_detail {

rte_hash* create_hash(const char* prefix, uint32_t capacity, uint32_t key_len, int socket,
                      std::string* error) {
  static std::atomic<uint32_t> instance{0};
  char name[RTE_HASH_NAMESIZE];
  std::snprintf(name, sizeof name, "hf_%.12s_%u", prefix, instance.fetch_add(1));
  rte_hash_parameters params{};
  params.name = name;
  params.entries = capacity;
  params.key_len = key_len;
  params.hash_func = rte_hash_crc;
  params.hash_func_init_val = kHashSeed;  // hash() computes the same
  params.socket_id = socket;
  // The extendable bucket table lets every one of `capacity` keys in,
  // whatever the collisions: a firewall must not refuse connections at 90%.
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  rte_hash* h = rte_hash_create(&params);
  if (h == nullptr) {
    *error = std::string("cannot create ") + prefix + " table for " + std::to_string(capacity) +
             " entries: " + rte_strerror(rte_errno);
  }
  return h;
}

void* alloc_entries(size_t bytes, int socket) {
  return rte_zmalloc_socket("hf_entries", bytes, 64, socket);
}
void free_entries(void* p) {
  rte_free(p);
}
void free_hash(rte_hash* h) {
  rte_hash_free(h);
}

void lookup_bulk(const rte_hash* h, const void** keys, const uint32_t* hashes, uint32_t n,
                 int32_t* positions) {
  rte_hash_lookup_with_hash_bulk(h, keys, const_cast<hash_sig_t*>(hashes), n, positions);
}
int32_t lookup(const rte_hash* h, const void* key, uint32_t hash) {
  const int32_t pos = rte_hash_lookup_with_hash(h, key, hash);
  return pos >= 0 ? pos : -1;
}
int32_t add(rte_hash* h, const void* key, uint32_t hash) {
  return rte_hash_add_key_with_hash(h, key, hash);
}
int32_t del(rte_hash* h, const void* key) {
  return rte_hash_del_key(h, key);
}

void inconsistent(uint32_t index, int32_t hash_says) {
  std::fprintf(stderr, "holdfast: table inconsistent at entry %u (hash says %d)\n", index,
               hash_says);
  std::abort();
}

}  // namespace holdfast::table_detail
