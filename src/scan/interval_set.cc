#include "scan/interval_set.h"

#include <algorithm>

namespace ndo {

void IntervalSet::Add(AddressRange r) {
  if (r.first > r.last) std::swap(r.first, r.last);
  std::vector<AddressRange> out;
  out.reserve(ranges_.size() + 1);
  bool placed = false;
  for (const auto& cur : ranges_) {
    // Merge when overlapping or adjacent (careful with the top of the space).
    bool before = cur.last < r.first && cur.last + 1 < r.first;
    bool after = r.last < cur.first && r.last + 1 < cur.first;
    if (before) {
      out.push_back(cur);
    } else if (after) {
      if (!placed) {
        out.push_back(r);
        placed = true;
      }
      out.push_back(cur);
    } else {
      r.first = std::min(r.first, cur.first);
      r.last = std::max(r.last, cur.last);
    }
  }
  if (!placed) out.push_back(r);
  ranges_ = std::move(out);
  Rebuild();
}

void IntervalSet::Add(const IntervalSet& other) {
  for (const auto& r : other.ranges_) Add(r);
}

void IntervalSet::Subtract(const IntervalSet& other) {
  std::vector<AddressRange> out;
  size_t j = 0;
  const auto& cut = other.ranges_;
  for (auto cur : ranges_) {
    while (j < cut.size() && cut[j].last < cur.first) ++j;
    size_t k = j;
    bool alive = true;
    while (alive && k < cut.size() && cut[k].first <= cur.last) {
      if (cut[k].first > cur.first) out.push_back({cur.first, cut[k].first - 1});
      if (cut[k].last >= cur.last) {
        alive = false;
      } else {
        cur.first = cut[k].last + 1;
        ++k;
      }
    }
    if (alive) out.push_back(cur);
  }
  ranges_ = std::move(out);
  Rebuild();
}

bool IntervalSet::Contains(u128 v) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), v,
                             [](u128 x, const AddressRange& r) { return x < r.first; });
  if (it == ranges_.begin()) return false;
  --it;
  return v <= it->last;
}

bool IntervalSet::ContainsRange(AddressRange r) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), r.first,
                             [](u128 x, const AddressRange& a) { return x < a.first; });
  if (it == ranges_.begin()) return false;
  --it;
  // Intervals are non-adjacent, so a contained range lies within a single one.
  return r.first >= it->first && r.last <= it->last;
}

bool IntervalSet::IsSubsetOf(const IntervalSet& outer) const {
  return std::all_of(ranges_.begin(), ranges_.end(), [&](const AddressRange& r) { return outer.ContainsRange(r); });
}

IntervalSet IntervalSet::Minus(const IntervalSet& outer) const {
  IntervalSet copy = *this;
  copy.Subtract(outer);
  return copy;
}

IpAddress IntervalSet::At(u128 index) const {
  auto it = std::upper_bound(prefix_.begin(), prefix_.end(), index);
  size_t i = static_cast<size_t>(it - prefix_.begin()) - 1;
  return IpAddress(ranges_[i].first + (index - prefix_[i]));
}

void IntervalSet::Rebuild() {
  prefix_.resize(ranges_.size());
  size_ = 0;
  for (size_t i = 0; i < ranges_.size(); ++i) {
    prefix_[i] = size_;
    size_ += ranges_[i].size();
  }
}

}  // namespace ndo
