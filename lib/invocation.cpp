#include "invocation.hpp"

#include "iii/error.hpp"

#include <algorithm>
#include <cstdlib>

namespace iii {

namespace {
thread_local const InvocationContext* current_invocation = nullptr;
}  // namespace

const InvocationContext* InvocationContext::current() noexcept { return current_invocation; }

namespace detail {

InvocationContext make_invocation_context(const protocol::InvokeFunction& invoke) {
    InvocationContext context;
    context.function_id = invoke.function_id;
    context.invocation_id = invoke.invocation_id;
    context.metadata = invoke.metadata;
    context.traceparent = invoke.traceparent;
    context.baggage = invoke.baggage;
    return context;
}

InvocationScope::InvocationScope(const InvocationContext& context) noexcept
    : saved_(current_invocation) {
    current_invocation = &context;
}

InvocationScope::~InvocationScope() { current_invocation = saved_; }

std::optional<std::string> invocation_namespace(const std::string& function_id,
                                                const std::optional<std::string>& explicit_ns,
                                                const std::optional<std::string>& worker_ns) {
    // engine::* calls stay in `default` unless asked otherwise: a worker in namespace
    // `orders` still reaches the engine's built-ins (iii #2065).
    std::optional<std::string> ns = explicit_ns;
    if (!ns && !function_id.starts_with("engine::")) ns = worker_ns;
    if (ns && *ns == "default") ns.reset();
    return ns;
}

namespace {
bool is_blank(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    });
}
}  // namespace

std::optional<std::string> resolve_worker_namespace(const InitOptions& options) {
    if (options.worker_namespace) {
        if (is_blank(*options.worker_namespace))
            throw Error(Errc::Runtime, "InitOptions::worker_namespace must not be blank");
        return options.worker_namespace;
    }
    const char* env = std::getenv("III_NAMESPACE");
    if (!env) return std::nullopt;
    std::string value(env);
    if (is_blank(value)) throw Error(Errc::Runtime, "$III_NAMESPACE is set but blank");
    return value;
}

}  // namespace detail
}  // namespace iii
