// The sans-io connection core (lib/core/) driven by scripted events and a fake clock: no
// sockets, no Asio, no real time.

#include "core/connection_core.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace core = iii::detail::core;
namespace act = iii::detail::core::action;
using iii::ConnectionState;

namespace {

const core::TimePoint t0 = core::TimePoint{} + 1000h;

struct Recorded {
    bool done = false;
    iii::Value value;
    std::exception_ptr error;
};

class FakeSink : public core::PendingSink {
public:
    explicit FakeSink(std::shared_ptr<Recorded> r) : r_(std::move(r)) {}
    void complete(core::CallOutcome outcome) override {
        REQUIRE_FALSE(r_->done);  // exactly once
        r_->done = true;
        r_->value = std::move(outcome.value);
        r_->error = outcome.error;
    }

private:
    std::shared_ptr<Recorded> r_;
};

struct Slot : core::HandlerSlot {};

core::Config fast_config() {
    core::Config c;
    c.url = "ws://127.0.0.1:1";
    c.reconnection.initial_delay_ms = 100;
    c.reconnection.max_delay_ms = 1000;
    c.reconnection.jitter_factor = 0;
    c.timings.connect_timeout = 1000ms;
    c.timings.ping_interval = 200ms;
    c.timings.idle_timeout = 500ms;
    c.shutdown_grace = 300ms;
    c.close_handshake_limit = 100ms;
    c.metadata.name = "unit";
    c.metadata.version = "0";
    c.metadata.os = "test";
    return c;
}

/// The core plus the actions of every event so far, and helpers to look at them.
struct Harness {
    explicit Harness(core::Config c = fast_config(), std::uint64_t seed = 1) : core(std::move(c), seed) {}

    core::ConnectionCore core;
    std::vector<core::Action> last;  // actions of the latest step

    std::vector<core::Action>& step() {
        last = core.take_actions();
        // Completions run their sinks, as the glue does.
        for (auto& a : last)
            if (auto* c = std::get_if<act::Complete>(&a)) c->sink->complete(std::move(c->outcome));
        return last;
    }
    template <class T>
    std::size_t count() const {
        std::size_t n = 0;
        for (const auto& a : last) n += std::holds_alternative<T>(a);
        return n;
    }
    template <class T>
    const T* first() const {
        for (const auto& a : last)
            if (auto* p = std::get_if<T>(&a)) return p;
        return nullptr;
    }
    std::vector<std::string> sent() const {
        std::vector<std::string> out;
        for (const auto& a : last)
            if (auto* s = std::get_if<act::Send>(&a)) out.push_back(s->text);
        return out;
    }
    std::vector<ConnectionState> states() const {
        std::vector<ConnectionState> out;
        for (const auto& a : last)
            if (auto* s = std::get_if<act::StateChanged>(&a)) out.push_back(s->state);
        return out;
    }
    std::optional<core::TimePoint> armed() const {
        std::optional<core::TimePoint> at;
        for (const auto& a : last)
            if (auto* s = std::get_if<act::ArmTimer>(&a)) at = s->at;
        return at;
    }

    void connect(core::TimePoint now) {
        core.start(now);
        step();
        core.on_opened(now);
        step();
    }
    std::shared_ptr<Recorded> call(core::TimePoint now, const std::string& id,
                                   std::chrono::milliseconds timeout = 1000ms,
                                   const std::string& function = "f") {
        auto r = std::make_shared<Recorded>();
        core::Call c;
        c.invocation_id = id;
        c.function_id = function;
        c.text = "call:" + id;
        c.deadline = now + timeout;
        c.timeout = timeout;
        c.sink = std::make_unique<FakeSink>(r);
        core.invoke(now, std::move(c));
        step();
        return r;
    }
};

std::string type_of(const std::string& frame) {
    auto v = iii::Value::parse(frame);
    return v.at("type").as_string();
}

std::vector<std::string> types(const std::vector<std::string>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames) out.push_back(f.rfind("call:", 0) == 0 ? f : type_of(f));
    return out;
}

iii::Errc errc_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const iii::Error& error) {
        return error.errc();
    }
    return iii::Errc::Runtime;
}

std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& error) {
        return error.what();
    }
}

bool is_cancellation(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const iii::Error&) {
        return false;
    } catch (const std::system_error& error) {
        return error.code() == std::error_code(ECANCELED, std::system_category());
    }
    return false;
}

const std::string id1 = "00000000-0000-4000-8000-000000000001";
const std::string id2 = "00000000-0000-4000-8000-000000000002";
const std::string id3 = "00000000-0000-4000-8000-000000000003";

std::string result_frame(const std::string& id, const std::string& result = "1") {
    return R"({"type":"invocationresult","invocation_id":")" + id + R"(","function_id":"f","result":)" + result + "}";
}
std::string invoke_frame(const std::string& id, const std::string& function = "local") {
    return R"({"type":"invokefunction","invocation_id":")" + id + R"(","function_id":")" + function +
           R"(","data":{"x":1}})";
}

