// Logger, spans, context propagation and the OTLP/JSON exporter (spec section 7).

#include "telemetry_internal.hpp"

#include "backoff.hpp"
#include "json_internal.hpp"
#include "log.hpp"
#include "otel_config.hpp"
#include "protocol.hpp"
#include "redact.hpp"
#include "small_pool.hpp"
#include "swar.hpp"
#include "transport/ws_transport.hpp"
#include "iii/version.hpp"

#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/error.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/core.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <vector>

namespace iii {

namespace detail::telemetry {

namespace {

constexpr const char* sdk_name = "iii-cpp-sdk";
constexpr const char* sdk_version = III_VERSION_STRING;

std::atomic<std::uint64_t> g_dropped{0};

std::mutex g_default_mutex;
std::weak_ptr<Telemetry> g_default;

std::optional<std::string> env(const char* name) {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
}

template <class T>
std::optional<T> env_number(const char* name) {
    auto v = env(name);
    if (!v) return std::nullopt;
    return parse_env_uint(*v);
}

Value kv(std::string key, Value any_value) {
    Value v = Value::object();
    v.set("key", std::move(key));
    v.set("value", std::move(any_value));
    return v;
}

Value string_value(std::string s) {
    Value v = Value::object();
    v.set("stringValue", std::move(s));
    return v;
}

Value scope_value() {
    Value scope = Value::object();
    scope.set("name", sdk_name);
    scope.set("version", sdk_version);
    return scope;
}

// A span's context lives from its begin to its end (its record copies the ids), mostly on the
// thread that serves or makes the call: from that thread's small_pool, one block reused by call
// after call.
std::shared_ptr<TraceContext> new_context() {
    return std::allocate_shared<TraceContext>(small_pool::Allocator<TraceContext>());
}

ContextPtr new_child(const ContextPtr& parent, std::weak_ptr<Telemetry> fallback_sink) {
    auto ctx = new_context();
    if (parent && !parent->trace_id.empty()) {
        ctx->trace_id = parent->trace_id;
        ctx->flags = parent->flags;
        ctx->baggage = parent->baggage;
        ctx->sink = parent->sink;
    } else {
        random_hex(ctx->trace_id.fill(), 16);
    }
    if (ctx->sink.expired()) ctx->sink = std::move(fallback_sink);
    random_hex(ctx->span_id.fill(), 8);
    return ctx;
}

std::shared_ptr<Telemetry> sink_of(const ContextPtr& ctx) {
    if (ctx)
        if (auto s = ctx->sink.lock()) return s;
    return Telemetry::process_default();
}

SpanRecord span_record(const ContextPtr& ctx, SpanId parent_span_id, std::string name,
                       int kind, std::uint64_t start_ns, std::uint64_t end_ns, int status_code,
                       std::string status_message) {
    SpanRecord span;
    if (ctx) {
        span.trace_id = ctx->trace_id;
        span.span_id = ctx->span_id;
    }
    span.parent_span_id = parent_span_id;
    span.name = std::move(name);
    span.kind = kind;
    span.start_ns = start_ns;
    span.end_ns = end_ns;
    span.status_code = status_code;
    span.status_message = std::move(status_message);
    return span;
}

SpanRecord::Exception exception_event(std::string_view type, std::string_view message) {
    return SpanRecord::Exception{std::string(type), std::string(message), now_unix_nano()};
}

// ---- OTLP/JSON writing (the exporter's strand) ----
//
// The same members in the same order as the Value DOM the exporter used to build per span, so
// the frames read exactly as before.

void write_nanos(detail::JsonWriter& w, std::uint64_t ns) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, ns).ptr;
    w.plain_string(std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

// Trace and span ids are hex digits (generated here or checked by parse_traceparent): written
// as they are.
void write_id(detail::JsonWriter& w, std::string_view id) { w.plain_string(id); }

void write_string_attribute(detail::JsonWriter& w, std::string_view key, std::string_view value) {
    w.StartObject();
    w.plain_string("key");
    w.plain_string(key);  // our own constant
    w.plain_string("value");
    w.StartObject();
    w.plain_string("stringValue");
    detail::write_string(w, value);
    w.EndObject();
    w.EndObject();
}


// Copies the pieces of one value into space reserved for it (write_plain_span).
struct Cursor {
    char* at;
    void put(std::string_view s) noexcept {
        if (!s.empty()) std::memcpy(at, s.data(), s.size());  // (a null data() when empty)
        at += s.size();
    }
    // Room for any std::uint64_t or int in decimal.
    static constexpr std::size_t max_digits = 20;
    template <class Number>
    void number(Number n) noexcept {
        at = std::to_chars(at, at + max_digits, n).ptr;
    }
};

// The text of a plain span around its values, in order (write_plain_span). Their total bounds
// the space reserved.
constexpr std::string_view span_pieces[] = {
    R"({"traceId":")", R"(","spanId":")", R"(","parentSpanId":")", R"(","name":")",
    R"(","kind":)", R"(,"startTimeUnixNano":")", R"(","endTimeUnixNano":")", R"(","status":{"code":)",
    R"(,"message":")", R"("},"attributes":[)", R"({"key":"faas.invoked_name","value":{"stringValue":")",
    R"("}})", R"(],"events":[],"links":[]})"};
constexpr std::size_t span_pieces_size = [] {
    std::size_t n = 0;
    for (std::string_view piece : span_pieces) n += piece.size();
    return n;
}();

/// The SDK's own spans (every string plain ASCII, no further attribute, no event) written
/// straight into the writer's buffer: byte for byte what the generic writer below produces, at
/// a fraction of its cost (this runs for every call). False, and nothing written, otherwise.
bool write_plain_span(detail::JsonWriter& w, const SpanRecord& span) {
    using detail::plain_ascii;
    if (!span.exceptions.empty() || (span.attributes.is_array() && !span.attributes.as_array().empty()) ||
        !plain_ascii(span.name_prefix) || !plain_ascii(span.name) || !plain_ascii(span.status_message))
        return false;
    const std::string_view trace_id = span.trace_id.view(), span_id = span.span_id.view();
    const std::string_view parent_id = span.parent_span_id.view();
    const std::size_t max_size = span_pieces_size + 4 * Cursor::max_digits + trace_id.size() + span_id.size() +
                                 parent_id.size() + span.name_prefix.size() + 2 * span.name.size() +
                                 span.status_message.size();
    w.raw_value_in_place(max_size, rapidjson::kObjectType, [&](char* const begin) {
        const std::string_view* piece = span_pieces;
        Cursor out{begin};
        out.put(*piece++);
        out.put(trace_id);
        out.put(*piece++);
        out.put(span_id);
        out.put(*piece++);
        out.put(parent_id);
        out.put(*piece++);
        out.put(span.name_prefix);
        out.put(span.name);
        out.put(*piece++);
        out.number(span.kind);
        out.put(*piece++);
        out.number(span.start_ns);
        out.put(*piece++);
        out.number(span.end_ns);
        out.put(*piece++);
        out.number(span.status_code);
        out.put(*piece++);
        out.put(span.status_message);
        out.put(*piece++);
        if (span.invoked_name) {
            out.put(piece[0]);
            out.put(span.name);
            out.put(piece[1]);
        }
        piece += 2;
        out.put(*piece);
        return static_cast<std::size_t>(out.at - begin);
    });
    return true;
}

