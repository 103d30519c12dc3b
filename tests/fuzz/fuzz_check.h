// What the fuzz targets share: an invariant check that aborts (libFuzzer
// then saves the input as a crash), and the input as a string_view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Aborts with the failed condition (and a detail, e.g. a Status message).
#define FUZZ_CHECK_MSG(cond, detail)                                                              \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s (%s)\n", __FILE__, __LINE__, #cond,     \
                   std::string(detail).c_str());                                                  \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)
#define FUZZ_CHECK(cond) FUZZ_CHECK_MSG(cond, "")

inline std::string_view FuzzInput(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
