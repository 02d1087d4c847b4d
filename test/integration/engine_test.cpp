// The test engine against raw WebSocket clients: every frame checked by hand against spec
// sections 1-5 and 9 (docs/iii-protocol.md).

#include <iii/testing/engine.hpp>

#include "protocol.hpp"
#include "raw_worker.hpp"
#include "value_printer.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

namespace {

using iii::Value;
using iii::testing::Engine;
using iii::testing::EngineOptions;
using iii::testing::RecordedFrame;
using test_support::RawFrame;
using test_support::RawWorker;
using namespace std::chrono_literals;

namespace proto = iii::detail::protocol;

/// Canonical lower-case hyphenated UUID, version 4, RFC 4122 variant.
bool is_uuid_v4(const Value& v) {
    if (!v.is_string() || v.as_string().size() != 36) return false;
    const std::string& s = v.as_string();
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        const bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
        if (hyphen ? s[i] != '-' : !hex) return false;
    }
    return s[14] == '4' && std::string_view("89ab").find(s[19]) != std::string_view::npos;
}

Value invoke(std::optional<std::string> id, const std::string& function_id, Value data,
             std::optional<Value> action = std::nullopt) {
    Value m = Value::object();
    m.set("type", "invokefunction");
    m.set("invocation_id", id ? Value(*id) : Value());
    m.set("function_id", function_id);
    m.set("data", std::move(data));
    if (action) m.set("action", std::move(*action));
    return m;
}

Value void_action() { return Value::object({{"type", "void"}}); }
Value enqueue_action(const std::string& queue) {
    return Value::object({{"type", "enqueue"}, {"queue", queue}});
}

Value register_function(const std::string& id) {
    return Value::object({{"type", "registerfunction"}, {"id", id}});
}

Value register_trigger(const std::string& id, const std::string& type,
                       const std::string& function_id, Value config = Value::object()) {
    return Value::object({{"type", "registertrigger"},
                          {"id", id},
                          {"trigger_type", type},
                          {"function_id", function_id},
                          {"config", std::move(config)}});
}

Value result(const std::string& id, const std::string& function_id, Value value) {
    return Value::object({{"type", "invocationresult"},
                          {"invocation_id", id},
                          {"function_id", function_id},
                          {"result", std::move(value)}});
}

/// The invocationresult that answers `id`, waiting for it.
Value result_for(RawWorker& worker, const std::string& id) {
    std::optional<Value> found;
    worker.wait([&](const std::vector<RawFrame>& frames) {
        for (const auto& f : frames) {
            if (f.type == "invocationresult" && f.json["invocation_id"] == Value(id)) {
                found = f.json;
                return true;
            }
        }
        return false;
    });
    if (!found) throw std::runtime_error("no invocationresult for " + id);
    return *found;
}

/// Calls `function_id` synchronously from `worker` and returns the invocationresult frame.
Value call(RawWorker& worker, const std::string& function_id, Value data = Value::object()) {
    const std::string id = proto::new_uuid();
    worker.send(invoke(id, function_id, std::move(data)));
    return result_for(worker, id);
}

/// The first engine-to-worker invokefunction of `function_id` whose data matches `pred`.
Value wait_invocation(RawWorker& worker, const std::string& function_id,
                      const std::function<bool(const Value&)>& pred = {}) {
    std::optional<Value> found;
    worker.wait([&](const std::vector<RawFrame>& frames) {
        for (const auto& f : frames) {
            if (f.type == "invokefunction" && f.json["function_id"] == Value(function_id) &&
                (!pred || pred(f.json["data"]))) {
                found = f.json;
                return true;
            }
        }
        return false;
    });
    if (!found) throw std::runtime_error("no invokefunction for " + function_id);
    return *found;
}

bool has_key(const Value& v, const char* key) { return v.find(key) != nullptr; }

bool keys_in_order(const std::string& text, std::initializer_list<const char*> keys) {
    std::size_t at = 0;
    for (const char* key : keys) {
        const auto found = text.find(std::string("\"") + key + "\":", at);
        if (found == std::string::npos) return false;
        at = found;
    }
    return true;
}

std::vector<std::string> ids_of(const Value& list, const char* key) {
    std::vector<std::string> out;
    for (const auto& item : list.as_array()) out.push_back(item.at(key).as_string());
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

/// Index in `frames` of the first outbound frame to `worker` whose text contains `needle`.
std::ptrdiff_t index_of(const std::vector<RecordedFrame>& frames, const std::string& worker,
                        const std::string& needle) {
    for (std::size_t i = 0; i < frames.size(); ++i)
        if (!frames[i].inbound && frames[i].worker_id == worker &&
            frames[i].text.find(needle) != std::string::npos)
            return static_cast<std::ptrdiff_t>(i);
    return -1;
}

}  // namespace

TEST_CASE("workerregistered is the first frame, with a fresh v4 worker id", "[engine]") {
    Engine engine;
    RawWorker a(engine.url());
    const std::string a_id = a.worker_id();
    RawWorker b(engine.url());  // connects after a: connection order is a, b
    const std::string b_id = b.worker_id();

    CHECK(a.frames().front().type == "workerregistered");
    CHECK(b.frames().front().type == "workerregistered");
    CHECK(is_uuid_v4(Value(a_id)));
    CHECK(is_uuid_v4(Value(b_id)));
    CHECK(a_id != b_id);
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 2; }));
    CHECK(engine.worker_ids() == std::vector<std::string>{a_id, b_id});

    a.sync();  // ping is answered with pong
    CHECK(a.nth("pong", 0) == Value::object({{"type", "pong"}}));
}

