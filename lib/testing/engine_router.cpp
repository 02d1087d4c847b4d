#include "testing/engine_impl.hpp"

namespace iii::testing {

// ---- invocations (spec 9.5) ----------------------------------------------------------------

void Engine::Impl::invoke_from_worker(Worker& worker, proto::InvokeFunction message) {
    if (message.action && std::holds_alternative<Enqueue>(*message.action)) {
        enqueue(worker, std::move(message));
        return;
    }
    const bool is_void = message.action && std::holds_alternative<Void>(*message.action);
    const bool reply = !is_void && message.invocation_id.has_value();
    // 0.23: the callee's namespace comes with the call (absent: `default`), never from the
    // caller's own namespace.
    const std::string ns = since_0_23() ? message.ns.value_or("default") : "default";

    if (!functions.count(qualify(ns, message.function_id))) {
        if (reply) {
            reply_to(worker, *message.invocation_id, message.function_id,
                     not_found(ns, message.function_id), message.traceparent, message.baggage);
        }
        return;
    }
    if (message.data.is_object()) message.data.set("_caller_worker_id", worker.id);

    Call call;
    // A void call gets a fresh id toward the callee, whatever the caller sent (spec 3.2).
    call.invocation_id = reply ? *message.invocation_id : proto::new_uuid();
    call.function_id = std::move(message.function_id);
    call.data = std::move(message.data);
    call.traceparent = std::move(message.traceparent);
    call.baggage = std::move(message.baggage);
    call.ns = ns;
    if (since_0_22()) call.metadata = std::move(message.metadata);  // dropped by 0.10
    if (reply) call.caller = worker.id;
    dispatch(std::move(call));
}

Outcome Engine::Impl::not_found(const std::string& ns, const std::string& function_id) const {
    if (since_0_23())
        return Outcome::failure(
            "function_not_found",
            fmt::format("Function {} not found in namespace {}", function_id, ns));
    return Outcome::failure("function_not_found", fmt::format("Function {} not found", function_id));
}

void Engine::Impl::dispatch(Call call) {
    auto it = functions.find(qualify(call.ns, call.function_id));
    if (it == functions.end()) {
        finish(call, not_found(call.ns, call.function_id));
        return;
    }
    Function& function = it->second;
    if (function.builtin) {
        Outcome outcome;
        struct Running {  // (a built-in may run another one: the outer caller comes back)
            const std::string*& slot;
            const std::string* saved;
            ~Running() { slot = saved; }
        } running{builtin_caller, std::exchange(builtin_caller, &call.caller)};
        try {
            outcome = function.builtin(call.data);
        } catch (const BadInput& bad) {
            outcome = Outcome::failure("deserialization_error",
                                       fmt::format("Failed to deserialize input for {}: {}",
                                                   call.function_id, bad.reason));
        }
        if (outcome.result) sort_keys(*outcome.result);
        finish(call, std::move(outcome));
        return;
    }
    if (function.invocation) {
        finish(call,
               Outcome::failure("http_request_failed",
                                "HTTP-invoked functions are not supported by the test engine"));
        return;
    }
    Worker* callee = find_worker(function.owner);
    if (!callee) {
        finish(call, not_found(call.ns, call.function_id));
        return;
    }
    pending[call.invocation_id] =
        Pending{call.function_id, call.caller,  callee->id,
                call.traceparent, call.baggage, std::move(call.on_result), WorkerRef{}};
    proto::InvokeFunction forward;
    forward.invocation_id = call.invocation_id;
    forward.function_id = call.function_id;
    forward.data = sorted(std::move(call.data));
    forward.metadata = sorted(std::move(call.metadata));
    forward.traceparent = call.traceparent;
    forward.baggage = call.baggage;
    send(*callee, forward);
}

void Engine::Impl::finish(Call& call, Outcome outcome) {
    if (!call.caller.empty()) {
        if (Worker* caller = find_worker(call.caller)) {
            reply_to(*caller, call.invocation_id, call.function_id, outcome, call.traceparent,
                     call.baggage);
        }
    } else if (call.on_result) {
        call.on_result(outcome);
    }
}

void Engine::Impl::reply_to(Worker& worker, const std::string& invocation_id,
                            const std::string& function_id, const Outcome& outcome,
                            const std::optional<std::string>& traceparent,
                            const std::optional<std::string>& baggage) {
    proto::InvocationResult result;
    result.invocation_id = invocation_id;
    result.function_id = function_id;
    if (outcome.error) {
        result.error = outcome.error;
    } else if (outcome.result && !outcome.result->is_null()) {
        // A null result is no result: the real engine omits the key (spec 9.10).
        result.result = sorted(*outcome.result);
    }
    result.traceparent = traceparent;
    result.baggage = baggage;
    send(worker, result);
}

namespace {
// A pending call `worker_id` takes part in, as caller or as callee.
bool involves(const auto& pending_call, const std::string& worker_id) {
    return pending_call.caller == worker_id || pending_call.callee == worker_id;
}
}  // namespace

std::vector<std::string> Engine::Impl::invocations_of(const Worker& worker) const {
    std::vector<std::string> ids;
    for (const auto& [id, p] : pending)
        if (involves(p, worker.id)) ids.push_back(id);
    std::sort(ids.begin(), ids.end());  // the order the set had: replies go out in it
    return ids;
}

std::size_t Engine::Impl::active_invocations(const Worker& worker) const {
    std::size_t count = 0;
    for (const auto& entry : pending) count += involves(entry.second, worker.id);
    if (builtin_caller && *builtin_caller == worker.id) ++count;
    return count;
}

void Engine::Impl::invocation_result(Worker&, proto::InvocationResult message) {
    auto node = pending.extract(message.invocation_id);
    if (node.empty()) {
        note(LogLevel::Info, "invocation {}: did not find caller", message.invocation_id);
        return;
    }
    Pending& p = node.mapped();
    Outcome outcome{message.error ? std::nullopt : std::move(message.result),
                    std::move(message.error)};
    if (!p.caller.empty()) {
        if (Worker* caller = find_worker(p.caller)) {
            reply_to(*caller, message.invocation_id, p.function_id, outcome, p.traceparent,
                     p.baggage);
        }
    } else if (p.on_result) {
        p.on_result(outcome);
    }
}

void Engine::Impl::call_from_engine(std::string function_id, Value data,
                                    std::function<void(const Outcome&)> on_result,
                                    std::optional<Value> metadata, const std::string& ns) {
    if (!functions.count(qualify(ns, function_id))) {
        note(LogLevel::Info, "engine call: function {} not found", function_id);
        return;
    }
    Call call;
    call.invocation_id = proto::new_uuid();
    call.function_id = std::move(function_id);
    call.data = std::move(data);
    call.on_result = std::move(on_result);
    call.ns = ns;
    if (since_0_22()) call.metadata = std::move(metadata);
    dispatch(std::move(call));
}

// ---- enqueue (spec 9.7) --------------------------------------------------------------------

void Engine::Impl::enqueue(Worker& worker, proto::InvokeFunction message) {
    if (since_0_22()) {
        enqueue_via_provider(worker, std::move(message));
        return;
    }
    const std::string& queue = std::get<Enqueue>(*message.action).queue;
    if (auto failure = queue_refusal(queue, message.data)) {
        if (message.invocation_id)
            reply_to(worker, *message.invocation_id, message.function_id, *failure,
                     message.traceparent, message.baggage);
        return;
    }
    // The function's existence is not checked at enqueue time (spec 9.10).
    if (message.invocation_id) {
        reply_to(worker, *message.invocation_id, message.function_id,
                 Outcome::value(Value::object({{"messageReceiptId", proto::new_uuid()}})),
                 message.traceparent, message.baggage);
    }
    deliver_later(std::move(message.function_id), std::move(message.data));
}

std::optional<Outcome> Engine::Impl::queue_refusal(const std::string& queue,
                                                   const Value& data) const {
    auto config = options.queues.find(queue);
    if (config == options.queues.end())
        return Outcome::failure("enqueue_error", fmt::format("Queue '{}' not found", queue));
    if (config->second.kind != QueueConfig::Kind::Fifo) return std::nullopt;
    const std::string& group = config->second.message_group_field;
    const Value* value = data.find(group);
    if (!value)
        return Outcome::failure(
            "enqueue_error",
            fmt::format("FIFO queue '{}' requires field '{}' in data, but it was not found", queue,
                        group));
    if (value->is_null())
        return Outcome::failure(
            "enqueue_error",
            fmt::format("FIFO queue '{}': field '{}' must not be null", queue, group));
    return std::nullopt;
}

void Engine::Impl::deliver_later(std::string function_id, Value data) {
    // Delivered later, as the queue worker would: data unchanged, an engine-origin call.
    asio::post(io, [this, function_id = std::move(function_id), data = std::move(data)]() mutable {
        Event event(*this);
        if (!shut_down) call_from_engine(std::move(function_id), std::move(data));
    });
}

void Engine::Impl::enqueue_via_provider(Worker& worker, proto::InvokeFunction message) {
    // 0.22+: the engine only hands the message to the standalone queue worker's provider and
    // answers with a receipt of its own once the provider accepted it.
    const std::string queue = std::get<Enqueue>(*message.action).queue;
    const std::string receipt = proto::new_uuid();
    std::optional<std::string> invocation_id = message.invocation_id;
    std::string function_id = message.function_id;
    auto answer = [this, caller = worker.id, invocation_id, function_id, receipt,
                   traceparent = message.traceparent,
                   baggage = message.baggage](const Outcome& outcome) {
        if (!invocation_id) return;
        Worker* to = find_worker(caller);
        if (!to) return;
        Outcome reply = Outcome::value(Value::object({{"messageReceiptId", receipt}}));
        if (outcome.error) {
            std::string text =
                outcome.error->code == "function_not_found"
                    ? fmt::format(
                          "No queue provider is installed. `TriggerAction::Enqueue` routes "
                          "through the `{}` provider, which the standalone queue worker "
                          "registers. Add it with `iii worker add queue`. (underlying: {})",
                          queue_provider_id, outcome.error->message)
                    : fmt::format("{}: {}", outcome.error->code, outcome.error->message);
            reply = Outcome::failure("enqueue_error", std::move(text));
        }
        reply_to(*to, *invocation_id, function_id, reply, traceparent, baggage);
    };
    Value input = Value::object({{"queue", queue},
                                 {"function_id", message.function_id},
                                 {"data", std::move(message.data)},
                                 {"messageReceiptId", receipt},
                                 {"traceparent", or_null(message.traceparent)},
                                 {"baggage", or_null(message.baggage)}});
    if (!functions.count(std::string(queue_provider_id))) {
        answer(not_found("default", std::string(queue_provider_id)));
        return;
    }
    call_from_engine(std::string(queue_provider_id), std::move(input), std::move(answer));
}

// ---- trigger types of the engine (spec 5.7, 5.8) -------------------------------------------

void Engine::Impl::fire(std::string_view trigger_type, const Value& payload) {
    struct Target {
        std::string function_id, ns;
        std::optional<Value> metadata;
    };
    std::vector<Target> targets;
    for (const auto& [id, trigger] : triggers)
        if (trigger.trigger_type == trigger_type && !trigger.parked)
            targets.push_back({trigger.function_id, trigger.function_ns, trigger.metadata});
    // 0.22+: the binding's metadata reaches the handler as the invocation's metadata.
    for (auto& target : targets)
        call_from_engine(std::move(target.function_id), payload, {}, std::move(target.metadata),
                         target.ns);
}

void Engine::Impl::schedule_functions_available() {
    functions_available_timer.expires_after(options.functions_available_interval);
    functions_available_timer.async_wait([this](std::error_code ec) {
        if (ec || shut_down) return;
        Event event(*this);
        auto ids = function_id_list();
        if (ids != functions_snapshot) {
            functions_snapshot = std::move(ids);
            Value list = Value::array();
            for (const auto& [key, function] : functions)
                list.push_back(since_0_22() ? function_summary(function)
                                            : function_info(key, function));
            fire(trigger_type_functions_available,
                 Value::object({{"event", "functions_changed"}, {"functions", std::move(list)}}));
        }
        schedule_functions_available();
    });
}

Value Engine::Impl::function_info(const std::string& id, const Function& f) {
    return Value::object({{"function_id", id},
                          {"description", or_null(f.description)},
                          {"request_format", or_null(f.request_format)},
                          {"response_format", or_null(f.response_format)},
                          {"metadata", or_null(f.metadata)}});
}

}  // namespace iii::testing
