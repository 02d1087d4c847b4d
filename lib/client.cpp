#include "iii/client.hpp"

#include "iii/channel.hpp"
#include "iii/typed.hpp"

#include "connection.hpp"
#include "invocation.hpp"
#include "log.hpp"
#include "url.hpp"
#include "transport/ws_transport.hpp"

#include <asio/executor_work_guard.hpp>

#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace iii {

void FunctionRef::unregister() const {
    if (auto connection = connection_.lock()) connection->remove_function(id);
}

std::optional<RemoteError> FunctionRef::rejection() const {
    if (auto connection = connection_.lock()) return connection->function_rejection(id);
    return std::nullopt;
}

void Trigger::unregister() const {
    if (auto connection = connection_.lock()) connection->remove_trigger(id, trigger_type);
}

void TriggerTypeRef::unregister() const {
    if (auto connection = connection_.lock()) connection->remove_trigger_type(id);
}

/// Shared by every on_functions_available subscription of one client.
struct FunctionsAvailableState {
    std::mutex mutex;
    std::map<std::uint64_t, std::function<void(const std::vector<FunctionInfo>&)>> callbacks;
    std::uint64_t next_token = 1;
    std::optional<FunctionRef> function;
    std::optional<Trigger> trigger;
};

void FunctionsAvailableGuard::reset() {
    auto state = state_.lock();
    state_.reset();
    if (!state || token_ == 0) return;
    std::optional<FunctionRef> function;
    std::optional<Trigger> trigger;
    {
        std::lock_guard lock(state->mutex);
        state->callbacks.erase(token_);
        if (state->callbacks.empty()) {
            function.swap(state->function);
            trigger.swap(state->trigger);
        }
    }
    token_ = 0;
    if (trigger) trigger->unregister();
    if (function) function->unregister();
}

Client::Client(PrivateTag, std::shared_ptr<detail::Connection> connection, std::function<void()> on_destroy)
    : connection_(std::move(connection)),
      functions_available_(std::make_shared<FunctionsAvailableState>()),
      on_destroy_(std::move(on_destroy)) {}

Client::~Client() {
    connection_->clear_state_listeners();
    connection_->shutdown();
    if (on_destroy_) on_destroy_();  // stops and joins the owned io thread, if any
    connection_->stop_handlers();
    // The connection's timers and sockets belong to the io_context: release the connection
    // while that io_context still exists, and only then the io_context (held by on_destroy_).
    connection_.reset();
    on_destroy_ = nullptr;
}