TEST_CASE("a sync call reaches the callee with the same id and the caller's worker id, sorted",
          "[engine][invoke]") {
    Engine engine;
    RawWorker callee(engine.url()), caller(engine.url());
    callee.send(register_function("math::add"));
    callee.sync();

    const std::string id = proto::new_uuid();
    caller.send(invoke(id, "math::add", Value::parse(R"({"z":{"y":1,"x":2},"b":2,"a":1})")));
    const Value in = callee.next("invokefunction");
    CHECK(in["invocation_id"] == Value(id));
    CHECK(in["function_id"] == Value("math::add"));
    CHECK(in["data"]["_caller_worker_id"] == Value(caller.worker_id()));
    CHECK(in["data"]["a"] == Value(1));
    CHECK_FALSE(has_key(in, "action"));
    // Re-encoded like serde_json::Value: object keys sorted, nested ones too.
    const std::string text = callee.nth_text("invokefunction", 0);
    CHECK(keys_in_order(text, {"_caller_worker_id", "a", "b", "z", "x", "y"}));

    callee.send(result(id, "math::add", Value::parse(R"({"sum":3,"a":[{"d":1,"c":2}]})")));
    const Value out = result_for(caller, id);
    CHECK(out["function_id"] == Value("math::add"));
    CHECK(out["result"] == Value::parse(R"({"a":[{"c":2,"d":1}],"sum":3})"));
    CHECK_FALSE(has_key(out, "error"));
    CHECK(keys_in_order(caller.nth_text("invocationresult", 0), {"a", "c", "d", "sum"}));

    SECTION("data that is not an object is passed unchanged") {
        const std::string id2 = proto::new_uuid();
        caller.send(invoke(id2, "math::add", Value::array({1, 2})));
        const Value in2 = callee.nth("invokefunction", 1);
        CHECK(in2["data"] == Value::array({1, 2}));
    }
    SECTION("invocation ids in another UUID form come back canonical") {
        const std::string canonical = proto::new_uuid();
        std::string upper;
        for (char c : canonical)
            if (c != '-') upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        caller.send(invoke(upper, "math::add", Value::object()));
        const Value in2 = callee.nth("invokefunction", 1);
        CHECK(in2["invocation_id"] == Value(canonical));
        callee.send(result(canonical, "math::add", 5));
        CHECK(result_for(caller, canonical)["result"] == Value(5));
    }
}

TEST_CASE("errors pass through unchanged and a null result is omitted", "[engine][invoke]") {
    Engine engine;
    RawWorker callee(engine.url()), caller(engine.url());
    callee.send(register_function("svc::fn"));
    callee.sync();

    const std::string failing = proto::new_uuid();
    caller.send(invoke(failing, "svc::fn", Value::object()));
    callee.next("invokefunction");
    callee.send(Value::parse(
        R"({"type":"invocationresult","invocation_id":")" + failing +
        R"(","function_id":"svc::fn","error":{"code":"boom","message":"it broke","stacktrace":"at line 1"}})"));
    const Value error_reply = result_for(caller, failing);
    CHECK(error_reply["error"] ==
          Value::parse(R"({"code":"boom","message":"it broke","stacktrace":"at line 1"})"));
    CHECK_FALSE(has_key(error_reply, "result"));

    const std::string null_result = proto::new_uuid();
    caller.send(invoke(null_result, "svc::fn", Value::object()));
    callee.next("invokefunction");
    callee.send(result(null_result, "svc::fn", Value()));
    const Value null_reply = result_for(caller, null_result);
    CHECK_FALSE(has_key(null_reply, "result"));
    CHECK_FALSE(has_key(null_reply, "error"));

    const std::string absent = proto::new_uuid();
    caller.send(invoke(absent, "svc::fn", Value::object()));
    callee.next("invokefunction");
    callee.send(Value::object(
        {{"type", "invocationresult"}, {"invocation_id", absent}, {"function_id", "svc::fn"}}));
    const Value absent_reply = result_for(caller, absent);
    CHECK_FALSE(has_key(absent_reply, "result"));
    CHECK_FALSE(has_key(absent_reply, "error"));
}

TEST_CASE("a void call reaches the callee with a fresh id and its result is swallowed",
          "[engine][invoke]") {
    Engine engine;
    RawWorker callee(engine.url()), caller(engine.url());
    callee.send(register_function("svc::fire"));
    callee.sync();
    const std::string caller_id = caller.worker_id();

    SECTION("action void with a null invocation id") {
        caller.send(invoke(std::nullopt, "svc::fire", Value::object({{"n", 1}}), void_action()));
    }
    SECTION("action void with an invocation id") {
        caller.send(
            invoke(proto::new_uuid(), "svc::fire", Value::object({{"n", 1}}), void_action()));
    }
    SECTION("no action and no invocation id at all") {
        caller.send(Value::object(
            {{"type", "invokefunction"}, {"function_id", "svc::fire"}, {"data", {{"n", 1}}}}));
    }
    const Value in = callee.next("invokefunction");
    CHECK(is_uuid_v4(in["invocation_id"]));
    CHECK(in["data"]["_caller_worker_id"] == Value(caller_id));
    CHECK(in["data"]["n"] == Value(1));
    for (const auto& sent : engine.received("invokefunction", caller_id))
        CHECK(sent["invocation_id"] != in["invocation_id"]);

    callee.send(result(in["invocation_id"].as_string(), "svc::fire", "ignored"));
    callee.sync();  // the engine has handled the result...
    caller.sync();  // ...and anything it sent the caller came before this pong
    CHECK(caller.count("invocationresult") == 0);
}

