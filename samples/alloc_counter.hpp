#pragma once
// Heap allocation counter of the benchmark executables (samples/alloc_counter.cpp): every
// malloc, calloc, realloc, aligned allocation and so every `operator new` of the process, from
// any thread, counted with relaxed atomics. Linked into the bench executables only.

#include <cstdint>

namespace bench {

/// Allocations and bytes requested since the process started.
struct AllocationCount {
    std::uint64_t allocations = 0;
    std::uint64_t bytes = 0;
};

/// Whether this executable counts (false in sanitizer builds, whose runtime owns malloc).
bool allocation_counting() noexcept;

/// The counts so far (zero when not counting).
AllocationCount allocation_count() noexcept;

}  // namespace bench
