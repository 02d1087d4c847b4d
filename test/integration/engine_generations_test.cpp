// The test engine's generations (EngineOptions::generation) against raw WebSocket clients:
// each 0.22/0.23 behaviour of docs/iii-protocol-current.md checked frame by frame, next to
// what the 0.10 generation does instead.

#include <iii/testing/engine.hpp>

#include "protocol.hpp"
#include "raw_worker.hpp"
#include "value_printer.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>

namespace {

using iii::Value;
using iii::testing::Engine;
using iii::testing::EngineOptions;
using iii::testing::Generation;
using test_support::RawFrame;
using test_support::RawWorker;
using namespace std::chrono_literals;

namespace proto = iii::detail::protocol;

EngineOptions options_for(Generation generation) {
    EngineOptions options;
    options.generation = generation;
    return options;
}

Value invoke(std::optional<std::string> id, const std::string& function_id, Value data) {
    Value m = Value::object();
    m.set("type", "invokefunction");
    m.set("invocation_id", id ? Value(*id) : Value());
    m.set("function_id", function_id);
    m.set("data", std::move(data));
    return m;
}

Value register_function(const std::string& id) {
    return Value::object({{"type", "registerfunction"}, {"id", id}});
}

Value register_trigger(const std::string& id, const std::string& type, const std::string& function_id,
                       Value config = Value::object()) {
    return Value::object({{"type", "registertrigger"},
                          {"id", id},
                          {"trigger_type", type},
                          {"function_id", function_id},
                          {"config", std::move(config)}});
}

/// The worker metadata call every SDK makes after its replay (void).
void announce(RawWorker& worker, const std::string& name, std::optional<std::string> ns = std::nullopt) {
    Value data = Value::object({{"runtime", "raw"}, {"name", name}});
    if (ns) data.set("namespace", *ns);
    Value m = invoke(std::nullopt, "engine::workers::register", std::move(data));
    m.set("action", Value::object({{"type", "void"}}));
    worker.send(m);
}

Value result_for(RawWorker& worker, const std::string& id) {
    std::optional<Value> found;
    worker.wait([&](const std::vector<RawFrame>& frames) {
        for (const auto& f : frames)
            if (f.type == "invocationresult" && f.json["invocation_id"] == Value(id)) {
                found = f.json;
                return true;
            }
        return false;
    });
    if (!found) throw std::runtime_error("no invocationresult for " + id);
    return *found;
}

Value call(RawWorker& worker, const std::string& function_id, Value data = Value::object(),
           std::optional<std::string> ns = std::nullopt) {
    const std::string id = proto::new_uuid();
    Value m = invoke(id, function_id, std::move(data));
    if (ns) m.set("namespace", *ns);
    worker.send(m);
    return result_for(worker, id);
}

bool has_key(const Value& v, const char* key) { return v.find(key) != nullptr; }

std::vector<std::string> ids_of(const Value& list, const char* key) {
    std::vector<std::string> out;
    for (const auto& item : list.as_array()) out.push_back(item.at(key).as_string());
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

bool has_function(const Engine& engine, const std::string& id) {
    return contains(engine.function_ids(), id);
}

}  // namespace

TEST_CASE("generations have names", "[engine][generations]") {
    CHECK(std::string(iii::testing::to_string(Generation::V0_10)) == "0.10");
    CHECK(std::string(iii::testing::to_string(Generation::V0_23)) == "0.23");
    CHECK(iii::testing::parse_generation("0.22") == Generation::V0_22);
    CHECK(iii::testing::parse_generation("0.22.1") == Generation::V0_22);
    CHECK(iii::testing::parse_generation("0.23.0-rc.4") == Generation::V0_23);
    CHECK_FALSE(iii::testing::parse_generation("0.21"));
    CHECK_FALSE(iii::testing::parse_generation("0.22x"));
    CHECK(Engine().generation() == Generation::V0_10);  // the default
}

TEST_CASE("workerregistered carries a reattach token from 0.22 on", "[engine][generations][reattach]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22, Generation::V0_23);
    Engine engine(options_for(generation));
    RawWorker a(engine.url());
    const Value registered = a.nth("workerregistered", 0);
    CHECK(has_key(registered, "reattach_token") == (generation != Generation::V0_10));
}

TEST_CASE("reattach with the right token evicts the old connection before the successor's next frame",
          "[engine][generations][reattach]") {
    const auto generation = GENERATE(Generation::V0_22, Generation::V0_23);
    Engine engine(options_for(generation));
    RawWorker old_link(engine.url());
    const std::string old_id = old_link.worker_id();
    const std::string token = old_link.nth("workerregistered", 0)["reattach_token"].as_string();
    old_link.send(register_function("svc::f"));
    announce(old_link, "svc");
    old_link.sync();
    // A half-open predecessor: the engine no longer reads it (nor notices its end).
    engine.stall(old_id);

    RawWorker successor(engine.url());
    const std::string new_id = successor.worker_id();
    successor.send(Value::object(
        {{"type", "reattach"}, {"previous_worker_id", old_id}, {"reattach_token", token}}));
    successor.send(register_function("svc::f"));
    announce(successor, "svc");  // 0.23: the name is free again, no WORKER_NAMESPACE_CONFLICT
    successor.sync();

    CHECK(engine.close_code(old_id) == std::optional<std::uint16_t>(1006));
    CHECK(engine.worker_ids() == std::vector<std::string>{new_id});
    CHECK(has_function(engine, "svc::f"));
    CHECK(successor.count("registrationrejected") == 0);
    CHECK(old_link.wait_closed());
    // The function now lives on the successor.
    RawWorker caller(engine.url());
    const std::string id = proto::new_uuid();
    caller.send(invoke(id, "svc::f", Value::object()));
    CHECK(successor.next("invokefunction")["invocation_id"] == Value(id));
}

TEST_CASE("reattach with a wrong token, or on 0.10, leaves the old connection alone",
          "[engine][generations][reattach]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22);
    Engine engine(options_for(generation));
    RawWorker old_link(engine.url());
    const std::string old_id = old_link.worker_id();
    RawWorker successor(engine.url());
    successor.send(Value::object(
        {{"type", "reattach"}, {"previous_worker_id", old_id}, {"reattach_token", "forged"}}));
    successor.sync();
    CHECK_FALSE(engine.close_code(old_id));
    CHECK(engine.worker_ids().size() == 2);
    old_link.sync();  // still served
}

TEST_CASE("invocation metadata reaches the callee from 0.22 on", "[engine][generations][metadata]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22, Generation::V0_23);
    Engine engine(options_for(generation));
    RawWorker callee(engine.url()), caller(engine.url());
    callee.send(register_function("m::f"));
    announce(callee, "callee");
    callee.sync();
    Value m = invoke(proto::new_uuid(), "m::f", Value::object());
    m.set("metadata", Value::object({{"tenant", "acme"}}));
    caller.send(m);
    const Value in = callee.next("invokefunction");
    if (generation == Generation::V0_10)
        CHECK_FALSE(has_key(in, "metadata"));
    else
        CHECK(in["metadata"] == Value::object({{"tenant", "acme"}}));
}

TEST_CASE("a trigger binding's metadata comes with every fire from 0.22 on",
          "[engine][generations][metadata]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22);
    Engine engine(options_for(generation));
    RawWorker w(engine.url());
    w.send(register_function("watch::workers"));
    Value trigger = register_trigger("t-meta", "engine::workers-available", "watch::workers");
    trigger.set("metadata", Value::object({{"source", "test"}}));
    w.send(trigger);
    w.sync();
    RawWorker other(engine.url());  // fires worker_connected
    const Value in = w.next("invokefunction");
    CHECK(in["data"]["event"] == Value("worker_connected"));
    if (generation == Generation::V0_10)
        CHECK_FALSE(has_key(in, "metadata"));
    else
        CHECK(in["metadata"] == Value::object({{"source", "test"}}));
}

TEST_CASE("a trigger of an unknown type is parked from 0.22 on and reaches the provider later",
          "[engine][generations][triggers]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22);
    Engine engine(options_for(generation));
    RawWorker consumer(engine.url());
    consumer.send(register_function("c::on_tick"));
    consumer.send(register_trigger("t-park", "custom::tick", "c::on_tick"));
    consumer.sync();
    RawWorker provider(engine.url());
    provider.send(Value::object(
        {{"type", "registertriggertype"}, {"id", "custom::tick"}, {"description", "ticks"}}));
    provider.sync();
    CHECK(consumer.count("triggerregistrationresult") == 0);  // no ack for a parked bind
    if (generation == Generation::V0_10) {
        CHECK(provider.count("registertrigger") == 0);  // dropped for good on 0.10
    } else {
        const Value forwarded = provider.next("registertrigger");
        CHECK(forwarded["id"] == Value("t-park"));
        CHECK(forwarded["function_id"] == Value("c::on_tick"));
    }
}

TEST_CASE("a provider's refusal goes back to the trigger's registrant from 0.22 on",
          "[engine][generations][triggers]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22);
    Engine engine(options_for(generation));
    RawWorker provider(engine.url());
    provider.send(Value::object(
        {{"type", "registertriggertype"}, {"id", "custom::tick"}, {"description", "ticks"}}));
    provider.sync();
    RawWorker consumer(engine.url());
    consumer.send(register_trigger("t-bad", "custom::tick", "c::f", Value::object({{"every", -1}})));
    provider.next("registertrigger");
    const Value error = Value::object({{"code", "trigger_registration_failed"}, {"message", "every < 0"}});
    provider.send(Value::object({{"type", "triggerregistrationresult"},
                                 {"id", "t-bad"},
                                 {"trigger_type", "custom::tick"},
                                 {"function_id", "c::f"},
                                 {"error", error}}));
    provider.sync();
    consumer.sync();
    if (generation == Generation::V0_10) {
        CHECK(consumer.count("triggerregistrationresult") == 0);  // only logged by 0.10
    } else {
        const Value report = consumer.next("triggerregistrationresult");
        CHECK(report["id"] == Value("t-bad"));
        CHECK(report["error"] == error);
    }
    // A success is never acknowledged to the registrant.
    consumer.send(register_trigger("t-ok", "custom::tick", "c::f"));
    provider.next("registertrigger");
    provider.send(Value::object({{"type", "triggerregistrationresult"},
                                 {"id", "t-ok"},
                                 {"trigger_type", "custom::tick"},
                                 {"function_id", "c::f"}}));
    provider.sync();
    consumer.sync();
    CHECK(consumer.count("triggerregistrationresult") == (generation == Generation::V0_10 ? 0u : 1u));
}

TEST_CASE("a built-in trigger type refuses a bad config at once from 0.22 on",
          "[engine][generations][triggers]") {
    Engine engine(options_for(Generation::V0_22));
    RawWorker w(engine.url());
    w.send(register_trigger("t-cron", "cron", "c::f", Value::object({{"schedule", "x"}})));
    const Value report = w.next("triggerregistrationresult");
    CHECK(report["id"] == Value("t-cron"));
    CHECK(report["error"]["code"] == Value("trigger_registration_failed"));
    CHECK(call(w, "engine::registered-triggers::list")["result"]["registered_triggers"] ==
          Value::array());
}

TEST_CASE("the 0.22 discovery built-ins have the new names and shapes", "[engine][generations][discovery]") {
    const auto generation = GENERATE(Generation::V0_22, Generation::V0_23);
    Engine engine(options_for(generation));
    RawWorker w(engine.url());
    Value fn = register_function("d::f");
    fn.set("description", "a function");
    fn.set("request_format", Value::object({{"type", "object"}}));
    w.send(fn);
    w.send(Value::object({{"type", "registertriggertype"}, {"id", "d::type"}, {"description", "mine"}}));
    w.send(register_trigger("t-http", "http", "d::f", Value::object({{"api_path", "/x"}})));
    announce(w, "discoverer");
    w.sync();

    // engine::triggers::list lists trigger *types* now.
    const Value types = call(w, "engine::triggers::list", Value::object({{"include_internal", false}}));
    const auto type_ids = ids_of(types["result"]["triggers"], "id");
    CHECK(contains(type_ids, "d::type"));
    CHECK(contains(type_ids, "http"));
    CHECK_FALSE(contains(type_ids, "engine::functions-available"));
    for (const auto& t : types["result"]["triggers"].as_array()) {
        CHECK(has_key(t, "worker_name"));
        CHECK_FALSE(has_key(t, "trigger_type"));
    }
    // Instances come from engine::registered-triggers::list.
    const Value registered = call(w, "engine::registered-triggers::list");
    REQUIRE(registered["result"]["registered_triggers"].as_array().size() == 1);
    const Value item = registered["result"]["registered_triggers"].as_array()[0];
    CHECK(item["id"] == Value("t-http"));
    CHECK(item["trigger_type"] == Value("http"));
    CHECK(item["worker_name"] == Value("discoverer"));
    CHECK(item["config"] == Value::object({{"api_path", "/x"}}));
    CHECK(has_key(item, "config_summary"));
    // engine::trigger-types::list is gone.
    CHECK(call(w, "engine::trigger-types::list")["error"]["code"] == Value("function_not_found"));

    // workers::list: no functions, pid or timestamp; the engine's in-process workers listed.
    const Value workers = call(w, "engine::workers::list");
    CHECK_FALSE(has_key(workers["result"], "timestamp"));
    bool saw_engine = false, saw_me = false;
    for (const auto& row : workers["result"]["workers"].as_array()) {
        CHECK_FALSE(has_key(row, "functions"));
        CHECK_FALSE(has_key(row, "pid"));
        CHECK(has_key(row, "isolation"));
        if (row["runtime"] == Value("engine")) saw_engine = row["isolation"] == Value("in-process");
        if (row["name"] == Value("discoverer")) saw_me = row["function_count"] == Value(1);
        CHECK(has_key(row, "namespace") == (generation == Generation::V0_23));
    }
    CHECK(saw_engine);
    CHECK(saw_me);

    // functions::list: no schemas; functions::info has them.
    const Value functions = call(w, "engine::functions::list");
    REQUIRE(ids_of(functions["result"]["functions"], "function_id") == std::vector<std::string>{"d::f"});
    const Value summary = functions["result"]["functions"].as_array()[0];
    CHECK_FALSE(has_key(summary, "request_format"));
    CHECK(summary["worker_name"] == Value("discoverer"));
    const Value info = call(w, "engine::functions::info", Value::object({{"function_id", "d::f"}}));
    CHECK(info["result"]["request_schema"] == Value::object({{"type", "object"}}));
    CHECK(info["result"]["description"] == Value("a function"));
    CHECK(ids_of(info["result"]["registered_triggers"], "id") == std::vector<std::string>{"t-http"});
    CHECK(call(w, "engine::functions::info", Value::object({{"function_id", "nope"}}))["error"]["code"] ==
          Value("NOT_FOUND"));
    CHECK(call(w, "engine::functions::info", Value::object())["error"]["code"] ==
          Value("INVALID_ARGUMENTS"));
}

TEST_CASE("the 0.10 generation keeps its discovery names", "[engine][generations][discovery]") {
    Engine engine;  // default: 0.10
    RawWorker w(engine.url());
    CHECK(call(w, "engine::registered-triggers::list")["error"]["code"] == Value("function_not_found"));
    CHECK(call(w, "engine::functions::info", Value::object({{"function_id", "x"}}))["error"]["code"] ==
          Value("function_not_found"));
    CHECK(has_key(call(w, "engine::trigger-types::list")["result"], "trigger_types"));
}

TEST_CASE("enqueue on 0.22 goes through the queue provider, and fails without one",
          "[engine][generations][enqueue]") {
    auto enqueue = [](RawWorker& w, const std::string& function_id, Value data) {
        const std::string id = proto::new_uuid();
        Value m = invoke(id, function_id, std::move(data));
        m.set("action", Value::object({{"type", "enqueue"}, {"queue", "default"}}));
        w.send(m);
        return result_for(w, id);
    };
    SECTION("no queue worker: enqueue_error naming the fix") {
        Engine engine(options_for(Generation::V0_22));
        RawWorker w(engine.url());
        const Value reply = enqueue(w, "q::f", Value::object());
        CHECK(reply["error"]["code"] == Value("enqueue_error"));
        CHECK(reply["error"]["message"].as_string().find("No queue provider is installed") !=
              std::string::npos);
    }
    SECTION("the in-process queue worker: receipt, then delivery") {
        EngineOptions options = options_for(Generation::V0_22);
        options.queue_worker = true;
        Engine engine(options);
        RawWorker w(engine.url());
        w.send(register_function("q::f"));
        w.sync();
        const Value reply = enqueue(w, "q::f", Value::object({{"n", 1}}));
        CHECK(reply["result"]["messageReceiptId"].is_string());
        CHECK(w.next("invokefunction")["data"]["n"] == Value(1));
    }
    SECTION("a worker provides engine::queue::enqueue") {
        Engine engine(options_for(Generation::V0_22));
        RawWorker queue(engine.url()), w(engine.url());
        queue.send(register_function("engine::queue::enqueue"));
        queue.sync();
        const std::string id = proto::new_uuid();
        Value m = invoke(id, "q::f", Value::object({{"n", 2}}));
        m.set("action", Value::object({{"type", "enqueue"}, {"queue", "default"}}));
        w.send(m);
        const Value handed = queue.next("invokefunction");
        CHECK(handed["data"]["queue"] == Value("default"));
        CHECK(handed["data"]["function_id"] == Value("q::f"));
        CHECK(handed["data"]["data"]["n"] == Value(2));
        queue.send(Value::object({{"type", "invocationresult"},
                                  {"invocation_id", handed["invocation_id"]},
                                  {"function_id", "engine::queue::enqueue"},
                                  {"result", Value::object()}}));
        CHECK(result_for(w, id)["result"]["messageReceiptId"] == handed["data"]["messageReceiptId"]);
    }
}

TEST_CASE("0.23 holds registrations until engine::workers::register and files them in its namespace",
          "[engine][generations][namespaces]") {
    Engine engine(options_for(Generation::V0_23));
    RawWorker w(engine.url());
    w.send(register_function("orders::create"));
    w.sync();
    CHECK_FALSE(has_function(engine, "orders::create"));
    CHECK_FALSE(has_function(engine, "orders/orders::create"));
    announce(w, "orders-worker", "orders");
    w.sync();
    CHECK(has_function(engine, "orders/orders::create"));

    RawWorker caller(engine.url());
    announce(caller, "caller");
    // Absent namespace = default: not found there, and the message names the namespace.
    const Value missing = call(caller, "orders::create");
    CHECK(missing["error"]["code"] == Value("function_not_found"));
    CHECK(missing["error"]["message"].as_string().find("default") != std::string::npos);
    const std::string id = proto::new_uuid();
    Value m = invoke(id, "orders::create", Value::object());
    m.set("namespace", "orders");
    caller.send(m);
    const Value in = w.next("invokefunction");
    CHECK(in["invocation_id"] == Value(id));
    CHECK_FALSE(has_key(in, "namespace"));  // never set toward a worker
}

TEST_CASE("0.23 applies held registrations in default after the grace", "[engine][generations][namespaces]") {
    EngineOptions options = options_for(Generation::V0_23);
    options.namespace_grace = 100ms;
    Engine engine(options);
    RawWorker w(engine.url());
    w.send(register_function("late::f"));
    w.sync();
    CHECK(engine.wait_for([&] { return has_function(engine, "late::f"); }, 5s));
}

TEST_CASE("0.23 refuses a live duplicate function in one namespace and keeps the connection",
          "[engine][generations][namespaces]") {
    Engine engine(options_for(Generation::V0_23));
    RawWorker first(engine.url()), second(engine.url());
    first.send(register_function("dup::f"));
    announce(first, "first");
    first.sync();
    second.send(register_function("dup::f"));
    announce(second, "second");
    const Value rejected = second.next("registrationrejected");
    CHECK(rejected["code"] == Value("FUNCTION_NAMESPACE_CONFLICT"));
    CHECK(rejected["namespace"] == Value("default"));
    CHECK(rejected["function_id"] == Value("dup::f"));
    CHECK(rejected["owner_worker_id"] == Value(first.worker_id()));
    second.sync();  // still open and served
    CHECK_FALSE(second.closed());
    const std::string id = proto::new_uuid();
    second.send(invoke(id, "dup::f", Value::object()));
    CHECK(first.next("invokefunction")["invocation_id"] == Value(id));  // the first owner kept it
}

TEST_CASE("0.22 lets the last writer own a function; the stale owner cannot remove it",
          "[engine][generations]") {
    Engine engine(options_for(Generation::V0_22));
    RawWorker first(engine.url()), second(engine.url());
    first.send(register_function("own::f"));
    first.sync();
    second.send(register_function("own::f"));
    second.sync();
    first.send(Value::object({{"type", "unregisterfunction"}, {"id", "own::f"}}));
    first.sync();
    CHECK(has_function(engine, "own::f"));
    first.abort();
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 1; }));
    CHECK(has_function(engine, "own::f"));
}

TEST_CASE("0.23 rejects a second live worker with the same name, then closes it",
          "[engine][generations][namespaces]") {
    Engine engine(options_for(Generation::V0_23));
    RawWorker first(engine.url()), second(engine.url());
    announce(first, "same-name");
    first.sync();
    announce(second, "same-name");
    const Value rejected = second.next("registrationrejected");
    CHECK(rejected["code"] == Value("WORKER_NAMESPACE_CONFLICT"));
    CHECK(rejected["worker_name"] == Value("same-name"));
    CHECK(rejected["owner_worker_id"] == Value(first.worker_id()));
    REQUIRE(second.wait_closed());
    CHECK(second.close_code() == 1008);
    first.sync();
}

TEST_CASE("the /otel route can answer 404 as the 0.10 engine does", "[engine][generations][otel]") {
    EngineOptions options;
    options.otel_route = false;
    Engine engine(options);
    RawWorker otel(engine.url() + "/otel");
    CHECK(otel.wait_closed());
    CHECK(otel.close_error());
    RawWorker worker(engine.url());
    worker.sync();
}