TEST_CASE("an unknown function is reported only when a reply is due", "[engine][invoke]") {
    Engine engine;
    RawWorker caller(engine.url());

    const Value reply = call(caller, "nope::missing", Value::object());
    CHECK(reply["function_id"] == Value("nope::missing"));
    CHECK(reply["error"] ==
          Value::parse(
              R"({"code":"function_not_found","message":"Function nope::missing not found"})"));
    CHECK_FALSE(has_key(reply, "result"));

    caller.send(invoke(std::nullopt, "nope::missing", Value::object(), void_action()));
    caller.send(invoke(proto::new_uuid(), "nope::missing", Value::object(), void_action()));
    caller.sync();
    CHECK(caller.count("invocationresult") == 1);
}

TEST_CASE("enqueue acknowledges with a receipt, then delivers the call from the engine",
          "[engine][enqueue]") {
    Engine engine;
    RawWorker worker(engine.url()), producer(engine.url());
    worker.send(register_function("jobs::run"));
    worker.sync();

    const std::string id = proto::new_uuid();
    producer.send(invoke(id, "jobs::run", Value::object({{"k", 1}}), enqueue_action("default")));
    const Value ack = result_for(producer, id);
    CHECK(ack["function_id"] == Value("jobs::run"));
    REQUIRE(has_key(ack, "result"));
    CHECK(ack["result"].size() == 1);
    CHECK(is_uuid_v4(ack["result"]["messageReceiptId"]));

    const Value delivery = worker.next("invokefunction");
    CHECK(delivery["function_id"] == Value("jobs::run"));
    CHECK(delivery["data"] == Value::object({{"k", 1}}));  // no _caller_worker_id on this path
    CHECK(is_uuid_v4(delivery["invocation_id"]));
    CHECK(delivery["invocation_id"] != Value(id));

    worker.send(result(delivery["invocation_id"].as_string(), "jobs::run", true));
    worker.sync();
    producer.sync();
    CHECK(producer.count("invocationresult") == 1);  // the ack only
}

TEST_CASE("enqueue failures and the cases that are not failures", "[engine][enqueue]") {
    Engine engine;
    RawWorker producer(engine.url());
    auto enqueue = [&](const std::string& queue, Value data,
                       const std::string& function_id = "jobs::run") {
        const std::string id = proto::new_uuid();
        producer.send(invoke(id, function_id, std::move(data), enqueue_action(queue)));
        return result_for(producer, id);
    };

    CHECK(enqueue("nonexistent_queue", Value::object())["error"] ==
          Value::parse(
              R"({"code":"enqueue_error","message":"Queue 'nonexistent_queue' not found"})"));
    CHECK(
        enqueue("payment", Value::object({{"amount", 3}}))["error"] ==
        Value::parse(
            R"({"code":"enqueue_error","message":"FIFO queue 'payment' requires field 'transaction_id' in data, but it was not found"})"));
    CHECK(
        enqueue("payment", Value::object({{"transaction_id", nullptr}}))["error"] ==
        Value::parse(
            R"({"code":"enqueue_error","message":"FIFO queue 'payment': field 'transaction_id' must not be null"})"));
    CHECK(is_uuid_v4(enqueue(
        "payment", Value::object({{"transaction_id", "t1"}}))["result"]["messageReceiptId"]));
    // The function's existence is not checked at enqueue time.
    CHECK(is_uuid_v4(
        enqueue("default", Value::object(), "nope::none")["result"]["messageReceiptId"]));

    SECTION("without an invocation id nothing is replied, and the call is still delivered") {
        RawWorker worker(engine.url());
        worker.send(register_function("jobs::quiet"));
        worker.sync();
        producer.send(invoke(std::nullopt, "jobs::quiet", Value::object({{"x", 1}}),
                             enqueue_action("default")));
        CHECK(worker.next("invokefunction")["data"] == Value::object({{"x", 1}}));
        producer.sync();
        CHECK(producer.count("invocationresult") == 5);
    }
}

TEST_CASE("a callee that disconnects mid-call stops the caller's invocation",
          "[engine][lifecycle]") {
    Engine engine;
    RawWorker caller(engine.url());
    auto callee = std::make_unique<RawWorker>(engine.url());
    callee->send(register_function("slow::op"));
    callee->sync();

    const std::string id = proto::new_uuid();
    caller.send(invoke(id, "slow::op", Value::object()));
    callee->next("invokefunction");
    callee->abort();

    const Value reply = result_for(caller, id);
    CHECK(reply["function_id"] == Value("slow::op"));
    CHECK(reply["error"] ==
          Value::parse(R"({"code":"invocation_stopped","message":"Invocation stopped"})"));
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 1; }));
    CHECK_FALSE(contains(engine.function_ids(), "slow::op"));
}

