// The 0.22/0.23 additions without sockets: the frames of docs/iii-protocol-current.md decoded
// from its examples (unknown fields and codes included), the new encoder fields, the worker
// metadata payload, namespaces, invocation contexts, trigger statuses and error codes.

#include "invocation.hpp"
#include "protocol.hpp"
#include "scoped_env.hpp"
#include "telemetry_internal.hpp"
#include "trigger_status.hpp"

#include "iii/client.hpp"
#include "iii/error.hpp"
#include "iii/types.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>

namespace p = iii::detail::protocol;
using iii::Value;
using test_support::ScopedEnv;

namespace {

template <class T>
T decode_as(std::string_view frame) {
    p::Decoder decoder;
    p::Message message;
    p::DecodeFailure failure;
    INFO("frame: " << frame);
    const bool ok = decoder.decode(frame, message, failure);
    INFO("reason: " << failure.reason);
    REQUIRE(ok);
    REQUIRE(std::holds_alternative<T>(message));
    return std::get<T>(std::move(message));
}

Value encoded(const p::Message& m) {
    p::Encoder encoder;
    return Value::parse(encoder.encode(m));
}

}  // namespace

// ---- frames --------------------------------------------------------------------------------

TEST_CASE("workerregistered of 0.22 carries the reattach token", "[unit][protocol][current]") {
    const auto m = decode_as<p::WorkerRegistered>(
        R"({"type":"workerregistered","worker_id":"w-0001","reattach_token":"tok-1","extra":1})");
    CHECK(m.worker_id == "w-0001");
    CHECK(m.reattach_token == std::optional<std::string>("tok-1"));
}

TEST_CASE("an engine-to-worker triggerregistrationresult decodes its error",
          "[unit][protocol][current]") {
    const auto m = decode_as<p::TriggerRegistrationResult>(
        R"({"type":"triggerregistrationresult","id":"trig-ext-1","trigger_type":"cron",)"
        R"("function_id":"other::fn","message_type":"triggerregistrationresult",)"
        R"("error":{"code":"trigger_registration_failed","message":"bad cron","detail":7}})");
    CHECK(m.id == "trig-ext-1");
    CHECK(m.trigger_type == "cron");
    CHECK(m.function_id == "other::fn");
    REQUIRE(m.error);
    CHECK(m.error->code == iii::codes::trigger_registration_failed);
    CHECK(m.error->message == "bad cron");
    // An unknown code is kept as it came.
    const auto other = decode_as<p::TriggerRegistrationResult>(
        R"({"type":"triggerregistrationresult","id":"t","trigger_type":"x","function_id":"f",)"
        R"("error":{"code":"INVALID_NAMESPACE","message":"no"}})");
    CHECK(other.error->code == iii::codes::invalid_namespace);
}

TEST_CASE("invokefunction of 0.22/0.23 decodes metadata and namespace", "[unit][protocol][current]") {
    const auto m = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","invocation_id":"11111111-1111-4111-8111-111111111111",)"
        R"("function_id":"math::add","data":{"a":2,"b":3},"metadata":{"tenant":"acme"},)"
        R"("namespace":"orders","future_field":[1,2]})");
    CHECK(m.function_id == "math::add");
    CHECK(m.metadata == std::optional<Value>(Value::object({{"tenant", "acme"}})));
    CHECK(m.ns == std::optional<std::string>("orders"));
    // The Node SDK's void call: no invocation_id key at all.
    const auto v = decode_as<p::InvokeFunction>(
        R"({"type":"invokefunction","function_id":"audit::log","data":{},"action":{"type":"void"}})");
    CHECK_FALSE(v.invocation_id);
    CHECK_FALSE(v.ns);
}

TEST_CASE("registertrigger of 0.23 decodes both namespaces; the leaked message_type is ignored",
          "[unit][protocol][current]") {
    const auto m = decode_as<p::RegisterTrigger>(
        R"({"type":"registertrigger","function_id":"math::add","config":{"api_path":"/add",)"
        R"("http_method":"POST"},"id":"2eb7","message_type":"registertrigger",)"
        R"("trigger_type":"http","namespace":"orders","trigger_namespace":"infra"})");
    CHECK(m.id == "2eb7");
    CHECK(m.trigger_type == "http");
    CHECK(m.ns == std::optional<std::string>("orders"));
    CHECK(m.trigger_namespace == std::optional<std::string>("infra"));
    const auto plain = decode_as<p::RegisterTrigger>(
        R"({"type":"registertrigger","id":"t","trigger_type":"cron","function_id":"f","config":null})");
    CHECK_FALSE(plain.ns);
    CHECK_FALSE(plain.trigger_namespace);
}

