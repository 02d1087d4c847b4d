#pragma once
// The masking keys of our client endpoints (websocketpp's `rng_type` policy).
//
// websocketpp's client configuration draws every frame's masking key from std::random_device,
// which libstdc++ implements with the RDSEED instruction where the CPU has it. On virtual CPUs
// where RDSEED is starved, each draw retries it about a hundred times: measured on a 2-core
// AMD EPYC VM, a fifth of all CPU time of the benchmark and a ceiling of ~21k calls/s with 64
// in flight for any websocketpp client, SDK or not. RFC 6455 5.3 asks for keys from a strong
// source of entropy: these come from the kernel's CSPRNG too (getrandom), 4 KiB per system call.

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <random>

namespace iii::detail::wspp {

/// websocketpp `rng_type`: `int_type operator()()`, safe from any thread (the endpoint's
/// connections share one).
template <class IntType, class Concurrency>
class MaskKeys {
public:
    IntType operator()() {
        typename Concurrency::scoped_lock_type guard(lock_);
        if (used_ + sizeof(IntType) > pool_.size()) refill();
        IntType key;
        std::memcpy(&key, pool_.data() + used_, sizeof key);
        used_ += sizeof key;
        return key;
    }

private:
    void refill() {
        std::size_t filled = 0;
        while (filled < pool_.size()) {
            const ssize_t n = getrandom(pool_.data() + filled, pool_.size() - filled, 0);
            if (n > 0) {
                filled += static_cast<std::size_t>(n);
            } else if (n < 0 && errno != EINTR) {
                // No getrandom (a very old kernel or a sandbox): the slow source, still strong.
                std::random_device device;
                for (; filled < pool_.size(); ++filled) pool_[filled] = static_cast<unsigned char>(device());
            }
        }
        used_ = 0;
    }

    std::array<unsigned char, 4096> pool_{};
    std::size_t used_ = pool_.size();  // empty: the first draw fills it
    typename Concurrency::mutex_type lock_;
};

}  // namespace iii::detail::wspp