TEST_CASE("disconnect cleanup: functions, invocations, triggers, trigger types, then the worker",
          "[engine][lifecycle]") {
    EngineOptions options;
    Engine engine(options);
    RawWorker owner(engine.url()), watcher(engine.url()), caller(engine.url()),
        binder(engine.url());
    auto departing = std::make_unique<RawWorker>(engine.url());
    const std::string departing_id = departing->worker_id();

    owner.send(Value::object({{"type", "registertriggertype"}, {"id", "T"}, {"description", "t"}}));
    owner.sync();
    watcher.send(register_function("watch::workers"));
    watcher.send(register_trigger("w1", "engine::workers-available", "watch::workers"));
    watcher.sync();

    departing->send(register_function("d::slow"));
    departing->send(register_trigger("trig-d", "T", "d::slow"));
    departing->send(
        Value::object({{"type", "registertriggertype"}, {"id", "DT"}, {"description", "d"}}));
    departing->sync();
    CHECK(owner.next("registertrigger")["id"] == Value("trig-d"));
    binder.send(register_trigger("trig-b", "DT", "b::fn"));
    binder.sync();
    CHECK(departing->next("registertrigger")["id"] == Value("trig-b"));

    const std::string id = proto::new_uuid();
    caller.send(invoke(id, "d::slow", Value::object()));
    departing->next("invokefunction");
    departing->abort();

    const Value stopped = result_for(caller, id);
    CHECK(stopped["error"]["code"] == Value("invocation_stopped"));
    const Value unregister = owner.next("unregistertrigger");
    CHECK(unregister ==
          Value::parse(R"({"type":"unregistertrigger","id":"trig-d","trigger_type":"T"})"));
    const Value gone = wait_invocation(watcher, "watch::workers", [&](const Value& data) {
        return data["event"] == Value("worker_disconnected");
    });
    CHECK(gone["data"] ==
          Value::object({{"event", "worker_disconnected"}, {"worker_id", departing_id}}));

    // The order of the engine's own frames: stop the invocation, tell the type owner, announce.
    const auto frames = engine.frames();
    const auto stop_at = index_of(frames, caller.worker_id(), "invocation_stopped");
    const auto unregister_at = index_of(frames, owner.worker_id(), "unregistertrigger");
    const auto announce_at = index_of(frames, watcher.worker_id(), "worker_disconnected");
    REQUIRE(stop_at >= 0);
    CHECK(stop_at < unregister_at);
    CHECK(unregister_at < announce_at);

    CHECK_FALSE(contains(engine.function_ids(), "d::slow"));
    CHECK(engine.worker_ids().size() == 4);
    // Its trigger type is gone; the binder's trigger of that type stays, orphaned...
    const Value types = call(binder, "engine::trigger-types::list", Value::object())["result"];
    CHECK_FALSE(contains(ids_of(types["trigger_types"], "id"), "DT"));
    const Value triggers = call(binder, "engine::triggers::list", Value::object())["result"];
    CHECK(contains(ids_of(triggers["triggers"], "id"), "trig-b"));
    CHECK_FALSE(contains(ids_of(triggers["triggers"], "id"), "trig-d"));
    // ...and is replayed to the next owner of the type.
    RawWorker next_owner(engine.url());
    next_owner.send(
        Value::object({{"type", "registertriggertype"}, {"id", "DT"}, {"description", "d2"}}));
    const Value replay = next_owner.next("registertrigger");
    CHECK(
        replay ==
        Value::parse(
            R"({"type":"registertrigger","id":"trig-b","trigger_type":"DT","function_id":"b::fn","config":{}})"));
}

TEST_CASE("a duplicate function id overwrites, and the first owner's disconnect removes it",
          "[engine][lifecycle]") {
    Engine engine;
    auto first = std::make_unique<RawWorker>(engine.url());
    RawWorker second(engine.url()), caller(engine.url());
    first->send(register_function("dup::fn"));
    first->sync();
    second.send(register_function("dup::fn"));
    second.sync();

    const std::string id = proto::new_uuid();
    caller.send(invoke(id, "dup::fn", Value::object()));
    CHECK(second.next("invokefunction")["invocation_id"] == Value(id));

    first->close();
    REQUIRE(engine.wait_for([&] { return !contains(engine.function_ids(), "dup::fn"); }));
}

TEST_CASE("engine::functions::list has all five keys and hides engine:: ids by default",
          "[engine][builtins]") {
    Engine engine;
    RawWorker worker(engine.url());
    worker.send(
        Value::parse(R"({"type":"registerfunction","id":"greet","description":"Greet someone",
        "request_format":{"type":"object"},"response_format":{"type":"string"},"metadata":{"tag":"x"}})"));
    worker.send(register_function("orders::create"));
    worker.sync();

    const Value list = call(worker, "engine::functions::list")["result"]["functions"];
    CHECK(ids_of(list, "function_id") == std::vector<std::string>{"greet", "orders::create"});
    for (const auto& item : list.as_array()) CHECK(item.size() == 5);
    CHECK(list[0] == Value::parse(R"({"function_id":"greet","description":"Greet someone",
        "request_format":{"type":"object"},"response_format":{"type":"string"},"metadata":{"tag":"x"}})"));
    CHECK(list[1] == Value::parse(R"({"function_id":"orders::create","description":null,
        "request_format":null,"response_format":null,"metadata":null})"));

    const Value all = call(worker, "engine::functions::list",
                           Value::object({{"include_internal", true}}))["result"]["functions"];
    const auto ids = ids_of(all, "function_id");
    for (const char* builtin :
         {"engine::workers::register", "engine::functions::list", "engine::workers::list",
          "engine::triggers::list", "engine::trigger-types::list", "engine::channels::create"})
        CHECK(contains(ids, builtin));

    CHECK(call(worker, "engine::functions::list", Value())["result"]["functions"].size() == 2);
    const Value bad =
        call(worker, "engine::functions::list", Value::object({{"include_internal", "yes"}}));
    CHECK(bad["error"]["code"] == Value("deserialization_error"));
    CHECK(bad["error"]["message"].as_string().starts_with(
        "Failed to deserialize input for engine::functions::list: "));
}

