#pragma once
// The wire messages of spec section 2, in both directions, shared by the SDK and the test
// engine. Decoding uses simdjson on-demand (the hot path); encoding uses RapidJSON's Writer into
// a buffer that is reused across messages.

#include "iii/error.hpp"
#include "iii/json.hpp"
#include "iii/types.hpp"
#include "invocation_id.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace iii::detail::protocol {

struct RegisterFunction {
    RegisterFunctionMessage message;
};
struct UnregisterFunction {
    std::string id;
};
struct RegisterTriggerType {
    std::string id;
    std::string description;
    std::optional<Value> trigger_request_format;
    std::optional<Value> call_request_format;
    /// 0.23 `namespace`: where the type is filed; absent = the connection's namespace.
    std::optional<std::string> ns{};
};
/// Unknown to the 0.10 engine (it drops the frame); sent anyway, as both reference SDKs do.
struct UnregisterTriggerType {
    std::string id;
};
struct RegisterTrigger {
    std::string id;
    std::string trigger_type;
    std::string function_id;
    Value config;  // null allowed
    std::optional<Value> metadata;
    /// 0.23 `namespace`: the bound function's namespace; absent = `default`.
    std::optional<std::string> ns{};
    /// 0.23 `trigger_namespace`: where the type's provider is; absent = the connection's
    /// namespace, then `default`.
    std::optional<std::string> trigger_namespace{};
};
struct UnregisterTrigger {
    std::string id;
    std::optional<std::string> trigger_type;
};
struct TriggerRegistrationResult {
    std::string id;
    std::string trigger_type;
    std::string function_id;
    std::optional<RemoteError> error;
};
struct InvokeFunction {
    /// Canonical lower-case hyphenated UUID. Encoded as JSON null when absent (Rust's form).
    std::optional<std::string> invocation_id;
    std::string function_id;
    Value data;  // key always present on the wire
    std::optional<std::string> traceparent;
    std::optional<std::string> baggage;
    std::optional<TriggerAction> action;
    /// 0.22+: the invocation's metadata (a trigger binding's, or the caller's
    /// TriggerRequest::metadata); the engine forwards it to the callee.
    std::optional<Value> metadata;
    /// 0.23 `namespace` (worker to engine): the callee's namespace; absent = `default`. The
    /// engine never sets it toward a worker.
    std::optional<std::string> ns{};
};
struct InvocationResult {
    std::string invocation_id;
    std::string function_id;
    /// Absent, or present (possibly null). Encoded only when set; `error` wins when both are.
    std::optional<Value> result;
    std::optional<RemoteError> error;
    std::optional<std::string> traceparent;
    std::optional<std::string> baggage;
};
struct RegisterService {
    RegisterServiceMessage message;
};
struct Ping {};
struct Pong {};
struct WorkerRegistered {
    std::string worker_id;
    std::optional<std::string> reattach_token;  // HEAD engines
};
/// `{"type":"error","error":{...}}`: the engine's admission failure, outside the message enum.
struct EngineError {
    RemoteError error;
};
/// HEAD engines' `registrationrejected`; decoded so that it is logged, not treated as garbage.
struct RegistrationRejected {
    std::string code;
    std::optional<std::string> function_id;
    std::optional<std::string> owner_worker_id;
};

using Message = std::variant<RegisterFunction, UnregisterFunction, RegisterTriggerType,
                             UnregisterTriggerType, RegisterTrigger, UnregisterTrigger,
                             TriggerRegistrationResult, InvokeFunction, InvocationResult,
                             RegisterService, Ping, Pong, WorkerRegistered, EngineError,
                             RegistrationRejected>;

/// Why a frame did not decode, and whatever could still be read from it, so that the caller
/// waiting on `invocation_id` can be failed with Errc::Serde instead of timing out.
struct DecodeFailure {
    std::string reason;                        // e.g. "invocationresult: missing field `function_id`"
    std::string type;                          // the `type` field when readable, else empty
    std::optional<std::string> invocation_id;  // canonical, when readable
};

