#pragma once
// The send queue of websocketpp's connection, for the corrected copy of connection.hpp that
// tools/fix_websocketpp.py writes at configure time (--fast-frames).
//
// websocketpp 0.8.2 queues outgoing messages in a std::queue, a std::deque: as messages pass
// through it, the deque frees its front block and allocates a new back block every 32 pushes
// (512-byte blocks of 16-byte shared_ptrs), so even a queue that never holds more than one
// message allocates once per 32 sends. This ring keeps its slots instead. It has the part of
// std::queue's interface that websocketpp uses. Self-contained and websocketpp-free.

#include <cstddef>
#include <utility>
#include <vector>

namespace iii::detail::wspp {

template <class T>
class RingQueue {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    /// Slots allocated (what the queue holds on to).
    std::size_t capacity() const noexcept { return slots_.size(); }

    T& front() noexcept { return slots_[head_]; }
    const T& front() const noexcept { return slots_[head_]; }

    void push(const T& value) { emplace(value); }
    void push(T&& value) { emplace(std::move(value)); }

    /// Removes the front element and destroys what it held at once (a message and its
    /// payload must not live on in a free slot).
    void pop() noexcept {
        slots_[head_] = T();
        head_ = (head_ + 1) & (slots_.size() - 1);
        --size_;
        // A burst that grew the ring is not kept once the queue has drained.
        if (size_ == 0 && slots_.size() > kept_slots) std::vector<T>().swap(slots_);
        if (size_ == 0) head_ = 0;
    }

    /// Slots kept when the queue is empty: a connection keeps at most this much (16 bytes
    /// each for websocketpp's message_ptr) between bursts.
    static constexpr std::size_t kept_slots = 64;

private:
    template <class U>
    void emplace(U&& value) {
        if (size_ == slots_.size()) grow();
        slots_[(head_ + size_) & (slots_.size() - 1)] = std::forward<U>(value);
        ++size_;
    }

    // Doubles the ring (always a power of two, so an index wraps with a mask), front first.
    void grow() {
        std::vector<T> bigger(slots_.empty() ? 8 : slots_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
        slots_.swap(bigger);
        head_ = 0;
    }

    std::vector<T> slots_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace iii::detail::wspp
