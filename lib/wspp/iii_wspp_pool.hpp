#pragma once
// Recycled websocketpp messages, for the corrected copy of message_buffer/alloc.hpp that
// tools/fix_websocketpp.py writes at configure time.
//
// websocketpp 0.8.2's connection message manager allocates a new message (make_shared) and a
// new payload buffer for every frame read, every message sent and every frame prepared for the
// wire. The corrected con_msg_manager hands out messages from this pool instead. The pool keeps
// one shared_ptr to each of its messages and hands out copies; a message whose only owner is the
// pool again (use_count() == 1) is free, payload capacity kept. So giving a message back costs
// nothing beyond the shared_ptr release websocketpp does anyway: no custom deleter, no control
// block per use, and a message may outlive its pool (it is then simply freed by its last owner).
// Self-contained and websocketpp-free: `Message` is websocketpp's message template, used
// through its setters.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace iii::detail::wspp {

template <class Message>
class MessagePool {
public:
    /// A message for `manager` (websocketpp's con_msg_manager pointer), reset as websocketpp's
    /// constructors leave a new one: not prepared, fin, not terminal, not compressed, no header,
    /// empty payload with at least `reserve` bytes of capacity, `opcode` when given.
    /// Thread-safe: websocketpp sends from the caller's thread and reads on its io thread.
    template <class ManagerPtr, class... Opcode>
    std::shared_ptr<Message> get(const ManagerPtr& manager, std::size_t reserve, Opcode... opcode) {
        // A message too big to keep is not pooled at all: the pool would hold its buffer until
        // the message was handed out again, which may be never (after one 64 MiB frame).
        if (reserve > max_kept_capacity) {
            if constexpr (sizeof...(Opcode) == 1) return std::make_shared<Message>(manager, opcode..., reserve);
            else return std::make_shared<Message>(manager);
        }
        std::shared_ptr<Message> m = take(reserve);
        if (m) {
            m->set_prepared(false);
            m->set_fin(true);
            m->set_terminal(false);
            m->set_compressed(false);
            m->set_header(std::string());
            std::string& payload = m->get_raw_payload();
            if (payload.capacity() > max_kept_capacity) std::string().swap(payload);
            payload.clear();
            payload.reserve(reserve);
            (m->set_opcode(opcode), ...);
            return m;
        }
        if constexpr (sizeof...(Opcode) == 1) m = std::make_shared<Message>(manager, opcode..., reserve);
        else m = std::make_shared<Message>(manager);
        std::lock_guard lock(mutex_);
        if (messages_.size() < large_slots || (messages_.size() < max_messages && fits_small(reserve)))
            messages_.push_back(m);
        return m;
    }

private:
    // With calls pipelined, websocketpp's send queue holds a message per call in flight (64 in
    // the bench; those beyond the bound are plain allocations). Buffers above max_kept_capacity
    // (a channel's 64 KiB frames fit) are not kept. Only the first large_slots messages serve
    // any size; the others serve known sizes up to small_capacity, and drop a buffer that grew.
    static constexpr std::size_t max_messages = 64;
    static constexpr std::size_t large_slots = 16;
    static constexpr std::size_t small_capacity = 4 * 1024;
    static constexpr std::size_t max_kept_capacity = 80 * 1024;

    // Whether the message in slot i is free: only the pool owns it, and only the pool (under
    // mutex_) hands out new owners, so it stays free. The last other owner's release
    // happens-before this read (release decrement, then the acquire fence): its last uses of
    // the message are over.
    bool free_at(std::size_t i) const {
        if (messages_[i].use_count() != 1) return false;
        std::atomic_thread_fence(std::memory_order_acquire);
        return true;
    }
    static bool fits_small(std::size_t reserve) { return reserve > 0 && reserve <= small_capacity; }
    std::shared_ptr<Message> take(std::size_t reserve) {
        std::lock_guard lock(mutex_);
        // The large slots first fit from the front, as websocketpp's few live messages come
        // and go: a big buffer left idle there is found, and dropped, by the next message.
        const std::size_t count = messages_.size();
        const std::size_t large = count < large_slots ? count : large_slots;
        for (std::size_t i = 0; i < large; ++i)
            if (free_at(i)) return messages_[i];
        if (!fits_small(reserve) || count == large) return nullptr;
        // The small slots (pipelined sends) from the one after the last taken: messages come
        // back in about the order they went out, so the first looked at is usually free.
        const std::size_t small = count - large;
        for (std::size_t n = 0; n < small; ++n) {
            const std::size_t i = large + (next_small_ + n) % small;
            if (!free_at(i)) continue;
            next_small_ = i + 1 - large;
            // One that grew in use lets go of it.
            if (messages_[i]->get_raw_payload().capacity() > small_capacity)
                std::string().swap(messages_[i]->get_raw_payload());
            return messages_[i];
        }
        return nullptr;
    }
    std::mutex mutex_;
    std::vector<std::shared_ptr<Message>> messages_;
    std::size_t next_small_ = 0;  // where take() starts looking among the small slots
};

}  // namespace iii::detail::wspp
