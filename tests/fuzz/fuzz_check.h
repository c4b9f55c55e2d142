// Invariant checks for fuzz targets: print what broke and abort, so both
// libFuzzer and the standalone drivers stop on the input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FERRY_FUZZ_CHECK(cond)                                                                   \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "fuzz invariant violated: %s (%s:%d)\\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)