core::FunctionRegistration function(const std::string& id, bool invokable = true) {
    core::FunctionRegistration f;
    f.message.id = id;
    if (invokable) f.handler = std::make_shared<Slot>();
    return f;
}

iii::detail::protocol::RegisterTrigger trigger(const std::string& id) {
    iii::detail::protocol::RegisterTrigger t;
    t.id = id;
    t.trigger_type = "cron";
    t.function_id = "a";
    t.config = iii::Value::object();
    return t;
}

}  // namespace

TEST_CASE("the first connect goes Connecting then Connected and replays in spec order", "[unit][core]") {
    Harness h;
    core::TriggerTypeRegistration type;
    type.message.id = "my::type";
    h.core.register_trigger(trigger("t1"));
    h.core.register_function(function("a"));
    h.core.register_trigger_type(std::move(type));
    h.core.register_service(iii::RegisterServiceMessage{"svc", "Service", std::nullopt, std::nullopt});
    h.step();
    CHECK(h.sent().empty());  // nothing goes out before a connection

    h.core.start(t0);
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Connecting});
    CHECK(h.count<act::Connect>() == 1);
    CHECK(h.armed() == t0 + 1000ms);  // connect timeout

    h.core.on_opened(t0 + 10ms);
    h.step();
    CHECK(types(h.sent()) == std::vector<std::string>{"registertriggertype", "registerservice",
                                                      "registerfunction", "registertrigger",
                                                      "invokefunction"});
    CHECK(iii::Value::parse(h.sent().back()).at("function_id").as_string() == "engine::workers::register");
    CHECK(h.states() == std::vector{ConnectionState::Connected});
    CHECK(h.armed() == t0 + 210ms);  // the first ping
    h.core.start(t0 + 20ms);          // idempotent
    h.step();
    CHECK(h.last.empty());
}

TEST_CASE("replay after several reconnects: reattach first, then each registration once, as changed while disconnected",
          "[unit][core]") {
    Harness h;
    h.core.register_function(function("a"));
    h.core.register_function(function("b"));
    h.connect(t0);
    CHECK(types(h.sent())[0] == "registerfunction");  // no reattach on the first connect
    h.core.on_frame(t0, R"({"type":"workerregistered","worker_id":"w1","reattach_token":"tok1"})");
    h.step();
    REQUIRE(h.first<act::WorkerIdChanged>());
    CHECK(h.first<act::WorkerIdChanged>()->worker_id == "w1");
    CHECK(h.core.worker_id() == "w1");

    // Drop 1, with changes while disconnected.
    h.core.on_closed(t0 + 1s, {}, 1006, "");
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Reconnecting});
    CHECK(h.core.worker_id().empty());
    CHECK(h.armed() == t0 + 1s + 100ms);  // initial delay, no jitter
    h.core.unregister_function("a");
    h.core.register_function(function("c"));
    h.core.register_trigger(trigger("t1"));
    h.step();
    CHECK(h.sent().empty());
    h.core.on_timer(t0 + 1s + 50ms);  // early: nothing
    h.step();
    CHECK(h.count<act::Connect>() == 0);
    h.core.on_timer(t0 + 1s + 100ms);
    h.step();
    CHECK(h.count<act::Connect>() == 1);
    h.core.on_opened(t0 + 1s + 120ms);
    h.step();
    auto frames = h.sent();
    REQUIRE(frames.size() == 5);
    auto reattach = iii::Value::parse(frames[0]);
    CHECK(reattach.at("type").as_string() == "reattach");
    CHECK(reattach.at("previous_worker_id").as_string() == "w1");
    CHECK(reattach.at("reattach_token").as_string() == "tok1");
    CHECK(iii::Value::parse(frames[1]).at("id").as_string() == "b");
    CHECK(iii::Value::parse(frames[2]).at("id").as_string() == "c");
    CHECK(type_of(frames[3]) == "registertrigger");
    CHECK(type_of(frames[4]) == "invokefunction");

    // Drop 2 before the engine named the new connection: reattach to the last id known.
    h.core.on_closed(t0 + 2s, std::make_error_code(std::errc::connection_reset), 1006, "");
    h.step();
    h.core.on_timer(t0 + 3s);
    h.step();
    h.core.on_opened(t0 + 3s);
    h.step();
    CHECK(iii::Value::parse(h.sent()[0]).at("previous_worker_id").as_string() == "w1");
    h.core.on_frame(t0 + 3s, R"({"type":"workerregistered","worker_id":"w3","reattach_token":"tok3"})");
    h.step();

    // Drop 3: the newest id and token.
    h.core.on_closed(t0 + 4s, {}, 1000, "bye");
    h.step();
    h.core.on_timer(t0 + 5s);
    h.step();
    h.core.on_opened(t0 + 5s);
    h.step();
    frames = h.sent();
    auto third = iii::Value::parse(frames[0]);
    CHECK(third.at("previous_worker_id").as_string() == "w3");
    CHECK(third.at("reattach_token").as_string() == "tok3");
    std::size_t registrations = 0;
    for (const auto& f : frames) registrations += type_of(f) == "registerfunction";
    CHECK(registrations == 2);  // b and c, once each
}