TEST_CASE("engine::workers::list reports metadata, functions and invocations",
          "[engine][builtins]") {
    Engine engine;
    RawWorker a(engine.url()), b(engine.url());
    a.send(register_function("a::f"));
    a.send(invoke(
        std::nullopt, "engine::workers::register",
        Value::parse(
            R"json({"runtime":"cpp","version":"1.2.3","name":"host:42","os":"linux x86_64 (unix)",
                                   "pid":42,"telemetry":{"language":"en_US","framework":"iii-cpp"},"isolation":"x"})json"),
        void_action()));
    a.sync();
    b.sync();

    const Value reply = call(a, "engine::workers::list");
    const Value workers = reply["result"]["workers"];
    REQUIRE(workers.size() == 2);
    CHECK(reply["result"]["timestamp"].is_integer());
    auto by_id = [&](const std::string& id) {
        for (const auto& w : workers.as_array())
            if (w["id"] == Value(id)) return w;
        throw std::runtime_error("worker " + id + " not listed");
    };
    CHECK(ids_of(workers, "id") == engine.worker_ids());  // connection order
    const Value wa = by_id(a.worker_id());
    CHECK(wa["id"] == Value(a.worker_id()));
    CHECK(wa["name"] == Value("host:42"));
    CHECK(wa["runtime"] == Value("cpp"));
    CHECK(wa["version"] == Value("1.2.3"));
    CHECK(wa["os"] == Value("linux x86_64 (unix)"));
    CHECK(wa["ip_address"] == Value("127.0.0.1"));
    CHECK(wa["status"] == Value("connected"));
    CHECK(wa["connected_at_ms"].as_uint() > 1'600'000'000'000u);
    CHECK(wa["function_count"] == Value(1));
    CHECK(wa["functions"] == Value::array({"a::f"}));
    CHECK(wa["latest_metrics"].is_null());
    CHECK(wa["pid"] == Value(42));
    CHECK(wa["active_invocations"] == Value(1));  // its own list call, in its set while it runs
    const Value wb = by_id(b.worker_id());
    CHECK(wb["id"] == Value(b.worker_id()));
    CHECK(wb["name"].is_null());
    CHECK(wb["runtime"].is_null());
    CHECK(wb["active_invocations"] == Value(0));
    CHECK_FALSE(has_key(wb, "pid"));

    SECTION("filter by worker id") {
        const Value only = call(a, "engine::workers::list",
                                Value::object({{"worker_id", b.worker_id()}}))["result"]["workers"];
        REQUIRE(only.size() == 1);
        CHECK(only[0]["id"] == Value(b.worker_id()));
    }
    SECTION("active invocations count both ends of a pending call") {
        b.send(register_function("b::wait"));
        b.sync();
        a.send(invoke(proto::new_uuid(), "b::wait", Value::object()));
        b.next("invokefunction");
        const Value listed =
            call(b, "engine::workers::list",
                 Value::object({{"worker_id", a.worker_id()}}))["result"]["workers"];
        CHECK(listed[0]["active_invocations"] == Value(1));
    }
    SECTION("runtime defaults to unknown and an omitted version becomes null") {
        const Value registered =
            call(b, "engine::workers::register", Value::object({{"name", "n"}}));
        CHECK(registered["result"] == Value::object({{"success", true}}));
        const Value listed =
            call(b, "engine::workers::list",
                 Value::object({{"worker_id", b.worker_id()}}))["result"]["workers"];
        CHECK(listed[0]["runtime"] == Value("unknown"));
        CHECK(listed[0]["version"].is_null());
        CHECK(listed[0]["name"] == Value("n"));
    }
}

TEST_CASE("engine::triggers::list and engine::trigger-types::list", "[engine][builtins]") {
    Engine engine;
    RawWorker owner(engine.url()), worker(engine.url());
    owner.send(Value::parse(
        R"({"type":"registertriggertype","id":"webhook","description":"Inbound webhooks",
        "trigger_request_format":{"type":"object"}})"));
    owner.sync();
    Value with_metadata =
        register_trigger("t-hook", "webhook", "hooks::github", Value::object({{"url", "/gh"}}));
    with_metadata.set("metadata", Value::object({{"team", "a"}}));
    worker.send(with_metadata);
    worker.send(register_trigger("t-internal", "engine::workers-available", "engine::log::info"));
    worker.send(
        register_trigger("t-http", "http", "api::get", Value::object({{"api_path", "/x"}})));
    worker.sync();

    const Value triggers = call(worker, "engine::triggers::list",
                                Value::object({{"include_internal", false}}))["result"]["triggers"];
    CHECK(ids_of(triggers, "id") == std::vector<std::string>{"t-hook", "t-http"});
    CHECK(triggers[0] ==
          Value::parse(R"({"id":"t-hook","trigger_type":"webhook","function_id":"hooks::github",
        "config":{"url":"/gh"},"metadata":{"team":"a"}})"));
    CHECK_FALSE(has_key(triggers[1], "metadata"));
    const Value all = call(worker, "engine::triggers::list",
                           Value::object({{"include_internal", true}}))["result"]["triggers"];
    CHECK(all.size() == 3);

    const Value types =
        call(worker, "engine::trigger-types::list",
             Value::object({{"include_internal", false}}))["result"]["trigger_types"];
    const auto type_ids = ids_of(types, "id");
    CHECK(contains(type_ids, "webhook"));
    CHECK(contains(type_ids, "http"));
    CHECK_FALSE(contains(type_ids, "engine::functions-available"));
    for (const auto& t : types.as_array()) {
        if (t["id"] == Value("webhook")) {
            CHECK(t == Value::parse(R"({"id":"webhook","description":"Inbound webhooks",
                "trigger_request_format":{"type":"object"}})"));
        }
    }
    const Value all_types =
        call(worker, "engine::trigger-types::list",
             Value::object({{"include_internal", true}}))["result"]["trigger_types"];
    CHECK(contains(ids_of(all_types, "id"), "engine::functions-available"));
    CHECK(contains(ids_of(all_types, "id"), "engine::workers-available"));
}