TEST_CASE("registertriggertype of 0.23 decodes its namespace", "[unit][protocol][current]") {
    const auto m = decode_as<p::RegisterTriggerType>(
        R"({"type":"registertriggertype","id":"custom::tick","description":"ticks","namespace":"infra"})");
    CHECK(m.ns == std::optional<std::string>("infra"));
}

TEST_CASE("registrationrejected decodes with unknown codes and fields", "[unit][protocol][current]") {
    const auto m = decode_as<p::RegistrationRejected>(
        R"({"type":"registrationrejected","code":"SOMETHING_NEW","namespace":"orders",)"
        R"("worker_name":"state","owner_worker_id":"abc","since":"0.24"})");
    CHECK(m.code == "SOMETHING_NEW");
    CHECK(m.owner_worker_id == std::optional<std::string>("abc"));
    const auto f = decode_as<p::RegistrationRejected>(
        R"({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","namespace":"default",)"
        R"("function_id":"dup::f","owner_worker_id":"w1"})");
    CHECK(f.code == iii::codes::function_namespace_conflict);
    CHECK(f.function_id == std::optional<std::string>("dup::f"));
}

TEST_CASE("the namespace fields are written only when set", "[unit][protocol][current]") {
    p::RegisterTrigger t{"t1", "http", "f", Value::object(), std::nullopt};
    CHECK(encoded(t).find("namespace") == nullptr);
    t.ns = "orders";
    t.trigger_namespace = "infra";
    const Value with = encoded(t);
    CHECK(with["namespace"] == Value("orders"));
    CHECK(with["trigger_namespace"] == Value("infra"));

    p::RegisterTriggerType type{"tt", "d", std::nullopt, std::nullopt};
    CHECK(encoded(type).find("namespace") == nullptr);
    type.ns = "infra";
    CHECK(encoded(type)["namespace"] == Value("infra"));

    p::InvokeFunction call;
    call.function_id = "f";
    call.data = Value::object();
    CHECK(encoded(call).find("namespace") == nullptr);
    CHECK(encoded(call).find("metadata") == nullptr);
    call.ns = "orders";
    call.metadata = Value::object({{"k", "v"}});
    CHECK(encoded(call)["namespace"] == Value("orders"));
    CHECK(encoded(call)["metadata"] == Value::object({{"k", "v"}}));
}

// ---- worker metadata -----------------------------------------------------------------------

TEST_CASE("the worker metadata payload adds description, isolation and namespace when set",
          "[unit][types][current]") {
    iii::WorkerMetadata m;
    m.version = "1.2.3";
    m.name = "w";
    m.os = "linux";
    Value plain = p::worker_metadata_payload(m, std::nullopt);
    CHECK(plain == Value::object({{"runtime", "cpp"}, {"version", "1.2.3"}, {"name", "w"}, {"os", "linux"}}));
    m.description = "orders service";
    m.isolation = "container";
    m.pid = 42;
    Value full = p::worker_metadata_payload(m, std::string("orders"));
    CHECK(full["description"] == Value("orders service"));
    CHECK(full["isolation"] == Value("container"));
    CHECK(full["namespace"] == Value("orders"));
    CHECK(full["pid"] == Value(42));
}

TEST_CASE("detected metadata takes the name from III_WORKER_NAME and isolation from III_ISOLATION",
          "[unit][types][current]") {
    {
        ScopedEnv name("III_WORKER_NAME", "orders-1");
        ScopedEnv isolation("III_ISOLATION", "container");
        const auto m = iii::WorkerMetadata::detect();
        CHECK(m.name == "orders-1");
        CHECK(m.isolation == std::optional<std::string>("container"));
    }
    {
        ScopedEnv name("III_WORKER_NAME", "  ");  // blank: ignored
        ScopedEnv isolation("III_ISOLATION", nullptr);
        const auto m = iii::WorkerMetadata::detect();
        CHECK(m.name.find(':') != std::string::npos);  // <hostname>:<pid>
        CHECK_FALSE(m.isolation);
    }
}

// ---- namespaces ----------------------------------------------------------------------------