void write_span(detail::JsonWriter& w, const SpanRecord& span) {
    if (write_plain_span(w, span)) return;
    w.StartObject();
    w.plain_string("traceId");
    write_id(w, span.trace_id.view());
    w.plain_string("spanId");
    write_id(w, span.span_id.view());
    w.plain_string("parentSpanId");
    write_id(w, span.parent_span_id.view());
    w.plain_string("name");
    if (span.name_prefix.empty())
        detail::write_string(w, span.name);
    else
        detail::write_string(w, std::string(span.name_prefix) + span.name);
    w.plain_string("kind");
    w.Int64(span.kind);
    w.plain_string("startTimeUnixNano");
    write_nanos(w, span.start_ns);
    w.plain_string("endTimeUnixNano");
    write_nanos(w, span.end_ns);
    w.plain_string("status");
    w.StartObject();
    w.plain_string("code");
    w.Int64(span.status_code);
    w.plain_string("message");
    detail::write_string(w, span.status_message);
    w.EndObject();
    w.plain_string("attributes");
    w.StartArray();
    if (span.invoked_name) write_string_attribute(w, "faas.invoked_name", span.name);
    if (span.attributes.is_array())
        for (const Value& attribute : span.attributes.as_array()) detail::write_value(w, attribute);
    w.EndArray();
    w.plain_string("events");
    w.StartArray();
    for (const auto& e : span.exceptions) {
        w.StartObject();
        w.plain_string("name");
        w.plain_string("exception");
        w.plain_string("timeUnixNano");
        write_nanos(w, e.time_ns);
        w.plain_string("attributes");
        w.StartArray();
        write_string_attribute(w, "exception.type", e.type);
        write_string_attribute(w, "exception.message", e.message);
        write_string_attribute(w, "exception.stacktrace", "");
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
    w.plain_string("links");
    w.StartArray();
    w.EndArray();
    w.EndObject();
}

// ---- process gauges ----------------------------------------------------------------------

struct CpuTimes {
    std::int64_t user_us = 0;
    std::int64_t system_us = 0;
};

CpuTimes cpu_times() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return {static_cast<std::int64_t>(usage.ru_utime.tv_sec) * 1000000 + usage.ru_utime.tv_usec,
            static_cast<std::int64_t>(usage.ru_stime.tv_sec) * 1000000 + usage.ru_stime.tv_usec};
}

std::int64_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    long long size = 0, resident = 0;
    if (!(statm >> size >> resident)) return 0;
    return static_cast<std::int64_t>(resident) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

ContextPtr& current_context() noexcept {
    thread_local ContextPtr current;
    return current;
}

void random_hex(char* out, std::size_t bytes) {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))};
    for (;;) {
        std::uint64_t any = 0;
        for (std::size_t i = 0; i < bytes; i += 8) {
            std::uint64_t random = rng();  // eight bytes per draw
            const std::size_t used = std::min<std::size_t>(bytes - i, 8);
            any |= used == 8 ? random : random & ((std::uint64_t{1} << (8 * used)) - 1);
            for (std::size_t j = i; j < i + used; ++j, random >>= 8)
                std::memcpy(out + 2 * j, &swar::hex_pairs[2 * (random & 0xff)], 2);
        }
        if (any != 0) return;
    }
}

std::uint64_t now_unix_nano() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

Value to_any_value(const Value& value) {
    Value out = Value::object();
    switch (value.kind()) {
        case Value::Kind::Null: out.set("stringValue", ""); break;
        case Value::Kind::Bool: out.set("boolValue", value.as_bool()); break;
        case Value::Kind::Int: out.set("intValue", value.as_int()); break;
        case Value::Kind::Uint:
            if (value.as_uint() <= static_cast<std::uint64_t>(INT64_MAX))
                out.set("intValue", static_cast<std::int64_t>(value.as_uint()));
            else
                out.set("doubleValue", value.as_double());
            break;
        case Value::Kind::Double: out.set("doubleValue", value.as_double()); break;
        case Value::Kind::String: out.set("stringValue", value.as_string()); break;
        case Value::Kind::Array: {
            Value values = Value::array();
            for (const auto& item : value.as_array()) values.push_back(to_any_value(item));
            Value arr = Value::object();
            arr.set("values", std::move(values));
            out.set("arrayValue", std::move(arr));
            break;
        }
        case Value::Kind::Object: {
            Value values = Value::array();
            for (const auto& [k, v] : value.as_object()) values.push_back(kv(k, to_any_value(v)));
            Value list = Value::object();
            list.set("values", std::move(values));
            out.set("kvlistValue", std::move(list));
            break;
        }
    }
    return out;
}

void inject(std::optional<std::string>& traceparent, std::optional<std::string>& baggage) {
    const ContextPtr& ctx = current_context();
    if (ctx) inject(*ctx, traceparent, baggage);
}

namespace {
void write_traceparent(std::string& text, std::string_view trace_id, std::string_view span_id, std::uint8_t flags) {
    static constexpr char digits[] = "0123456789abcdef";
    text.assign(55, '-');  // "00-<trace id>-<span id>-<flags>"
    text[0] = text[1] = '0';
    std::memcpy(text.data() + 3, trace_id.data(), 32);
    std::memcpy(text.data() + 36, span_id.data(), 16);
    text[53] = digits[flags >> 4];
    text[54] = digits[flags & 15];
}
}  // namespace

std::string traceparent_text(std::string_view trace_id, std::string_view span_id, std::uint8_t flags) {
    std::string text;
    write_traceparent(text, trace_id, span_id, flags);
    return text;
}

void inject(const TraceContext& ctx, std::optional<std::string>& traceparent, std::optional<std::string>& baggage,
            std::string&& storage) {
    if (ctx.trace_id.empty() || ctx.span_id.empty()) return;
    write_traceparent(storage, ctx.trace_id.view(), ctx.span_id.view(), ctx.flags);
    traceparent = std::move(storage);
    if (!ctx.baggage.empty()) baggage = ctx.baggage;
}

