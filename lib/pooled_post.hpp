#pragma once
// small_pool::post: asio::post for per-call handlers, their memory from small_pool.

#include "small_pool.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include <type_traits>
#include <utility>

namespace iii::detail::small_pool {

/// asio::post(executor, f) with f's operation from the pool. Posting through an
/// any_io_executor first wraps f in a type-erased function from Asio's two-block per-thread
/// cache (and ignores f's allocator), which posts of different sizes per call keep missing;
/// an io_context executor inside is posted to directly, with the pool as the allocator.
template <class Executor, class F>
void post(const Executor& executor, F&& f) {
    auto handler = asio::bind_allocator(Allocator<void>(), std::forward<F>(f));
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
        using Io = asio::io_context::executor_type;
        using TrackedIo = std::decay_t<decltype(asio::prefer(std::declval<const Io&>(),
                                                             asio::execution::outstanding_work.tracked))>;
        if (const Io* io = executor.template target<Io>()) return asio::post(*io, std::move(handler));
        if (const TrackedIo* io = executor.template target<TrackedIo>()) return asio::post(*io, std::move(handler));
    }
    asio::post(executor, std::move(handler));
}

}  // namespace iii::detail::small_pool