TEST_CASE("a call's namespace: explicit, else the worker's, never for engine::*",
          "[unit][namespaces][current]") {
    using iii::detail::invocation_namespace;
    const std::optional<std::string> orders("orders");
    CHECK(invocation_namespace("shop::buy", std::nullopt, orders) == orders);
    CHECK_FALSE(invocation_namespace("engine::functions::list", std::nullopt, orders));
    CHECK(invocation_namespace("engine::functions::list", std::string("infra"), orders) ==
          std::optional<std::string>("infra"));
    CHECK(invocation_namespace("shop::buy", std::string("billing"), orders) ==
          std::optional<std::string>("billing"));
    CHECK_FALSE(invocation_namespace("shop::buy", std::nullopt, std::nullopt));
    CHECK_FALSE(invocation_namespace("shop::buy", std::string("default"), orders));  // absent = default
}

TEST_CASE("the worker namespace comes from the option, else III_NAMESPACE; blank is refused",
          "[unit][namespaces][current]") {
    using iii::detail::resolve_worker_namespace;
    iii::InitOptions options;
    {
        ScopedEnv env("III_NAMESPACE", nullptr);
        CHECK_FALSE(resolve_worker_namespace(options));
    }
    {
        ScopedEnv env("III_NAMESPACE", "from-env");
        CHECK(resolve_worker_namespace(options) == std::optional<std::string>("from-env"));
        options.worker_namespace = "from-option";
        CHECK(resolve_worker_namespace(options) == std::optional<std::string>("from-option"));
        options.worker_namespace = " \t";
        CHECK_THROWS_AS(resolve_worker_namespace(options), iii::Error);
        options.worker_namespace.reset();
    }
    {
        ScopedEnv env("III_NAMESPACE", "");
        try {
            resolve_worker_namespace(options);
            FAIL("a blank $III_NAMESPACE was accepted");
        } catch (const iii::Error& e) {
            CHECK(e.errc() == iii::Errc::Runtime);
            CHECK(std::string(e.what()).find("III_NAMESPACE") != std::string::npos);
        }
    }
}

// ---- invocation context --------------------------------------------------------------------

TEST_CASE("the invocation context is current inside its scope only, and scopes nest",
          "[unit][invocation][current]") {
    CHECK(iii::InvocationContext::current() == nullptr);
    p::InvokeFunction invoke;
    invoke.invocation_id = "11111111-1111-4111-8111-111111111111";
    invoke.function_id = "m::f";
    invoke.metadata = Value::object({{"tenant", "acme"}});
    invoke.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const iii::InvocationContext outer = iii::detail::make_invocation_context(invoke);
    {
        iii::detail::InvocationScope scope(outer);
        REQUIRE(iii::InvocationContext::current() == &outer);
        CHECK(outer.metadata == invoke.metadata);
        CHECK(outer.invocation_id == invoke.invocation_id);
        CHECK(outer.traceparent == invoke.traceparent);
        iii::InvocationContext inner;
        inner.function_id = "nested";
        {
            iii::detail::InvocationScope nested(inner);
            CHECK(iii::InvocationContext::current()->function_id == "nested");
        }
        CHECK(iii::InvocationContext::current() == &outer);
    }
    CHECK(iii::InvocationContext::current() == nullptr);
}

TEST_CASE("a handler with a context parameter gets the context copied at its call",
          "[unit][invocation][current]") {
    // What Client::register_function does with `(Value, const InvocationContext&)` handlers:
    // the context is copied while the scope is current, and kept for the whole coroutine.
    auto handler = std::make_shared<std::function<asio::awaitable<Value>(Value, const iii::InvocationContext&)>>(
        [](Value payload, const iii::InvocationContext& context) -> asio::awaitable<Value> {
            co_return Value::object({{"payload", payload}, {"tenant", (*context.metadata)["tenant"]}});
        });
    iii::InvocationContext context;
    context.metadata = Value::object({{"tenant", "acme"}});
    std::optional<asio::awaitable<Value>> work;
    {
        iii::detail::InvocationScope scope(context);
        work.emplace(iii::detail::run_with_context(handler, Value(7), iii::detail::current_invocation_copy()));
    }
    context.metadata = Value::object({{"tenant", "changed"}});  // the copy is unaffected
    asio::io_context io;
    std::optional<Value> out;
    asio::co_spawn(io, std::move(*work), [&](std::exception_ptr, Value v) { out = std::move(v); });
    io.run();
    REQUIRE(out);
    CHECK((*out)["tenant"] == Value("acme"));
    CHECK((*out)["payload"] == Value(7));
}