TEST_CASE("engine::channels::create returns two refs that share id and key", "[engine][builtins]") {
    Engine engine;
    RawWorker worker(engine.url());
    const Value reply =
        call(worker, "engine::channels::create", Value::object({{"buffer_size", nullptr}}));
    const Value& writer = reply["result"]["writer"];
    const Value& reader = reply["result"]["reader"];
    CHECK(is_uuid_v4(writer["channel_id"]));
    CHECK(is_uuid_v4(writer["access_key"]));
    CHECK(writer["channel_id"] == reader["channel_id"]);
    CHECK(writer["access_key"] == reader["access_key"]);
    CHECK(writer["direction"] == Value("write"));
    CHECK(reader["direction"] == Value("read"));

    // An unknown channel or a wrong key is refused with HTTP 404 before any WebSocket exists.
    RawWorker wrong_key(engine.url() + "/ws/channels/" + writer["channel_id"].as_string() +
                        "?key=nope&dir=read");
    CHECK_FALSE(wrong_key.wait_open());
    CHECK(wrong_key.close_error());
    RawWorker other_path(engine.url() + "/elsewhere");
    CHECK_FALSE(other_path.wait_open());
}

TEST_CASE("a trigger of a worker-implemented type is forwarded to the type's owner",
          "[engine][triggers]") {
    Engine engine;
    RawWorker owner(engine.url()), binder(engine.url());
    owner.send(
        Value::object({{"type", "registertriggertype"}, {"id", "T"}, {"description", "custom"}}));
    owner.sync();

    Value trigger = register_trigger("t1", "T", "b::handle", Value::parse(R"({"b":1,"a":2})"));
    trigger.set("metadata", Value::object({{"m", 1}}));
    binder.send(trigger);
    const Value forwarded = owner.next("registertrigger");
    CHECK(forwarded ==
          Value::parse(
              R"({"type":"registertrigger","id":"t1","trigger_type":"T","function_id":"b::handle",
                               "config":{"a":2,"b":1},"metadata":{"m":1}})"));
    CHECK(keys_in_order(owner.nth_text("registertrigger", 0), {"a", "b"}));

    // The owner's answer is only recorded; the binder hears nothing.
    owner.send(Value::parse(
        R"({"type":"triggerregistrationresult","id":"t1","trigger_type":"T","function_id":"b::handle",
        "error":{"code":"trigger_registration_failed","message":"bad url"}})"));
    owner.sync();
    binder.sync();
    CHECK(binder.count("triggerregistrationresult") == 0);
    CHECK(engine.received("triggerregistrationresult").size() == 1);

    binder.send(
        Value::object({{"type", "unregistertrigger"}, {"id", "t1"}, {"trigger_type", "T"}}));
    CHECK(owner.next("unregistertrigger") ==
          Value::parse(R"({"type":"unregistertrigger","id":"t1","trigger_type":"T"})"));
    binder.send(Value::object({{"type", "unregistertrigger"}, {"id", "t1"}}));  // unknown now
    binder.sync();
    owner.sync();
    CHECK(owner.count("unregistertrigger") == 1);

    SECTION("a trigger of an unknown type is lost, even when the type appears later") {
        binder.send(register_trigger("lost", "late", "b::handle"));
        binder.sync();
        owner.send(
            Value::object({{"type", "registertriggertype"}, {"id", "late"}, {"description", ""}}));
        owner.sync();
        CHECK(owner.count("registertrigger") == 1);
        const Value triggers = call(binder, "engine::triggers::list", Value::object())["result"];
        CHECK_FALSE(contains(ids_of(triggers["triggers"], "id"), "lost"));
    }
    SECTION("unregistertriggertype is dropped: the type stays registered") {
        owner.send(Value::object({{"type", "unregistertriggertype"}, {"id", "T"}}));
        owner.sync();
        CHECK(engine.received("unregistertriggertype").size() == 1);
        const Value types = call(binder, "engine::trigger-types::list", Value::object())["result"];
        CHECK(contains(ids_of(types["trigger_types"], "id"), "T"));
    }
    SECTION("a binder's disconnect unregisters its triggers at the owner") {
        auto leaving = std::make_unique<RawWorker>(engine.url());
        leaving->send(register_trigger("t2", "T", "l::fn"));
        CHECK(owner.next("registertrigger")["id"] == Value("t2"));
        leaving->close();
        CHECK(owner.next("unregistertrigger")["id"] == Value("t2"));
    }
}

TEST_CASE("malformed frames are dropped unanswered and the connection stays up",
          "[engine][frames]") {
    Engine engine;
    RawWorker worker(engine.url());
    const std::string id = worker.worker_id();
    worker.send("not json");
    worker.send("[1,2,3]");
    worker.send("{}");
    worker.send(R"({"type":"bogus"})");
    worker.send(R"({"type":"invokefunction","invocation_id":null,"function_id":"x"})");  // no data
    worker.send(
        R"({"type":"invokefunction","invocation_id":"not-a-uuid","function_id":"x","data":{}})");
    worker.send(R"({"type":"registerfunction"})");
    worker.send("   ");
    worker.send("");
    worker.send_binary(R"(OTLP{"resourceSpans":[]})");
    worker.send_binary(R"(MTRC{"resourceMetrics":[]})");
    worker.send_binary(std::string("LOGS\x00\xff", 6));
    worker.sync();

    const auto frames = worker.frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].type == "workerregistered");
    CHECK(frames[1].type == "pong");
    CHECK(engine.worker_ids() == std::vector<std::string>{id});
    CHECK(engine.received("bogus").size() == 1);
    std::size_t binary = 0;
    for (const auto& f : engine.frames(id))
        if (f.inbound && f.binary) ++binary;
    CHECK(binary == 3);

    // JSON in a binary frame is a protocol message like any other.
    worker.send_binary(R"({"type":"ping"})");
    CHECK(worker.nth("pong", 1).is_object());
}

