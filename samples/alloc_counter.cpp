// The bench executables' allocation counter (alloc_counter.hpp). It interposes glibc's malloc
// family and forwards to glibc's own entry points (__libc_malloc & co.), so every allocation of
// the process is seen: libstdc++'s operator new (and so Asio's, websocketpp's, simdjson's and the
// SDK's) calls malloc, RapidJSON's CrtAllocator calls malloc and realloc directly. No operator
// new is replaced: it would count twice. Frees are not counted: the figure is allocations per
// round trip.
//
// Sanitizer runtimes interpose malloc themselves; there the counter is off and reports zero.

#include "alloc_counter.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define III_BENCH_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define III_BENCH_COUNT_ALLOCATIONS 0
#endif
#endif
#if !defined(III_BENCH_COUNT_ALLOCATIONS) && defined(__GLIBC__)
#define III_BENCH_COUNT_ALLOCATIONS 1
#endif
#ifndef III_BENCH_COUNT_ALLOCATIONS
#define III_BENCH_COUNT_ALLOCATIONS 0
#endif

#if III_BENCH_COUNT_ALLOCATIONS
#include <atomic>
#include <cerrno>
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* pointer, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void* __libc_valloc(std::size_t size);
void* __libc_pvalloc(std::size_t size);
void __libc_free(void* pointer);
}

namespace {

// Constant-initialized: counting works before any constructor runs.
constinit std::atomic<std::uint64_t> allocations{0};
constinit std::atomic<std::uint64_t> bytes{0};

inline void count(std::size_t size) noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(size, std::memory_order_relaxed);
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) {
    count(size);
    return __libc_malloc(size);
}

void* calloc(std::size_t n, std::size_t size) {
    count(n * size);
    return __libc_calloc(n, size);
}

// realloc(nullptr) allocates; a realloc that grows may move, counted as an allocation too
// (it is one for the allocator); realloc(p, 0) frees.
void* realloc(void* pointer, std::size_t size) {
    if (size != 0 || pointer == nullptr) count(size);
    return __libc_realloc(pointer, size);
}

void free(void* pointer) { __libc_free(pointer); }

void* memalign(std::size_t alignment, std::size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count(size);
    void* p = __libc_memalign(alignment, size);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}

void* valloc(std::size_t size) {
    count(size);
    return __libc_valloc(size);
}

void* pvalloc(std::size_t size) {
    count(size);
    return __libc_pvalloc(size);
}

}  // extern "C"

namespace bench {
bool allocation_counting() noexcept { return true; }
AllocationCount allocation_count() noexcept {
    return {allocations.load(std::memory_order_relaxed), bytes.load(std::memory_order_relaxed)};
}
}  // namespace bench

#else

namespace bench {
bool allocation_counting() noexcept { return false; }
AllocationCount allocation_count() noexcept { return {}; }
}  // namespace bench

#endif
