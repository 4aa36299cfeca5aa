// Sizes computed from numbers in model files: a product that overflows int64 is reported, never
// wrapped into a small (and wrong) size.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace bpt {

// The product of non-negative factors; nullopt when a factor is negative or nullopt (an earlier
// overflow), or the product overflows int64.
inline std::optional<int64_t> CheckedProduct(std::initializer_list<std::optional<int64_t>> factors) {
  int64_t product = 1;
  for (const auto& f : factors)
    if (!f || *f < 0 || __builtin_mul_overflow(product, *f, &product)) return std::nullopt;
  return product;
}

// The sum of non-negative terms, with the same rules.
inline std::optional<int64_t> CheckedSum(std::initializer_list<std::optional<int64_t>> terms) {
  int64_t sum = 0;
  for (const auto& t : terms)
    if (!t || *t < 0 || __builtin_add_overflow(sum, *t, &sum)) return std::nullopt;
  return sum;
}

}  // namespace bpt