/// Decodes one frame. Not thread-safe: one Decoder per connection.
class Decoder {
public:
    Decoder();
    ~Decoder();
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    /// Fills `out` and returns true, or fills `failure` and returns false for invalid JSON, a
    /// non-object, an unknown `type`, a missing required field, a wrong-typed field, or an
    /// invocation id that is not a UUID. Unknown fields are ignored; optional fields may be
    /// absent or null.
    bool decode(std::string_view frame, Message& out, DecodeFailure& failure);
    /// Hands back the storage of a finished invocation (its payload or result, its id, its
    /// traceparent) for the next invokefunction decoded: its `data` is parsed into that value
    /// in place and its id and traceparent written into those strings, so a steady stream of
    /// same-shaped calls allocates none of them. Keeps up to 64 of each (the calls in flight
    /// one read delivers), no value holding more than recycled_value_bytes, values of at most
    /// 256 KiB in all, and no string too small or too big for an id or a traceparent. True when
    /// anything was kept.
    bool recycle(Value payload, std::string invocation_id, std::optional<std::string> traceparent = std::nullopt);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Encodes messages. Not thread-safe: one Encoder per writer.
class Encoder {
public:
    Encoder();
    ~Encoder();
    Encoder(const Encoder&) = delete;
    Encoder& operator=(const Encoder&) = delete;

    /// Compact JSON of `message` with `type` first; optional fields omitted when unset (except
    /// invokefunction's `invocation_id`, written as null). The view stays valid until the next
    /// call on this Encoder.
    ///
    /// UTF-8 rule (README, Reliability): a string or key that is not valid UTF-8 is never sent.
    /// Throws Error(Errc::Serde, "cannot encode invokefunction: $.data.name: string is not valid
    /// UTF-8 (invalid byte at offset 3)") naming the path in the frame; the Encoder stays
    /// usable. Replies never throw for it, so the caller is always answered: an
    /// InvocationResult (or TriggerRegistrationResult) that cannot be encoded is encoded as an
    /// error reply instead: the handler's own error with invalid bytes replaced by U+FFFD, or
    /// `invocation_failed` "the result of <function> cannot be sent: <path>: ...".
    std::string_view encode(const Message& message);
    /// The same for the per-call messages, without copying them (payload and result
    /// included) into a Message first.
    std::string_view encode(const InvokeFunction& message);
    std::string_view encode(const InvocationResult& message);
    /// An invokefunction with `invocation_id` written instead of message.invocation_id (the
    /// caller's ids are InvocationIds, not strings).
    std::string_view encode(const InvokeFunction& message, std::string_view invocation_id);

private:
    std::string_view encode_invoke(const InvokeFunction& message, const std::string_view* invocation_id);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Throws what Encoder::encode() would throw for `message` (Errc::Serde for a string that is not
/// valid UTF-8), so that a registration is refused when it is made rather than when it is
/// replayed on the connection's strand. Thread-safe (uses a per-thread Encoder).
void check_encodable(const Message& message);

/// Accepts any UUID form (hyphenated, 32 hex digits, braced, `urn:uuid:`; any case) and
/// returns the canonical lower-case hyphenated form, or nullopt.
std::optional<std::string> canonical_uuid(std::string_view text);

/// A random (version 4) UUID in canonical form.
std::string new_uuid();
/// The same as an InvocationId (no allocation).
InvocationId new_invocation_id();
/// Writes a fresh random v4 UUID's 36 characters (canonical form) to `out`.
void write_uuid(char* out);

/// The `type` string of a message ("invokefunction", ...).
const char* type_name(const Message& message) noexcept;

/// The data of the `engine::workers::register` call: runtime, version, name, os, pid?,
/// telemetry?, and the 0.22+ `description` and `isolation` and the 0.23 `namespace`, each only
/// when set (older engines ignore unknown fields).
Value worker_metadata_payload(const WorkerMetadata& metadata,
                              const std::optional<std::string>& worker_namespace);

}  // namespace iii::detail::protocol
