// A set of addresses as sorted, disjoint, non-adjacent closed intervals.
// Memory is proportional to the number of intervals, not addresses, so
// "0.0.0.0/0 minus a few exclusions" costs a handful of words.
#pragma once

#include <cstddef>
#include <vector>

#include "scan/ip_address.h"

namespace ndo {

struct AddressRange {
  u128 first = 0;
  u128 last = 0;  // inclusive
  u128 size() const { return last - first + 1; }  // callers never build the full 2^128 range
  friend bool operator==(const AddressRange&, const AddressRange&) = default;
};

class IntervalSet {
 public:
  void Add(AddressRange r);
  void Add(const IntervalSet& other);
  void Subtract(const IntervalSet& other);

  bool Contains(u128 v) const;
  bool ContainsRange(AddressRange r) const;
  // True when every address of this set lies in `outer`.
  bool IsSubsetOf(const IntervalSet& outer) const;
  // The parts of this set that are not in `outer` (for error messages).
  IntervalSet Minus(const IntervalSet& outer) const;

  bool empty() const { return ranges_.empty(); }
  u128 size() const { return size_; }
  const std::vector<AddressRange>& ranges() const { return ranges_; }

  // The index-th address in ascending order; index < size(). O(log intervals).
  IpAddress At(u128 index) const;

 private:
  void Rebuild();  // recomputes prefix sums after a mutation
  std::vector<AddressRange> ranges_;
  std::vector<u128> prefix_;  // prefix_[i] = addresses before ranges_[i]
  u128 size_ = 0;
};

}  // namespace ndo