// ---- the exporter -------------------------------------------------------------------------

std::string encode_span(const SpanRecord& span) {
    rapidjson::StringBuffer buffer;
    detail::JsonWriter w(buffer);
    try {
        write_span(w, span);
    } catch (const detail::InvalidUtf8& e) {
        throw Error(Errc::Serde, e.describe("span"));
    }
    return std::string(buffer.GetString(), buffer.GetSize());
}

struct Telemetry::Impl : std::enable_shared_from_this<Telemetry::Impl> {
    enum class Kind { Log, Span };
    /// A log record or a span given as a DOM (submit_span(Value)). The SDK's spans are
    /// queued as compact records (span_channel).
    struct Item {
        Kind kind;
        Value body;
    };
    struct Frame {
        std::string bytes;
        std::size_t records = 0;
    };
    struct FunctionStats {
        std::uint64_t count = 0;
        std::uint64_t errors = 0;
        double sum_ms = 0;
        double min_ms = 0, max_ms = 0;
        std::vector<std::uint64_t> buckets;
    };
    static inline const std::vector<double> bounds = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

    // The exporter runs on the client's io_context, on its own strand: no thread of its own.
    // Every handler holds the Impl (shared), so it may outlive its Telemetry; the Telemetry's
    // destructor only asks it to stop.
    Settings settings;
    std::atomic<std::uint64_t> dropped{0};
    asio::io_context& io;
    asio::strand<asio::io_context::executor_type> strand;

    // Producer side.
    std::mutex channel_mutex;
    // Swapped with `drained` and `drained_spans` by each drain, so that all keep their capacity:
    // queueing a span allocates nothing in the steady state.
    std::vector<Item> channel;
    std::vector<SpanRecord> span_channel;
    bool drain_posted = false;
    // Spans do not wake the exporter one by one (a post per call, across threads): the first
    // one arms the span timer and the timer drains, or a full batch posts a drain.
    std::size_t queued_spans = 0;
    bool span_drain_scheduled = false;

    // Metrics (own mutex: written by handler threads).
    std::mutex metrics_mutex;
    std::map<std::string, FunctionStats> functions;
    std::string worker_id;

    // Telemetry thread only.
    std::vector<Item> drained;  // empty between drains
    std::vector<SpanRecord> drained_spans;
    std::vector<Value> log_batch;
    // The next OTLP frames' spans: records, and spans given as DOMs.
    std::vector<SpanRecord> span_batch;
    std::vector<Value> span_value_batch;
    rapidjson::StringBuffer span_buffer;  // reused: keeps its capacity across batches
    std::string resource_json;            // resource() as JSON, made once (strand)
    std::deque<Frame> pending;
    std::shared_ptr<transport::Socket> socket;
    bool connected = false;
    bool connecting = false;
    bool ever_opened = false;
    bool closing = false;
    Backoff backoff;
    asio::steady_timer log_timer{strand}, span_timer{strand}, metrics_timer{strand}, reconnect_timer{strand},
        flush_poll{strand};
    bool log_timer_armed = false, span_timer_armed = false;
    std::uint64_t start_ns = now_unix_nano();
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_cpu_at = started;
    CpuTimes last_cpu = cpu_times();
    std::vector<std::function<void()>> flush_waiters;
    std::chrono::steady_clock::time_point flush_deadline{};
    bool flushed = false;

    Impl(const Settings& settings, asio::io_context& io)
        : settings(settings), io(io), strand(asio::make_strand(io)), backoff(settings.reconnection) {}

    const Settings& s() const { return settings; }
    // The URL in use: Settings::url, or its fallback after a 404 (strand only).
    std::string settings_url;
    const std::string& current_url() const { return settings_url.empty() ? s().url : settings_url; }

    Value resource() const {
        Value attrs = Value::array();
        attrs.push_back(kv("service.name", string_value(s().service_name)));
        attrs.push_back(kv("service.version", string_value(s().service_version)));
        if (!s().service_namespace.empty())
            attrs.push_back(kv("service.namespace", string_value(s().service_namespace)));
        attrs.push_back(kv("service.instance.id", string_value(s().service_instance_id)));
        attrs.push_back(kv("telemetry.sdk.name", string_value(sdk_name)));
        attrs.push_back(kv("telemetry.sdk.language", string_value("cpp")));
        attrs.push_back(kv("telemetry.sdk.version", string_value(sdk_version)));
        Value r = Value::object();
        r.set("attributes", std::move(attrs));
        return r;
    }

    bool submit(Kind kind, Value body) {
        std::lock_guard lock(channel_mutex);
        if (!has_room()) return false;
        channel.push_back(Item{kind, std::move(body)});
        return queued(kind);
    }
    bool submit(SpanRecord&& record) {
        std::lock_guard lock(channel_mutex);
        if (!has_room()) return false;
        span_channel.push_back(std::move(record));
        return queued(Kind::Span);
    }
    // Whether the channel takes one more item; counts it as dropped otherwise (channel_mutex).
    bool has_room() {
        if (!closing_requested.load() &&
            channel.size() + span_channel.size() < std::max<std::size_t>(s().channel_capacity, 1))
            return true;
        dropped.fetch_add(1);
        g_dropped.fetch_add(1);
        return false;
    }
    // Wakes the exporter for what was just queued, if it has to be woken (channel_mutex).
    bool queued(Kind kind) {
        if (kind == Kind::Span && ++queued_spans < span_batch_limit) {
            if (!drain_posted && !span_drain_scheduled) {
                span_drain_scheduled = true;
                asio::post(strand, [this, self = shared_from_this()] { arm_span_timer(); });
            }
            return true;
        }
        if (!drain_posted) {
            drain_posted = true;
            asio::post(strand, [this, self = shared_from_this()] { drain(); });
        }
        return true;
    }
    std::atomic<bool> closing_requested{false};
    std::atomic<bool> engine_away{false};  // the last connect attempt failed or the link dropped

    static constexpr std::size_t span_batch_limit = 512;  // spans per OTLP frame at most

