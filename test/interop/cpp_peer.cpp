// The C++ side of the cross-language interop tests (cross_*.test.mjs): one iii-cpp worker that a
// Node test drives through JSON lines on stdin/stdout (see cpp_peer.mjs).
//
//   cpp_peer <engine url> <worker name>
//
// In:  one command per line, {"req": <n>, "cmd": "<name>", ...arguments}. Commands run
//      concurrently (a call that waits does not hold up the next command).
// Out: {"event": "ready"} once connected, then per command
//      {"req": <n>, "ok": true, "result": <json>} or
//      {"req": <n>, "ok": false, "error": {"errc", "code"?, "message", "stacktrace"?, "elapsed_ms"?}},
//      and {"event": "<what>", ...} lines for what happens to the worker (invocations of its
//      functions, bindings of its trigger types).
// End of stdin: graceful shutdown (shutdown_async), then exit 0.
//
// Commands (arguments in braces):
//   register {function_id, behaviour}   behaviour: "echo" (reports an "invoked" event, returns
//                                       {echo: payload, from: "cpp"}), "fail" (throws
//                                       runtime_error(payload.message)), "fail_code" (throws a
//                                       Remote error {payload.code, payload.message,
//                                       payload.stacktrace}), "relay" (calls payload.target with
//                                       payload.payload and returns its result), "context"
//                                       (returns {metadata, function_id} of its
//                                       InvocationContext)
//   register_typed {}                   cpp::typed::quote(QuoteRequest) -> Quote and
//                                       cpp::typed::add(int, int) -> int
//   register_channels {}                cpp::chan::consume {reader} and cpp::chan::produce
//                                       {writer, head_b64, message, tail_b64}
//   unregister {function_id}
//   call {function_id, payload, action?: "void" | {"enqueue": <queue>}, timeout_ms?, metadata?}
//                                       -> {value, elapsed_ms}
//   typed_invoice {function_id, input}  iii::trigger<Invoice>(client, id, QuoteRequest) -> Invoice
//   register_trigger_type {id, description, reject?}
//                                       events trigger_registered / trigger_unregistered
//   unregister_trigger_type {id}
//   fire {trigger_id, payload}          calls the function bound by that trigger -> its result
//   bind {trigger_type, function_id, config, metadata?} -> {id}
//   unbind {id}
//   list {what: functions | workers | triggers | trigger_types}
//   chan_send {function_id, head_b64, message, tail_b64}
//                                       creates a channel, calls function_id with {reader: ref}
//                                       while writing head, message, tail -> {result}
//   chan_receive {function_id}          creates a channel, calls function_id with {writer: ref}
//                                       while reading -> {result, bytes_b64, messages}

#include <iii/channel.hpp>
#include <iii/iii.hpp>
#include <iii/typed.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace peer {

// ---- typed payloads --------------------------------------------------------------------------

enum class Tier { Basic, Gold };
III_DESCRIBE_ENUM(Tier, (Basic, "basic"), (Gold, "gold"));

struct LineItem {
    std::string sku;
    std::uint32_t qty = 0;
    double unit_price = 0;
};
III_DESCRIBE(LineItem, sku, qty, unit_price);

struct QuoteRequest {
    std::string customer;
    Tier tier = Tier::Basic;
    std::vector<LineItem> items;
    std::optional<std::string> coupon;
};
III_DESCRIBE(QuoteRequest, customer, tier, items, coupon);

struct Quote {
    std::string customer;
    std::uint32_t units = 0;
    double total = 0;
    std::vector<std::string> skus;
    std::optional<std::string> coupon;
    std::uint64_t max_safe = 0;
};
III_DESCRIBE(Quote, customer, units, total, skus, coupon, max_safe);

/// What the Node function `typed_invoice` calls is expected to return.
struct InvoiceLine {
    std::string sku;
    double amount = 0;
};
III_DESCRIBE(InvoiceLine, sku, amount);

struct Invoice {
    std::string customer;
    std::vector<InvoiceLine> lines;
    double total = 0;
    bool paid = false;
    std::optional<std::string> note;
    Tier tier = Tier::Basic;
};
III_DESCRIBE(Invoice, customer, lines, total, paid, note, tier);

