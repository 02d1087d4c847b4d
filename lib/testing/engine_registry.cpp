#include "testing/engine_impl.hpp"

namespace iii::testing {

// ---- registrations (spec 9.4) --------------------------------------------------------------

void Engine::Impl::register_function(Worker& worker, RegisterFunctionMessage message) {
    const std::string key = qualify(worker.ns, message.id);
    auto existing = functions.find(key);
    if (existing != functions.end() && !existing->second.owner.empty() &&
        existing->second.owner != worker.id) {
        if (since_0_23() && find_worker(existing->second.owner)) {
            // 0.23: the first live owner keeps it; only this registration is refused and the
            // connection stays open.
            note(LogLevel::Warn, "function {} in namespace {}: refused for {} (owned by {})",
                 message.id, worker.ns, worker.id, existing->second.owner);
            send_rejection(worker, "FUNCTION_NAMESPACE_CONFLICT", worker.ns, std::nullopt,
                           message.id, existing->second.owner);
            return;
        }
        note(LogLevel::Info, "function {} re-registered by {} (was {})", message.id, worker.id,
             existing->second.owner);
    }
    const bool external = message.invocation.has_value();
    (external ? worker.external_functions : worker.functions).insert(key);
    Function f;
    f.id = message.id;
    f.ns = worker.ns;
    f.owner = worker.id;
    f.description = std::move(message.description);
    f.request_format = std::move(message.request_format);
    f.response_format = std::move(message.response_format);
    f.metadata = std::move(message.metadata);
    f.invocation = std::move(message.invocation);
    functions[key] = std::move(f);
    functions_dirty = true;
}

void Engine::Impl::unregister_function(Worker& worker, const std::string& id) {
    const std::string key = qualify(worker.ns, id);
    auto it = functions.find(key);
    // 0.10: whoever registered it, one worker can remove another's function (spec 2.3).
    // 0.22+: only the current owner's request removes it.
    if (it != functions.end() && (!since_0_22() || it->second.owner == worker.id)) {
        functions.erase(it);
        functions_dirty = true;
    }
    worker.functions.erase(key);
    worker.external_functions.erase(key);
}

void Engine::Impl::register_trigger_type(Worker& worker, proto::RegisterTriggerType message) {
    const std::string ns = since_0_23() && message.ns ? *message.ns : worker.ns;
    const std::string key = qualify(ns, message.id);
    auto it = trigger_types.find(key);
    if (it != trigger_types.end() && !it->second.owner.empty() && it->second.owner != worker.id) {
        if (Worker* previous = find_worker(it->second.owner)) previous->trigger_types.erase(key);
    }
    TriggerType type;
    type.id = message.id;
    type.ns = ns;
    type.owner = worker.id;
    type.description = std::move(message.description);
    type.trigger_request_format = std::move(message.trigger_request_format);
    type.call_request_format = std::move(message.call_request_format);
    trigger_types[key] = std::move(type);
    worker.trigger_types.insert(key);
    // Replay every stored trigger of this type to the new owner (spec 4.2 step 1), including
    // orphans left behind by a previous owner's disconnect (0.22+: parked binds, whose type
    // was unknown when they were made, activate the same way).
    for (auto& [id, trigger] : triggers) {
        const bool bound = !trigger.parked && trigger.type_key == key;
        const bool waiting = trigger.parked && trigger.trigger_type == message.id &&
                             (trigger.type_key == key || ns == "default");
        if (!bound && !waiting) continue;
        trigger.parked = false;
        trigger.type_key = key;
        send(worker, register_trigger_message(id, trigger));
    }
}

proto::RegisterTrigger Engine::Impl::register_trigger_message(const std::string& id,
                                                              const Trigger& t) {
    proto::RegisterTrigger m{id, t.trigger_type, t.function_id, sorted(t.config),
                             sorted(t.metadata)};
    if (since_0_23()) {
        // Toward the provider, only when not `default` (as the 0.23 engine writes them).
        if (t.function_ns != "default") m.ns = t.function_ns;
        auto type = trigger_types.find(t.type_key);
        if (type != trigger_types.end() && type->second.ns != "default")
            m.trigger_namespace = type->second.ns;
    }
    return m;
}

std::map<std::string, Engine::Impl::TriggerType>::iterator Engine::Impl::find_trigger_type(
    const std::string& ns, const std::string& id) {
    auto it = trigger_types.find(qualify(ns, id));
    if (it == trigger_types.end() && ns != "default") it = trigger_types.find(id);
    return it;
}

std::optional<std::string> Engine::Impl::builtin_config_problem(const std::string& type,
                                                                const Value& config) const {
    // The checks of the real engine's built-in providers that tests meet most: a cron bind
    // needs an expression, an http bind an api_path.
    auto needs_string = [&](const char* key) -> std::optional<std::string> {
        const Value* v = config.is_object() ? config.find(key) : nullptr;
        if (!v || !v->is_string() || v->as_string().empty())
            return fmt::format("{} trigger config needs a non-empty string `{}`", type, key);
        return std::nullopt;
    };
    if (type == "cron") return needs_string("expression");
    if (type == "http") return needs_string("api_path");
    return std::nullopt;
}

void Engine::Impl::register_trigger(Worker& worker, proto::RegisterTrigger message) {
    Trigger trigger;
    trigger.trigger_type = message.trigger_type;
    trigger.function_id = message.function_id;
    trigger.config = std::move(message.config);
    trigger.metadata = std::move(message.metadata);
    trigger.owner = worker.id;
    std::string trigger_ns = "default";
    if (since_0_23()) {
        trigger.function_ns = message.ns.value_or("default");
        trigger_ns = message.trigger_namespace.value_or(worker.ns);
    }
    auto type = find_trigger_type(trigger_ns, message.trigger_type);
    if (type == trigger_types.end()) {
        if (!since_0_22()) {
            // Lost for good: it will not activate if the type appears later (spec 4.1).
            note(LogLevel::Warn, "trigger type '{}' not found; trigger '{}' dropped",
                 message.trigger_type, message.id);
            return;
        }
        // 0.22+: parked until the type registers; no ack to the registrant.
        note(LogLevel::Info, "trigger '{}' parked until type '{}' registers", message.id,
             message.trigger_type);
        trigger.parked = true;
        trigger.type_key = qualify(trigger_ns, message.trigger_type);
    } else {
        trigger.type_key = type->first;
        if (type->second.owner.empty()) {
            if (since_0_22()) {
                if (auto problem = builtin_config_problem(message.trigger_type, trigger.config)) {
                    report_trigger_failure(
                        worker.id, message.id, trigger,
                        RemoteError{"trigger_registration_failed", *problem, std::nullopt});
                    return;
                }
            }
        } else {
            Worker* owner = find_worker(type->second.owner);
            if (!owner) {
                note(LogLevel::Warn, "trigger '{}': could not forward to the owner of '{}'",
                     message.id, message.trigger_type);
                return;
            }
            // Stored as soon as the frame is queued to the owner, without waiting for its
            // triggerregistrationresult (spec 4.2 step 3).
            send(*owner, register_trigger_message(message.id, trigger));
        }
    }
    auto previous = triggers.find(message.id);
    if (previous != triggers.end() && previous->second.owner != worker.id) {
        if (Worker* old_owner = find_worker(previous->second.owner))
            old_owner->triggers.erase(message.id);
    }
    triggers[message.id] = std::move(trigger);
    worker.triggers.insert(message.id);
}

void Engine::Impl::unregister_trigger(const std::string& id) {
    auto it = triggers.find(id);
    if (it == triggers.end()) {
        note(LogLevel::Info, "unregistertrigger: trigger '{}' not found", id);
        return;
    }
    const Trigger& trigger = it->second;
    auto type = trigger_types.find(trigger.type_key);
    if (!trigger.parked && type != trigger_types.end() && !type->second.owner.empty()) {
        // Deleted only if the owner was told (spec 4.2 step 7).
        Worker* owner = find_worker(type->second.owner);
        if (!owner) return;
        send(*owner, proto::UnregisterTrigger{id, trigger.trigger_type});
    }
    if (Worker* registrant = find_worker(trigger.owner)) registrant->triggers.erase(id);
    triggers.erase(it);
}

void Engine::Impl::report_trigger_failure(const std::string& registrant, const std::string& id,
                                          const Trigger& trigger, RemoteError error) {
    note(LogLevel::Info, "trigger {} ({}) failed to register: {}: {}", id, trigger.trigger_type,
         error.code, error.message);
    Worker* to = find_worker(registrant);
    if (!to) return;  // an engine::register_trigger bind, or its registrant left
    send(*to, proto::TriggerRegistrationResult{id, trigger.trigger_type, trigger.function_id,
                                               std::move(error)});
}

void Engine::Impl::trigger_registration_result(Worker& worker,
                                               proto::TriggerRegistrationResult message) {
    auto it = triggers.find(message.id);
    if (it == triggers.end()) {
        note(LogLevel::Info, "triggerregistrationresult for unknown trigger {}", message.id);
        return;
    }
    Trigger& trigger = it->second;
    auto type = trigger_types.find(trigger.type_key);
    if (type == trigger_types.end() || type->second.owner != worker.id) {
        // Only the type's owner may report on a bind.
        note(LogLevel::Warn, "worker {}: triggerregistrationresult for {} ignored: not the owner "
             "of its type", worker.id, message.id);
        return;
    }
    if (!message.error) return;  // success: nothing is sent to the registrant
    trigger.parked = true;  // parked again, until the type is registered anew
    report_trigger_failure(trigger.owner, message.id, trigger, std::move(*message.error));
}

// ---- disconnect (spec 9.3) -----------------------------------------------------------------

void Engine::Impl::disconnect(Worker& worker) {
    Event event(*this);
    worker.gone = true;
    ++disconnects;  // every WorkerRef is stale from here: this worker is destroyed at the end
    auto keep = workers.at(worker.id);  // `worker` lives until the end of the cleanup

    // 1. Functions. 0.10: by id, whoever holds them now (quirk: an overwrite is deleted too).
    // 0.22+: only those this connection still owns.
    for (const auto* set : {&worker.functions, &worker.external_functions})
        for (const auto& key : *set) {
            auto it = functions.find(key);
            if (it == functions.end() || (since_0_22() && it->second.owner != worker.id)) continue;
            functions.erase(it);
            functions_dirty = true;
        }

    // 2. Halt every invocation this worker takes part in.
    for (const auto& id : invocations_of(worker)) {
        auto node = pending.extract(id);
        if (node.empty()) continue;
        Pending& p = node.mapped();
        const Outcome stopped = Outcome::failure("invocation_stopped", "Invocation stopped");
        if (p.caller == worker.id) continue;  // the departing caller: discarded
        if (!p.caller.empty()) {
            if (Worker* caller = find_worker(p.caller)) {
                reply_to(*caller, id, p.function_id, stopped, p.traceparent, p.baggage);
            }
        } else if (p.on_result) {
            p.on_result(stopped);
        }
    }

    // 3. Its triggers; the owners of worker-implemented types are told.
    for (const auto& id : worker.triggers) {
        auto it = triggers.find(id);
        if (it == triggers.end() || it->second.owner != worker.id) continue;
        const std::string type = it->second.trigger_type;
        const std::string type_key = it->second.type_key;
        const bool parked = it->second.parked;
        triggers.erase(it);
        auto owner_type = trigger_types.find(type_key);
        if (parked || owner_type == trigger_types.end() || owner_type->second.owner.empty() ||
            owner_type->second.owner == worker.id)
            continue;
        if (Worker* owner = find_worker(owner_type->second.owner))
            send(*owner, proto::UnregisterTrigger{id, type});
    }

    // 4. Its trigger types; other workers' triggers of those types stay, orphaned (0.22+:
    // parked, i.e. pending until the type registers again).
    for (const auto& key : worker.trigger_types) {
        auto it = trigger_types.find(key);
        if (it == trigger_types.end() || it->second.owner != worker.id) continue;
        trigger_types.erase(it);
        if (since_0_22())
            for (auto& [id, trigger] : triggers)
                if (trigger.type_key == key) trigger.parked = true;
    }

    // 5. The worker itself.
    workers.erase(worker.id);
    worker_order.erase(std::remove(worker_order.begin(), worker_order.end(), worker.id),
                       worker_order.end());
    workers_dirty = true;
    fire(trigger_type_workers_available,
         Value::object({{"event", "worker_disconnected"}, {"worker_id", worker.id}}));
}

}  // namespace iii::testing