    void drain() {
        std::vector<Item>& items = drained;
        {
            std::lock_guard lock(channel_mutex);
            items.swap(channel);
            drained_spans.swap(span_channel);
            drain_posted = false;
            queued_spans = 0;
        }
        for (auto& item : items) {
            if (item.kind == Kind::Log) {
                log_batch.push_back(std::move(item.body));
                if (log_batch.size() >= std::max<std::size_t>(s().logs_batch_size, 1)) emit_logs();
            } else {
                span_value_batch.push_back(std::move(item.body));
            }
        }
        items.clear();
        // The records are taken as they are (no move of each) when none is waiting.
        if (span_batch.empty()) {
            span_batch.swap(drained_spans);
        } else {
            std::move(drained_spans.begin(), drained_spans.end(), std::back_inserter(span_batch));
            drained_spans.clear();
        }
        if (span_batch.size() + span_value_batch.size() >= span_batch_limit) emit_spans();
        // A burst should not pin its queue forever.
        if (items.capacity() > 4 * span_batch_limit) std::vector<Item>().swap(items);
        if (drained_spans.capacity() > 4 * span_batch_limit) std::vector<SpanRecord>().swap(drained_spans);
        if (!log_batch.empty() && !log_timer_armed) {
            log_timer_armed = true;
            log_timer.expires_after(s().logs_flush_interval);
            log_timer.async_wait([this, self = shared_from_this()](std::error_code) {
                log_timer_armed = false;
                emit_logs();
            });
        }
        if (!span_batch.empty() || !span_value_batch.empty()) arm_span_timer();
    }

    // Exports the spans queued and batched so far once the flush interval has passed (strand).
    void arm_span_timer() {
        if (span_timer_armed) return;
        span_timer_armed = true;
        span_timer.expires_after(std::max(s().logs_flush_interval, std::chrono::milliseconds(100)));
        span_timer.async_wait([this, self = shared_from_this()](std::error_code) {
            {
                std::lock_guard lock(channel_mutex);
                span_drain_scheduled = false;
            }
            drain();  // spans submitted since: they did not post
            span_timer_armed = false;
            emit_spans();
        });
    }

    void emit_logs() {
        if (log_batch.empty()) return;
        Value records = Value::array();
        for (auto& r : log_batch) records.push_back(std::move(r));
        const std::size_t n = log_batch.size();
        log_batch.clear();
        Value scope_logs = Value::object();
        scope_logs.set("scope", scope_value());
        scope_logs.set("logRecords", std::move(records));
        Value rl = Value::object();
        rl.set("resource", resource());
        rl.set("scopeLogs", Value::array({std::move(scope_logs)}));
        Value body = Value::object();
        body.set("resourceLogs", Value::array({std::move(rl)}));
        enqueue_frame("LOGS" + body.dump(), n);
    }

    // OTLP/JSON frames of at most span_batch_limit spans for everything batched, written
    // straight from the records.
    void emit_spans() {
        std::size_t records = 0, values = 0;  // written so far
        while (records < span_batch.size() || values < span_value_batch.size()) {
            const std::size_t n_records = std::min(span_batch.size() - records, span_batch_limit);
            const std::size_t n_values = std::min(span_value_batch.size() - values, span_batch_limit - n_records);
            emit_span_frame(std::span(span_batch).subspan(records, n_records),
                            std::span(span_value_batch).subspan(values, n_values));
            records += n_records;
            values += n_values;
        }
        span_batch.clear();
        span_value_batch.clear();
        if (span_batch.capacity() > 4 * span_batch_limit) std::vector<SpanRecord>().swap(span_batch);
    }

    // One OTLP/JSON frame of these spans.
    void emit_span_frame(std::span<const SpanRecord> records, std::span<const Value> values) {
        const std::size_t n = records.size() + values.size();
        span_buffer.Clear();
        for (char c : std::string_view("OTLP")) span_buffer.Put(c);
        detail::JsonWriter w(span_buffer);
        try {
            w.StartObject();
            w.plain_string("resourceSpans");
            w.StartArray();
            w.StartObject();
            w.plain_string("resource");
            if (resource_json.empty()) resource_json = resource().dump();  // fixed per client
            w.raw_value(resource_json, rapidjson::kObjectType);
            w.plain_string("scopeSpans");
            w.StartArray();
            w.StartObject();
            w.plain_string("scope");
            static const std::string scope_json = scope_value().dump();
            w.raw_value(scope_json, rapidjson::kObjectType);
            w.plain_string("spans");
            w.StartArray();
            for (const SpanRecord& record : records) write_span(w, record);
            for (const Value& value : values) detail::write_value(w, value);
            w.EndArray();
            w.EndObject();
            w.EndArray();
            w.EndObject();
            w.EndArray();
            w.EndObject();
        } catch (const detail::InvalidUtf8& e) {
            // A span name or attribute that is not UTF-8 (Span's, from the application): the
            // batch cannot be written as JSON. Counted as dropped rather than thrown on the
            // exporter's strand.
            dropped.fetch_add(n);
            g_dropped.fetch_add(n);
            log(LogLevel::Warn, "telemetry: {} spans dropped: {}", n, e.describe("span"));
            return;
        }
        const std::string_view bytes(span_buffer.GetString(), span_buffer.GetSize());
        // Connected with nothing queued ahead: sent from the buffer (the transport copies it).
        if (connected && socket && pending.empty() && !socket->send(bytes, true))
            check_flush();
        else
            enqueue_frame(std::string(bytes), n);
        // One huge batch should not pin its buffer forever.
        if (span_buffer.GetSize() > (std::size_t{1} << 20)) span_buffer.ShrinkToFit();
    }

    static Value number_point(Value attributes, std::uint64_t start, std::uint64_t now, Value value,
                              bool is_int) {
        Value p = Value::object();
        p.set("attributes", std::move(attributes));
        p.set("startTimeUnixNano", std::to_string(start));
        p.set("timeUnixNano", std::to_string(now));
        p.set(is_int ? "asInt" : "asDouble", std::move(value));  // asInt: a JSON number (spec 7.2)
        return p;
    }
    static Value metric(std::string name, std::string description, std::string unit) {
        Value m = Value::object();
        m.set("name", std::move(name));
        m.set("description", std::move(description));
        m.set("unit", std::move(unit));
        return m;
    }
    static Value gauge(std::string name, std::string unit, Value point) {
        Value m = metric(std::move(name), "", std::move(unit));
        Value g = Value::object();
        g.set("dataPoints", Value::array({std::move(point)}));
        m.set("gauge", std::move(g));
        return m;
    }

