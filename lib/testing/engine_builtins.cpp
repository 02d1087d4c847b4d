#include "testing/engine_impl.hpp"

namespace iii::testing {

// ---- built-in functions (spec 5) -----------------------------------------------------------

void Engine::Impl::add_builtin(std::string id, std::string description,
                               std::function<Outcome(const Value&)> handler) {
    Function f;
    f.id = id;
    f.description = std::move(description);
    f.builtin = std::move(handler);
    // 0.22+ list every built-in under the in-process worker that provides it.
    f.builtin_worker = id.starts_with("engine::queue::") ? "queue" : "iii-engine";
    functions[std::move(id)] = std::move(f);
}

// The built-ins every generation has, with the same behaviour.
void Engine::Impl::register_common_builtins() {
    add_builtin("engine::workers::register", "Register worker metadata",
                [this](const Value& in) { return workers_register(in); });
    add_builtin("engine::channels::create", "Create a data channel",
                [this](const Value& in) { return channels_create(in); });
    for (const char* level : {"info", "warn", "error", "debug", "trace"}) {
        add_builtin(fmt::format("engine::log::{}", level), fmt::format("Log at {} level", level),
                    [level](const Value& in) {
                        expect_object(in);
                        const auto message = opt_string(in, "message");
                        note(LogLevel::Debug, "engine::log::{}: {}", level, message.value_or(""));
                        return Outcome::nothing();
                    });
    }
}

void Engine::Impl::register_builtins() {
    add_builtin("engine::functions::list", "List registered functions",
                [this](const Value& in) { return functions_list(in); });
    add_builtin("engine::workers::list", "List connected workers",
                [this](const Value& in) { return workers_list(in); });
    add_builtin("engine::triggers::list", "List registered triggers",
                [this](const Value& in) { return triggers_list(in); });
    add_builtin("engine::trigger-types::list", "List trigger types",
                [this](const Value& in) { return trigger_types_list(in); });
    register_common_builtins();
}

Outcome Engine::Impl::workers_register(const Value& in) {
    expect_object(in);
    const auto caller = opt_string(in, "_caller_worker_id");
    if (!caller) throw BadInput{"missing field `_caller_worker_id`"};
    auto runtime = opt_string(in, "runtime");
    auto version = opt_string(in, "version");
    auto name = opt_string(in, "name");
    auto os = opt_string(in, "os");
    auto pid = opt_uint(in, "pid", 0xffffffffu);
    Value telemetry;
    if (const Value* t = field(in, "telemetry")) {
        expect_object(*t);
        telemetry = Value::object();
        for (const char* key : {"language", "project_name", "framework"})
            telemetry.set(key, or_null(opt_string(*t, key)));
    }
    auto description = since_0_22() ? opt_string(in, "description") : std::nullopt;
    auto isolation = since_0_22() ? opt_string(in, "isolation") : std::nullopt;
    auto ns = since_0_23() ? opt_string(in, "namespace") : std::nullopt;
    Worker* worker = find_worker(*caller);
    if (worker && since_0_23()) {
        const std::string wanted = ns.value_or("default");
        if (wanted.empty() || is_blank(wanted))
            return Outcome::failure("INVALID_NAMESPACE", "namespace must not be blank");
        // The worker-name lease: one live worker per (namespace, name). A half-open
        // predecessor that did not reattach still holds it.
        if (name)
            for (const auto& id : worker_order) {
                const Worker& other = *workers.at(id);
                if (&other == worker || other.gone || !other.name || *other.name != *name ||
                    other.ns != wanted || !other.namespace_known)
                    continue;
                note(LogLevel::Warn, "worker {}: name '{}' in namespace {} is held by {}",
                     worker->id, *name, wanted, other.id);
                send_rejection(*worker, "WORKER_NAMESPACE_CONFLICT", wanted, *name, std::nullopt,
                               other.id);
                // Closed once the rejection is written (the outbox flushes when this event
                // ends; a posted handler runs after that).
                asio::post(io, [this, id = worker->id] {
                    if (Worker* w = find_worker(id)) w->socket->close(1008, "WORKER_NAMESPACE_CONFLICT");
                });
                return Outcome::failure("WORKER_NAMESPACE_CONFLICT",
                                        fmt::format("worker name {} is taken", *name));
            }
        worker->ns = wanted;
        if (!worker->namespace_known) {
            worker->namespace_known = true;
            if (worker->grace_timer) worker->grace_timer->cancel();
            drain_held_registrations(*worker);
        }
    }
    if (worker) {
        worker->description = std::move(description);
        worker->isolation = std::move(isolation);
        worker->runtime = runtime.value_or("unknown");
        worker->version = std::move(version);  // overwritten with null when omitted
        worker->name = std::move(name);
        worker->os = std::move(os);
        if (pid) worker->pid = static_cast<std::uint32_t>(*pid);
        worker->telemetry = std::move(telemetry);
        fire(trigger_type_workers_available,
             Value::object({{"event", "worker_metadata_updated"}, {"worker_id", *caller}}));
    }
    return Outcome::value(Value::object({{"success", true}}));
}

Outcome Engine::Impl::functions_list(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    Value list = Value::array();
    for (const auto& [id, function] : functions) {
        if (!include_internal && id.starts_with("engine::")) continue;
        list.push_back(function_info(id, function));
    }
    return Outcome::value(Value::object({{"functions", std::move(list)}}));
}

Outcome Engine::Impl::workers_list(const Value& in) {
    expect_object(in);
    const auto only = opt_string(in, "worker_id");
    Value list = Value::array();
    for (const auto& id : worker_order) {
        if (only && *only != id) continue;
        const Worker& w = *workers.at(id);
        std::set<std::string> ids = w.functions;
        ids.insert(w.external_functions.begin(), w.external_functions.end());
        Value names = Value::array();
        for (const auto& f : ids) names.push_back(f);
        Value item =
            Value::object({{"id", w.id},
                           {"name", or_null(w.name)},
                           {"runtime", or_null(w.runtime)},
                           {"version", or_null(w.version)},
                           {"os", or_null(w.os)},
                           {"ip_address", w.ip_address.empty() ? Value() : Value(w.ip_address)},
                           {"status", "connected"},
                           {"connected_at_ms", w.connected_at_ms},
                           {"function_count", ids.size()},
                           {"functions", std::move(names)},
                           {"active_invocations", active_invocations(w)},
                           {"latest_metrics", Value()}});
        if (w.pid) item.set("pid", *w.pid);
        list.push_back(std::move(item));
    }
    return Outcome::value(Value::object({{"workers", std::move(list)}, {"timestamp", now_ms()}}));
}

Outcome Engine::Impl::triggers_list(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    Value list = Value::array();
    for (const auto& [id, t] : triggers) {
        // Filtered by the *function* id, not the type (spec 5.4).
        if (!include_internal && t.function_id.starts_with("engine::")) continue;
        Value item = Value::object({{"id", id},
                                    {"trigger_type", t.trigger_type},
                                    {"function_id", t.function_id},
                                    {"config", t.config}});
        if (t.metadata) item.set("metadata", *t.metadata);
        list.push_back(std::move(item));
    }
    return Outcome::value(Value::object({{"triggers", std::move(list)}}));
}

Outcome Engine::Impl::trigger_types_list(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    Value list = Value::array();
    for (const auto& [id, t] : trigger_types) {
        if (!include_internal && id.starts_with("engine::")) continue;
        Value item = Value::object({{"id", id}, {"description", t.description}});
        if (t.trigger_request_format) item.set("trigger_request_format", *t.trigger_request_format);
        if (t.call_request_format) item.set("call_request_format", *t.call_request_format);
        list.push_back(std::move(item));
    }
    return Outcome::value(Value::object({{"trigger_types", std::move(list)}}));
}

Outcome Engine::Impl::channels_create(const Value& in) {
    // channels (issue 5): allocation and buffer_size semantics live in ChannelHub
    expect_object(in);
    const auto requested = opt_uint(in, "buffer_size", UINT64_MAX);
    const auto created = channel_hub.create(requested);
    auto ref = [&](const char* direction) {
        return Value::object({{"channel_id", created.channel_id},
                              {"access_key", created.access_key},
                              {"direction", direction}});
    };
    return Outcome::value(Value::object({{"writer", ref("write")}, {"reader", ref("read")}}));
}

// ---- built-in functions of 0.22.1 (iii-protocol-current.md, "Engine built-ins") -----------

namespace {

bool contains_text(std::string_view haystack, const std::optional<std::string>& needle) {
    return !needle || haystack.find(*needle) != std::string_view::npos;
}

bool is_internal(const std::string& id, const std::optional<Value>& metadata) {
    if (metadata) {
        const Value* internal = metadata->find("internal");
        if (internal && internal->is_bool() && internal->as_bool()) return true;
    }
    // engine::queue::* belong to the queue worker and are shown (as 0.22 does).
    return id.starts_with("engine::") && !id.starts_with("engine::queue::");
}

// `config_summary` of a registered trigger: the config's keys and scalar values, compact.
std::string summarize(const Value& config) {
    if (!config.is_object()) return config.dump();
    std::string out;
    for (const auto& [key, value] : config.as_object()) {
        if (!out.empty()) out += ", ";
        out += key + "=" + (value.is_string() ? value.as_string() : value.dump());
    }
    return out;
}

}  // namespace

void Engine::Impl::register_builtins_0_22() {
    add_builtin("engine::functions::list", "List registered functions",
                [this](const Value& in) { return functions_list_0_22(in); });
    add_builtin("engine::functions::info", "Describe functions",
                [this](const Value& in) { return functions_info(in); });
    add_builtin("engine::workers::list", "List workers",
                [this](const Value& in) { return workers_list_0_22(in); });
    add_builtin("engine::workers::info", "Describe a worker",
                [this](const Value& in) { return workers_info(in); });
    add_builtin("engine::triggers::list", "List trigger types",
                [this](const Value& in) { return trigger_types_list_0_22(in); });
    add_builtin("engine::triggers::info", "Describe a trigger type",
                [this](const Value& in) { return trigger_types_info(in); });
    add_builtin("engine::registered-triggers::list", "List registered triggers",
                [this](const Value& in) { return registered_triggers_list(in); });
    add_builtin("engine::registered-triggers::info", "Describe a registered trigger",
                [this](const Value& in) { return registered_triggers_info(in); });
    add_builtin("engine::register_trigger", "Register an ownerless trigger",
                [this](const Value& in) { return register_trigger_builtin(in); });
    add_builtin("engine::unregister_trigger", "Unregister a trigger",
                [this](const Value& in) { return unregister_trigger_builtin(in); });
    register_common_builtins();
    if (options.queue_worker)
        add_builtin(std::string(queue_provider_id), "Enqueue a message (queue worker)",
                    [this](const Value& in) { return queue_enqueue_builtin(in); });
}

std::string Engine::Impl::worker_name_of(const std::string& owner,
                                         const std::string& builtin_worker) const {
    if (owner.empty()) return builtin_worker;
    auto it = workers.find(owner);
    if (it == workers.end() || !it->second->name) return {};
    return *it->second->name;
}

Value Engine::Impl::function_summary(const Function& f) const {
    Value item = Value::object({{"function_id", f.id},
                                {"worker_name", worker_name_of(f.owner, f.builtin_worker)}});
    if (f.description) item.set("description", *f.description);
    if (f.metadata) item.set("metadata", *f.metadata);
    if (since_0_23()) item.set("namespace", f.ns);
    return item;
}

Outcome Engine::Impl::functions_list_0_22(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    const auto search = opt_string(in, "search");
    const auto prefix = opt_string(in, "prefix");
    const auto worker = opt_string(in, "worker");
    Value list = Value::array();
    for (const auto& [key, f] : functions) {  // sorted by key, as 0.22 sorts them
        if (!include_internal && is_internal(f.id, f.metadata)) continue;
        if (prefix && !f.id.starts_with(*prefix)) continue;
        if (!contains_text(f.id, search)) continue;
        if (worker && worker_name_of(f.owner, f.builtin_worker) != *worker) continue;
        list.push_back(function_summary(f));
    }
    return Outcome::value(Value::object({{"functions", std::move(list)}}));
}

Outcome Engine::Impl::functions_info(const Value& in) {
    expect_object(in);
    auto detail = [this](const std::string& id) -> std::optional<Value> {
        auto it = functions.find(id);
        if (it == functions.end()) return std::nullopt;
        const Function& f = it->second;
        Value item = Value::object({{"function_id", f.id},
                                    {"worker_name", worker_name_of(f.owner, f.builtin_worker)}});
        if (f.description) item.set("description", *f.description);
        if (f.request_format) item.set("request_schema", *f.request_format);
        if (f.response_format) item.set("response_schema", *f.response_format);
        if (f.metadata) item.set("metadata", *f.metadata);
        Value bound = Value::array();
        for (const auto& [tid, trigger] : triggers)
            if (qualify(trigger.function_ns, trigger.function_id) == id)
                bound.push_back(Value::object({{"id", tid}, {"trigger_type", trigger.trigger_type}}));
        item.set("registered_triggers", std::move(bound));
        if (since_0_23()) item.set("namespace", f.ns);
        return item;
    };
    if (const auto id = opt_string(in, "function_id")) {
        if (auto item = detail(*id)) return Outcome::value(std::move(*item));
        return Outcome::failure("NOT_FOUND", fmt::format("Function {} not found", *id));
    }
    const Value* ids = field(in, "function_ids");
    if (!ids) return Outcome::failure("INVALID_ARGUMENTS", "function_id or function_ids is required");
    if (!ids->is_array() || ids->as_array().size() > 32)
        return Outcome::failure("INVALID_ARGUMENTS", "function_ids must be an array of at most 32");
    Value list = Value::array();
    for (const auto& id : ids->as_array()) {
        if (!id.is_string())
            return Outcome::failure("INVALID_ARGUMENTS", "function_ids must be strings");
        if (auto item = detail(id.as_string()))
            list.push_back(std::move(*item));
        else
            list.push_back(Value::object({{"function_id", id.as_string()}, {"error", "not_found"}}));
    }
    return Outcome::value(Value::object({{"functions", std::move(list)}}));
}

Outcome Engine::Impl::workers_list_0_22(const Value& in) {
    expect_object(in);
    const auto search = opt_string(in, "search");
    const auto runtime = opt_string(in, "runtime");
    const auto status = opt_string(in, "status");
    Value list = Value::array();
    auto add = [&](Value item, const std::string& name, const std::string& rt) {
        if (!contains_text(name, search) || (runtime && rt != *runtime)) return;
        if (status && *status != "connected") return;
        list.push_back(std::move(item));
    };
    // The in-process engine workers come first, as 0.22 lists them too.
    std::map<std::string, std::size_t> builtin_counts;
    for (const auto& [key, f] : functions)
        if (f.owner.empty()) ++builtin_counts[f.builtin_worker];
    for (const auto& [name, count] : builtin_counts)
        add(Value::object({{"name", name},
                           {"description", Value()},
                           {"version", Value()},
                           {"id", name},
                           {"runtime", "engine"},
                           {"os", Value()},
                           {"status", "connected"},
                           {"function_count", count},
                           {"connected_at_ms", Value()},
                           {"active_invocations", 0},
                           {"isolation", "in-process"},
                           {"ip_address", Value()}}),
            name, "engine");
    if (since_0_23())
        for (auto& row : list.as_array())
            if (!row.find("namespace")) row.set("namespace", "default");
    for (const auto& id : worker_order) {
        const Worker& w = *workers.at(id);
        Value item = Value::object({{"name", or_null(w.name)},
                                    {"description", or_null(w.description)},
                                    {"version", or_null(w.version)},
                                    {"id", w.id},
                                    {"runtime", or_null(w.runtime)},
                                    {"os", or_null(w.os)},
                                    {"status", "connected"},
                                    {"function_count", w.functions.size() + w.external_functions.size()},
                                    {"connected_at_ms", w.connected_at_ms},
                                    {"active_invocations", active_invocations(w)},
                                    {"isolation", or_null(w.isolation)},
                                    {"ip_address", w.ip_address.empty() ? Value() : Value(w.ip_address)}});
        if (since_0_23()) item.set("namespace", w.ns);
        add(std::move(item), w.name.value_or(""), w.runtime.value_or(""));
    }
    return Outcome::value(Value::object({{"workers", std::move(list)}}));
}

Outcome Engine::Impl::workers_info(const Value& in) {
    expect_object(in);
    const auto name = opt_string(in, "name");
    if (!name) throw BadInput{"missing field `name`"};
    for (const auto& id : worker_order) {
        const Worker& w = *workers.at(id);
        if (w.name != *name) continue;
        Value worker = Value::object({{"name", *name},
                                      {"id", w.id},
                                      {"runtime", or_null(w.runtime)},
                                      {"version", or_null(w.version)},
                                      {"os", or_null(w.os)},
                                      {"status", "connected"},
                                      {"internal", false}});
        if (w.pid) worker.set("pid", *w.pid);
        Value fns = Value::array(), types = Value::array(), bound = Value::array();
        for (const auto& key : w.functions)
            if (auto it = functions.find(key); it != functions.end()) fns.push_back(it->second.id);
        for (const auto& key : w.trigger_types)
            if (auto it = trigger_types.find(key); it != trigger_types.end())
                types.push_back(it->second.id);
        for (const auto& tid : w.triggers) bound.push_back(tid);
        return Outcome::value(Value::object({{"worker", std::move(worker)},
                                             {"functions", std::move(fns)},
                                             {"trigger_types", std::move(types)},
                                             {"registered_triggers", std::move(bound)}}));
    }
    return Outcome::failure("NOT_FOUND", fmt::format("Worker {} not found", *name));
}

Outcome Engine::Impl::trigger_types_list_0_22(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    const auto search = opt_string(in, "search");
    const auto prefix = opt_string(in, "prefix");
    const auto worker = opt_string(in, "worker");
    Value list = Value::array();
    for (const auto& [key, t] : trigger_types) {
        if (!include_internal && t.id.starts_with("engine::")) continue;
        if (prefix && !t.id.starts_with(*prefix)) continue;
        if (!contains_text(t.id, search)) continue;
        const std::string owner_name = worker_name_of(t.owner, "iii-engine");
        if (worker && owner_name != *worker) continue;
        Value item = Value::object(
            {{"id", t.id}, {"worker_name", owner_name}, {"description", t.description}});
        if (since_0_23()) item.set("namespace", t.ns);
        list.push_back(std::move(item));
    }
    return Outcome::value(Value::object({{"triggers", std::move(list)}}));
}

Outcome Engine::Impl::trigger_types_info(const Value& in) {
    expect_object(in);
    const auto id = opt_string(in, "id");
    if (!id) throw BadInput{"missing field `id`"};
    auto it = trigger_types.find(*id);
    if (it == trigger_types.end())
        return Outcome::failure("NOT_FOUND", fmt::format("Trigger type {} not found", *id));
    const TriggerType& t = it->second;
    std::size_t instances = 0;
    for (const auto& [tid, trigger] : triggers)
        if (trigger.type_key == it->first) ++instances;
    Value item = Value::object({{"id", t.id},
                                {"worker_name", worker_name_of(t.owner, "iii-engine")},
                                {"description", t.description},
                                {"instance_count", instances}});
    if (t.trigger_request_format) item.set("configuration_schema", *t.trigger_request_format);
    if (t.call_request_format) item.set("request_schema", *t.call_request_format);
    return Outcome::value(std::move(item));
}

Outcome Engine::Impl::registered_triggers_list(const Value& in) {
    expect_object(in);
    const bool include_internal = opt_bool(in, "include_internal", false);
    const auto search = opt_string(in, "search");
    const auto type = opt_string(in, "trigger_type");
    const auto function_id = opt_string(in, "function_id");
    const auto worker = opt_string(in, "worker");
    Value list = Value::array();
    for (const auto& [id, t] : triggers) {
        if (!include_internal && t.function_id.starts_with("engine::")) continue;
        if ((type && t.trigger_type != *type) || (function_id && t.function_id != *function_id))
            continue;
        if (!contains_text(id, search) && !contains_text(t.function_id, search)) continue;
        const std::string owner_name = worker_name_of(t.owner, "");
        if (worker && owner_name != *worker) continue;
        list.push_back(Value::object({{"id", id},
                                      {"trigger_type", t.trigger_type},
                                      {"function_id", t.function_id},
                                      {"worker_name", owner_name},
                                      {"config", t.config},
                                      {"config_summary", summarize(t.config)}}));
    }
    return Outcome::value(Value::object({{"registered_triggers", std::move(list)}}));
}

Outcome Engine::Impl::registered_triggers_info(const Value& in) {
    expect_object(in);
    const auto id = opt_string(in, "id");
    if (!id) throw BadInput{"missing field `id`"};
    auto it = triggers.find(*id);
    if (it == triggers.end())
        return Outcome::failure("NOT_FOUND", fmt::format("Trigger {} not found", *id));
    const Trigger& t = it->second;
    Value item = Value::object({{"id", *id},
                                {"trigger_type", t.trigger_type},
                                {"function_id", t.function_id},
                                {"worker_name", worker_name_of(t.owner, "")},
                                {"config", t.config}});
    if (t.metadata) item.set("metadata", *t.metadata);
    return Outcome::value(std::move(item));
}

Outcome Engine::Impl::register_trigger_builtin(const Value& in) {
    expect_object(in);
    const auto type = opt_string(in, "trigger_type");
    const auto function_id = opt_string(in, "function_id");
    if (!type) throw BadInput{"missing field `trigger_type`"};
    if (!function_id) throw BadInput{"missing field `function_id`"};
    const Value* config = field(in, "config");
    const Value* metadata = field(in, "metadata");
    // Ownerless and durable: it survives the caller's disconnect. Bound like a frame from no
    // worker: parked when the type is unknown, forwarded to a worker provider otherwise.
    proto::RegisterTrigger message;
    message.id = proto::new_uuid();
    message.trigger_type = *type;
    message.function_id = *function_id;
    message.config = config ? *config : Value::object();
    if (metadata) message.metadata = *metadata;
    if (auto problem = builtin_config_problem(*type, message.config))
        return Outcome::failure("trigger_registration_failed", *problem);
    Worker nobody;  // the registrant: none
    nobody.ns = "default";
    const std::string id = message.id;
    register_trigger(nobody, std::move(message));
    if (auto it = triggers.find(id); it != triggers.end()) it->second.owner.clear();
    return Outcome::value(Value::object({{"id", id}}));
}

Outcome Engine::Impl::unregister_trigger_builtin(const Value& in) {
    expect_object(in);
    const auto id = opt_string(in, "id");
    if (!id) throw BadInput{"missing field `id`"};
    const bool known = triggers.count(*id) != 0;
    unregister_trigger(*id);
    return Outcome::value(Value::object({{"removed", known && !triggers.count(*id)}}));
}

Outcome Engine::Impl::queue_enqueue_builtin(const Value& in) {
    // The standalone queue worker, in-process (EngineOptions::queue_worker): the 0.10 queue
    // checks, then a later delivery of the data to the target function.
    expect_object(in);
    const auto queue = opt_string(in, "queue");
    const auto function_id = opt_string(in, "function_id");
    if (!queue) throw BadInput{"missing field `queue`"};
    if (!function_id) throw BadInput{"missing field `function_id`"};
    const Value* data = in.find("data");
    const Value payload = data ? *data : Value();
    if (auto refusal = queue_refusal(*queue, payload)) return *refusal;
    deliver_later(*function_id, payload);
    return Outcome::value(Value::object({{"accepted", true}}));
}

}  // namespace iii::testing
