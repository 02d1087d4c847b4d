// The test engine's text path (calls and results forwarded as spliced text) against its full
// path (decode, sorted keys, re-encode): the same frames in, through two engines that differ
// only in EngineOptions::forward_as_text, must give workers byte-identical frames out, for
// canonical payloads (taken as text), non-canonical ones (left to the full path) and malformed
// frames (dropped or answered the same way).

#include <iii/testing/engine.hpp>

#include "protocol.hpp"
#include "raw_worker.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace {

using iii::testing::Engine;
using iii::testing::EngineOptions;
using iii::testing::Generation;
using test_support::RawFrame;
using test_support::RawWorker;
using namespace std::chrono_literals;

namespace proto = iii::detail::protocol;

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (std::size_t at = text.find(from); at != std::string::npos;
         at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

/// One engine with a callee (`t::f`) and a caller.
struct Setup {
    Engine engine;
    RawWorker callee, caller;
    std::string caller_id, callee_id;

    explicit Setup(EngineOptions options)
        : engine(options), callee(engine.url()), caller(engine.url()) {
        caller_id = caller.worker_id();
        callee_id = callee.worker_id();
        callee.send(R"({"type":"registerfunction","id":"t::f"})");
        callee.sync();
        // 0.23 applies registrations once the grace is over (no engine::workers::register).
        REQUIRE(engine.wait_for([&] {
            const auto ids = engine.function_ids();
            return std::find(ids.begin(), ids.end(), "t::f") != ids.end();
        }));
    }

    /// The texts of the frames of `type` that `w` got after its first `from`, worker ids
    /// replaced by $CALLER and $CALLEE.
    std::vector<std::string> texts(const RawWorker& w, const std::string& type,
                                   std::size_t from) const {
        std::vector<std::string> out;
        for (const RawFrame& f : w.frames_from(from))
            if (f.type == type)
                out.push_back(replace_all(replace_all(f.text, caller_id, "$CALLER"), callee_id,
                                          "$CALLEE"));
        return out;
    }
};

struct Trace {
    std::vector<std::string> to_callee, to_caller;
};

/// Sends `invoke` ($ID: `id`) from the caller; when the callee gets the call, it answers with
/// `result` ($ID: the forwarded invocation id) unless that is empty.
Trace exchange(Setup& s, const std::string& id, const std::string& invoke,
               const std::string& result) {
    const std::size_t callee_before = s.callee.frame_count();
    const std::size_t caller_before = s.caller.frame_count();
    s.caller.send(replace_all(invoke, "$ID", id));
    s.caller.sync();  // the engine has handled the call...
    s.callee.sync();  // ...and what it forwarded arrived before this pong
    Trace t;
    t.to_callee = s.texts(s.callee, "invokefunction", callee_before);
    if (!result.empty() && t.to_callee.size() == 1) {
        std::string callee_id;
        for (const RawFrame& f : s.callee.frames_from(callee_before))
            if (f.type == "invokefunction") callee_id = f.json["invocation_id"].as_string();
        s.callee.send(replace_all(result, "$ID", callee_id));
        s.callee.sync();
        s.caller.sync();
    }
    t.to_caller = s.texts(s.caller, "invocationresult", caller_before);
    return t;
}

struct Case {
    std::string name;
    std::string invoke, result;
};

std::string call(const std::string& rest) {
    return R"({"type":"invokefunction","invocation_id":"$ID","function_id":"t::f")" + rest + "}";
}
std::string reply(const std::string& rest) {
    return R"({"type":"invocationresult","invocation_id":"$ID","function_id":"t::f")" + rest + "}";
}
std::string echo_ok_reply() { return reply(R"(,"result":{"ok":true})"); }

// Strings whose quote, escape or control character falls at every offset of the text path's
// 16-byte scan: keys, values, ids and trace headers of 0 to 40 bytes before it.
std::vector<Case> scan_boundary_cases() {
    std::vector<Case> out;
    for (std::size_t n = 0; n <= 40; ++n) {
        const std::string run(n, 'x');
        const std::string tag = " (" + std::to_string(n) + " bytes before)";
        out.push_back({"a plain string and key" + tag, call(R"(,"data":{")" + run + R"(":")" + run + R"("})"),
                       reply(R"(,"result":")" + run + R"(")")});
        out.push_back({"an escape in a string" + tag,
                       call(R"(,"data":{"s":")" + run + R"(\"y\\z\n"})"),
                       reply(R"(,"result":[")" + run + R"(\\"])")});
        out.push_back({"an escape RapidJSON writes otherwise" + tag,
                       call(R"(,"data":{"s":")" + run + R"(\u00e9"})"), echo_ok_reply()});
        out.push_back({"an escaped key" + tag, call(R"(,"data":{")" + run + R"(\"":1})"), echo_ok_reply()});
        out.push_back({"malformed: a raw control character" + tag,
                       call(R"(,"data":{"s":")" + run + "\x01" + R"("})"), ""});
        out.push_back({"a trace header" + tag,
                       call(R"(,"data":{},"traceparent":")" + run + R"(","baggage":")" + run + R"(\"")"),
                       reply(R"(,"result":1,"traceparent":")" + run + R"(")")});
    }
    return out;
}

std::vector<Case> cases() {
    std::string deep = "1";
    for (int i = 0; i < 70; ++i) deep = R"({"a":)" + deep + "}";
    const std::string echo_ok = echo_ok_reply();
    std::vector<Case> all = {
        {"simple object", call(R"(,"data":{"a":1})"), reply(R"(,"result":{"a":1,"b":[1,2]})")},
        {"empty object", call(R"(,"data":{})"), reply(R"(,"result":{})")},
        {"a key before _caller_worker_id", call(R"(,"data":{"Z":1,"a":2})"),
         reply(R"(,"result":{"Z":1,"a":2})")},
        {"every key before _caller_worker_id", call(R"(,"data":{"A":1,"B":{"C":2}})"), echo_ok},
        {"underscore keys around it", call(R"(,"data":{"_a":1,"_d":2})"), echo_ok},
        {"unsorted keys", call(R"(,"data":{"b":1,"a":2})"), reply(R"(,"result":{"b":1,"a":2})")},
        {"unsorted nested keys", call(R"(,"data":{"a":{"d":1,"c":2}})"),
         reply(R"(,"result":{"a":[{"y":1,"x":2}]})")},
        {"duplicate keys", call(R"(,"data":{"a":1,"a":2})"), reply(R"(,"result":{"a":1,"a":2})")},
        {"whitespace inside the payload", call(R"(,"data":{ "a" : [ 1 , 2 ] })"),
         reply(R"(,"result":{"a" :1})")},
        {"whitespace between frame fields",
         R"({ "type" : "invokefunction" , "invocation_id" : "$ID" , "function_id" : "t::f" , "data" : {"a":1} })",
         R"({ "type" : "invocationresult" , "invocation_id" : "$ID" , "function_id" : "t::f" , "result" : {"a":1} })"},
        {"escapes RapidJSON writes", call(R"(,"data":{"s":"q\"b\\n\nt\tr\rb\bf\f"})"),
         reply(R"(,"result":"q\"b\\n\n")")},
        {"escapes RapidJSON writes otherwise",
         call(R"(,"data":{"s":"\u0041\u00e9\/\u0001\u001f\ud83d\ude00"})"),
         reply(R"(,"result":"\u0041\/")")},
        {"escaped keys", call(R"(,"data":{"\u0061":1,"b\"":2})"), reply(R"(,"result":{"\u0062":1})")},
        {"UTF-8 text", call(R"(,"data":{"s":"é ✓ 😀"})"), reply(R"(,"result":{"s":"é ✓ 😀"})")},
        {"numbers",
         call(R"(,"data":{"n":[0,1,-2,123456789012345678,1.5,0.1,-0.0,1.0,1e300,2.5e-5]})"),
         reply(R"(,"result":[0,-7,1.25,100.0])")},
        {"numbers in other forms",
         call(R"(,"data":{"n":[1.50,1e3,1E2,-0,12345678901234567890,1234567890123456789,0.10]})"),
         reply(R"(,"result":[1.50,1e3,-0])")},
        {"literals", call(R"(,"data":{"f":false,"n":null,"t":true})"),
         reply(R"(,"result":[true,false,null])")},
        {"array data", call(R"(,"data":[1,{"b":1,"a":2}])"), reply(R"(,"result":[1,2])")},
        {"string data", call(R"(,"data":"text")"), reply(R"(,"result":"text")")},
        {"number data", call(R"(,"data":42)"), reply(R"(,"result":42)")},
        {"null data", call(R"(,"data":null)"), reply(R"(,"result":null)")},
        {"a payload that names a caller already", call(R"(,"data":{"_caller_worker_id":"x","a":1})"),
         echo_ok},
        {"deep nesting", call(R"(,"data":)" + deep), reply(R"(,"result":)" + deep)},
        {"trace headers", call(R"(,"data":{},"traceparent":"00-abc-def-01","baggage":"k=v")"),
         reply(R"(,"result":1,"traceparent":"00-other-01","baggage":"x=y")")},
        {"trace headers echoed as the caller sent them",
         call(R"(,"data":{"z":1},"traceparent":"00-abc-def-01","baggage":"k=v")"),
         reply(R"(,"result":{"a":1},"traceparent":"00-abc-def-01","baggage":"k=v")")},
        {"trace headers of the same length, not the caller's",
         call(R"(,"data":{"z":1},"traceparent":"00-abc-def-01","baggage":"k=v")"),
         reply(R"(,"result":{"a":1},"traceparent":"00-abc-def-02","baggage":"k=w")")},
        {"only some trace headers echoed", call(R"(,"data":{},"traceparent":"00-abc-def-01")"),
         reply(R"(,"result":1,"traceparent":"00-abc-def-01","baggage":"k=v")")},
        {"fields out of the written order",
         R"({"type":"invokefunction","invocation_id":"$ID","data":{"a":1},"function_id":"t::f","baggage":"b","traceparent":"t"})",
         R"({"type":"invocationresult","invocation_id":"$ID","result":{"a":1},"function_id":"t::f"})"},
        {"an empty payload object and a non-object result",
         call(R"(,"data":{},"metadata":{"m":1})"), reply(R"(,"result":[{}])")},
        {"trace headers with escapes", call(R"(,"data":{},"traceparent":"a\"b","baggage":"c\\d")"),
         echo_ok},
        {"null trace headers and action", call(R"(,"data":{},"traceparent":null,"baggage":null,"action":null)"),
         reply(R"(,"result":1,"traceparent":null,"error":null)")},
        {"metadata", call(R"(,"data":{"a":1},"metadata":{"k":"v","l":[1]})"), echo_ok},
        {"unsorted metadata", call(R"(,"data":{"a":1},"metadata":{"l":1,"k":2})"), echo_ok},
        {"null metadata", call(R"(,"data":{"a":1},"metadata":null)"), echo_ok},
        {"namespace default", call(R"(,"data":{"a":1},"namespace":"default")"), echo_ok},
        {"namespace elsewhere", call(R"(,"data":{"a":1},"namespace":"ns")"), echo_ok},
        {"unknown fields", call(R"(,"zzz":[1,{"b":1,"a":2}],"result":5,"data":{"a":1},"id":"x")"),
         reply(R"(,"zzz":{"b":1},"data":3,"result":{"a":1})")},
        {"unknown fields with whitespace and every escape",
         call(R"(, "zzz" : { "b" : "x\u0041\/\n" , "c" : [ -1.5e+3 , 0 , true , null , {} , [ ] ] } ,"data":{"a":1} )"),
         reply(R"( , "zzz" : [ "\ud83d\ude00" , -0.0E-7 ] , "result" : {"a":1} )")},
        {"type twice, of the other kind", call(R"(,"data":{"a":1},"type":"invocationresult")"), echo_ok},
        {"malformed: a bad literal in an unknown field", call(R"(,"zzz":tru,"data":{"a":1})"), ""},
        {"malformed: a bad escape in an unknown field", call(R"(,"zzz":"\x","data":{"a":1})"), ""},
        {"malformed: a bad number in an unknown field", call(R"(,"zzz":[01,-],"data":{"a":1})"), ""},
        {"malformed: an unclosed unknown field", call(R"(,"data":{"a":1},"zzz":[1,{"a":2})"), ""},
        {"malformed: two payloads in a row", call(R"(,"data":{"a":1}{"b":2})"), ""},
        {"fields before type",
         R"({"invocation_id":"$ID","type":"invokefunction","function_id":"t::f","data":{"a":1}})",
         R"({"result":{"a":1},"type":"invocationresult","invocation_id":"$ID","function_id":"t::f"})"},
        {"a field twice", call(R"(,"data":{"a":1},"data":{"b":2})"),
         reply(R"(,"result":{"a":1},"result":{"b":2})")},
        {"type twice", call(R"(,"data":{"a":1},"type":"invokefunction")"), echo_ok},
        {"an upper-case invocation id", call(R"(,"data":{"a":1})"), echo_ok},
        {"an error result", call(R"(,"data":{})"),
         reply(R"(,"error":{"code":"boom","message":"it broke","extra":1},"result":{"a":1})")},
        {"no result", call(R"(,"data":{})"), reply("")},
        {"another function id in the result", call(R"(,"data":{})"),
         R"({"type":"invocationresult","invocation_id":"$ID","function_id":"other","result":1})"},
        {"a result for nobody", call(R"(,"data":{})"),
         R"({"type":"invocationresult","invocation_id":"00000000-0000-4000-8000-000000000000","function_id":"t::f","result":1})"},
        {"an unknown function",
         R"({"type":"invokefunction","invocation_id":"$ID","function_id":"t::none","data":{}})", ""},
        {"a built-in", R"({"type":"invokefunction","invocation_id":"$ID","function_id":"engine::functions::list","data":{}})",
         ""},
        {"malformed: bad literal", call(R"(,"data":{"a":tru})"), ""},
        {"malformed: bad literal in the result", call(R"(,"data":{})"), reply(R"(,"result":{"a":tru})")},
        {"malformed: trailing content", call(R"(,"data":{"a":1})") + " x", ""},
        {"malformed: trailing comma", call(R"(,"data":{"a":1,})"), ""},
        {"malformed: not a UUID", R"({"type":"invokefunction","invocation_id":"nope","function_id":"t::f","data":{}})",
         ""},
        {"malformed: no data", call(""), ""},
        {"malformed: function id not a string",
         R"({"type":"invokefunction","invocation_id":"$ID","function_id":5,"data":{}})", ""},
        {"malformed: namespace not a string", call(R"(,"data":{},"namespace":5)"), ""},
        {"malformed: traceparent not a string", call(R"(,"data":{},"traceparent":5)"), ""},
        {"malformed: result without function id", call(R"(,"data":{})"),
         R"({"type":"invocationresult","invocation_id":"$ID","result":1})"},
        {"malformed: result with a bad trace header", call(R"(,"data":{})"),
         reply(R"(,"result":1,"baggage":[1])")},
    };
    for (Case& c : scan_boundary_cases()) all.push_back(std::move(c));
    return all;
}

}  // namespace