TEST_CASE("a connect that does not open in time is aborted and retried with growing back-off",
          "[unit][core]") {
    Harness h;
    h.core.start(t0);
    h.step();
    h.core.on_timer(t0 + 999ms);
    h.step();
    CHECK(h.count<act::Abort>() == 0);
    h.core.on_timer(t0 + 1000ms);
    h.step();
    CHECK(h.count<act::Abort>() == 1);
    CHECK(h.states() == std::vector{ConnectionState::Reconnecting});
    CHECK(h.armed() == t0 + 1000ms + 100ms);  // 1st failure: initial delay
    h.core.on_timer(t0 + 1100ms);
    h.step();
    CHECK(h.count<act::Connect>() == 1);
    h.core.on_closed(t0 + 1150ms, std::make_error_code(std::errc::connection_refused), 1006, "");
    h.step();
    CHECK(h.armed() == t0 + 1150ms + 200ms);  // 2nd failure: doubled
    // A late open of the aborted attempt changes nothing.
    h.core.on_opened(t0 + 1160ms);
    h.step();
    CHECK(h.core.state() == ConnectionState::Reconnecting);
}

TEST_CASE("the back-off jitter comes from the injected seed", "[unit][core]") {
    auto config = fast_config();
    config.reconnection.jitter_factor = 0.5;
    auto retry_delay = [&](std::uint64_t seed) {
        Harness h(config, seed);
        h.core.start(t0);
        h.step();
        h.core.on_closed(t0, std::make_error_code(std::errc::connection_refused), 1006, "");
        h.step();
        return *h.armed() - t0;
    };
    CHECK(retry_delay(7) == retry_delay(7));
    const auto d = retry_delay(7);
    CHECK(d >= 50ms);
    CHECK(d <= 150ms);
}

TEST_CASE("max_retries consecutive failures end in Failed and fail queued calls", "[unit][core]") {
    auto config = fast_config();
    config.reconnection.max_retries = 2;
    Harness h(config);
    h.core.start(t0);
    h.step();
    auto queued = h.call(t0, id1, 60s);
    CHECK(h.core.queued_count() == 1);
    h.core.on_closed(t0, std::make_error_code(std::errc::connection_refused), 1006, "");
    h.step();
    CHECK(h.core.state() == ConnectionState::Reconnecting);
    CHECK_FALSE(queued->done);
    h.core.on_timer(t0 + 100ms);
    h.step();
    h.core.on_closed(t0 + 110ms, std::make_error_code(std::errc::connection_refused), 1006, "");
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Failed});
    CHECK(h.count<act::Stopped>() == 1);
    REQUIRE(queued->done);
    CHECK(errc_of(queued->error) == iii::Errc::NotConnected);
    CHECK(h.core.failure_reason() == "gave up reconnecting: max_retries reached");
    REQUIRE(h.first<act::StateChanged>());
    CHECK(h.first<act::StateChanged>()->reason == h.core.failure_reason());  // for the listeners
    CHECK(h.core.queued_count() == 0);
    CHECK(h.armed() == core::never);
    auto late = h.call(t0 + 1s, id2);
    REQUIRE(late->done);
    CHECK(errc_of(late->error) == iii::Errc::NotConnected);
}

TEST_CASE("pings go out every ping_interval; silence past idle_timeout aborts and reconnects",
          "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_timer(t0 + 200ms);
    h.step();
    CHECK(h.count<act::Ping>() == 1);
    h.core.on_pong(t0 + 250ms);  // alive
    h.step();
    h.core.on_timer(t0 + 400ms);
    h.step();
    CHECK(h.count<act::Ping>() == 1);
    h.core.on_timer(t0 + 600ms);  // 350 ms after the pong: still fine
    h.step();
    CHECK(h.count<act::Abort>() == 0);
    CHECK(h.armed() == t0 + 750ms);  // the idle deadline comes before the next ping (800)
    auto sent_call = h.call(t0 + 700ms, id1, 10s);
    h.core.on_timer(t0 + 750ms);
    h.step();
    CHECK(h.count<act::Abort>() == 1);
    CHECK(h.states() == std::vector{ConnectionState::Reconnecting});
    REQUIRE(sent_call->done);  // sent on the dead connection: failed at once
    CHECK(errc_of(sent_call->error) == iii::Errc::NotConnected);
    CHECK(h.armed() == t0 + 850ms);  // after_drop: the initial delay
}

TEST_CASE("a frame resets the idle deadline", "[unit][core]") {
    auto config = fast_config();
    config.timings.ping_interval = 0ms;  // zero disables pings
    Harness h(config);
    h.connect(t0);
    CHECK(h.armed() == t0 + 500ms);
    h.core.on_frame(t0 + 400ms, R"({"type":"pong"})");
    h.step();
    CHECK(h.armed() == t0 + 900ms);
    h.core.on_timer(t0 + 500ms);
    h.step();
    CHECK(h.count<act::Abort>() == 0);
    CHECK(h.count<act::Ping>() == 0);
}

