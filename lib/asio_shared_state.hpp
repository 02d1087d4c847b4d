#pragma once
// Force-included (-include) ahead of every translation unit of the SDK libraries.
//
// The libraries are built with -fvisibility=hidden and ASIO_DISABLE_VISIBILITY, so the Asio
// code compiled into them stays private. Asio's process-wide state cannot: Asio is header-only
// and keeps it in function-local and template statics, which must be one object per process,
// shared with the application's own copy of Asio, because the public API hands Asio objects
// across (an application's io_context runs the library's sockets, coroutines cross over):
// - the per-thread call stack (thread_context): which io_context this thread is running.
//   Private copies crash: the application's io_context::run() completes a socket operation of
//   the library, whose copy finds no thread info (null dereference in the epoll reactor);
// - the error categories: error_code compares categories by address, so with a private
//   asio::system_category() an application's `e.code() == asio::error::operation_aborted`
//   would be false for a call it cancelled.
// Declared here first with default visibility, these (and the few classes they are made of)
// are exported as unique symbols; test/install/check_exports.py lists what may be.

#pragma GCC visibility push(default)
#include <asio/detail/call_stack.hpp>
#include <asio/detail/thread_context.hpp>
#include <asio/detail/tss_ptr.hpp>
#include <asio/error.hpp>
#include <asio/error_code.hpp>
#pragma GCC visibility pop
