#include "dataplane/flow_table.h"

#include <rte_malloc.h>

#include <cstdio>
#include <cstdlib>

namespace holdfast::table_detail {

void* alloc(size_t bytes, int socket) {
  return rte_zmalloc_socket("hf_table", bytes, 64, socket);
}
void release(void* p) {
  rte_free(p);
}

void inconsistent(uint32_t index) {
  std::fprintf(stderr, "holdfast: table inconsistent: entry %u is not in its buckets\n", index);
  std::abort();
}

}  // namespace holdfast::table_detail