TEST_CASE("the outbound queue keeps max_pending_messages frames and fails the oldest call", "[unit][core]") {
    auto config = fast_config();
    config.reconnection.max_pending_messages = 2;
    Harness h(config);
    auto a = h.call(t0, id1, 60s);
    auto b = h.call(t0, id2, 60s);
    CHECK_FALSE(a->done);
    auto c = h.call(t0, id3, 60s);
    REQUIRE(a->done);
    CHECK(errc_of(a->error) == iii::Errc::NotConnected);
    CHECK(message_of(a->error).find("max_pending_messages") != std::string::npos);
    CHECK(h.core.queued_count() == 2);
    h.connect(t0 + 1ms);
    auto frames = h.sent();
    CHECK(std::count(frames.begin(), frames.end(), "call:" + id2) == 1);
    CHECK(std::count(frames.begin(), frames.end(), "call:" + id3) == 1);
    CHECK(std::count(frames.begin(), frames.end(), "call:" + id1) == 0);
    // Queued calls go after the replay and before the worker metadata.
    CHECK(types(frames).back() == "invokefunction");
}

TEST_CASE("a call cancelled before it is sent never goes out", "[unit][core]") {
    Harness h;
    auto r = h.call(t0, id1);
    CHECK(h.core.queued_count() == 1);
    h.core.cancel(id1);
    h.step();
    REQUIRE(r->done);
    CHECK(is_cancellation(r->error));
    CHECK(h.core.queued_count() == 0);
    CHECK(h.core.pending_count() == 0);
    h.connect(t0 + 1ms);
    for (const auto& f : h.sent()) CHECK(f != "call:" + id1);
    h.core.cancel(id1);  // again: nothing
    h.step();
    CHECK(h.last.size() <= 1);
}

TEST_CASE("a call cancelled after it is sent ignores its late result", "[unit][core]") {
    Harness h;
    h.connect(t0);
    auto r = h.call(t0, id1);
    CHECK(h.sent() == std::vector<std::string>{"call:" + id1});
    h.core.cancel(id1);
    h.step();
    REQUIRE(r->done);
    CHECK(is_cancellation(r->error));
    CHECK(h.armed() != t0 + 1000ms);  // the call's deadline is gone from the timer
    h.core.on_frame(t0 + 10ms, result_frame(id1));
    h.step();  // FakeSink would REQUIRE-fail on a second completion
    CHECK(h.count<act::Complete>() == 0);
    CHECK(h.core.state() == ConnectionState::Connected);
}

TEST_CASE("calls time out at their deadline through one timer armed at the earliest", "[unit][core]") {
    Harness h;
    h.connect(t0);
    auto slow = h.call(t0, id1, 5000ms);
    auto fast = h.call(t0, id2, 100ms);
    CHECK(h.armed() == t0 + 100ms);
    h.core.on_timer(t0 + 100ms);
    h.step();
    REQUIRE(fast->done);
    CHECK(errc_of(fast->error) == iii::Errc::Timeout);
    CHECK(message_of(fast->error) == "invocation of f timed out after 100 ms");
    CHECK_FALSE(slow->done);
    CHECK(h.core.pending_count() == 1);
    // The late result of the timed-out call, then a result and its duplicate for the other.
    h.core.on_frame(t0 + 150ms, result_frame(id2));
    h.step();
    CHECK(h.count<act::Complete>() == 0);
    h.core.on_frame(t0 + 160ms, result_frame(id1, R"({"ok":true})"));
    h.step();
    REQUIRE(slow->done);
    CHECK_FALSE(slow->error);
    CHECK(slow->value.at("ok").as_bool());
    h.core.on_frame(t0 + 170ms, result_frame(id1, "2"));
    h.step();
    CHECK(h.count<act::Complete>() == 0);
    CHECK(h.core.pending_count() == 0);
}

TEST_CASE("an error result completes the call with Errc::Remote and the engine's code", "[unit][core]") {
    Harness h;
    h.connect(t0);
    auto r = h.call(t0, id1);
    h.core.on_frame(t0, R"({"type":"invocationresult","invocation_id":")" + id1 +
                            R"(","function_id":"f","error":{"code":"boom","message":"it broke"}})");
    h.step();
    REQUIRE(r->done);
    try {
        std::rethrow_exception(r->error);
    } catch (const iii::Error& e) {
        REQUIRE(e.remote());
        CHECK(e.remote()->code == "boom");
        CHECK(e.remote()->message == "it broke");
    }
}