TEST_CASE("calls and results forwarded as text are the frames the full path sends",
          "[engine][forward]") {
    const auto generation = GENERATE(Generation::V0_10, Generation::V0_22, Generation::V0_23);
    INFO("generation " << iii::testing::to_string(generation));
    EngineOptions options;
    options.generation = generation;
    options.namespace_grace = 20ms;
    options.record_frames = false;
    auto text = std::make_unique<Setup>(options);
    options.forward_as_text = false;
    auto full = std::make_unique<Setup>(options);

    for (const Case& c : cases()) {
        INFO("case: " << c.name);
        std::string id = proto::new_uuid();
        if (std::string_view(c.name) == "an upper-case invocation id")
            for (char& ch : id) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        const Trace a = exchange(*text, id, c.invoke, c.result);
        const Trace b = exchange(*full, id, c.invoke, c.result);
        CHECK(a.to_callee == b.to_callee);
        CHECK(a.to_caller == b.to_caller);
    }
    // The comparison is between the two paths: the text engine did take its text path.
    CHECK(text->engine.frames_forwarded_as_text() > 0);
    CHECK(full->engine.frames_forwarded_as_text() == 0);
}

TEST_CASE("the text path splices the caller's id into the payload at its sorted place",
          "[engine][forward]") {
    Engine engine;
    RawWorker callee(engine.url()), caller(engine.url());
    callee.send(R"({"type":"registerfunction","id":"t::f"})");
    callee.sync();
    const std::string c = caller.worker_id();
    const std::string id = proto::new_uuid();
    const std::string head = R"({"type":"invokefunction","invocation_id":")" + id +
                             R"(","function_id":"t::f","data":)";
    caller.send(head + R"({})" + "}");
    caller.send(head + R"({"a":1})" + "}");
    caller.send(head + R"({"A":1,"b":2})" + "}");
    caller.send(head + R"({"A":1})" + "}");
    caller.send(head + R"([{}])" + "}");
    // Whitespace between the frame's fields and unknown fields of any form: still the text path.
    caller.send(" " + head + R"({"a":1} , "zzz" : [ "\u0041" , -1e+2 , { "y" : null } ] } )");
    caller.sync();
    callee.sync();
    const std::string cw = R"("_caller_worker_id":")" + c + R"(")";
    CHECK(callee.nth_text("invokefunction", 0) == head + "{" + cw + "}}");
    CHECK(callee.nth_text("invokefunction", 1) == head + "{" + cw + R"(,"a":1}})");
    CHECK(callee.nth_text("invokefunction", 2) == head + R"({"A":1,)" + cw + R"(,"b":2}})");
    CHECK(callee.nth_text("invokefunction", 3) == head + R"({"A":1,)" + cw + "}}");
    CHECK(callee.nth_text("invokefunction", 4) == head + "[{}]}");
    CHECK(callee.nth_text("invokefunction", 5) == head + "{" + cw + R"(,"a":1}})");
    CHECK(engine.frames_forwarded_as_text() == 6);  // each of them as text
}

