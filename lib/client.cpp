#include "iii/client.hpp"

#include "iii/channel.hpp"
#include "iii/typed.hpp"

#include "connection.hpp"
#include "log.hpp"
#include "transport/ws_transport.hpp"

#include <asio/executor_work_guard.hpp>

#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace iii {

void FunctionRef::unregister() const {
    if (auto connection = connection_.lock()) connection->remove_function(id);
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
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_blocking(RegisterFunctionMessage message, BlockingHandler handler) {
    if (!handler) throw Error(Errc::Runtime, "handler must not be empty");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.blocking_handler = std::move(handler);
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_raw(RegisterFunctionMessage message, RawHandler handler) {
    if (!handler) throw Error(Errc::Runtime, "handler must not be empty");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.raw_handler = std::move(handler);
    return connection_->add_function(std::move(entry));
}

FunctionRef Client::register_http_function(RegisterFunctionMessage message, HttpInvocationConfig config) {
    if (config.url.empty()) throw Error(Errc::Runtime, "HTTP-invoked function needs a url");
    detail::FunctionEntry entry;
    entry.message = std::move(message);
    entry.message.invocation = std::move(config);
    return connection_->add_function(std::move(entry));
}

asio::awaitable<Value> Client::trigger(TriggerRequest request) {
    auto connection = connection_;  // keeps the actor alive across the hop
    co_return co_await connection->invoke(std::move(request.function_id), std::move(request.payload),
                                          std::move(request.action), request.timeout_ms);
}

asio::awaitable<std::string> Client::trigger_raw(std::string function_id, std::string payload_json,
                                                 std::optional<TriggerAction> action,
                                                 std::optional<std::uint64_t> timeout_ms) {
    auto connection = connection_;
    Value result = co_await connection->invoke(std::move(function_id), Value::parse(payload_json),
                                               std::move(action), timeout_ms);
    co_return result.dump();
}

namespace {

std::optional<std::string> optional_string(const Value& object, std::string_view key) {
    const Value* v = object.find(key);
    if (!v || v->is_null()) return std::nullopt;
    return v->as_string();
}

std::optional<Value> optional_value(const Value& object, std::string_view key) {
    const Value* v = object.find(key);
    if (!v || v->is_null()) return std::nullopt;
    return *v;
}

const Value::Array& list_field(const Value& result, std::string_view key, std::string_view function) {
    const Value* list = result.find(key);
    if (!list || !list->is_array())
        throw Error(Errc::Serde, std::string(function) + ": response has no `" + std::string(key) + "` array");
    return list->as_array();
}

}  // namespace

static std::vector<FunctionInfo> parse_function_list(const Value& result, std::string_view function) {
    std::vector<FunctionInfo> functions;
    try {
        for (const Value& item : list_field(result, "functions", function)) {
            FunctionInfo info;
            info.function_id = item.at("function_id").as_string();
            info.description = optional_string(item, "description");
            info.request_format = optional_value(item, "request_format");
            info.response_format = optional_value(item, "response_format");
            info.metadata = optional_value(item, "metadata");
            functions.push_back(std::move(info));
        }
    } catch (const Error& e) {
        throw Error(Errc::Serde, std::string(function) + ": " + e.what());
    }
    return functions;
}

asio::awaitable<std::vector<FunctionInfo>> Client::list_functions() {
    TriggerRequest request("engine::functions::list", Value::object());
    Value result = co_await trigger(std::move(request));
    co_return parse_function_list(result, "engine::functions::list");
}

asio::awaitable<std::vector<TriggerInfo>> Client::list_triggers(bool include_internal) {
    TriggerRequest request("engine::triggers::list", {{"include_internal", include_internal}});
    Value result = co_await trigger(std::move(request));
    std::vector<TriggerInfo> triggers;
    try {
        for (const Value& item : list_field(result, "triggers", "engine::triggers::list")) {
            TriggerInfo info;
            info.id = item.at("id").as_string();
            info.trigger_type = item.at("trigger_type").as_string();
            info.function_id = item.at("function_id").as_string();
            if (const Value* config = item.find("config")) info.config = *config;
            info.metadata = optional_value(item, "metadata");
            triggers.push_back(std::move(info));
        }
    } catch (const Error& e) {
        throw Error(Errc::Serde, std::string("engine::triggers::list: ") + e.what());
    }
    co_return triggers;
}

asio::awaitable<std::vector<TriggerTypeInfo>> Client::list_trigger_types(bool include_internal) {
    TriggerRequest request("engine::trigger-types::list", {{"include_internal", include_internal}});
    Value result = co_await trigger(std::move(request));
    std::vector<TriggerTypeInfo> types;
    try {
        for (const Value& item : list_field(result, "trigger_types", "engine::trigger-types::list")) {
            TriggerTypeInfo info;
            info.id = item.at("id").as_string();
            info.description = optional_string(item, "description").value_or("");
            info.trigger_request_format = optional_value(item, "trigger_request_format");
            info.call_request_format = optional_value(item, "call_request_format");
            types.push_back(std::move(info));
        }
    } catch (const Error& e) {
        throw Error(Errc::Serde, std::string("engine::trigger-types::list: ") + e.what());
    }
    co_return types;
}

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
        state->function = register_blocking(RegisterFunctionMessage::with_id(id), [weak](Value payload) {
            auto state = weak.lock();
            if (!state) return Value();
            const auto functions = parse_function_list(payload, "engine::functions-available");
            std::vector<std::function<void(const std::vector<FunctionInfo>&)>> callbacks;
            {
                std::lock_guard lock(state->mutex);
                for (auto& [token, cb] : state->callbacks) callbacks.push_back(cb);
            }
            for (auto& cb : callbacks) cb(functions);
            return Value();
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
    return connection_->add_trigger(std::move(message));
}

void Client::register_service(RegisterServiceMessage message) { connection_->add_service(std::move(message)); }

asio::awaitable<std::vector<WorkerInfo>> Client::list_workers() {
    TriggerRequest request("engine::workers::list", Value::object());
    Value result = co_await trigger(std::move(request));
    std::vector<WorkerInfo> workers;
    try {
        for (const Value& item : list_field(result, "workers", "engine::workers::list")) {
            WorkerInfo info;
            info.id = item.at("id").as_string();
            info.name = optional_string(item, "name");
            info.runtime = optional_string(item, "runtime");
            info.version = optional_string(item, "version");
            info.os = optional_string(item, "os");
            info.ip_address = optional_string(item, "ip_address");
            info.status = item.at("status").as_string();
            if (const Value* v = item.find("connected_at_ms"); v && !v->is_null())
                info.connected_at_ms = v->as_uint();
            if (const Value* v = item.find("function_count"); v && !v->is_null())
                info.function_count = v->as_uint();
            if (const Value* v = item.find("functions"); v && v->is_array())
                for (const Value& f : v->as_array()) info.functions.push_back(f.as_string());
            if (const Value* v = item.find("active_invocations"); v && !v->is_null())
                info.active_invocations = v->as_uint();
            if (const Value* v = item.find("pid"); v && !v->is_null())
                info.pid = static_cast<std::uint32_t>(v->as_uint());
            workers.push_back(std::move(info));
        }
    } catch (const Error& e) {
        throw Error(Errc::Serde, std::string("engine::workers::list: ") + e.what());
    }
    co_return workers;
}

ConnectionState Client::get_connection_state() const { return connection_->state(); }

asio::awaitable<bool> Client::wait_for_state(ConnectionState state, std::chrono::milliseconds timeout) {
    auto connection = connection_;
    co_return co_await connection->wait_for_state(state, timeout);
}

std::uint64_t Client::on_connection_state_change(std::function<void(ConnectionState)> callback) {
    return connection_->add_state_listener(std::move(callback));
}

void Client::remove_state_listener(std::uint64_t token) { connection_->remove_state_listener(token); }

std::optional<Error> Client::last_connect_error() const { return connection_->last_connect_error(); }

const std::string& Client::address() const { return connection_->url(); }

asio::any_io_executor Client::get_executor() const { return connection_->strand(); }

void Client::shutdown() { connection_->shutdown(); }

asio::awaitable<void> Client::shutdown_async() {
    auto connection = connection_;
    co_await connection->shutdown_async();
    // [telemetry hook] Export what is queued, within OtelConfig::shutdown_timeout_ms.
    if (auto telemetry = connection->telemetry()) co_await telemetry->flush_and_close();
}

namespace {

void validate_url(const std::string& url, const InitOptions& options) {
    if (url.rfind("ws://", 0) != 0 && url.rfind("wss://", 0) != 0)
        throw Error(Errc::Runtime, "engine URL must start with ws:// or wss:// : '" + url + "'");
    if (url.rfind("wss://", 0) == 0) {
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
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::thread thread;
};

}  // namespace

std::shared_ptr<Client> register_worker(std::string url, InitOptions options) {
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

std::shared_ptr<Client> register_worker(asio::io_context& io, std::string url, InitOptions options) {
    validate_url(url, options);
    auto connection = std::make_shared<detail::Connection>(io, std::move(url), std::move(options));
    connection->start();
    return std::make_shared<Client>(Client::PrivateTag{}, std::move(connection), nullptr);
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