TEST_CASE("a dropped connection fails sent calls at once and keeps queued ones for the next", "[unit][core]") {
    Harness h;
    auto queued = h.call(t0, id1, 60s);
    h.connect(t0);
    CHECK(h.core.pending_count() == 1);
    h.core.on_closed(t0 + 1ms, {}, 1001, "going away");
    h.step();
    REQUIRE(queued->done);  // it was flushed on connect, so it was sent
    CHECK(errc_of(queued->error) == iii::Errc::NotConnected);
    auto later = h.call(t0 + 2ms, id2, 60s);
    CHECK(h.core.queued_count() == 1);
    h.core.on_timer(t0 + 200ms);
    h.step();
    h.core.on_opened(t0 + 210ms);
    h.step();
    auto frames = h.sent();
    CHECK(std::count(frames.begin(), frames.end(), "call:" + id2) == 1);
    CHECK_FALSE(later->done);
}

TEST_CASE("invocations are dispatched, refused for unknown or HTTP functions, and old results dropped",
          "[unit][core]") {
    Harness h;
    h.core.register_function(function("local"));
    h.core.register_function(function("http", false));
    h.connect(t0);
    h.core.on_frame(t0, invoke_frame(id1));
    h.step();
    const auto* d = h.first<act::Dispatch>();
    REQUIRE(d);
    CHECK(d->invoke.function_id == "local");
    CHECK(d->invoke.data.at("x").as_int() == 1);
    const auto generation = d->generation;
    CHECK(h.core.running_handlers() == 1);

    h.core.on_frame(t0, invoke_frame(id2, "missing"));
    h.step();
    REQUIRE(h.sent().size() == 1);
    CHECK(iii::Value::parse(h.sent()[0]).at("error").at("code").as_string() == "function_not_found");
    h.core.on_frame(t0, invoke_frame(id3, "http"));
    h.step();
    CHECK(iii::Value::parse(h.sent()[0]).at("error").at("code").as_string() == "function_not_invokable");

    h.core.handler_finished(t0, generation, std::string("reply-1"));
    h.step();
    CHECK(h.sent() == std::vector<std::string>{"reply-1"});

    h.core.on_frame(t0, invoke_frame(id1));
    h.step();
    h.core.on_closed(t0, {}, 1006, "");
    h.step();
    h.core.on_timer(t0 + 1s);
    h.step();
    h.core.on_opened(t0 + 1s);
    h.step();
    h.core.handler_finished(t0 + 1s, generation, std::string("stale"));
    h.step();
    CHECK(h.sent().empty());  // the engine dropped that invocation with the old connection
    CHECK(h.core.running_handlers() == 0);
}

TEST_CASE("an engine ping is answered with a pong", "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_frame(t0, R"({"type":"ping"})");
    h.step();
    CHECK(h.sent() == std::vector<std::string>{R"({"type":"pong"})"});
}

TEST_CASE("an undecodable invokefunction with an id is answered with an error naming the problem",
          "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_frame(t0, R"({"type":"invokefunction","invocation_id":")" + id1 + R"(","data":{}})");
    h.step();
    REQUIRE(h.sent().size() == 1);
    auto reply = iii::Value::parse(h.sent()[0]);
    CHECK(reply.at("type").as_string() == "invocationresult");
    CHECK(reply.at("invocation_id").as_string() == id1);
    CHECK(reply.at("error").at("message").as_string().find("function_id") != std::string::npos);
    // A malformed result fails only its own call.
    auto r = h.call(t0, id2);
    h.core.on_frame(t0, R"({"type":"invocationresult","invocation_id":")" + id2 + R"("})");
    h.step();
    REQUIRE(r->done);
    CHECK(errc_of(r->error) == iii::Errc::Serde);
    CHECK(h.core.state() == ConnectionState::Connected);
}

TEST_CASE("past max_concurrent_handlers reading pauses until a handler finishes", "[unit][core]") {
    auto config = fast_config();
    config.max_concurrent_handlers = 2;
    Harness h(config);
    h.core.register_function(function("local"));
    h.connect(t0);
    h.core.on_frame(t0, invoke_frame(id1));
    h.step();
    CHECK(h.count<act::PauseReading>() == 0);
    h.core.on_frame(t0, invoke_frame(id2));
    h.step();
    CHECK(h.count<act::PauseReading>() == 1);
    h.core.handler_finished(t0, h.core.generation(), std::nullopt);
    h.step();
    CHECK(h.count<act::ResumeReading>() == 1);
    h.core.handler_finished(t0, h.core.generation(), std::nullopt);
    h.step();
    CHECK(h.count<act::ResumeReading>() == 0);
}

