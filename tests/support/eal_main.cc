// main() for the unit tests: DPDK libraries need an initialised EAL.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "dataplane/eal.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::string error;
  if (!holdfast::init_eal_without_devices("holdfast-unit-tests", 512, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