    void emit_metrics() {
        if (!s().metrics_enabled) return;
        const std::uint64_t now = now_unix_nano();
        std::string wid;
        std::map<std::string, FunctionStats> stats;
        {
            std::lock_guard lock(metrics_mutex);
            wid = worker_id;
            stats = functions;
        }
        Value worker_attrs = Value::array({kv("worker.id", string_value(wid))});
        Value metrics = Value::array();
        if (!stats.empty()) {
            Value count_points = Value::array(), error_points = Value::array(), hist_points = Value::array();
            for (const auto& [fid, st] : stats) {
                Value attrs = Value::array({kv("function.id", string_value(fid)), kv("worker.id", string_value(wid))});
                count_points.push_back(number_point(attrs, start_ns, now, static_cast<std::int64_t>(st.count), true));
                error_points.push_back(number_point(attrs, start_ns, now, static_cast<std::int64_t>(st.errors), true));
                Value h = Value::object();
                h.set("attributes", attrs);
                h.set("startTimeUnixNano", std::to_string(start_ns));
                h.set("timeUnixNano", std::to_string(now));
                h.set("count", static_cast<std::int64_t>(st.count));
                h.set("sum", st.sum_ms);
                Value buckets = Value::array();
                for (auto b : st.buckets) buckets.push_back(static_cast<std::int64_t>(b));
                h.set("bucketCounts", std::move(buckets));
                Value eb = Value::array();
                for (double b : bounds) eb.push_back(b);
                h.set("explicitBounds", std::move(eb));
                h.set("min", st.min_ms);
                h.set("max", st.max_ms);
                hist_points.push_back(std::move(h));
            }
            auto sum_metric = [&](std::string name, std::string desc, Value points) {
                Value m = metric(std::move(name), std::move(desc), "1");
                Value sum = Value::object();
                sum.set("dataPoints", std::move(points));
                sum.set("aggregationTemporality", 2);
                sum.set("isMonotonic", true);
                m.set("sum", std::move(sum));
                return m;
            };
            metrics.push_back(sum_metric("iii.invocations.count", "Invocations served", std::move(count_points)));
            metrics.push_back(sum_metric("iii.invocations.errors", "Invocations that failed", std::move(error_points)));
            Value hm = metric("iii.invocation.duration", "Handler duration", "ms");
            Value hist = Value::object();
            hist.set("dataPoints", std::move(hist_points));
            hist.set("aggregationTemporality", 2);
            hm.set("histogram", std::move(hist));
            metrics.push_back(std::move(hm));
        }
        // Worker gauges (spec 7.5), with worker.id so the engine attaches them to the worker.
        const auto cpu = cpu_times();
        const auto wall_now = std::chrono::steady_clock::now();
        const double wall_us =
            static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(wall_now - last_cpu_at).count());
        const double used_us = static_cast<double>((cpu.user_us - last_cpu.user_us) + (cpu.system_us - last_cpu.system_us));
        const double percent = wall_us > 0 ? used_us * 100.0 / wall_us : 0.0;
        last_cpu = cpu;
        last_cpu_at = wall_now;
        const double uptime =
            std::chrono::duration<double>(wall_now - started).count();
        metrics.push_back(gauge("iii.worker.memory.rss", "By", number_point(worker_attrs, start_ns, now, rss_bytes(), true)));
        metrics.push_back(gauge("iii.worker.cpu.percent", "%", number_point(worker_attrs, start_ns, now, percent, false)));
        metrics.push_back(gauge("iii.worker.cpu.user_micros", "us", number_point(worker_attrs, start_ns, now, cpu.user_us, true)));
        metrics.push_back(gauge("iii.worker.cpu.system_micros", "us", number_point(worker_attrs, start_ns, now, cpu.system_us, true)));
        metrics.push_back(gauge("iii.worker.uptime_seconds", "s", number_point(worker_attrs, start_ns, now, uptime, false)));

        Value scope_metrics = Value::object();
        scope_metrics.set("scope", scope_value());
        scope_metrics.set("metrics", std::move(metrics));
        Value rm = Value::object();
        rm.set("resource", resource());
        rm.set("scopeMetrics", Value::array({std::move(scope_metrics)}));
        Value body = Value::object();
        body.set("resourceMetrics", Value::array({std::move(rm)}));
        enqueue_frame("MTRC" + body.dump(), 0);
    }

    void arm_metrics() {
        if (!s().metrics_enabled || closing) return;
        metrics_timer.expires_after(std::max(s().metrics_interval, std::chrono::milliseconds(1)));
        metrics_timer.async_wait([this, self = shared_from_this()](std::error_code ec) {
            if (ec || closing) return;
            emit_metrics();
            arm_metrics();
        });
    }

    void enqueue_frame(std::string bytes, std::size_t records) {
        const std::size_t limit = std::max<std::size_t>(s().reconnection.max_pending_messages, 1);
        if (!connected && pending.size() >= limit) {
            dropped.fetch_add(records);
            g_dropped.fetch_add(records);
            return;
        }
        pending.push_back(Frame{std::move(bytes), records});
        pump();
    }

    void pump() {
        if (connected && socket) {
            while (!pending.empty()) {
                if (socket->send(pending.front().bytes, true)) break;  // error: on_close follows
                pending.pop_front();
            }
        } else if (!socket && !connecting && !reconnect_pending && !pending.empty()) {
            connect();  // lazily: the socket opens when there is something to send
        }
        check_flush();
    }
    bool reconnect_pending = false;

    void connect() {
        connecting = true;
        transport::Callbacks cb;
        // Socket callbacks run on the io_context's threads: re-enter the strand. Weak: the
        // socket (held by this Impl) holds them.
        std::weak_ptr<Impl> weak = shared_from_this();
        cb.on_open = [weak] {
            if (auto self = weak.lock()) asio::dispatch(self->strand, [self] { self->opened(); });
        };
        cb.on_message = [](std::string&&, bool) {};  // workerregistered and the like: ignored
        cb.on_pong = [] {};
        cb.on_close = [weak](std::error_code ec, std::uint16_t, std::string reason) {
            if (auto self = weak.lock())
                asio::dispatch(self->strand, [self, ec, reason = std::move(reason)] { self->closed(ec, reason); });
        };
        try {
            transport::ConnectOptions options;
            options.tls = s().tls;
            socket = transport::connect(io, current_url(), s().headers, std::move(cb), options);
        } catch (const std::exception& e) {
            connecting = false;
            log(LogLevel::Warn, "telemetry: bad url {}: {}", redact_url(current_url()), redact_text(e.what()));
        }
    }

    void opened() {
        connecting = false;
        connected = true;
        ever_opened = true;
        engine_away = false;
        backoff.reset();
        pump();
    }

    void closed(std::error_code ec, const std::string& reason) {
        if (ec && !connected)  // a TLS failure carries OpenSSL's reason
            log(reason.empty() ? LogLevel::Debug : LogLevel::Warn, "telemetry: cannot connect to {}: {}",
                redact_url(current_url()), reason.empty() ? ec.message() : reason);
        const bool was_open = connected;
        connected = false;
        engine_away = true;
        connecting = false;
        if (socket) socket->detach();
        socket.reset();
        if (closing) return;
        if (!was_open && transport::http_status_of(ec) == 404 && !s().fallback_url.empty() &&
            settings_url.empty()) {
            // A 0.10 engine has no /otel route: it takes telemetry on the worker endpoint.
            log(LogLevel::Info, "telemetry: {} answered 404; using {}", redact_url(s().url),
                redact_url(s().fallback_url));
            settings_url = s().fallback_url;
            connect();
            return;
        }
        if (!was_open && backoff.exhausted()) {
            log(LogLevel::Warn, "telemetry: giving up reconnecting to {}", redact_url(s().url));
            return;
        }
        const auto delay = was_open ? backoff.after_drop() : backoff.next_after_failure();
        reconnect_pending = true;
        reconnect_timer.expires_after(delay);
        reconnect_timer.async_wait([this, self = shared_from_this()](std::error_code ec) {
            reconnect_pending = false;
            if (ec || closing) return;
            if (!socket && !connecting) connect();
        });
    }

    // ---- flushing ----

    void start_flush(std::function<void()> done, std::chrono::milliseconds timeout) {
        asio::post(strand, [this, self = shared_from_this(), done = std::move(done), timeout]() mutable {
            if (flushed) {
                done();
                return;
            }
            flush_waiters.push_back(std::move(done));
            if (flush_waiters.size() > 1) return;
            closing_requested = true;
            flush_deadline = std::chrono::steady_clock::now() + timeout;
            drain();
            log_timer.cancel();
            span_timer.cancel();
            emit_logs();
            emit_spans();
            emit_metrics();
            metrics_timer.cancel();
            poll_flush();
        });
    }

    bool written() const {
        return pending.empty() && (!socket || !connected || socket->buffered_amount() == 0);
    }

    void check_flush() {
        if (flush_waiters.empty() || flushed) return;
        if ((pending.empty() && written()) || std::chrono::steady_clock::now() >= flush_deadline) finish_flush();
    }

    void poll_flush() {
        check_flush();
        if (flushed) return;
        // Written bytes are only observable by polling the transport's buffer.
        flush_poll.expires_after(std::chrono::milliseconds(2));
        flush_poll.async_wait([this, self = shared_from_this()](std::error_code ec) {
            if (!ec) poll_flush();
        });
    }

    void finish_flush() {
        flushed = true;
        closing = true;
        if (!pending.empty()) {
            std::size_t lost = 0;
            for (auto& f : pending) lost += f.records;
            dropped.fetch_add(lost);
            g_dropped.fetch_add(lost);
            pending.clear();
        }
        reconnect_timer.cancel();
        flush_poll.cancel();
        if (socket) socket->close(1000, "shutdown");
        auto waiters = std::move(flush_waiters);
        flush_waiters.clear();
        for (auto& w : waiters) w();
    }
};

