// A ZMap-style pseudo-random permutation of the probe index space [0, n).
//
// The multiplicative group Z_p* for the smallest prime p > n is cyclic; walking
// it from a seeded start element by repeated multiplication with a seeded
// primitive root visits every element of [1, p-1] exactly once. Elements above
// n are skipped, so the walk enumerates [0, n) (element - 1) in an order that
// depends only on (n, seed): the same on every machine, with O(1) state.
//
// Positions along the cycle are the unit of sharding: shard k of m covers the
// contiguous positions [k*L/m, (k+1)*L/m) of the cycle of length L = p - 1, so
// the shards partition the order and each can be resumed from a position.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace ndo {

// Largest index space ndo accepts; keeps every product below 2^126 in u128.
inline constexpr uint64_t kMaxIndexSpace = uint64_t{1} << 62;

class Permutation {
 public:
  Permutation() = default;
  // InvalidArgument when n exceeds kMaxIndexSpace. n == 0 gives an empty walk.
  static Result<Permutation> Create(uint64_t n, uint64_t seed);

  uint64_t size() const { return n_; }
  uint64_t prime() const { return p_; }
  uint64_t generator() const { return g_; }
  // Number of positions along the cycle (p - 1), or 0 for an empty space.
  uint64_t cycle_length() const { return n_ == 0 ? 0 : p_ - 1; }

  // The group element at a cycle position, pos < cycle_length(). O(log pos).
  uint64_t ElementAt(uint64_t pos) const;
  // The element that follows `element` along the cycle.
  uint64_t Next(uint64_t element) const;
  // The probe index an element stands for, or false when it is skipped (>= n).
  bool IndexOf(uint64_t element, uint64_t& index) const {
    index = element - 1;
    return index < n_;
  }

 private:
  uint64_t n_ = 0, p_ = 2, g_ = 1, start_ = 1;
};

struct PositionRange {
  uint64_t begin = 0;
  uint64_t end = 0;  // exclusive
  uint64_t size() const { return end - begin; }
};

// Shard k of `shards` along a cycle of `cycle_length` positions.
PositionRange ShardPositions(uint64_t k, uint64_t shards, uint64_t cycle_length);

// Deterministic 64-bit mixing (splitmix64), used wherever a seed must give the
// same values on every platform (std:: distributions are not portable).
uint64_t SplitMix64(uint64_t& state);

namespace number_theory {
uint64_t MulMod(uint64_t a, uint64_t b, uint64_t m);
uint64_t PowMod(uint64_t base, uint64_t exp, uint64_t m);
bool IsPrime(uint64_t n);
}  // namespace number_theory

}  // namespace ndo