FunctionRef Client::register_handler(RegisterFunctionMessage message, Handler handler) {
    if (!handler) throw Error(Errc::Runtime, "handler must not be empty");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.handler = std::move(handler);
    detail::protocol::check_encodable(detail::protocol::RegisterFunction{entry.message});  // UTF-8
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_blocking(RegisterFunctionMessage message, BlockingHandler handler) {
    if (!handler) throw Error(Errc::Runtime, "handler must not be empty");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.blocking_handler = std::move(handler);
    detail::protocol::check_encodable(detail::protocol::RegisterFunction{entry.message});  // UTF-8
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_raw(RegisterFunctionMessage message, RawHandler handler) {
    if (!handler) throw Error(Errc::Runtime, "handler must not be empty");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.raw_handler = std::move(handler);
    detail::protocol::check_encodable(detail::protocol::RegisterFunction{entry.message});  // UTF-8
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_http_function(RegisterFunctionMessage message, HttpInvocationConfig config) {
    if (config.url.empty()) throw Error(Errc::Runtime, "HTTP-invoked function needs a url");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.message.invocation = std::move(config);
    detail::protocol::check_encodable(detail::protocol::RegisterFunction{entry.message});  // UTF-8
    return connection_->add_function(std::move(entry));
}

namespace {

std::optional<std::chrono::milliseconds> timeout_of(std::optional<std::uint64_t> timeout_ms) {
    if (!timeout_ms) return std::nullopt;
    // Beyond int64 milliseconds: effectively no deadline (the connection caps it).
    constexpr auto cap = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(*timeout_ms, cap)));
}

}  // namespace

asio::awaitable<Value> Client::trigger(TriggerRequest request) {
    auto connection = connection_;  // keeps the actor alive across the hop
    const auto timeout = request.timeout ? request.timeout : timeout_of(request.timeout_ms);
    co_return co_await connection->invoke(std::move(request.function_id), std::move(request.payload),
                                          std::move(request.action), timeout, std::move(request.metadata),
                                          std::move(request.function_namespace));
}

asio::awaitable<std::string> Client::trigger_raw(std::string function_id, std::string payload_json,
                                                 std::optional<TriggerAction> action,
                                                 std::optional<std::uint64_t> timeout_ms) {
    auto connection = connection_;
    Value result = co_await connection->invoke(std::move(function_id), Value::parse(payload_json),
                                               std::move(action), timeout_of(timeout_ms));
    co_return result.dump();
}

// ---- discovery (engine generations: see Client's discovery section) -----------------------

namespace detail {

/// Which discovery built-ins the engine of one connection has, learnt from the first answer.
struct DiscoveryMemo {
    enum class Names { Unknown, Current, Legacy };  // Current: 0.13+ names; Legacy: 0.10
    std::mutex mutex;
    std::string worker_id;  // the connection it was learnt on: a reconnect learns it again
    Names names = Names::Unknown;
};

std::shared_ptr<DiscoveryMemo> make_discovery_memo() { return std::make_shared<DiscoveryMemo>(); }

}  // namespace detail

namespace {

using Names = detail::DiscoveryMemo::Names;

// The memo is keyed by the worker id of the connection it was learnt on: every connection gets
// a fresh id from its workerregistered, so after a reconnect the engine is asked again.
Names known_names(detail::DiscoveryMemo& memo, const std::string& worker_id) {
    std::lock_guard lock(memo.mutex);
    if (worker_id.empty() || memo.worker_id != worker_id) return Names::Unknown;
    return memo.names;
}

void learn_names(detail::DiscoveryMemo& memo, const std::string& worker_id, Names names) {
    if (worker_id.empty()) return;  // not connected (yet): nothing to remember it for
    std::lock_guard lock(memo.mutex);
    memo.worker_id = worker_id;
    memo.names = names;
}

// The remote error code behind `failure`, empty for any other failure. A plain function:
// GCC 12 miscompiles (and warns about) a rethrow inside a coroutine's catch block, so the
// coroutines catch everything into an exception_ptr and ask here.
std::string remote_code(const std::exception_ptr& failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const Error& e) {
        if (e.remote()) return e.remote()->code;
    } catch (...) {
    }
    return {};
}

// Tolerant field readers: an absent or null field is unset; a present one of the wrong type is
// a Serde error naming it.
std::optional<std::string> optional_string(const Value& object, std::string_view key) {
    const Value* v = object.find(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw Error(Errc::Serde, "field `" + std::string(key) + "` is not a string");
    return v->as_string();
}

std::string string_or_empty(const Value& object, std::string_view key) {
    return optional_string(object, key).value_or(std::string());
}

std::optional<Value> optional_value(const Value& object, std::string_view key) {
    const Value* v = object.find(key);
    if (!v || v->is_null()) return std::nullopt;
    return *v;
}

std::uint64_t uint_or_zero(const Value& object, std::string_view key) {
    const Value* v = object.find(key);
    if (!v || v->is_null()) return 0;
    if (!v->is_integer()) throw Error(Errc::Serde, "field `" + std::string(key) + "` is not an integer");
    return v->as_uint();
}

const Value::Array& list_field(const Value& result, std::string_view key, std::string_view function) {
    const Value* list = result.find(key);
    if (!list || !list->is_array())
        throw Error(Errc::Serde, std::string(function) + ": response has no `" + std::string(key) + "` array");
    return list->as_array();
}

// Runs `parse` and names the built-in in a parse failure.
template <class F>
auto parsing(std::string_view function, F&& parse) -> decltype(parse()) {
    try {
        return parse();
    } catch (const Error& e) {
        throw Error(Errc::Serde, std::string(function) + ": " + e.what());
    } catch (const std::exception& e) {
        throw Error(Errc::Serde, std::string(function) + ": " + e.what());
    }
}

FunctionInfo parse_function(const Value& item) {
    FunctionInfo info;
    info.function_id = string_or_empty(item, "function_id");
    info.description = optional_string(item, "description");
    info.request_format = optional_value(item, "request_format");
    info.response_format = optional_value(item, "response_format");
    info.metadata = optional_value(item, "metadata");
    info.worker_name = optional_string(item, "worker_name");
    info.function_namespace = optional_string(item, "namespace");
    return info;
}

std::vector<TriggerInfo> parse_trigger_list(const Value& result, std::string_view key,
                                            std::string_view function) {
    return parsing(function, [&] {
        std::vector<TriggerInfo> triggers;
        for (const Value& item : list_field(result, key, function)) {
            TriggerInfo info;
            info.id = string_or_empty(item, "id");
            info.trigger_type = string_or_empty(item, "trigger_type");
            info.function_id = string_or_empty(item, "function_id");
            if (const Value* config = item.find("config")) info.config = *config;
            info.metadata = optional_value(item, "metadata");
            info.worker_name = optional_string(item, "worker_name");
            triggers.push_back(std::move(info));
        }
        return triggers;
    });
}

std::vector<TriggerTypeInfo> parse_trigger_type_list(const Value& result, std::string_view key,
                                                     std::string_view function) {
    return parsing(function, [&] {
        std::vector<TriggerTypeInfo> types;
        for (const Value& item : list_field(result, key, function)) {
            TriggerTypeInfo info;
            info.id = string_or_empty(item, "id");
            info.description = string_or_empty(item, "description");
            info.trigger_request_format = optional_value(item, "trigger_request_format");
            info.call_request_format = optional_value(item, "call_request_format");
            info.worker_name = optional_string(item, "worker_name");
            types.push_back(std::move(info));
        }
        return types;
    });
}

FunctionDetails parse_function_details(const Value& item) {
    FunctionDetails d;
    d.function_id = string_or_empty(item, "function_id");
    d.worker_name = optional_string(item, "worker_name");
    d.description = optional_string(item, "description");
    d.request_format = optional_value(item, "request_schema");
    if (!d.request_format) d.request_format = optional_value(item, "request_format");
    d.response_format = optional_value(item, "response_schema");
    if (!d.response_format) d.response_format = optional_value(item, "response_format");
    d.metadata = optional_value(item, "metadata");
    d.function_namespace = optional_string(item, "namespace");
    if (const Value* bound = item.find("registered_triggers"); bound && bound->is_array())
        for (const Value& t : bound->as_array()) {
            if (t.is_string())
                d.registered_triggers.push_back(t.as_string());
            else if (t.is_object())
                d.registered_triggers.push_back(string_or_empty(t, "id"));
        }
    return d;
}

// Calls a built-in that one engine generation may not have. `missing` tells whether the
// engine answered function_not_found; any other failure is rethrown. The failure is caught
// into an exception_ptr and inspected outside the catch block: GCC 12 warns about (and
// mishandles) rethrows inside a coroutine's handler.
struct Probe {
    std::optional<Value> result;
    std::exception_ptr failure;
    std::string code;  // the remote error code of `failure`, if any
};

asio::awaitable<Probe> probe(Client& client, TriggerRequest request) {
    Probe p;
    try {
        p.result.emplace(co_await client.trigger(std::move(request)));
    } catch (...) {
        p.failure = std::current_exception();
    }
    if (p.failure) p.code = remote_code(p.failure);
    co_return p;
}

}  // namespace

static std::vector<FunctionInfo> parse_function_list(const Value& result, std::string_view function) {
    return parsing(function, [&] {
        std::vector<FunctionInfo> functions;
        for (const Value& item : list_field(result, "functions", function))
            functions.push_back(parse_function(item));
        return functions;
    });
}

// GCC 12 reports a false -Wmismatched-new-delete on coroutines that co_await in two branches:
// it pairs an inlined Asio awaitable frame's operator delete with the wrong allocation. The
// frames are allocated and freed by Asio's own operator new/delete pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

asio::awaitable<std::vector<FunctionInfo>> Client::list_functions() {
    TriggerRequest request("engine::functions::list", Value::object());
    Value result = co_await trigger(std::move(request));
    co_return parse_function_list(result, "engine::functions::list");
}

asio::awaitable<std::optional<FunctionDetails>> Client::function_info(std::string function_id) {
    auto memo = discovery_;
    const std::string worker_id = connection_->worker_id();
    if (known_names(*memo, worker_id) != Names::Legacy) {
        TriggerRequest request("engine::functions::info", {{"function_id", function_id}});
        Probe p = co_await probe(*this, std::move(request));
        if (p.code == codes::not_found) co_return std::nullopt;
        if (p.failure && p.code != codes::function_not_found) std::rethrow_exception(p.failure);
        if (p.result) {
            learn_names(*memo, worker_id, Names::Current);
            auto parse = [&] { return parse_function_details(*p.result); };
            co_return parsing("engine::functions::info", parse);
        }
        learn_names(*memo, worker_id, Names::Legacy);
    }
    // 0.10: the list carries the schemas; internal ones too, so that any id can be described.
    TriggerRequest request("engine::functions::list", {{"include_internal", true}});
    Value result = co_await trigger(std::move(request));
    for (auto& info : parse_function_list(result, "engine::functions::list")) {
        if (info.function_id != function_id) continue;
        FunctionDetails d;
        d.function_id = std::move(info.function_id);
        d.worker_name = std::move(info.worker_name);
        d.description = std::move(info.description);
        d.request_format = std::move(info.request_format);
        d.response_format = std::move(info.response_format);
        d.metadata = std::move(info.metadata);
        d.function_namespace = std::move(info.function_namespace);
        co_return d;
    }
    co_return std::nullopt;
}

asio::awaitable<std::vector<TriggerInfo>> Client::list_triggers(bool include_internal) {
    auto memo = discovery_;
    const std::string worker_id = connection_->worker_id();
    if (known_names(*memo, worker_id) != Names::Legacy) {
        TriggerRequest request("engine::registered-triggers::list", {{"include_internal", include_internal}});
        Probe p = co_await probe(*this, std::move(request));
        if (p.failure && p.code != codes::function_not_found) std::rethrow_exception(p.failure);
        if (p.result) {
            learn_names(*memo, worker_id, Names::Current);
            co_return parse_trigger_list(*p.result, "registered_triggers", "engine::registered-triggers::list");
        }
        learn_names(*memo, worker_id, Names::Legacy);
    }
    // 0.10 (up to 0.12): engine::triggers::list lists the instances.
    TriggerRequest request("engine::triggers::list", {{"include_internal", include_internal}});
    Value result = co_await trigger(std::move(request));
    co_return parse_trigger_list(result, "triggers", "engine::triggers::list");
}

asio::awaitable<std::vector<TriggerTypeInfo>> Client::list_trigger_types(bool include_internal) {
    auto memo = discovery_;
    const std::string worker_id = connection_->worker_id();
    Names names = known_names(*memo, worker_id);
    if (names == Names::Unknown) {
        // engine::triggers::list exists on both generations with different meanings, so the
        // engine is told apart by the built-in that only the new one has.
        TriggerRequest request_probe("engine::registered-triggers::list", {{"include_internal", false}});
        Probe p = co_await probe(*this, std::move(request_probe));
        if (p.failure && p.code != codes::function_not_found) std::rethrow_exception(p.failure);
        names = p.failure ? Names::Legacy : Names::Current;
        learn_names(*memo, worker_id, names);
    }
    if (names == Names::Current) {
        TriggerRequest request("engine::triggers::list", {{"include_internal", include_internal}});
        Value result = co_await trigger(std::move(request));
        co_return parse_trigger_type_list(result, "triggers", "engine::triggers::list");
    }
    TriggerRequest request("engine::trigger-types::list", {{"include_internal", include_internal}});
    Value result = co_await trigger(std::move(request));
    co_return parse_trigger_type_list(result, "trigger_types", "engine::trigger-types::list");
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

FunctionsAvailableGuard Client::on_functions_available(
    std::function<void(const std::vector<FunctionInfo>&)> callback) {
    if (!callback) throw Error(Errc::Runtime, "callback must not be empty");
    auto state = functions_available_;
    std::lock_guard lock(state->mutex);
    const auto token = state->next_token++;
    state->callbacks.emplace(token, std::move(callback));
    if (!state->function) {
        std::weak_ptr<FunctionsAvailableState> weak = state;
        const std::string id = "iii.on_functions_available." + detail::protocol::new_uuid();
        // A coroutine handler, so the callbacks run on the client's executor and a client that
        // subscribes still has no blocking-handler pool.
        state->function = register_handler(RegisterFunctionMessage::with_id(id), [weak](Value payload) -> asio::awaitable<Value> {
            auto state = weak.lock();
            if (!state) co_return Value();
            const auto functions = parse_function_list(payload, "engine::functions-available");
            std::vector<std::function<void(const std::vector<FunctionInfo>&)>> callbacks;
            {
                std::lock_guard lock(state->mutex);
                for (auto& [token, cb] : state->callbacks) callbacks.push_back(cb);
            }
            for (auto& cb : callbacks) cb(functions);
            co_return Value();
        });
        RegisterTriggerInput input;
        input.trigger_type = "engine::functions-available";
        input.function_id = id;
        state->trigger = register_trigger(std::move(input));
    }
    return FunctionsAvailableGuard(state, token);
}

TriggerTypeRef Client::register_trigger_type(std::string id, std::string description,
                                             std::shared_ptr<TriggerHandler> handler,
                                             std::optional<Value> trigger_request_format,
                                             std::optional<Value> call_request_format) {
    detail::TriggerTypeEntry entry;
    entry.message.id = id;
    entry.message.description = std::move(description);
    entry.message.trigger_request_format = std::move(trigger_request_format);
    entry.message.call_request_format = std::move(call_request_format);
    entry.message.ns = connection_->worker_namespace();  // 0.23; absent: `default`
    entry.handler = std::move(handler);
    connection_->add_trigger_type(std::move(entry));
    return TriggerTypeRef(std::move(id), connection_);
}

void Client::unregister_trigger_type(const std::string& id) { connection_->remove_trigger_type(id); }

Trigger Client::register_trigger(RegisterTriggerInput input) {
    detail::protocol::RegisterTrigger message;
    message.trigger_type = std::move(input.trigger_type);
    message.function_id = std::move(input.function_id);
    message.config = std::move(input.config);
    message.metadata = std::move(input.metadata);
    message.ns = std::move(input.function_namespace);                // 0.23
    message.trigger_namespace = std::move(input.trigger_namespace);  // 0.23
    return connection_->add_trigger(std::move(message));
}

void Client::register_service(RegisterServiceMessage message) { connection_->add_service(std::move(message)); }

asio::awaitable<std::vector<WorkerInfo>> Client::list_workers() {
    TriggerRequest request("engine::workers::list", Value::object());
    Value result = co_await trigger(std::move(request));
    // Named: GCC 12 mishandles lambda temporaries in coroutine expressions.
    auto parse = [&] {
        std::vector<WorkerInfo> workers;
        for (const Value& item : list_field(result, "workers", "engine::workers::list")) {
            WorkerInfo info;
            info.id = string_or_empty(item, "id");
            info.name = optional_string(item, "name");
            info.runtime = optional_string(item, "runtime");
            info.version = optional_string(item, "version");
            info.os = optional_string(item, "os");
            info.ip_address = optional_string(item, "ip_address");
            info.status = string_or_empty(item, "status");
            info.connected_at_ms = uint_or_zero(item, "connected_at_ms");
            info.function_count = uint_or_zero(item, "function_count");
            if (const Value* v = item.find("functions"); v && v->is_array())
                for (const Value& f : v->as_array())
                    if (f.is_string()) info.functions.push_back(f.as_string());
            info.active_invocations = uint_or_zero(item, "active_invocations");
            if (const Value* v = item.find("pid"); v && v->is_integer())
                info.pid = static_cast<std::uint32_t>(v->as_uint());
            info.description = optional_string(item, "description");
            info.isolation = optional_string(item, "isolation");
            info.worker_namespace = optional_string(item, "namespace");
            workers.push_back(std::move(info));
        }
        return workers;
    };
    co_return parsing("engine::workers::list", parse);
}

ConnectionState Client::get_connection_state() const { return connection_->state(); }

asio::awaitable<bool> Client::wait_for_state(ConnectionState state, std::chrono::milliseconds timeout) {
    auto connection = connection_;
    co_return co_await connection->wait_for_state(state, timeout);
}

std::uint64_t Client::on_connection_state_change(std::function<void(ConnectionState)> callback) {
    return connection_->add_state_listener(std::move(callback));
}

std::uint64_t Client::on_connection_state_change(
    std::function<void(ConnectionState, const std::string& reason)> callback) {
    return connection_->add_state_listener(std::move(callback));
}

std::string Client::failure_reason() const { return connection_->failure_reason(); }

void Client::remove_state_listener(std::uint64_t token) { connection_->remove_state_listener(token); }

std::optional<Error> Client::last_connect_error() const { return connection_->last_connect_error(); }

const std::string& Client::address() const { return connection_->url(); }

asio::any_io_executor Client::get_executor() const { return connection_->strand(); }

asio::awaitable<void> Client::run() {
    auto connection = connection_;
    co_await connection->run();
}

void Client::shutdown() { connection_->shutdown(); }

asio::awaitable<void> Client::shutdown_async() {
    auto connection = connection_;
    co_await connection->shutdown_async();
    // [telemetry hook] Export what is queued, within OtelConfig::shutdown_timeout_ms.
    if (auto telemetry = connection->telemetry()) co_await telemetry->flush_and_close();
}

namespace {

void validate_url(const std::string& url, const InitOptions& options) {
    if (detail::parse_url_or_throw(url).scheme == "wss") {
        // Bad TLS settings are a mistake to report now, not a connect failure to retry forever.
        try {
            detail::transport::check_tls(options.tls);
        } catch (const std::invalid_argument& e) {
            throw Error(Errc::Runtime, e.what());
        }
    }
}

// The io thread a client owns when the caller does not pass one.
struct OwnedIo {
    // One thread runs it: the hint lets Asio queue work posted from that thread without a lock.
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::thread thread;
};

}  // namespace

std::shared_ptr<Client> register_worker(std::string url, InitOptions options) {
    detail::resolve_worker_namespace(options);  // a blank namespace is refused here
    validate_url(url, options);
    auto owned = std::make_shared<OwnedIo>();
    auto connection = std::make_shared<detail::Connection>(owned->io, std::move(url), std::move(options));
    owned->thread = std::thread([owned_raw = owned.get()] {
        for (;;) {
            try {
                owned_raw->io.run();
                return;
            } catch (const std::exception& e) {
                // A user callback threw through the io loop: keep serving the connection.
                detail::log(detail::LogLevel::Error, "exception escaped to the io thread: {}", e.what());
            }
        }
    });
    connection->start();
    std::weak_ptr<detail::Connection> weak = connection;
    auto on_destroy = [owned, weak]() {
        if (auto connection = weak.lock()) {
            if (owned->thread.get_id() != std::this_thread::get_id())
                connection->wait_stopped(std::chrono::milliseconds(3000));
        }
        owned->guard.reset();
        owned->io.stop();
        if (owned->thread.get_id() == std::this_thread::get_id()) {
            owned->thread.detach();  // destroyed from its own io thread: cannot join itself
        } else if (owned->thread.joinable()) {
            owned->thread.join();
        }
    };
    return std::make_shared<Client>(Client::PrivateTag{}, std::move(connection), std::move(on_destroy));
}

std::shared_ptr<Client> register_worker(asio::any_io_executor executor, std::string url, InitOptions options) {
    validate_url(url, options);
    detail::resolve_worker_namespace(options);  // a blank namespace is refused here
    auto connection = std::make_shared<detail::Connection>(std::move(executor), std::move(url), std::move(options));
    connection->start();
    return std::make_shared<Client>(Client::PrivateTag{}, std::move(connection), nullptr);
}

std::shared_ptr<Client> register_worker(asio::io_context& io, std::string url, InitOptions options) {
    return register_worker(io.get_executor(), std::move(url), std::move(options));
}

FunctionRef Client::register_function(RegisterFunction reg) {
    return iii::register_function(*this, std::move(reg));
}

FunctionRef Client::register_function(RegisterFunctionMessage message, TypedHandler handler) {
    return iii::register_function(*this, std::move(message), std::move(handler));
}

asio::awaitable<Channel> Client::create_channel(std::optional<std::size_t> buffer_size) {
    return iii::create_channel(*this, buffer_size);
}

}  // namespace iii
