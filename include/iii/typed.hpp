#pragma once
// Typed functions: plain C++ functions in, JSON (de)serialization and draft-07 schemas out
// (the reference's RegisterFunction, iii_fn, iii_async_fn and typed trigger).
//
// @code
//   struct GreetInput { std::string name; };
//   III_DESCRIBE(GreetInput, name);
//
//   std::string greet(const GreetInput& in) { return "Hello, " + in.name + "!"; }
//   int add(int a, int b) { return a + b; }
//   asio::awaitable<std::string> fetch(std::string url) { co_return "fetched " + url; }
//
//   auto client = iii::register_worker("ws://localhost:49134");
//   iii::register_function(*client, iii::RegisterFunction("greet", greet)
//                                       .description("Greet someone by name"));  // {"name":"World"}
//   iii::register_function(*client, iii::RegisterFunction("add", add));        // [3, 4]
//   iii::register_function(*client, iii::RegisterFunction("fetch", fetch));    // "https://..."
//   // low-level form, as the reference's (RegisterFunctionMessage, iii_fn(f)):
//   iii::register_function(*client, iii::RegisterFunctionMessage::with_id("greet2"),
//                          iii::iii_fn(greet));
//
//   // Inputs are named first: inside co_await, g++ 12 destroys an aggregate temporary
//   // (GreetInput{"World"}) twice (README, "A GCC 12 pitfall").
//   GreetInput world{"World"};
//   std::string hello = co_await iii::trigger<std::string>(*client, "greet", world);
//   std::tuple args{3, 4};
//   int seven = co_await iii::trigger<int>(*client, "add", args);
// @endcode
//
// ## Mapping from the Rust reference
//
// | Rust                                          | C++                                              |
// | --------------------------------------------- | ------------------------------------------------ |
// | `RegisterFunction::new(id, f)`                | `RegisterFunction(id, f)`, f returns R           |
// | `RegisterFunction::new_async(id, f)`          | `RegisterFunction(id, f)`, f returns awaitable<R>|
// | `.description(d)`, `.metadata(m)`             | the same                                         |
// | `iii.register(reg)`                           | `register_function(client, reg)`                 |
// | `iii.register_function((msg, iii_fn(f)))`     | `register_function(client, msg, iii_fn(f))`      |
// | `iii_async_fn(f)`                             | `iii_async_fn(f)`                                |
// | `Result<R, E>` with `E: Display`              | R; failure is an exception                       |
// | `serde::Deserialize + JsonSchema` derive      | `III_DESCRIBE(T, fields...)` (iii/describe.hpp)  |
// | `serde_json::from_value(iii.trigger(..)?)`    | `co_await trigger<R>(client, id, input)`         |
//
// `new` is a C++ keyword, so there is one constructor; it tells a coroutine (a function returning
// asio::awaitable<R>) from a plain function by the return type.
//
// ## Arity
//
// | parameters | JSON input                 | decoding                                         |
// | ---------- | -------------------------- | ------------------------------------------------ |
// | 0          | ignored                    | none; no request_format is sent                  |
// | 1          | any, e.g. {"name":"World"} | the whole payload as the parameter's type        |
// | N >= 2     | positional array, [3, 4]   | element i as parameter i; exactly N elements     |
//
// A last parameter of type iii::InvocationContext (by value or const&) is not decoded and does
// not count here: it receives the invocation's context (function and invocation ids, the
// metadata a 0.22+ engine forwards, trace context), e.g.
// `std::string greet(const GreetInput& in, const iii::InvocationContext& context)`.
//
// Parameters may be taken by value, const& or && (decoded values are moved in). Results: any
// serializable R, void (the result is null), or asio::awaitable of either. request_format is the
// schema of the parameter type (N >= 2: of std::tuple<params...>, "Tuple_of_int32_and_int32");
// response_format the schema of R (void: {"type":"null"}). Formats already set on a
// RegisterFunctionMessage are kept (as the reference's iii_fn does).
//
// ## Errors
//
// - A payload that does not decode is answered with an error naming the path and what was
//   expected; the caller's trigger throws Error(Errc::Remote) with code "invocation_failed" and
//   that text in its message, e.g. "$.name: expected string".
// - An exception thrown by the function is answered the same way, with its what().
// - A result that does not encode (an enum value without a declared name) likewise.
//
// ## Threading
//
// Typed functions, plain or coroutine, run on the client's executor like every coroutine handler
// (a plain function is called inside the coroutine that decodes its input), so a plain function
// that blocks holds that executor's thread: put blocking work in a `Value(Value)` handler, which
// runs on the blocking-handler pool (README, "Who runs where"). Concurrent invocations call the
// same function object concurrently: a stateful functor must synchronize itself.

