#pragma once
// Recycled memory for the objects every call creates and destroys (the caller's completion
// state, the core's pending-table and deadline nodes): blocks of a few size classes, kept in a
// bounded free list per thread. A call allocates on the caller's thread and frees on the
// strand's; both are the io thread in the common single-threaded setup, so steady-state calls
// reuse the same blocks and reach malloc only while the number in flight grows. A block freed
// on another thread goes to that thread's list (or back to the heap when the list is full), so
// nothing is shared between threads and nothing is locked. Memory stays bounded: at most
// `max_cached` blocks per class and thread, released when the thread ends.

#include <cstddef>
#include <memory>
#include <new>

namespace iii::detail::small_pool {

inline constexpr std::size_t granularity = 64;
inline constexpr std::size_t classes = 8;  // 64, 128, ..., 512 bytes
inline constexpr std::size_t max_size = granularity * classes;
inline constexpr std::size_t max_cached = 256;

struct Cache {
    struct Block {
        Block* next;
    };
    Block* free[classes] = {};
    std::size_t count[classes] = {};
    ~Cache();
};

// Trivially destructible, so it is still readable while other thread-locals are destroyed
// after the cache: blocks freed then go back to the heap.
inline thread_local bool cache_gone = false;
inline thread_local Cache cache;

inline Cache::~Cache() {
    cache_gone = true;
    for (std::size_t c = 0; c < classes; ++c)
        while (Block* b = free[c]) {
            free[c] = b->next;
            ::operator delete(static_cast<void*>(b));
        }
}

constexpr std::size_t class_of(std::size_t size) noexcept { return (size + granularity - 1) / granularity - 1; }

/// A block of at least `size` bytes (aligned as ::operator new aligns); ::operator new beyond
/// max_size.
inline void* allocate(std::size_t size) {
    if (size == 0 || size > max_size || cache_gone) return ::operator new(size);
    const std::size_t c = class_of(size);
    if (Cache::Block* b = cache.free[c]) {
        cache.free[c] = b->next;
        --cache.count[c];
        return b;
    }
    return ::operator new((c + 1) * granularity);
}

/// Gives back a block from allocate(size) (any thread).
inline void deallocate(void* p, std::size_t size) noexcept {
    if (p == nullptr) return;
    if (size == 0 || size > max_size || cache_gone) {
        ::operator delete(p);
        return;
    }
    const std::size_t c = class_of(size);
    if (cache.count[c] >= max_cached) {
        ::operator delete(p);
        return;
    }
    auto* b = static_cast<Cache::Block*>(p);
    b->next = cache.free[c];
    cache.free[c] = b;
    ++cache.count[c];
}

/// An allocator over the pool for single objects and nodes (std::allocate_shared, node-based
/// containers); arrays (a hash table's buckets) come from ::operator new. Stateless: any two
/// compare equal.
template <class T>
struct Allocator {
    using value_type = T;
    Allocator() noexcept = default;
    template <class U>
    Allocator(const Allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned types are not pooled");
        if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
        return static_cast<T*>(small_pool::allocate(sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n != 1) {
            ::operator delete(static_cast<void*>(p));
            return;
        }
        small_pool::deallocate(p, sizeof(T));
    }
    template <class U>
    bool operator==(const Allocator<U>&) const noexcept {
        return true;
    }
};

/// Destroys and gives back what make_box() made.
template <class T>
struct BoxDeleter {
    void operator()(T* p) const noexcept {
        p->~T();
        deallocate(p, sizeof(T));
    }
};
/// A pooled T that moves as one pointer (for objects handed along a call's path).
template <class T>
using Box = std::unique_ptr<T, BoxDeleter<T>>;

template <class T, class... Args>
Box<T> make_box(Args&&... args) {
    void* block = allocate(sizeof(T));
    try {
        return Box<T>(::new (block) T(std::forward<Args>(args)...));
    } catch (...) {
        deallocate(block, sizeof(T));
        throw;
    }
}

}  // namespace iii::detail::small_pool