Quote quote(const QuoteRequest& in) {
    if (in.items.empty()) throw std::invalid_argument("a quote needs at least one item");
    Quote q;
    q.customer = in.customer;
    for (const auto& item : in.items) {
        q.units += item.qty;
        q.total += item.qty * item.unit_price;
        q.skus.push_back(item.sku);
    }
    if (in.tier == Tier::Gold) q.total *= 0.5;
    q.coupon = in.coupon;
    q.max_safe = 9007199254740991ull;  // 2^53 - 1: the largest integer a JS number holds exactly
    return q;
}

int add(int a, int b) { return a + b; }

// ---- base64 (channel bytes travel through the line protocol as text) ------------------------

constexpr std::string_view b64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(std::span<const std::uint8_t> in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const std::uint32_t n = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
        for (int s = 18; s >= 0; s -= 6) out += b64_alphabet[(n >> s) & 63];
    }
    if (const std::size_t rest = in.size() - i; rest > 0) {
        std::uint32_t n = in[i] << 16;
        if (rest == 2) n |= in[i + 1] << 8;
        out += b64_alphabet[(n >> 18) & 63];
        out += b64_alphabet[(n >> 12) & 63];
        out += rest == 2 ? b64_alphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::vector<std::uint8_t> b64_decode(std::string_view in) {
    std::vector<std::uint8_t> out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        if (c == '=') break;
        const auto pos = b64_alphabet.find(c);
        if (pos == std::string_view::npos) throw std::invalid_argument("invalid base64");
        acc = (acc << 6) | static_cast<std::uint32_t>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xff));
        }
    }
    return out;
}

// ---- output -------------------------------------------------------------------------------------

/// Writes whole lines to stdout; called from the command thread and from handler threads.
class Output {
public:
    void line(const iii::Value& v) {
        const std::string text = v.dump() + "\n";
        std::lock_guard lock(mutex_);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    }
    void event(std::string name, iii::Value fields = iii::Value::object()) {
        fields.set("event", std::move(name));
        line(fields);
    }

private:
    std::mutex mutex_;
};

const char* errc_name(iii::Errc e) {
    switch (e) {
    case iii::Errc::NotConnected: return "NotConnected";
    case iii::Errc::Timeout: return "Timeout";
    case iii::Errc::Runtime: return "Runtime";
    case iii::Errc::Remote: return "Remote";
    case iii::Errc::Handler: return "Handler";
    case iii::Errc::Serde: return "Serde";
    case iii::Errc::WebSocket: return "WebSocket";
    case iii::Errc::RegistrationRejected: return "RegistrationRejected";
    }
    return "unknown";
}

/// A failed command's "error" member; `elapsed_ms` when the command timed itself.
struct CommandError : std::runtime_error {
    CommandError(iii::Value error) : std::runtime_error("command failed"), error(std::move(error)) {}
    iii::Value error;
};

iii::Value describe_error(const iii::Error& e) {
    iii::Value out = iii::Value::object();
    out.set("errc", errc_name(e.errc()));
    if (const auto* remote = e.remote()) {
        out.set("code", remote->code).set("message", remote->message);
        if (remote->stacktrace) out.set("stacktrace", *remote->stacktrace);
    } else {
        out.set("message", e.what());
    }
    return out;
}

std::optional<iii::TriggerAction> parse_action(const iii::Value& cmd) {
    const iii::Value* action = cmd.find("action");
    if (!action || action->is_null()) return std::nullopt;
    if (action->is_string() && action->as_string() == "void") return iii::TriggerAction(iii::Void{});
    if (const iii::Value* queue = action->find("enqueue"))
        return iii::TriggerAction(iii::Enqueue(queue->as_string()));
    throw std::invalid_argument("unknown action " + action->dump());
}

// ---- trigger type provider ----------------------------------------------------------------------

/// A trigger type whose bindings the peer reports as events and can fire on command.
class Provider final : public iii::TriggerHandler {
public:
    Provider(Output& out, std::string type, bool reject)
        : out_(out), type_(std::move(type)), reject_(reject) {}

    asio::awaitable<void> register_trigger(iii::TriggerConfig config) override {
        out_.event("trigger_registered", describe(config));
        if (reject_) throw std::runtime_error("binding refused by the C++ provider");
        std::lock_guard lock(mutex_);
        bound_[config.id] = std::move(config);
        co_return;
    }

