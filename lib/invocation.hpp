#pragma once
// The 0.22/0.23 extras of an invocation, for the connection core: the context a handler reads
// (InvocationContext), and the namespace an outbound call is sent to.
//
// Used by lib/connection.cpp:
// - inbound `invokefunction` (Connection::run_handler): make_invocation_context(invoke), and an
//   InvocationScope around the *synchronous* call of the handler (the call that returns the
//   awaitable, the whole blocking handler, the raw handler's call), never across a co_await;
// - outbound call (Connection::invoke): `metadata` and `namespace` =
//   invocation_namespace(function_id, TriggerRequest::function_namespace, worker namespace).

#include "iii/options.hpp"
#include "iii/types.hpp"
#include "protocol.hpp"

#include <optional>
#include <string>

namespace iii::detail {

/// The context of an inbound invocation (function id, invocation id, metadata, trace context).
InvocationContext make_invocation_context(const protocol::InvokeFunction& invoke);

/// Makes `context` what InvocationContext::current() returns on this thread while it lives
/// (nested scopes restore the outer one). The context must outlive the scope.
class InvocationScope {
public:
    explicit InvocationScope(const InvocationContext& context) noexcept;
    ~InvocationScope();
    InvocationScope(const InvocationScope&) = delete;
    InvocationScope& operator=(const InvocationScope&) = delete;

private:
    const InvocationContext* saved_;
};

/// The `namespace` of an outbound `invokefunction`: `explicit_ns` when set, else nothing for
/// `engine::*` ids (the engine's built-ins live in `default`), else the worker's namespace.
/// `default` is never written (absent means default).
std::optional<std::string> invocation_namespace(const std::string& function_id,
                                                const std::optional<std::string>& explicit_ns,
                                                const std::optional<std::string>& worker_ns);

/// The worker's namespace: InitOptions::worker_namespace, else $III_NAMESPACE, else none.
/// Throws Error(Errc::Runtime) for a blank one (empty or whitespace only), naming its source.
std::optional<std::string> resolve_worker_namespace(const InitOptions& options);

}  // namespace iii::detail