TEST_CASE("graceful shutdown lets running handlers finish, sends their results, then closes", "[unit][core]") {
    Harness h;
    h.core.register_function(function("local"));
    h.connect(t0);
    h.core.on_frame(t0, invoke_frame(id1));
    h.step();
    auto waiting = h.call(t0, id2, 60s);
    h.core.shutdown(t0 + 1ms, true);
    h.step();
    CHECK(h.count<act::Close>() == 0);  // draining
    CHECK(h.armed() <= t0 + 301ms);     // bounded by shutdown_grace
    auto refused = h.call(t0 + 2ms, id3);
    REQUIRE(refused->done);
    CHECK(errc_of(refused->error) == iii::Errc::NotConnected);
    h.core.on_frame(t0 + 3ms, invoke_frame(id3));  // no new invocations
    h.step();
    CHECK(iii::Value::parse(h.sent()[0]).at("error").at("message").as_string() == "worker is shutting down");

    h.core.handler_finished(t0 + 10ms, h.core.generation(), std::string("result"));
    h.step();
    auto frames = h.sent();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0] == "result");
    REQUIRE(h.first<act::Close>());
    CHECK(h.first<act::Close>()->code == 1000);
    REQUIRE(waiting->done);
    CHECK(errc_of(waiting->error) == iii::Errc::NotConnected);

    h.core.on_closed(t0 + 20ms, {}, 1000, "");
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Disconnected});
    CHECK(h.count<act::Stopped>() == 1);
    CHECK(h.count<act::Connect>() == 0);  // no reconnect after shutdown
    CHECK(h.core.stopped());
}

TEST_CASE("graceful shutdown stops waiting for handlers after shutdown_grace; the close is bounded",
          "[unit][core]") {
    Harness h;
    h.core.register_function(function("local"));
    h.connect(t0);
    h.core.on_frame(t0, invoke_frame(id1));
    h.step();
    h.core.shutdown(t0, true);
    h.step();
    h.core.on_timer(t0 + 300ms);
    h.step();
    CHECK(h.count<act::Close>() == 1);
    CHECK(h.armed() == t0 + 400ms);  // close_handshake_limit
    h.core.on_timer(t0 + 400ms);     // the engine never answers the close
    h.step();
    CHECK(h.count<act::Abort>() == 1);
    CHECK(h.count<act::Stopped>() == 1);
    h.core.handler_finished(t0 + 500ms, 1, std::string("late"));  // nowhere to go
    h.step();
    CHECK(h.sent().empty());
}

TEST_CASE("shutdown while reconnecting stops at once", "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_closed(t0, {}, 1006, "");
    h.step();
    auto queued = h.call(t0, id1, 60s);
    h.core.shutdown(t0 + 1ms, false);
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Disconnected});
    CHECK(h.count<act::Stopped>() == 1);
    REQUIRE(queued->done);
    CHECK(message_of(queued->error) == "iii is shut down");
    CHECK(h.armed() == core::never);
    h.core.on_timer(t0 + 1s);
    h.step();
    CHECK(h.count<act::Connect>() == 0);
}

TEST_CASE("WORKER_NAMESPACE_CONFLICT is fatal: no reconnect, calls fail with its code, state Failed",
          "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_closed(t0, {}, 1006, "");  // a queued call too: disconnected, then reconnected
    h.step();
    auto queued_call = h.call(t0, id3, 60s);
    h.core.on_timer(t0 + 1s);
    h.step();
    h.core.on_opened(t0 + 1s);
    h.step();
    REQUIRE_FALSE(queued_call->done);
    auto sent_call = h.call(t0 + 1s, id1, 60s);
    h.core.send_void("void-queued");
    h.step();
    h.core.on_frame(t0 + 1s, R"({"type":"registrationrejected","code":"WORKER_NAMESPACE_CONFLICT","namespace":"default","owner_worker_id":"w0"})");
    h.step();
    CHECK(h.states() == std::vector{ConnectionState::Failed});
    // The listeners' reason is the core's failure_reason().
    REQUIRE(h.first<act::StateChanged>());
    CHECK(h.first<act::StateChanged>()->reason == h.core.failure_reason());
    CHECK(h.core.failure_reason().rfind("WORKER_NAMESPACE_CONFLICT: ", 0) == 0);
    CHECK(h.core.failure_reason().find("w0") != std::string::npos);
    for (const auto& call : {sent_call, queued_call}) {
        REQUIRE(call->done);
        CHECK(errc_of(call->error) == iii::Errc::RegistrationRejected);
        try {
            std::rethrow_exception(call->error);
        } catch (const iii::Error& e) {
            REQUIRE(e.remote());
            CHECK(e.remote()->code == "WORKER_NAMESPACE_CONFLICT");
            CHECK(std::string(e.what()).rfind("WORKER_NAMESPACE_CONFLICT: ", 0) == 0);
        }
    }
    CHECK(h.count<act::Close>() == 1);
    h.core.on_closed(t0 + 1s + 1ms, {}, 1008, "");
    h.step();
    CHECK(h.count<act::Stopped>() == 1);
    CHECK(h.count<act::Connect>() == 0);
    CHECK(h.core.state() == ConnectionState::Failed);
    auto after = h.call(t0 + 1s + 2ms, id2);
    REQUIRE(after->done);
    CHECK(errc_of(after->error) == iii::Errc::RegistrationRejected);
}

TEST_CASE("an unknown rejection code is fatal too", "[unit][core]") {
    Harness h;
    h.connect(t0);
    auto call = h.call(t0, id1, 60s);
    h.core.on_frame(t0, R"({"type":"registrationrejected","code":"SOMETHING_NEW"})");
    h.step();
    CHECK(h.core.state() == ConnectionState::Failed);
    CHECK(h.core.failure_reason().rfind("SOMETHING_NEW: ", 0) == 0);
    REQUIRE(call->done);
    CHECK(errc_of(call->error) == iii::Errc::RegistrationRejected);
}