bool Telemetry::enabled(const OtelConfig& config) {
    if (config.enabled) return *config.enabled;
    auto v = env("OTEL_ENABLED");
    if (!v) return true;  // unset: on, as in the reference
    return *v == "true" || *v == "1";
}

std::string Telemetry::otel_url(const std::string& worker_url) {
    const auto query = worker_url.find('?');
    std::string base = worker_url.substr(0, query);
    const std::string rest = query == std::string::npos ? "" : worker_url.substr(query);
    if (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/otel" + rest;
}

Telemetry::Settings Telemetry::resolve(const std::string& worker_url, const OtelConfig& c,
                                       const std::map<std::string, std::string>& headers) {
    Settings s;
    if (c.engine_ws_url) {
        s.url = *c.engine_ws_url;
    } else {
        s.url = otel_url(worker_url);
        s.fallback_url = worker_url;
    }
    s.headers = headers;
    s.service_name = c.service_name ? *c.service_name : env("OTEL_SERVICE_NAME").value_or(sdk_name);
    if (s.service_name.empty()) s.service_name = sdk_name;
    s.service_version = c.service_version.value_or(sdk_version);
    s.service_namespace = c.service_namespace.value_or("");
    s.service_instance_id = c.service_instance_id.value_or(protocol::new_uuid());
    s.metrics_enabled = c.metrics_enabled.value_or(true);
    s.metrics_interval = std::chrono::milliseconds(c.metrics_export_interval_ms.value_or(60000));
    s.reconnection = c.reconnection_config.value_or(ReconnectionConfig{});
    s.shutdown_timeout = std::chrono::milliseconds(c.shutdown_timeout_ms.value_or(10000));
    s.channel_capacity = c.channel_capacity.value_or(10000);
    s.logs_enabled = c.logs_enabled.value_or(true);
    s.logs_flush_interval = std::chrono::milliseconds(
        c.logs_flush_interval_ms ? *c.logs_flush_interval_ms
                                 : env_number<std::uint64_t>("OTEL_LOGS_FLUSH_INTERVAL_MS").value_or(100));
    s.logs_batch_size = c.logs_batch_size ? *c.logs_batch_size
                                          : env_number<std::size_t>("OTEL_LOGS_BATCH_SIZE").value_or(1);
    if (s.logs_batch_size == 0) s.logs_batch_size = 1;
    return s;
}

std::shared_ptr<Telemetry> Telemetry::create(asio::io_context& io, const std::string& worker_url,
                                             const OtelConfig& config,
                                             const std::map<std::string, std::string>& headers,
                                             const TlsOptions& tls) {
    if (!enabled(config)) return nullptr;
    auto settings = resolve(worker_url, config, headers);
    settings.tls = tls;
    auto t = std::make_shared<Telemetry>(std::move(settings), io);
    t->start();
    return t;
}

Telemetry::Telemetry(Settings settings, asio::io_context& io)
    : settings_(std::move(settings)), impl_(std::make_shared<Impl>(settings_, io)) {}

void Telemetry::start() {
    asio::post(impl_->strand, [impl = impl_] { impl->arm_metrics(); });
    std::lock_guard lock(g_default_mutex);
    g_default = weak_from_this();
}

Telemetry::~Telemetry() {
    // No thread to join: ask the exporter to stop on its strand. Its pending handlers hold the
    // Impl until they have run (or until the io_context is destroyed with them).
    asio::post(impl_->strand, [impl = impl_] {
        impl->closing = true;
        if (impl->socket) {
            impl->socket->detach();
            impl->socket->abort();
            // The socket owns its websocketpp endpoint: released later, outside its handlers.
            asio::post(impl->io, [socket = std::move(impl->socket)] {});
        }
        impl->log_timer.cancel();
        impl->span_timer.cancel();
        impl->metrics_timer.cancel();
        impl->reconnect_timer.cancel();
        impl->flush_poll.cancel();
    });
}

std::uint64_t Telemetry::dropped() const noexcept { return impl_->dropped.load(); }

std::shared_ptr<Telemetry> Telemetry::process_default() {
    std::lock_guard lock(g_default_mutex);
    return g_default.lock();
}

ServerSpan Telemetry::begin_server_span(const std::string& function_id,
                                        const std::optional<std::string>& traceparent,
                                        const std::optional<std::string>& baggage) {
    ServerSpan span;
    auto ctx = new_context();
    if (!traceparent || !parse_traceparent_ids(*traceparent, ctx->trace_id, span.parent_span_id, ctx->flags)) {
        span.parent_span_id = std::string_view();
        ctx->flags = 1;
        random_hex(ctx->trace_id.fill(), 16);
    }
    if (baggage) ctx->baggage = *baggage;
    random_hex(ctx->span_id.fill(), 8);
    ctx->sink = weak_from_this();
    span.context = std::move(ctx);
    span.function_id = function_id;
    span.start_ns = now_unix_nano();
    span.started = std::chrono::steady_clock::now();
    return span;
}

void Telemetry::end_server_span(ServerSpan& span, const RemoteError* error) {
    if (!span.context) return;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - span.started).count();
    {
        std::lock_guard lock(impl_->metrics_mutex);
        auto& st = impl_->functions[span.function_id];
        if (st.buckets.empty()) st.buckets.assign(Impl::bounds.size() + 1, 0);
        st.min_ms = st.count == 0 ? ms : std::min(st.min_ms, ms);
        st.max_ms = st.count == 0 ? ms : std::max(st.max_ms, ms);
        ++st.count;
        if (error) ++st.errors;
        st.sum_ms += ms;
        const auto bucket = static_cast<std::size_t>(
            std::lower_bound(Impl::bounds.begin(), Impl::bounds.end(), ms) - Impl::bounds.begin());
        ++st.buckets[bucket];
    }
    SpanRecord record = span_record(span.context, std::move(span.parent_span_id), std::move(span.function_id), 2,
                                    span.start_ns, now_unix_nano(), error ? 2 : 0,
                                    error ? error->message : std::string());
    record.name_prefix = "call ";
    record.invoked_name = true;
    if (error) record.exceptions.push_back(exception_event(error->code, error->message));
    submit_span(std::move(record));
}