// ---- trigger status ------------------------------------------------------------------------

TEST_CASE("a reported trigger registration failure reaches the handle and its waiters",
          "[unit][triggers][current]") {
    iii::Trigger trigger("5d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77", "cron", {});
    iii::Trigger copy = trigger;
    CHECK_FALSE(trigger.registration_error());
    // A success (no error) is never turned into a status.
    CHECK(iii::detail::report_trigger_registration({trigger.id, "cron", "f", std::nullopt}));
    CHECK_FALSE(trigger.registration_error());

    asio::io_context io;
    std::optional<std::optional<iii::RemoteError>> waited;
    asio::co_spawn(io, copy.wait_registration_error(std::chrono::seconds(5)),
                   [&](std::exception_ptr, std::optional<iii::RemoteError> e) { waited = std::move(e); });
    io.run_one();  // the wait is armed
    const iii::RemoteError error{"trigger_registration_failed", "cron needs an expression", std::nullopt};
    CHECK(iii::detail::report_trigger_registration({trigger.id, "cron", "f", error}));
    io.run();
    REQUIRE(waited);
    REQUIRE(*waited);
    CHECK((*waited)->code == "trigger_registration_failed");
    CHECK(trigger.registration_error()->message == "cron needs an expression");
    // Unknown ids are told apart.
    CHECK_FALSE(iii::detail::report_trigger_registration({"no-such-id", "cron", "f", error}));
}

TEST_CASE("waiting for a trigger registration failure times out with nullopt",
          "[unit][triggers][current]") {
    iii::Trigger trigger("6d0c6f1e-2c7b-4d55-9a53-1b1c2b8e4a77", "http", {});
    asio::io_context io;
    bool done = false;
    std::optional<iii::RemoteError> waited;
    asio::co_spawn(io, trigger.wait_registration_error(std::chrono::milliseconds(20)),
                   [&](std::exception_ptr e, std::optional<iii::RemoteError> r) {
                       done = !e;
                       waited = std::move(r);
                   });
    io.run();
    CHECK(done);
    CHECK_FALSE(waited);
}

// ---- telemetry URL, error codes ------------------------------------------------------------

TEST_CASE("the telemetry URL is the engine URL with /otel appended", "[unit][telemetry][current]") {
    using iii::detail::telemetry::Telemetry;
    CHECK(Telemetry::otel_url("ws://127.0.0.1:49134") == "ws://127.0.0.1:49134/otel");
    CHECK(Telemetry::otel_url("ws://127.0.0.1:49134/") == "ws://127.0.0.1:49134/otel");
    CHECK(Telemetry::otel_url("wss://proxy.example/iii") == "wss://proxy.example/iii/otel");
    CHECK(Telemetry::otel_url("ws://h:1/?k=v") == "ws://h:1/otel?k=v");
    iii::OtelConfig config;
    const auto derived = Telemetry::resolve("ws://h:1", config, {{"x-token", "secret"}});
    CHECK(derived.url == "ws://h:1/otel");
    CHECK(derived.fallback_url == "ws://h:1");
    CHECK(derived.headers.at("x-token") == "secret");
    config.engine_ws_url = "ws://h:1/custom";
    const auto explicit_url = Telemetry::resolve("ws://h:1", config);
    CHECK(explicit_url.url == "ws://h:1/custom");
    CHECK(explicit_url.fallback_url.empty());  // a configured URL is used as given
}

TEST_CASE("error codes are constants and RegistrationRejected carries the engine's code",
          "[unit][errors][current]") {
    CHECK(iii::codes::function_not_found == "function_not_found");
    CHECK(iii::codes::timeout == "TIMEOUT");
    CHECK(iii::codes::worker_namespace_conflict == "WORKER_NAMESPACE_CONFLICT");
    CHECK(static_cast<int>(iii::Errc::RegistrationRejected) == 8);
    const iii::Error e(iii::Errc::RegistrationRejected,
                       iii::RemoteError{"WORKER_NAMESPACE_CONFLICT", "name taken", std::nullopt});
    CHECK(e.errc() == iii::Errc::RegistrationRejected);
    REQUIRE(e.remote());
    CHECK(e.remote()->code == iii::codes::worker_namespace_conflict);
    CHECK(std::string(e.what()) == "WORKER_NAMESPACE_CONFLICT: name taken");
    CHECK(e.code().message() == "registration rejected by the engine");
}