#include <iii/client.hpp>
#include <iii/describe.hpp>
#include <iii/json.hpp>
#include <iii/types.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace iii {

/// A function wrapped for the low-level registration, with its schemas (what iii_fn and
/// iii_async_fn return; the reference's IIIFn/IIIAsyncFn). Register it with
/// `register_function(client, RegisterFunctionMessage::with_id("x"), iii_fn(f))`.
struct TypedHandler {
    /// JSON text in, JSON text out; throws for a payload that does not decode.
    RawHandler handler;
    /// Schema of the input; unset for a function without parameters.
    std::optional<Value> request_format;
    /// Schema of the result.
    std::optional<Value> response_format;

    /// Copies the formats into `message` where it has none (the reference's into_parts).
    void fill_formats(RegisterFunctionMessage& message) const {
        if (!message.request_format && request_format) message.request_format = request_format;
        if (!message.response_format && response_format) message.response_format = response_format;
    }
};

namespace detail {

template <class T>
struct awaitable_traits : std::false_type {
    using value_type = T;
};
template <class T, class Executor>
struct awaitable_traits<asio::awaitable<T, Executor>> : std::true_type {
    using value_type = T;
};

/// The signature of a callable with exactly one call operator: function, function pointer,
/// or a class with a non-template operator() (a lambda without auto parameters).
template <class Tuple, class Seq>
struct tuple_prefix;
template <class Tuple, std::size_t... I>
struct tuple_prefix<Tuple, std::index_sequence<I...>> {
    using type = std::tuple<std::tuple_element_t<I, Tuple>...>;
};

/// True when the last of `Args` is an InvocationContext (by value or reference): that
/// parameter receives the invocation's context and is not decoded from the payload.
template <class... Args>
constexpr bool ends_with_context() {
    if constexpr (sizeof...(Args) == 0) {
        return false;
    } else {
        using last = std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>;
        return std::is_same_v<std::remove_cvref_t<last>, InvocationContext>;
    }
}

template <class R, class... Args>
struct signature_base {
    using result = R;
    static constexpr bool takes_context = ends_with_context<Args...>();
    /// The decoded parameters (a trailing InvocationContext excluded).
    static constexpr std::size_t arity = sizeof...(Args) - (takes_context ? 1 : 0);
    using args = typename tuple_prefix<std::tuple<Args...>, std::make_index_sequence<arity>>::type;
};
template <class F, class = void>
struct signature {
    static constexpr bool known = false;
};
template <class R, class... A>
struct signature<R(A...)> : signature_base<R, A...> {
    static constexpr bool known = true;
};
template <class R, class... A>
struct signature<R(A...) noexcept> : signature<R(A...)> {};
template <class R, class... A>
struct signature<R (*)(A...)> : signature<R(A...)> {};
template <class R, class... A>
struct signature<R (*)(A...) noexcept> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...)> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) const> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) noexcept> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) const noexcept> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) &> : signature<R(A...)> {};
template <class C, class R, class... A>
struct signature<R (C::*)(A...) const&> : signature<R(A...)> {};
template <class F>
struct signature<F, std::void_t<decltype(&F::operator())>> : signature<decltype(&F::operator())> {
};

template <class F>
using signature_of = signature<std::remove_cvref_t<F>>;