ClientSpan Telemetry::begin_client_span(const std::string& function_id) {
    ClientSpan span;
    const ContextPtr& parent = current_context();
    // Exported by this client (the caller) in end_client_span, whatever the context's sink.
    span.context = new_child(parent, weak_from_this());
    if (parent && !parent->trace_id.empty()) span.parent_span_id = parent->span_id;
    span.function_id = function_id;
    span.start_ns = now_unix_nano();
    return span;
}

void Telemetry::end_client_span(ClientSpan& span, const std::exception_ptr& error) {
    if (!span.context) return;
    std::string type, message;
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const Error& e) {
            if (const RemoteError* remote = e.remote()) {
                type = remote->code;
                message = remote->message;
            } else {
                static constexpr const char* names[] = {"",        "NotConnected", "Timeout", "Runtime",
                                                        "Remote",  "Handler",      "Serde",   "WebSocket"};
                const auto n = static_cast<std::size_t>(e.errc());
                type = n < std::size(names) ? names[n] : "Error";
                message = e.what();
            }
        } catch (const std::system_error& e) {
            type = e.code() == std::errc::operation_canceled || e.code() == asio::error::operation_aborted
                       ? "Cancelled"
                       : "system_error";
            message = e.what();
        } catch (const std::exception& e) {
            type = "exception";
            message = e.what();
        } catch (...) {
            type = "unknown";
        }
    }
    // Kind 3 (CLIENT). Named like the reference engine's caller-side span of an invocation
    // (`trigger <fid>` in fire_triggers), after the API call it wraps.
    SpanRecord record = span_record(span.context, std::move(span.parent_span_id), std::move(span.function_id), 3,
                                    span.start_ns, now_unix_nano(), error ? 2 : 0, message);
    record.name_prefix = "trigger ";
    record.invoked_name = true;
    if (error) record.exceptions.push_back(exception_event(type, std::move(message)));
    submit_span(std::move(record));
}

void Telemetry::set_worker_id(std::string id) {
    std::lock_guard lock(impl_->metrics_mutex);
    impl_->worker_id = std::move(id);
}

bool Telemetry::engine_away() const noexcept { return impl_->engine_away.load(); }

bool Telemetry::submit_log(Value record) { return impl_->submit(Impl::Kind::Log, std::move(record)); }
bool Telemetry::submit_span(Value span) { return impl_->submit(Impl::Kind::Span, std::move(span)); }
bool Telemetry::submit_span(SpanRecord&& span) { return impl_->submit(std::move(span)); }

asio::awaitable<void> Telemetry::flush_and_close() {
    auto self = shared_from_this();
    // Completes through the caller's executor once the exporter has flushed (or given up after
    // shutdown_timeout). The exporter's thread touches nothing of the caller's io_context but
    // the handler, and keeps that io_context busy until it has handed the handler over.
    auto initiate = [self](auto handler) {
        using Handler = decltype(handler);
        struct State {
            Handler handler;
            asio::any_io_executor work;
        };
        asio::any_io_executor ex = asio::get_associated_executor(handler);
        auto state = std::make_shared<State>(
            State{std::move(handler), asio::prefer(ex, asio::execution::outstanding_work.tracked)});
        self->impl_->start_flush(
            [state] {
                auto target = asio::get_associated_executor(state->handler);
                asio::dispatch(target, std::move(state->handler));
                state->work = asio::any_io_executor();
            },
            self->settings_.shutdown_timeout);
    };
    co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(std::move(initiate), asio::use_awaitable);
}

bool Telemetry::flush_and_close_sync(std::chrono::milliseconds timeout) {
    auto state = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
    auto finished = std::make_shared<bool>(false);
    impl_->start_flush(
        [state, finished] {
            std::lock_guard lock(state->first);
            *finished = true;
            state->second.notify_all();
        },
        timeout);
    std::unique_lock lock(state->first);
    state->second.wait_for(lock, timeout + std::chrono::milliseconds(100), [&] { return *finished; });
    return *finished;
}

}  // namespace detail::telemetry

// ---- public API -----------------------------------------------------------------------------

using namespace detail::telemetry;

std::string SpanContext::traceparent() const {
    if (!valid()) return {};
    return traceparent_text(trace_id, span_id, trace_flags);
}

std::optional<SpanContext> SpanContext::from_traceparent(std::string_view h) {
    return parse_traceparent(h);
}

