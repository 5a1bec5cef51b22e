// Numbers cross into JS as doubles, which hold every integer up to 2**53 - 1 exactly: the
// bound for tokens, and the stand-in for "unlimited" in fd limits.
#pragma once

#include <cstdint>

namespace mob {

inline constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

}  // namespace mob