    asio::awaitable<void> unregister_trigger(iii::TriggerConfig config) override {
        {
            std::lock_guard lock(mutex_);
            bound_.erase(config.id);
        }
        out_.event("trigger_unregistered", describe(config));
        co_return;
    }

    std::optional<iii::TriggerConfig> find(const std::string& id) {
        std::lock_guard lock(mutex_);
        auto it = bound_.find(id);
        if (it == bound_.end()) return std::nullopt;
        return it->second;
    }

private:
    iii::Value describe(const iii::TriggerConfig& c) const {
        iii::Value v = iii::Value::object();
        v.set("trigger_type", type_).set("id", c.id).set("function_id", c.function_id);
        v.set("config", c.config).set("metadata", c.metadata ? *c.metadata : iii::Value());
        return v;
    }

    Output& out_;
    std::string type_;
    bool reject_;
    std::mutex mutex_;
    std::map<std::string, iii::TriggerConfig> bound_;
};

// ---- the peer -----------------------------------------------------------------------------------

class Peer {
public:
    Peer(asio::io_context& io, std::shared_ptr<iii::Client> client)
        : io_(io), guard_(asio::make_work_guard(io)), client_(std::move(client)) {}

    Output& out() { return out_; }

    /// Reports "ready" once the connection is up (the engine has our registrations from then).
    asio::awaitable<void> announce_ready() {
        const bool up = co_await client_->wait_for_state(iii::ConnectionState::Connected, 10s);
        if (up) {
            out_.event("ready");
        } else {
            out_.event("fatal", {{"message", "not connected within 10 s"}});
        }
    }

    /// One input line: parse it and start its command.
    void dispatch(const std::string& line) {
        if (line.empty()) return;
        iii::Value cmd;
        try {
            cmd = iii::Value::parse(line);
        } catch (const std::exception& e) {
            out_.event("bad_line", {{"line", line}, {"message", e.what()}});
            return;
        }
        ++in_flight_;
        auto run = [this, cmd = std::move(cmd)]() -> asio::awaitable<void> {
            iii::Value reply = iii::Value::object();
            reply.set("req", cmd["req"]);
            try {
                iii::Value result = co_await execute(cmd);
                reply.set("ok", true).set("result", std::move(result));
            } catch (const CommandError& e) {
                reply.set("ok", false).set("error", e.error);
            } catch (const iii::Error& e) {
                reply.set("ok", false).set("error", describe_error(e));
            } catch (const std::exception& e) {
                reply.set("ok", false).set("error", iii::Value{{"errc", "exception"}, {"message", e.what()}});
            }
            out_.line(reply);
            --in_flight_;
        };
        asio::co_spawn(io_, std::move(run), asio::detached);
    }

    /// End of stdin: shut down gracefully, let running commands finish, then let io.run() end.
    void on_eof() {
        auto finish = [this]() -> asio::awaitable<void> {
            co_await client_->shutdown_async();
            // Pending calls failed with NotConnected; their commands end promptly.
            asio::steady_timer timer(io_);
            const auto deadline = std::chrono::steady_clock::now() + 5s;
            while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) {
                timer.expires_after(10ms);
                co_await timer.async_wait(asio::use_awaitable);
            }
            guard_.reset();
        };
        asio::co_spawn(io_, std::move(finish), asio::detached);
    }

    /// Drops the client (after io.run() returned): joins its io thread.
    void release() {
        providers_.clear();
        triggers_.clear();
        client_.reset();
    }