TEST_CASE("stall stops reading a worker until resume", "[engine][faults]") {
    Engine engine;
    RawWorker worker(engine.url());
    const std::string id = worker.worker_id();
    worker.sync();

    engine.stall(id);
    worker.send(R"({"type":"ping"})");
    // A negative check needs a bounded wait: nothing is read, so nothing can answer.
    CHECK_FALSE(worker.wait([](const auto& frames) { return frames.size() > 2; }, 300ms));
    CHECK(engine.received("ping", id).size() == 1);

    engine.resume(id);
    CHECK(worker.nth("pong", 1).is_object());
    CHECK(engine.received("ping", id).size() == 2);
}

TEST_CASE("stall also stops WebSocket-level pongs", "[engine][faults]") {
    Engine engine;
    std::atomic<int> pongs{0};
    asio::io_context io;
    iii::detail::transport::Callbacks callbacks;
    std::atomic<bool> open{false};
    callbacks.on_open = [&] { open = true; };
    callbacks.on_pong = [&] { ++pongs; };
    auto socket = iii::detail::transport::connect(io, engine.url(), {}, callbacks);
    auto pump_until = [&](const std::function<bool()>& done, std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(10ms);
        return done();
    };
    REQUIRE(pump_until([&] { return open.load(); }, 5s));
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 1; }));
    const std::string id = engine.worker_ids().front();

    socket->ping();
    REQUIRE(pump_until([&] { return pongs == 1; }, 5s));
    engine.stall(id);
    socket->ping();
    CHECK_FALSE(pump_until([&] { return pongs == 2; }, 300ms));
    engine.resume(id);
    CHECK(pump_until([&] { return pongs == 2; }, 5s));
    socket->abort();
    pump_until([] { return false; }, 50ms);
}

TEST_CASE("functions-available fires when the set of function ids changes", "[engine][triggers]") {
    EngineOptions options;
    options.functions_available_interval = 20ms;
    Engine engine(options);
    RawWorker watcher(engine.url()), worker(engine.url());
    watcher.send(register_function("watch::functions"));
    watcher.send(register_trigger("fa", "engine::functions-available", "watch::functions"));

    auto has_function = [](const std::string& id) {
        return [id](const Value& data) {
            for (const auto& f : data["functions"].as_array())
                if (f["function_id"] == Value(id)) return true;
            return false;
        };
    };
    const Value first =
        wait_invocation(watcher, "watch::functions", has_function("watch::functions"));
    CHECK(first["data"]["event"] == Value("functions_changed"));
    CHECK(is_uuid_v4(first["invocation_id"]));
    CHECK_FALSE(has_key(first["data"], "_caller_worker_id"));
    CHECK(has_function("engine::functions::list")(first["data"]));  // unfiltered
    for (const auto& f : first["data"]["functions"].as_array()) CHECK(f.size() == 5);
    watcher.send(result(first["invocation_id"].as_string(), "watch::functions", Value()));

    worker.send(register_function("new::fn"));
    wait_invocation(watcher, "watch::functions", has_function("new::fn"));
    const std::size_t seen = watcher.count("invokefunction");
    // A description change is not a change of the id set: the next notification is the one
    // for z::fn, not one for the re-registration.
    worker.send(
        Value::object({{"type", "registerfunction"}, {"id", "new::fn"}, {"description", "d"}}));
    worker.send(register_function("z::fn"));
    const Value next = watcher.nth("invokefunction", seen);
    CHECK(has_function("z::fn")(next["data"]));
}

TEST_CASE("workers-available reports connects, metadata updates and disconnects",
          "[engine][triggers]") {
    Engine engine;
    RawWorker watcher(engine.url());
    watcher.send(register_function("watch::workers"));
    watcher.send(register_trigger("wa", "engine::workers-available", "watch::workers"));
    watcher.sync();

    auto other = std::make_unique<RawWorker>(engine.url());
    const std::string other_id = other->worker_id();
    auto event = [&](const char* name) {
        return wait_invocation(watcher, "watch::workers", [&](const Value& data) {
            return data["event"] == Value(name) && data["worker_id"] == Value(other_id);
        });
    };
    const Value connected = event("worker_connected");
    CHECK(connected["data"].size() == 2);
    CHECK(is_uuid_v4(connected["invocation_id"]));
    watcher.send(result(connected["invocation_id"].as_string(), "watch::workers", Value()));

    other->send(invoke(std::nullopt, "engine::workers::register", Value::object({{"runtime", "x"}}),
                       void_action()));
    event("worker_metadata_updated");
    other->close();
    event("worker_disconnected");
}

TEST_CASE("fault injection: send_to, close and drop", "[engine][faults]") {
    Engine engine;
    RawWorker a(engine.url()), b(engine.url());
    const std::string a_id = a.worker_id(), b_id = b.worker_id();

    engine.send_to(a_id, R"({"type":"ping"})");
    CHECK(a.next("ping").is_object());
    CHECK(engine.frames(a_id).back().text == R"({"type":"ping"})");

    engine.close(a_id, 4001);
    REQUIRE(a.wait_closed());
    CHECK(a.close_code() == 4001);
    engine.drop(b_id);
    REQUIRE(b.wait_closed());
    CHECK(b.close_code() != 1000);
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().empty(); }));
    CHECK(engine.frames(a_id).size() >= 2);  // frames of closed connections stay recorded
}

TEST_CASE("shutdown drops every connection and stops listening", "[engine][faults]") {
    Engine engine;
    RawWorker a(engine.url());
    a.worker_id();
    engine.shutdown();
    CHECK(a.wait_closed());
    RawWorker late(engine.url());
    CHECK_FALSE(late.wait_open());
    CHECK(engine.wait_for([&] { return engine.worker_ids().empty(); }));
}

