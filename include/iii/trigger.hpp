#pragma once
// Custom trigger types (the reference's TriggerHandler and TriggerConfig).

#include <iii/export.hpp>
#include <iii/json.hpp>

#include <asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>

namespace iii {

/// A trigger bound to a function, as handed to a TriggerHandler.
struct TriggerConfig {
    /// The trigger id.
    std::string id{};
    /// The function it fires (with Client::trigger).
    std::string function_id{};
    /// The configuration its owner registered it with.
    Value config{};
    /// Its metadata.
    std::optional<Value> metadata{};
};

/// Implements a custom trigger type: the engine forwards every trigger bound to the type to
/// its handler, which fires the bound function itself (with Client::trigger) when its event
/// source fires. Both members run on the client's executor (like coroutine function handlers),
/// one coroutine per forwarded frame.
class III_API TriggerHandler {
public:
    virtual ~TriggerHandler() = default;
    /// A trigger of this type was bound. Throwing rejects it: the engine is told
    /// `trigger_registration_failed` with the exception's message.
    virtual asio::awaitable<void> register_trigger(TriggerConfig config) = 0;
    /// A trigger of this type was unbound (by its owner, or because its owner disconnected).
    /// `config` carries what register_trigger received for the same id.
    virtual asio::awaitable<void> unregister_trigger(TriggerConfig config) = 0;
};

}  // namespace iii
