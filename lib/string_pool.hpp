#pragma once
// Frame buffers handed around instead of freed: an outgoing frame is encoded into a buffer
// taken from here and given back once the transport has copied it; an incoming frame's buffer
// is swapped with one from here (so the transport's message keeps a buffer for its next read)
// and given back after the frame was handled. Thread-safe (callers encode on their threads, the
// strand sends and decodes). Bounded: at most `max_count` buffers of at most `max_capacity`
// bytes each are kept; others are simply freed.

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace iii::detail {

class StringPool {
public:
    static constexpr std::size_t max_count = 64;
    static constexpr std::size_t max_capacity = 16 * 1024;

    StringPool() { free_.reserve(max_count); }

    /// An empty string, with the capacity of one given back earlier when there is one.
    std::string take() {
        std::lock_guard lock(mutex_);
        if (free_.empty()) return {};
        std::string s = std::move(free_.back());
        free_.pop_back();
        return s;
    }

    /// Keeps `s`'s buffer for a later take() (or frees it, see the bounds).
    void give(std::string&& s) noexcept {
        if (s.capacity() <= sso_capacity || s.capacity() > max_capacity) return;
        s.clear();
        std::lock_guard lock(mutex_);
        if (free_.size() < max_count) free_.push_back(std::move(s));  // reserved: no allocation
    }

private:
    static inline const std::size_t sso_capacity = std::string().capacity();
    std::mutex mutex_;
    std::vector<std::string> free_;
};

}  // namespace iii::detail