template <class A>
using param_value_t = std::remove_cvref_t<A>;

/// What the function's parameters decode from: nothing, the parameter's type, or a tuple.
template <class Args>
struct input_of;
template <>
struct input_of<std::tuple<>> {
    using type = void;
};
template <class A>
struct input_of<std::tuple<A>> {
    using type = param_value_t<A>;
};
template <class A, class B, class... Rest>
struct input_of<std::tuple<A, B, Rest...>> {
    using type = std::tuple<param_value_t<A>, param_value_t<B>, param_value_t<Rest>...>;
};

template <class F>
struct typed_function {
    using sig = signature_of<F>;
    static_assert(sig::known,
                  "iii: the function's parameters cannot be deduced: pass a function, a function "
                  "pointer or a lambda without auto parameters");
    using raw_result = typename sig::result;
    static constexpr bool is_async = awaitable_traits<raw_result>::value;
    using result = typename awaitable_traits<raw_result>::value_type;  // R (maybe void)
    using args = typename sig::args;
    static constexpr std::size_t arity = sig::arity;
    static constexpr bool takes_context = sig::takes_context;
    using input = typename input_of<args>::type;

    static_assert(std::is_void_v<input> || Serializable<input>,
                  "iii: a parameter type has no json_traits (use III_DESCRIBE / "
                  "III_DESCRIBE_ENUM, or specialize iii::json_traits)");
    static_assert(std::is_void_v<input> || std::is_default_constructible_v<input>,
                  "iii: parameter types must be default-constructible to be decoded");
    static_assert(std::is_void_v<result> || Serializable<std::remove_cvref_t<result>>,
                  "iii: the result type has no json_traits (use III_DESCRIBE / "
                  "III_DESCRIBE_ENUM, or specialize iii::json_traits)");

    static std::optional<Value> request_format() {
        if constexpr (std::is_void_v<input>)
            return std::nullopt;
        else
            return json_schema<input>();
    }
    static std::optional<Value> response_format() {
        if constexpr (std::is_void_v<result>)
            return json_schema<std::nullptr_t>();
        else
            return json_schema<std::remove_cvref_t<result>>();
    }

    /// Calls f with the decoded input, forwarding each value as its parameter type wants it
    /// (moved into by-value and && parameters, bound to const& ones).
    template <class Tuple, std::size_t... I>
    static decltype(auto) call_positional(F& f, Tuple& in, std::index_sequence<I...>,
                                          const InvocationContext& context) {
        if constexpr (takes_context)
            return f(static_cast<std::tuple_element_t<I, args>&&>(std::get<I>(in))..., context);
        else
            return f(static_cast<std::tuple_element_t<I, args>&&>(std::get<I>(in))...);
    }
    /// Calls f with the decoded input `in` (ignored without parameters) and, when it takes
    /// one, the invocation's context.
    template <class In>
    static decltype(auto) call(F& f, In& in, const InvocationContext& context) {
        if constexpr (arity == 0) {
            if constexpr (takes_context) return f(context);
            else return f();
        } else if constexpr (arity == 1) {
            using A = std::tuple_element_t<0, args>;
            if constexpr (takes_context) return f(static_cast<A&&>(in), context);
            else return f(static_cast<A&&>(in));
        } else {
            return call_positional(f, in, std::make_index_sequence<arity>{}, context);
        }
    }
};

/// Runs one invocation. A free coroutine (not a lambda coroutine) so that its frame owns copies
/// of everything it uses: the shared function and the payload outlive any handler object.
template <class F>
asio::awaitable<std::string> invoke_typed(std::shared_ptr<F> fn, std::string payload,
                                          InvocationContext context) {
    using T = typed_function<F>;
    using input = typename T::input;
    using result = typename T::result;
    F& f = *fn;
    // The decoded input (and the context) live in this frame until the function (maybe a
    // coroutine holding references into them) has finished.
    std::conditional_t<std::is_void_v<input>, std::nullptr_t, input> in{};
    if constexpr (!std::is_void_v<input>) iii::from_json(payload, in);
    if constexpr (T::is_async) {
        if constexpr (std::is_void_v<result>) {
            co_await T::call(f, in, context);
            co_return std::string("null");
        } else {
            co_return iii::to_json(co_await T::call(f, in, context));
        }
    } else {
        if constexpr (std::is_void_v<result>) {
            T::call(f, in, context);
            co_return std::string("null");
        } else {
            co_return iii::to_json(T::call(f, in, context));
        }
    }
}