TEST_CASE("FUNCTION_NAMESPACE_CONFLICT refuses that one function: not replayed, worker stays up",
          "[unit][core]") {
    Harness h;
    h.core.register_function(function("a"));
    h.core.register_function(function("b"));
    h.connect(t0);
    h.core.on_frame(t0, R"({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","function_id":"a","owner_worker_id":"w0"})");
    h.step();
    CHECK(h.core.state() == ConnectionState::Connected);
    CHECK(h.core.rejected_functions() == std::set<std::string>{"a"});
    REQUIRE(h.count<act::FunctionRejected>() == 1);
    CHECK(h.first<act::FunctionRejected>()->function_id == "a");
    CHECK(h.first<act::FunctionRejected>()->error.code == "FUNCTION_NAMESPACE_CONFLICT");
    CHECK(h.first<act::FunctionRejected>()->error.message.find("w0") != std::string::npos);
    // A refusal of a function no longer registered changes nothing.
    h.core.on_frame(t0, R"({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","function_id":"gone"})");
    h.step();
    CHECK(h.count<act::FunctionRejected>() == 0);
    CHECK(h.core.rejected_functions() == std::set<std::string>{"a"});
    h.core.on_closed(t0, {}, 1006, "");
    h.step();
    h.core.on_timer(t0 + 1s);
    h.step();
    h.core.on_opened(t0 + 1s);
    h.step();
    std::vector<std::string> ids;
    for (const auto& f : h.sent())
        if (type_of(f) == "registerfunction") ids.push_back(iii::Value::parse(f).at("id").as_string());
    CHECK(ids == std::vector<std::string>{"b"});
    // Registering the id again retries it.
    h.core.register_function(function("a"));
    h.step();
    CHECK(types(h.sent()) == std::vector<std::string>{"registerfunction"});
    CHECK(h.core.rejected_functions().empty());
}

TEST_CASE("the worker metadata carries namespace, description and isolation only when set",
          "[unit][core]") {
    auto metadata_of = [](const std::vector<std::string>& frames) {
        for (const auto& f : frames) {
            auto v = iii::Value::parse(f);
            if (v.at("type").as_string() == "invokefunction" &&
                v.at("function_id").as_string() == "engine::workers::register")
                return v.at("data");
        }
        FAIL("no engine::workers::register frame");
        return iii::Value();
    };
    {
        Harness h;
        h.connect(t0);
        const auto data = metadata_of(h.sent());
        CHECK(data.at("name").as_string() == "unit");
        CHECK_FALSE(data.contains("namespace"));
        CHECK_FALSE(data.contains("description"));
        CHECK_FALSE(data.contains("isolation"));
    }
    auto config = fast_config();
    config.worker_namespace = "orders";
    config.metadata.description = "order service";
    config.metadata.isolation = "docker";
    Harness h(config);
    h.connect(t0);
    const auto data = metadata_of(h.sent());
    CHECK(data.at("namespace").as_string() == "orders");
    CHECK(data.at("description").as_string() == "order service");
    CHECK(data.at("isolation").as_string() == "docker");
    // After a reconnect as well.
    h.core.on_closed(t0, {}, 1006, "");
    h.step();
    h.core.on_timer(t0 + 1s);
    h.step();
    h.core.on_opened(t0 + 1s);
    h.step();
    CHECK(metadata_of(h.sent()).at("namespace").as_string() == "orders");
}

TEST_CASE("an engine-to-worker triggerregistrationresult with an error is surfaced, one without is not",
          "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.on_frame(t0, R"({"type":"triggerregistrationresult","id":"t1","trigger_type":"cron","function_id":"f","error":{"code":"trigger_registration_failed","message":"bad expression"},"extra":1})");
    h.step();
    REQUIRE(h.count<act::TriggerRegistrationFailed>() == 1);
    const auto& result = h.first<act::TriggerRegistrationFailed>()->result;
    CHECK(result.id == "t1");
    CHECK(result.trigger_type == "cron");
    REQUIRE(result.error);
    CHECK(result.error->code == "trigger_registration_failed");
    CHECK(result.error->message == "bad expression");
    CHECK(h.sent().empty());  // nothing answered
    h.core.on_frame(t0, R"({"type":"triggerregistrationresult","id":"t2","trigger_type":"cron","function_id":"f"})");
    h.step();
    CHECK(h.count<act::TriggerRegistrationFailed>() == 0);  // no error is no news, never "active"
}

