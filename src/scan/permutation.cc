#include "scan/permutation.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "scan/ip_address.h"

namespace ndo {
namespace number_theory {

uint64_t MulMod(uint64_t a, uint64_t b, uint64_t m) { return static_cast<uint64_t>(static_cast<u128>(a) * b % m); }

uint64_t PowMod(uint64_t base, uint64_t exp, uint64_t m) {
  uint64_t result = 1 % m;
  base %= m;
  while (exp > 0) {
    if (exp & 1) result = MulMod(result, base, m);
    base = MulMod(base, base, m);
    exp >>= 1;
  }
  return result;
}

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t p : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}) {
    if (n % p == 0) return n == p;
  }
  uint64_t d = n - 1;
  int r = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++r;
  }
  // These bases make Miller-Rabin deterministic for all 64-bit n.
  for (uint64_t a : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}) {
    uint64_t x = PowMod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int i = 1; i < r && composite; ++i) {
      x = MulMod(x, x, n);
      if (x == n - 1) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

namespace {

// Pollard's rho (Brent's variant) for a non-trivial factor of composite n.
uint64_t RhoFactor(uint64_t n) {
  if (n % 2 == 0) return 2;
  for (uint64_t c = 1;; ++c) {
    uint64_t y = 2, x = 2, q = 1, g = 1, ys = 2;
    const uint64_t m = 128;
    auto f = [&](uint64_t v) { return (MulMod(v, v, n) + c) % n; };
    for (uint64_t r = 1; g == 1; r <<= 1) {
      x = y;
      for (uint64_t i = 0; i < r; ++i) y = f(y);
      for (uint64_t k = 0; k < r && g == 1; k += m) {
        ys = y;
        for (uint64_t i = 0; i < std::min(m, r - k); ++i) {
          y = f(y);
          q = MulMod(q, x > y ? x - y : y - x, n);
        }
        g = std::gcd(q, n);
      }
    }
    if (g == n) {
      do {
        ys = f(ys);
        g = std::gcd(x > ys ? x - ys : ys - x, n);
      } while (g == 1);
    }
    if (g != n) return g;
  }
}

void PrimeFactors(uint64_t n, std::vector<uint64_t>& out) {
  if (n == 1) return;
  for (uint64_t p = 2; p < 1000 && p * p <= n; ++p) {
    if (n % p == 0) {
      out.push_back(p);
      while (n % p == 0) n /= p;
    }
  }
  if (n == 1) return;
  if (IsPrime(n)) {
    out.push_back(n);
    return;
  }
  uint64_t d = RhoFactor(n);
  PrimeFactors(d, out);
  PrimeFactors(n / d, out);
}

}  // namespace
}  // namespace number_theory

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Result<Permutation> Permutation::Create(uint64_t n, uint64_t seed) {
  using namespace number_theory;
  if (n > kMaxIndexSpace) return Status::InvalidArgument("scan too large: more than 2^62 probes");
  Permutation perm;
  perm.n_ = n;
  if (n == 0) return perm;
  uint64_t p = n + 1;
  while (!IsPrime(p)) ++p;
  perm.p_ = p;
  if (p == 2) return perm;  // the trivial group {1}

  std::vector<uint64_t> factors;
  PrimeFactors(p - 1, factors);
  std::sort(factors.begin(), factors.end());
  factors.erase(std::unique(factors.begin(), factors.end()), factors.end());

  uint64_t state = seed;
  for (;;) {
    uint64_t g = 2 + SplitMix64(state) % (p - 2);  // in [2, p-1]
    if (p == 3) g = 2;
    bool primitive = std::all_of(factors.begin(), factors.end(),
                                 [&](uint64_t q) { return PowMod(g, (p - 1) / q, p) != 1; });
    if (primitive) {
      perm.g_ = g;
      break;
    }
  }
  perm.start_ = 1 + SplitMix64(state) % (p - 1);  // in [1, p-1]
  return perm;
}

uint64_t Permutation::ElementAt(uint64_t pos) const {
  return number_theory::MulMod(start_, number_theory::PowMod(g_, pos, p_), p_);
}

uint64_t Permutation::Next(uint64_t element) const { return number_theory::MulMod(element, g_, p_); }

PositionRange ShardPositions(uint64_t k, uint64_t shards, uint64_t cycle_length) {
  auto cut = [&](uint64_t i) { return static_cast<uint64_t>(static_cast<u128>(cycle_length) * i / shards); };
  return {cut(k), cut(k + 1)};
}

}  // namespace ndo