template <class F>
TypedHandler make_typed_handler(F f) {
    using T = typed_function<F>;
    auto fn = std::make_shared<F>(std::move(f));
    TypedHandler h;
    // Not a coroutine lambda: a lambda coroutine would reach its captures through the
    // std::function, which may be destroyed (unregister) while an invocation still runs.
    // Called while the invocation's scope is current: a function that takes the context gets
    // a copy of it (the others pay nothing).
    h.handler = [fn](std::string payload) {
        InvocationContext context;
        if constexpr (T::takes_context) context = current_invocation_copy();
        return invoke_typed<F>(fn, std::move(payload), std::move(context));
    };
    h.request_format = T::request_format();
    h.response_format = T::response_format();
    return h;
}

}  // namespace detail

/// Wraps a plain function (returning R, not an awaitable) for the low-level registration, with
/// request_format/response_format filled in. See the header comment for the arity rules.
template <class F>
TypedHandler iii_fn(F f) {
    static_assert(!detail::typed_function<F>::is_async,
                  "iii_fn: this function returns asio::awaitable; use iii_async_fn");
    return detail::make_typed_handler(std::move(f));
}

/// Wraps a coroutine (returning asio::awaitable<R>) for the low-level registration.
template <class F>
TypedHandler iii_async_fn(F f) {
    static_assert(detail::typed_function<F>::is_async,
                  "iii_async_fn: this function does not return asio::awaitable; use iii_fn");
    return detail::make_typed_handler(std::move(f));
}

/// One-step registration: id, function, generated schemas, optional description and metadata
/// (the reference's RegisterFunction builder).
///
/// @code
///   iii::register_function(*client, iii::RegisterFunction("greet", greet)
///                                       .description("Greet someone by name")
///                                       .metadata({{"team", "core"}}));
/// @endcode
class RegisterFunction {
public:
    /// `function` is a plain function or a coroutine (told apart by its return type), or a
    /// TypedHandler from iii_fn/iii_async_fn.
    template <class F>
    RegisterFunction(std::string id, F function) {
        message_.id = std::move(id);
        if constexpr (std::is_same_v<std::remove_cvref_t<F>, TypedHandler>)
            handler_ = std::move(function);
        else
            handler_ = detail::make_typed_handler(std::move(function));
        handler_.fill_formats(message_);
    }

    /// Sets the description sent with the registration. Chains.
    RegisterFunction& description(std::string text) & {
        message_.description = std::move(text);
        return *this;
    }
    /// As above, on a temporary.
    RegisterFunction&& description(std::string text) && {
        message_.description = std::move(text);
        return std::move(*this);
    }
    /// Sets the metadata sent with the registration. Chains.
    RegisterFunction& metadata(Value meta) & {
        message_.metadata = std::move(meta);
        return *this;
    }
    /// As above, on a temporary.
    RegisterFunction&& metadata(Value meta) && {
        message_.metadata = std::move(meta);
        return std::move(*this);
    }

    /// The message to send: id, description, metadata and the generated formats.
    const RegisterFunctionMessage& message() const& noexcept { return message_; }
    /// The message, moved out.
    RegisterFunctionMessage message() && noexcept { return std::move(message_); }
    /// The handler on JSON text.
    const RawHandler& handler() const& noexcept { return handler_.handler; }
    /// The handler, moved out.
    RawHandler handler() && noexcept { return std::move(handler_.handler); }

private:
    RegisterFunctionMessage message_;
    TypedHandler handler_;
};