std::size_t count_of(const std::vector<RawFrame>& frames, const std::string& type) {
    return static_cast<std::size_t>(
        std::count_if(frames.begin(), frames.end(), [&](const RawFrame& f) { return f.type == type; }));
}

// The text path remembers the worker it found for a function's owner and for a call's caller
// (Engine::Impl::WorkerRef): after the function changes hands, and after a worker leaves, the
// next call goes to whoever holds the function then, as find_worker() would find it.
TEST_CASE("the text path follows a function to its new owner, connected or after a disconnect",
          "[engine][forward]") {
    // 0.22: a registration takes the function over; a disconnect deletes only what the
    // leaving worker still owns (0.10 would delete t::f by id whoever holds it then).
    EngineOptions options;
    options.generation = Generation::V0_22;
    Engine engine(options);
    RawWorker caller(engine.url());
    auto first = std::make_unique<RawWorker>(engine.url());
    RawWorker second(engine.url()), third(engine.url());
    // One call from `caller` to `callee`, answered; true when the callee got the call and the
    // caller its result (and nobody else got anything).
    const auto round_trip = [&](RawWorker& callee) {
        const std::size_t calls = callee.count("invokefunction");
        const std::size_t results = caller.count("invocationresult");
        const std::string id = proto::new_uuid();
        caller.send(replace_all(call(R"(,"data":{"n":1})"), "$ID", id));
        if (!callee.wait([&](const auto& frames) { return count_of(frames, "invokefunction") == calls + 1; }))
            return false;
        callee.send(replace_all(echo_ok_reply(), "$ID", id));
        return caller.wait([&](const auto& frames) { return count_of(frames, "invocationresult") == results + 1; }) &&
               caller.of_type("invocationresult").back()["invocation_id"].as_string() == id;
    };
    const auto owned_by = [&](RawWorker& owner) {
        owner.send(R"({"type":"registerfunction","id":"t::f"})");
        owner.sync();
    };

    owned_by(*first);
    CHECK(round_trip(*first));
    CHECK(round_trip(*first));  // the remembered owner
    owned_by(second);           // changes hands, both connected
    CHECK(round_trip(second));
    CHECK(first->count("invokefunction") == 2);
    owned_by(third);
    first.reset();  // a worker leaves (not the owner): every remembered worker is stale
    REQUIRE(engine.wait_for([&] { return engine.worker_ids().size() == 3; }));
    CHECK(round_trip(third));
    owned_by(second);
    CHECK(round_trip(second));
    CHECK(third.count("invokefunction") == 1);
    CHECK(engine.frames_forwarded_as_text() == 10);  // every call and result took the text path
}