TEST_CASE("reattach is never sent on a first connect, nor without an id to reattach to",
          "[unit][core]") {
    Harness h;
    h.core.register_function(function("a"));
    h.core.start(t0);
    h.step();
    // The first attempt fails; the next one is still a first connect.
    h.core.on_closed(t0, std::make_error_code(std::errc::connection_refused), 1006, "");
    h.step();
    h.core.on_timer(t0 + 1s);
    h.step();
    REQUIRE(h.count<act::Connect>() == 1);
    h.core.on_opened(t0 + 1s);
    h.step();
    CHECK(types(h.sent())[0] == "registerfunction");
    // Dropped before the engine named the connection: nothing to reattach to.
    h.core.on_closed(t0 + 2s, {}, 1006, "");
    h.step();
    h.core.on_timer(t0 + 3s);
    h.step();
    h.core.on_opened(t0 + 3s);
    h.step();
    CHECK(types(h.sent())[0] == "registerfunction");
    // Named, dropped: the next connection starts with reattach, the token included.
    h.core.on_frame(t0 + 3s, R"({"type":"workerregistered","worker_id":"w9","reattach_token":"tok9"})");
    h.step();
    h.core.on_closed(t0 + 4s, {}, 1006, "");
    h.step();
    h.core.on_timer(t0 + 5s);
    h.step();
    h.core.on_opened(t0 + 5s);
    h.step();
    const auto first = iii::Value::parse(h.sent().at(0));
    CHECK(first.at("type").as_string() == "reattach");
    CHECK(first.at("previous_worker_id").as_string() == "w9");
    CHECK(first.at("reattach_token").as_string() == "tok9");
}

TEST_CASE("an inbound invocation's metadata reaches the dispatched handler", "[unit][core]") {
    Harness h;
    h.core.register_function(function("local"));
    h.connect(t0);
    h.core.on_frame(t0, R"({"type":"invokefunction","invocation_id":")" + id1 +
                            R"(","function_id":"local","data":{},"metadata":{"tenant":"acme"},"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})");
    h.step();
    REQUIRE(h.first<act::Dispatch>());
    const auto& invoke = h.first<act::Dispatch>()->invoke;
    CHECK(invoke.metadata == std::optional<iii::Value>(iii::Value::object({{"tenant", "acme"}})));
    CHECK(invoke.traceparent == std::optional<std::string>("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
}

TEST_CASE("registrations made while connected go out at once; unregistrations too", "[unit][core]") {
    Harness h;
    h.connect(t0);
    h.core.register_function(function("late"));
    h.step();
    CHECK(types(h.sent()) == std::vector<std::string>{"registerfunction"});
    h.core.unregister_function("late");
    h.step();
    CHECK(types(h.sent()) == std::vector<std::string>{"unregisterfunction"});
    h.core.unregister_function("late");  // unknown: nothing
    h.step();
    CHECK(h.sent().empty());
    h.core.register_trigger(trigger("t9"));
    h.core.unregister_trigger("t9", "cron");
    h.step();
    CHECK(types(h.sent()) == std::vector<std::string>{"registertrigger", "unregistertrigger"});
}

TEST_CASE("a void call is queued while disconnected and dropped after shutdown", "[unit][core]") {
    Harness h;
    h.core.send_void("void-1");
    h.step();
    CHECK(h.core.queued_count() == 1);
    h.connect(t0);
    auto frames = h.sent();
    CHECK(std::count(frames.begin(), frames.end(), "void-1") == 1);
    h.core.shutdown(t0, false);
    h.step();
    h.core.send_void("void-2");
    h.step();
    CHECK(h.sent().empty());
}

TEST_CASE("the log says who closed the connection, with code and reason", "[unit][core]") {
    const auto closed_line = [](const Harness& h) {
        for (const auto& a : h.last)
            if (auto* l = std::get_if<act::Log>(&a); l && l->text.rfind("connection closed: ", 0) == 0)
                return *l;
        return act::Log{-1, ""};
    };
    SECTION("the engine") {
        Harness h;
        h.connect(t0);
        h.core.on_closed(t0 + 1ms, {}, 1001, "going away");
        h.step();
        CHECK(closed_line(h).text == "connection closed: closed by the engine (1001 going away)");
    }
    SECTION("the SDK's WebSocket layer, after a protocol error from the engine") {
        Harness h;
        h.connect(t0);
        h.core.on_closed(t0 + 1ms, {}, 1007, "Invalid UTF8", true);
        h.step();
        const auto line = closed_line(h);
        CHECK(line.text ==
              "connection closed: closed by the SDK (1007 Invalid UTF8): the engine broke the WebSocket protocol");
        CHECK(line.level == 2);  // warn: the engine misbehaves
        CHECK(h.states() == std::vector{ConnectionState::Reconnecting});
    }
    SECTION("the SDK's shutdown, answered by the engine") {
        Harness h;
        h.connect(t0);
        h.core.shutdown(t0 + 1ms, false);
        h.step();
        REQUIRE(h.first<act::Close>());
        h.core.on_closed(t0 + 2ms, {}, 1000, "shutdown");
        h.step();
        CHECK(closed_line(h).text ==
              "connection closed: closed by the SDK (1000 shutdown; the engine answered 1000 shutdown)");
    }
}