TEST_CASE("a taken port is reported as std::system_error", "[engine]") {
    Engine first;
    EngineOptions options;
    options.port = first.port();
    CHECK_THROWS_AS(Engine(options), std::system_error);
}

TEST_CASE("the log file has one JSON line per frame, in and out", "[engine][log]") {
    char path[] = "/tmp/iii-engine-log-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        EngineOptions options;
        options.log_file = path;
        Engine engine(options);
        RawWorker worker(engine.url());
        worker.sync();
        worker.send_binary("OTLP{}");
        worker.send("not json");
        worker.sync();
    }
    std::ifstream file(path);
    std::vector<Value> lines;
    for (std::string line; std::getline(file, line);) lines.push_back(Value::parse(line));
    std::remove(path);

    REQUIRE(lines.size() == 7);
    for (const auto& line : lines) {
        CHECK(line["t"].is_integer());
        CHECK(is_uuid_v4(line["worker"]));
    }
    CHECK(lines[0]["dir"] == Value("out"));
    CHECK(lines[0]["frame"]["type"] == Value("workerregistered"));
    CHECK(lines[1]["dir"] == Value("in"));
    CHECK(lines[1]["binary"] == Value(false));
    CHECK(lines[1]["frame"] == Value::object({{"type", "ping"}}));
    CHECK(lines[2]["frame"] == Value::object({{"type", "pong"}}));
    CHECK(lines[3]["binary"] == Value(true));
    CHECK(lines[3]["frame"] == Value("OTLP{}"));
    CHECK(lines[4]["frame"] == Value("not json"));
}

TEST_CASE("telemetry frames are decoded; malformed and string asInt metrics are dropped",
          "[engine][telemetry]") {
    Engine engine;
    RawWorker worker(engine.url());
    worker.worker_id();
    const std::string gauge = R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asInt":)";
    worker.send_binary("OTLP{not json");
    worker.send_binary("MTRC" + gauge + R"("42"}]}}]}]}]})");  // the Rust SDK's form: refused
    worker.send_binary("MTRC" + gauge + R"(42}]}}]}]}]})");
    worker.send_binary(R"(OTLP{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"s1"},{"name":"s2"}]}]}]})");
    worker.send_binary(R"(LOGS{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]})");
    worker.sync();
    // Telemetry is never answered, and the connection stays up.
    CHECK(worker.count("pong") == 1);
    CHECK(engine.worker_ids().size() == 1);
    CHECK(engine.telemetry("OTLP").size() == 1);
    auto metrics = engine.metrics();
    REQUIRE(metrics.size() == 1);
    CHECK(metrics[0]["gauge"]["dataPoints"][0]["asInt"] == Value(42));
    auto spans = engine.spans();
    REQUIRE(spans.size() == 2);
    CHECK(spans[0]["name"] == Value("s1"));
    CHECK(spans[1]["name"] == Value("s2"));
    auto logs = engine.log_records();
    REQUIRE(logs.size() == 1);
    CHECK(logs[0]["body"]["stringValue"] == Value("hi"));
    // The raw frames stay recorded too, the dropped ones included.
    std::size_t binary = 0;
    for (const auto& f : engine.frames()) binary += f.binary ? 1 : 0;
    CHECK(binary == 5);
}

TEST_CASE("without record_frames telemetry is not kept", "[engine][telemetry]") {
    EngineOptions options;
    options.record_frames = false;
    Engine engine(options);
    RawWorker worker(engine.url());
    worker.worker_id();
    worker.send_binary(R"(LOGS{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]})");
    worker.sync();
    CHECK(engine.telemetry("LOGS").empty());
    CHECK(engine.log_records().empty());
}

TEST_CASE("an /otel connection is telemetry-only: no workerregistered, not a worker",
          "[engine][telemetry]") {
    Engine engine;
    RawWorker worker(engine.url());
    worker.send(register_function("watch::workers"));
    worker.send(register_trigger("wa", "engine::workers-available", "watch::workers"));
    worker.sync();
    RawWorker otel(engine.url() + "/otel?token=x");
    REQUIRE(otel.wait_open());
    otel.send(R"({"type":"ping"})");  // text frames are ignored on /otel
    otel.send_binary("JUNK{}");        // so are unknown binary frames
    otel.send_binary(R"(LOGS{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"otel"}}]}]}]})");
    REQUIRE(engine.wait_for([&] { return engine.log_records().size() == 1; }));
    CHECK(engine.log_records()[0]["body"]["stringValue"] == Value("otel"));
    CHECK(engine.worker_ids() == std::vector<std::string>{worker.worker_id()});
    CHECK(engine.sent("workerregistered").size() == 1);
    CHECK(engine.frames(worker.worker_id()).size() == engine.frames().size());  // none of /otel's
    // Closing with a handshake: the engine's close reply follows anything it had sent, so an
    // empty frame list afterwards means it sent nothing at all.
    otel.close();
    REQUIRE(otel.wait_closed());
    CHECK(otel.frames().empty());
    // No workers-available churn: events fire in order, so once a real worker's connect has
    // been reported, any event of the /otel connection would have been reported before it.
    RawWorker marker(engine.url());
    const std::string marker_id = marker.worker_id();
    wait_invocation(worker, "watch::workers", [&](const Value& data) {
        return data["worker_id"] == Value(marker_id);
    });
    std::size_t events = 0;
    for (const auto& m : worker.of_type("invokefunction"))
        events += m["function_id"] == Value("watch::workers") ? 1 : 0;
    CHECK(events == 1);

    RawWorker second(engine.url() + "/otel");
    REQUIRE(second.wait_open());
    engine.shutdown();
    CHECK(second.wait_closed());
}