/// Registers a typed function (the reference's `III::register`). Throws as
/// Client::register_raw (Error(Errc::Runtime) for an empty or duplicate id).
inline FunctionRef register_function(Client& client, RegisterFunction reg) {
    RegisterFunctionMessage message = std::move(reg).message();
    return client.register_raw(std::move(message), std::move(reg).handler());
}

/// Registers a function wrapped by iii_fn/iii_async_fn under `message`, filling in the formats
/// the message does not set (the reference's `register_function((message, iii_fn(f)))`).
inline FunctionRef register_function(Client& client, RegisterFunctionMessage message,
                                     TypedHandler handler) {
    handler.fill_formats(message);
    return client.register_raw(std::move(message), std::move(handler.handler));
}

namespace detail {
template <class R>
asio::awaitable<R> typed_trigger(Client& client, std::string function_id, std::string payload,
                                 std::optional<TriggerAction> action,
                                 std::optional<std::uint64_t> timeout_ms) {
    std::string result = co_await client.trigger_raw(std::move(function_id), std::move(payload),
                                                     std::move(action), timeout_ms);
    if constexpr (std::is_void_v<R>)
        co_return;
    else
        co_return iii::from_json<R>(result);
}
}  // namespace detail

/// Typed call: encodes `input` straight into JSON text, invokes `function_id` and decodes the
/// result straight into R (R = void ignores it; R = Value keeps it dynamic). For a function of
/// several parameters pass a std::tuple (`std::tuple{3, 4}` for add(int, int)).
///
/// @code
///   iii::register_function(*client, iii::RegisterFunction("greet", greet));  // as above
///   iii::register_function(*client, iii::RegisterFunction("add", add));
///   GreetInput world{"World"};  // named: not `GreetInput{"World"}` inside co_await (g++ 12)
///   std::string hello = co_await iii::trigger<std::string>(*client, "greet", world);
///   std::tuple args{3, 4};
///   int sum = co_await iii::trigger<int>(*client, "add", args, std::nullopt, 5000);
///   iii::TriggerAction fire_and_forget = iii::Void();
///   co_await iii::trigger<void>(*client, "greet", world, fire_and_forget);
/// @endcode
///
/// `action` and `timeout_ms` are the TriggerRequest options (Void: returns as soon as the frame
/// is queued, the result is null; Enqueue: the result is the receipt {"messageReceiptId": ...}).
///
/// `input` is encoded when trigger() is called, not when the awaitable is awaited, so it need not
/// outlive the call. Pass a named variable all the same: an aggregate temporary inside the
/// `co_await` expression is destroyed twice by g++ 12. An input that does not encode (an enum
/// value without a name, a string that is not UTF-8) throws Error(Errc::Serde) naming its path
/// from the call itself.
/// `client` must outlive the awaitable.
///
/// The awaitable throws what Client::trigger throws (Timeout, Remote with the function's code
/// and message, NotConnected), and Error(Errc::Serde) naming the path when the result does not
/// decode into R. Cancellation: as Client::trigger.
template <class R = Value, class In>
asio::awaitable<R> trigger(Client& client, std::string function_id, const In& input,
                           std::optional<TriggerAction> action = std::nullopt,
                           std::optional<std::uint64_t> timeout_ms = std::nullopt) {
    static_assert(std::is_void_v<R> || Serializable<R>, III_DETAIL_NOT_SERIALIZABLE);
    // Not a coroutine itself: the input is encoded now, so no reference to it is kept.
    return detail::typed_trigger<R>(client, std::move(function_id), iii::to_json(input),
                                    std::move(action), timeout_ms);
}

/// Client::trigger<R>(function_id, input, ...), declared in iii/client.hpp: the same call as
/// iii::trigger<R>(client, ...) above.
template <class R, class In>
asio::awaitable<R> Client::trigger(std::string function_id, const In& input,
                                   std::optional<TriggerAction> action,
                                   std::optional<std::uint64_t> timeout_ms) {
    return iii::trigger<R>(*this, std::move(function_id), input, std::move(action), timeout_ms);
}

}  // namespace iii