private:
    asio::awaitable<iii::Value> execute(const iii::Value& cmd) {
        const std::string& name = cmd.at("cmd").as_string();
        if (name == "register") co_return do_register(cmd);
        if (name == "register_typed") co_return do_register_typed();
        if (name == "register_channels") co_return do_register_channels();
        if (name == "unregister") {
            auto it = functions_.find(cmd.at("function_id").as_string());
            if (it == functions_.end()) throw std::invalid_argument("not registered here");
            it->second.unregister();
            functions_.erase(it);
            co_return iii::Value();
        }
        if (name == "call") co_return co_await do_call(cmd);
        if (name == "typed_invoice") co_return co_await do_typed_invoice(cmd);
        if (name == "register_trigger_type") {
            const std::string& id = cmd.at("id").as_string();
            const iii::Value* reject = cmd.find("reject");
            auto provider = std::make_shared<Provider>(out_, id, reject && reject->as_bool());
            client_->register_trigger_type(id, cmd.at("description").as_string(), provider);
            providers_[id] = provider;
            co_return iii::Value();
        }
        if (name == "unregister_trigger_type") {
            client_->unregister_trigger_type(cmd.at("id").as_string());
            co_return iii::Value();
        }
        if (name == "fire") co_return co_await do_fire(cmd);
        if (name == "bind") {
            iii::RegisterTriggerInput input;
            input.trigger_type = cmd.at("trigger_type").as_string();
            input.function_id = cmd.at("function_id").as_string();
            input.config = cmd.at("config");
            if (const iii::Value* meta = cmd.find("metadata")) input.metadata = *meta;
            iii::Trigger trigger = client_->register_trigger(std::move(input));
            const std::string id = trigger.id;
            triggers_[id] = std::move(trigger);
            co_return iii::Value{{"id", id}};
        }
        if (name == "unbind") {
            auto it = triggers_.find(cmd.at("id").as_string());
            if (it == triggers_.end()) throw std::invalid_argument("no such trigger here");
            it->second.unregister();
            triggers_.erase(it);
            co_return iii::Value();
        }
        if (name == "list") co_return co_await do_list(cmd.at("what").as_string());
        if (name == "chan_send") co_return co_await do_chan_send(cmd);
        if (name == "chan_receive") co_return co_await do_chan_receive(cmd);
        throw std::invalid_argument("unknown command " + name);
    }

    iii::Value do_register(const iii::Value& cmd) {
        const std::string id = cmd.at("function_id").as_string();
        const std::string behaviour = cmd.at("behaviour").as_string();
        iii::FunctionRef ref;
        auto message = iii::RegisterFunctionMessage::with_id(id);
        message.description = "cpp_peer " + behaviour;
        if (behaviour == "echo") {
            ref = client_->register_function(message, [this, id](iii::Value in) -> iii::Value {
                out_.event("invoked", {{"function_id", id}, {"payload", in}});
                return iii::Value{{"echo", in}, {"from", "cpp"}};
            });
        } else if (behaviour == "fail") {
            ref = client_->register_function(message, [](iii::Value in) -> iii::Value {
                throw std::runtime_error(in.at("message").as_string());
            });
        } else if (behaviour == "fail_code") {
            ref = client_->register_function(message, [](iii::Value in) -> iii::Value {
                iii::RemoteError remote{in.at("code").as_string(), in.at("message").as_string(), std::nullopt};
                if (const iii::Value* st = in.find("stacktrace")) remote.stacktrace = st->as_string();
                throw iii::Error(std::move(remote));
            });
        } else if (behaviour == "context") {
            ref = client_->register_function(
                message, [](iii::Value, const iii::InvocationContext& context) -> iii::Value {
                    return iii::Value{{"metadata", context.metadata.value_or(iii::Value())},
                                      {"function_id", context.function_id}};
                });
        } else if (behaviour == "relay") {
            ref = client_->register_function(message, [this](iii::Value in) -> asio::awaitable<iii::Value> {
                iii::TriggerRequest request(in.at("target").as_string(), in.at("payload"));
                co_return co_await client_->trigger(std::move(request));
            });
        } else {
            throw std::invalid_argument("unknown behaviour " + behaviour);
        }
        functions_[id] = ref;
        return iii::Value();
    }

    iii::Value do_register_typed() {
        auto quote_fn = iii::RegisterFunction("cpp::typed::quote", quote).description("Prices a quote request");
        functions_["cpp::typed::quote"] = iii::register_function(*client_, std::move(quote_fn));
        auto add_fn = iii::RegisterFunction("cpp::typed::add", add).description("Adds two integers");
        functions_["cpp::typed::add"] = iii::register_function(*client_, std::move(add_fn));
        return iii::Value();
    }

    iii::Value do_register_channels() {
        // {reader: <read ref>} -> {messages, bytes_b64, length}
        functions_["cpp::chan::consume"] = client_->register_function(
            iii::RegisterFunctionMessage::with_id("cpp::chan::consume"),
            [this](iii::Value in) -> asio::awaitable<iii::Value> {
                iii::ChannelReader reader(*client_, iii::StreamChannelRef::from_value(in.at("reader")));
                auto messages = std::make_shared<iii::Value>(iii::Value::array());
                reader.on_message([messages](const std::string& m) { messages->push_back(m); });
                const std::vector<std::uint8_t> bytes = co_await reader.read_all();
                iii::Value out = iii::Value::object();
                out.set("label", in["label"]).set("messages", *messages);
                out.set("length", bytes.size()).set("bytes_b64", b64_encode(bytes));
                co_return out;
            });
        // {writer: <write ref>, head_b64, message, tail_b64} -> {written}
        functions_["cpp::chan::produce"] = client_->register_function(
            iii::RegisterFunctionMessage::with_id("cpp::chan::produce"),
            [this](iii::Value in) -> asio::awaitable<iii::Value> {
                iii::ChannelWriter writer(*client_, iii::StreamChannelRef::from_value(in.at("writer")));
                const auto head = b64_decode(in.at("head_b64").as_string());
                const auto tail = b64_decode(in.at("tail_b64").as_string());
                co_await writer.write(std::span<const std::uint8_t>(head));
                co_await writer.send_message(in.at("message").as_string());
                co_await writer.write(std::span<const std::uint8_t>(tail));
                co_await writer.close();
                co_return iii::Value{{"written", head.size() + tail.size()}};
            });
        return iii::Value();
    }

    asio::awaitable<iii::Value> do_call(const iii::Value& cmd) {
        std::optional<std::uint64_t> timeout;
        if (const iii::Value* t = cmd.find("timeout_ms")) timeout = t->as_uint();
        iii::TriggerRequest request(cmd.at("function_id").as_string(), cmd["payload"], parse_action(cmd), timeout);
        if (const iii::Value* metadata = cmd.find("metadata")) request.metadata = *metadata;
        const auto started = std::chrono::steady_clock::now();
        auto elapsed = [&] {
            return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
        };
        try {
            iii::Value value = co_await client_->trigger(std::move(request));
            co_return iii::Value{{"value", std::move(value)}, {"elapsed_ms", elapsed()}};
        } catch (const iii::Error& e) {
            iii::Value error = describe_error(e);
            error.set("elapsed_ms", elapsed());
            throw CommandError(std::move(error));
        }
    }

    asio::awaitable<iii::Value> do_typed_invoice(const iii::Value& cmd) {
        const QuoteRequest input = iii::from_value<QuoteRequest>(cmd.at("input"));
        Invoice invoice = co_await iii::trigger<Invoice>(*client_, cmd.at("function_id").as_string(), input);
        co_return iii::to_value(invoice);
    }

    asio::awaitable<iii::Value> do_fire(const iii::Value& cmd) {
        const std::string& trigger_id = cmd.at("trigger_id").as_string();
        for (auto& [type, provider] : providers_) {
            if (auto config = provider->find(trigger_id)) {
                iii::Value payload = cmd["payload"];
                payload.set("trigger_id", trigger_id).set("config", config->config);
                iii::TriggerRequest request(config->function_id, std::move(payload));
                co_return co_await client_->trigger(std::move(request));
            }
        }
        throw std::invalid_argument("no bound trigger " + trigger_id);
    }

    asio::awaitable<iii::Value> do_list(const std::string& what) {
        iii::Value out = iii::Value::array();
        auto opt = [](const auto& o) { return o ? iii::Value(*o) : iii::Value(); };
        if (what == "functions") {
            const auto functions = co_await client_->list_functions();
            for (const auto& f : functions) {
                out.push_back(iii::Value{{"function_id", f.function_id},
                                         {"description", opt(f.description)},
                                         {"request_format", opt(f.request_format)},
                                         {"response_format", opt(f.response_format)}});
            }
        } else if (what == "workers") {
            const auto workers = co_await client_->list_workers();
            for (const auto& w : workers) {
                iii::Value functions = iii::Value::array();
                for (const auto& f : w.functions) functions.push_back(f);
                out.push_back(iii::Value{{"id", w.id},
                                         {"name", opt(w.name)},
                                         {"runtime", opt(w.runtime)},
                                         {"status", w.status},
                                         {"function_count", w.function_count},
                                         {"functions", functions},
                                         {"active_invocations", w.active_invocations}});
            }
        } else if (what == "triggers") {
            const auto triggers = co_await client_->list_triggers();
            for (const auto& t : triggers) {
                out.push_back(iii::Value{{"id", t.id},
                                         {"trigger_type", t.trigger_type},
                                         {"function_id", t.function_id},
                                         {"config", t.config},
                                         {"metadata", opt(t.metadata)}});
            }
        } else if (what == "trigger_types") {
            const auto types = co_await client_->list_trigger_types();
            for (const auto& t : types)
                out.push_back(iii::Value{{"id", t.id}, {"description", t.description}});
        } else {
            throw std::invalid_argument("unknown list " + what);
        }
        co_return out;
    }

    /// Writes head, a text message and tail into `writer`, then ends the stream.
    static asio::awaitable<void> upload(iii::ChannelWriter& writer, const std::vector<std::uint8_t>& head,
                                        std::string message, const std::vector<std::uint8_t>& tail) {
        co_await writer.write(std::span<const std::uint8_t>(head));
        co_await writer.send_message(std::move(message));
        co_await writer.write(std::span<const std::uint8_t>(tail));
        co_await writer.close();
    }

    asio::awaitable<iii::Value> do_chan_send(const iii::Value& cmd) {
        iii::Channel channel = co_await client_->create_channel();
        iii::Value payload = iii::Value::object();
        payload.set("label", "from-cpp").set("reader", channel.reader_ref.to_value());
        const auto head = b64_decode(cmd.at("head_b64").as_string());
        const auto tail = b64_decode(cmd.at("tail_b64").as_string());
        iii::TriggerRequest request(cmd.at("function_id").as_string(), std::move(payload));
        auto called = client_->trigger(std::move(request));
        auto sent = upload(channel.writer, head, cmd.at("message").as_string(), tail);
        auto both = std::move(called) && std::move(sent);
        iii::Value result = co_await std::move(both);
        co_return iii::Value{{"result", std::move(result)}};
    }

    asio::awaitable<iii::Value> do_chan_receive(const iii::Value& cmd) {
        iii::Channel channel = co_await client_->create_channel();
        auto messages = std::make_shared<iii::Value>(iii::Value::array());
        channel.reader.on_message([messages](const std::string& m) { messages->push_back(m); });
        iii::Value payload = iii::Value::object();
        payload.set("writer", channel.writer_ref.to_value());
        iii::TriggerRequest request(cmd.at("function_id").as_string(), std::move(payload));
        auto called = client_->trigger(std::move(request));
        auto read = channel.reader.read_all();
        auto both = std::move(called) && std::move(read);
        auto [result, bytes] = co_await std::move(both);
        iii::Value out = iii::Value::object();
        out.set("result", std::move(result)).set("messages", *messages);
        out.set("bytes_b64", b64_encode(bytes));
        co_return out;
    }

    asio::io_context& io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::shared_ptr<iii::Client> client_;
    Output out_;
    int in_flight_ = 0;  // commands running; touched on the io_context thread only
    std::map<std::string, iii::FunctionRef> functions_;
    std::map<std::string, std::shared_ptr<Provider>> providers_;
    std::map<std::string, iii::Trigger> triggers_;
};

}  // namespace peer

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: cpp_peer <engine url> <worker name>\n");
        return 2;
    }
    // The test may stop reading before we stop writing.
    std::signal(SIGPIPE, SIG_IGN);

    iii::InitOptions options;
    iii::WorkerMetadata metadata = iii::WorkerMetadata::detect();
    metadata.name = argv[2];
    options.metadata = metadata;
    options.otel = iii::OtelConfig{.enabled = false};
    options.invocation_timeout = 20s;
    options.handler_threads = 4;
    options.shutdown_grace = 3s;

    asio::io_context io;
    peer::Peer peer(io, iii::register_worker(argv[1], options));
    auto ready = [&peer]() { return peer.announce_ready(); };
    asio::co_spawn(io, ready, asio::detached);

    // Blocking reads on their own thread; every line is handled on the io_context.
    std::thread reader([&io, &peer] {
        std::string line;
        while (std::getline(std::cin, line)) asio::post(io, [&peer, line] { peer.dispatch(line); });
        asio::post(io, [&peer] { peer.on_eof(); });
    });
    io.run();
    reader.join();
    peer.release();
    return 0;
}