SpanContext current_span_context() {
    SpanContext out;
    if (const auto& ctx = current_context()) {
        out.trace_id = ctx->trace_id.view();
        out.span_id = ctx->span_id.view();
        out.trace_flags = ctx->flags;
        out.baggage = ctx->baggage;
    }
    return out;
}

std::uint64_t telemetry_dropped_count() noexcept { return g_dropped.load(); }

struct Span::State {
    ContextPtr context;
    SpanId parent_span_id;
    std::string name;
    std::uint64_t start_ns = 0;
    Value attributes = Value::array();
    std::vector<SpanRecord::Exception> events;
    int status = 0;
    std::string status_message;
    bool ended = false;
    std::optional<ContextScope> scope;
};

Span::Span(std::string name) : state_(std::make_unique<State>()) {
    const ContextPtr& parent = current_context();
    std::weak_ptr<Telemetry> fallback;
    if (!parent || parent->sink.expired()) fallback = Telemetry::process_default();
    state_->context = new_child(parent, fallback);
    if (parent && !parent->trace_id.empty()) state_->parent_span_id = parent->span_id;
    state_->name = std::move(name);
    state_->start_ns = now_unix_nano();
    state_->scope.emplace(state_->context);
}

Span::~Span() {
    end();
    state_->scope.reset();
}

SpanContext Span::context() const {
    SpanContext out;
    out.trace_id = state_->context->trace_id.view();
    out.span_id = state_->context->span_id.view();
    out.trace_flags = state_->context->flags;
    out.baggage = state_->context->baggage;
    return out;
}

void Span::set_attribute(std::string key, Value value) {
    state_->attributes.push_back(kv(std::move(key), to_any_value(value)));
}

void Span::record_error(std::string_view type, std::string_view message) {
    state_->status = 2;
    state_->status_message = std::string(message);
    state_->events.push_back(exception_event(type, message));
}

void Span::end() {
    if (state_->ended) return;
    state_->ended = true;
    if (auto sink = sink_of(state_->context)) {
        SpanRecord record = span_record(state_->context, state_->parent_span_id, state_->name, 1,
                                        state_->start_ns, now_unix_nano(), state_->status,
                                        state_->status_message);
        record.attributes = std::move(state_->attributes);
        record.exceptions = std::move(state_->events);
        sink->submit_span(std::move(record));
    }
}

// Defined in log_sink.cpp: hands a line to the application's iii::set_log_sink sink, if any.
namespace detail {
bool log_to_user_sink(LogLevel level, std::string_view message) noexcept;
}  // namespace detail

namespace {

template <class T>
asio::awaitable<T> with_span_impl(std::string name, asio::awaitable<T> work) {
    const ContextPtr parent = current_context();
    std::weak_ptr<Telemetry> fallback;
    if (!parent || parent->sink.expired()) fallback = Telemetry::process_default();
    ContextPtr ctx = new_child(parent, fallback);
    const SpanId parent_span_id = parent && !parent->trace_id.empty() ? parent->span_id : SpanId();
    const std::uint64_t start = now_unix_nano();
    std::optional<std::string> failure;
    std::exception_ptr error;
    auto finish = [&] {
        if (auto sink = sink_of(ctx)) {
            SpanRecord record = span_record(ctx, parent_span_id, name, 1, start, now_unix_nano(),
                                            failure ? 2 : 0, failure.value_or(""));
            if (failure) record.exceptions.push_back(exception_event("exception", *failure));
            sink->submit_span(std::move(record));
        }
    };
    if constexpr (std::is_void_v<T>) {
        try {
            auto traced = with_context(ctx, std::move(work));
            co_await std::move(traced);
        } catch (const std::exception& e) {
            failure = e.what();
            error = std::current_exception();
        }
        finish();
        if (error) std::rethrow_exception(error);
    } else {
        std::optional<T> result;
        try {
            auto traced = with_context(ctx, std::move(work));
            result.emplace(co_await std::move(traced));
        } catch (const std::exception& e) {
            failure = e.what();
            error = std::current_exception();
        }
        finish();
        if (error) std::rethrow_exception(error);
        co_return std::move(*result);
    }
}

void stderr_line(const char* level, std::string_view message, const std::optional<Value>& data) {
    const SpanContext ctx = current_span_context();
    std::string text(message);
    if (data) text += " " + data->dump();
    if (ctx.valid()) text += fmt::format(" trace_id={} span_id={}", ctx.trace_id, ctx.span_id);
    // An application that routes the SDK's output (iii::set_log_sink) gets these lines there.
    const LogLevel as_level = level[0] == 'd' ? LogLevel::Debug
                              : level[0] == 'i' ? LogLevel::Info
                              : level[0] == 'w' ? LogLevel::Warn
                                                : LogLevel::Error;
    if (detail::log_to_user_sink(as_level, text)) return;
    std::string line = fmt::format("[iii {}] {}\n", level, text);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

void emit(int severity, const char* level, std::string_view message, const std::optional<Value>& data) {
    const ContextPtr ctx = current_context();
    auto sink = sink_of(ctx);
    if (!sink || !sink->settings().logs_enabled) {
        stderr_line(level, message, data);
        return;
    }
    // The engine is away: keep a local copy too (the record stays queued for the reconnect).
    if (sink->engine_away()) stderr_line(level, message, data);
    Value record = Value::object();
    const std::string now = std::to_string(now_unix_nano());
    record.set("timeUnixNano", now);
    record.set("observedTimeUnixNano", now);
    record.set("severityNumber", severity);
    record.set("severityText", "");
    record.set("body", string_value(std::string(message)));
    Value attrs = Value::array();
    if (data) attrs.push_back(kv("log.data", to_any_value(*data)));
    record.set("attributes", std::move(attrs));
    if (ctx && !ctx->trace_id.empty() && !ctx->span_id.empty()) {
        record.set("traceId", std::string(ctx->trace_id.view()));
        record.set("spanId", std::string(ctx->span_id.view()));
    }
    sink->submit_log(std::move(record));
}

}  // namespace

asio::awaitable<Value> with_span(std::string name, asio::awaitable<Value> work) {
    return with_span_impl<Value>(std::move(name), std::move(work));
}
asio::awaitable<void> with_span(std::string name, asio::awaitable<void> work) {
    return with_span_impl<void>(std::move(name), std::move(work));
}

void Logger::debug(std::string_view message, std::optional<Value> data) const { emit(5, "debug", message, data); }
void Logger::info(std::string_view message, std::optional<Value> data) const { emit(9, "info", message, data); }
void Logger::warn(std::string_view message, std::optional<Value> data) const { emit(13, "warn", message, data); }
void Logger::error(std::string_view message, std::optional<Value> data) const { emit(17, "error", message, data); }

}  // namespace iii
