#include "iii/describe.hpp"

#include "iii/error.hpp"
#include "json_internal.hpp"

#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

// The backends of iii/describe.hpp (iii/typed.hpp is header-only on top of it): a JsonReader over simdjson's on-demand parser and one over
// iii::Value, a JsonWriter over RapidJSON's Writer and one building an iii::Value, plus the
// schema and error helpers that need not be templates.

namespace iii {

namespace ondemand = simdjson::ondemand;
using simdjson::error_code;

JsonReader::~JsonReader() = default;
JsonWriter::~JsonWriter() = default;

namespace {

bool is_identifier(std::string_view key) noexcept {
    if (key.empty()) return false;
    for (std::size_t i = 0; i < key.size(); ++i) {
        const char c = key[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

void append_key(std::string& out, std::string_view key) {
    if (is_identifier(key)) {
        out += '.';
        out += key;
        return;
    }
    // Quoted like a JSON string so that any key, even one with "]" or quotes, reads back.
    out += "[\"";
    for (char c : key) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += "\"]";
}

}  // namespace

std::string JsonReader::path() const {
    std::string out = "$";
    for (const Segment& s : path_) {
        if (s.is_index)
            out += fmt::format("[{}]", s.index);
        else
            append_key(out, s.key);
    }
    return out;
}

void JsonReader::fail(std::string_view what) const {
    throw Error(Errc::Serde, fmt::format("{}: {}", path(), what));
}

void JsonReader::fail_container(std::string_view what) const {
    std::string out = "$";
    for (std::size_t i = 0; i + 1 < path_.size(); ++i) {
        if (path_[i].is_index)
            out += fmt::format("[{}]", path_[i].index);
        else
            append_key(out, path_[i].key);
    }
    throw Error(Errc::Serde, fmt::format("{}: {}", out, what));
}

void JsonReader::fail_missing(std::string_view field) const {
    std::string out = path();
    append_key(out, field);
    throw Error(Errc::Serde, out + ": missing field");
}

namespace detail {

void fail_integer_range(JsonReader& r, std::string_view value, std::string_view type) {
    r.fail(fmt::format("{} is out of range for {}", value, type));
}

void fail_not_integer(JsonReader& r, std::string_view type) {
    // Called after the fast path failed; find out why, for a precise message.
    if (r.peek() == JsonReader::Type::Number) {
        std::int64_t i = 0;
        std::uint64_t u = 0;
        if (r.try_int64(i)) fail_integer_range(r, std::to_string(i), type);
        if (r.try_uint64(u)) fail_integer_range(r, std::to_string(u), type);
        // Beyond uint64 (or below int64) an integer literal only parses as a double. Smaller
        // integral doubles are written with a fraction or exponent ("1.0"): those are not
        // integers at all, as in serde.
        const double d = r.read_double();
        if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) >= 9.2e18)
            fail_integer_range(r, fmt::format("{}", d), type);
    }
    r.fail("expected integer");
}

void fail_enum(JsonReader& r, const std::string_view* names, std::size_t count) {
    std::string what = "expected one of ";
    for (std::size_t i = 0; i < count; ++i) {
        if (i > 0) what += ", ";
        what += '"';
        what += names[i];
        what += '"';
    }
    r.fail(what);
}

void fail_enum_write(std::string_view type, long long value) {
    throw Error(Errc::Serde,
                fmt::format("cannot encode {} value {}: it has no declared name", type, value));
}

Value add_null_type(Value schema) {
    if (schema.is_bool()) {
        // schemars: `true` accepts null already; `false` becomes "null only".
        if (schema.as_bool()) return schema;
        return Value::object({{"type", "null"}});
    }
    if (schema.is_object()) {
        if (Value* type = schema.find("type")) {
            if (type->is_string()) {
                Value single = std::move(*type);
                *type = Value::array({std::move(single), Value("null")});
                return schema;
            }
            if (type->is_array()) {
                bool has_null = false;
                for (const Value& t : type->as_array())
                    if (t.is_string() && t.as_string() == "null") has_null = true;
                if (!has_null) type->push_back(Value("null"));
                return schema;
            }
        }
    }
    return Value::object(
        {{"anyOf", Value::array({std::move(schema), Value::object({{"type", "null"}})})}});
}

Value root_schema(std::string title, Value schema, std::map<std::string, Value> definitions) {
    Value root = Value::object({{"$schema", "http://json-schema.org/draft-07/schema#"}});
    if (!(schema.is_object() && schema.contains("title"))) root.set("title", std::move(title));
    if (schema.is_object()) {
        for (auto& [key, value] : schema.as_object()) root.set(key, std::move(value));
    } else if (schema.is_bool() && !schema.as_bool()) {
        root.set("not", Value::object());  // schemars' spelling of the `false` schema as an object
    }
    if (!definitions.empty()) {
        Value defs = Value::object();
        for (auto& [name, def] : definitions) defs.set(name, std::move(def));
        root.set("definitions", std::move(defs));
    }
    return root;
}

}  // namespace detail

namespace {

// ---- simdjson on-demand reader --------------------------------------------------------------

/// Pulls straight from simdjson's on-demand iterators: a stack of open object/array iterators
/// and the current value. On-demand is forward-only, which matches the pull API; a value left
/// unread is skipped by the iterator's next step.
class SimdReader final : public JsonReader {
public:
    void start(ondemand::document& doc, const char* base) {
        doc_ = &doc;
        base_ = base;
        at_root_ = true;
        stack_.clear();
        reset_path();
    }
    /// Fails when anything but whitespace follows the root value (`{} x`, `[1]]`).
    void finish() {
        if (doc_->current_location().error() != simdjson::OUT_OF_BOUNDS)
            malformed(simdjson::TRAILING_CONTENT);
    }

private:
    struct Frame {
        bool is_object = false;
        bool started = false;
        ondemand::object_iterator object_it, object_end;
        ondemand::array_iterator array_it, array_end;
    };

    [[noreturn]] void malformed(error_code e) {
        fail(detail::describe_error(e, doc_, base_));
    }
    // A type mismatch lets the caller report "expected ..."; anything else is broken JSON.
    static bool mismatch(error_code e) noexcept {
        return e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_OUT_OF_RANGE;
    }
    // The root is the document itself (scalar documents cannot be turned into a value); every
    // other value is an ondemand::value. Both have the same accessors.
    template <class Fn>
    auto on_current(Fn&& fn) {
        if (at_root_) return fn(*doc_);
        return fn(value_);
    }
    template <class T, class Fn>
    bool get(T& out, Fn&& fn) {
        error_code e = on_current([&](auto& v) { return fn(v).get(out); });
        if (e == simdjson::SUCCESS) return true;
        if (mismatch(e)) return false;
        malformed(e);
    }

    Type do_peek() override {
        ondemand::json_type type{};
        if (auto e = on_current([&](auto& v) { return v.type().get(type); })) malformed(e);
        switch (type) {
            case ondemand::json_type::array: return Type::Array;
            case ondemand::json_type::object: return Type::Object;
            case ondemand::json_type::number: return Type::Number;
            case ondemand::json_type::string: return Type::String;
            case ondemand::json_type::boolean: return Type::Bool;
            case ondemand::json_type::null: return Type::Null;
        }
        return Type::Null;
    }
    bool do_read_null() override {
        bool is_null = false;
        if (auto e = on_current([&](auto& v) { return v.is_null().get(is_null); })) malformed(e);
        return is_null;
    }
    bool do_read_bool(bool& out) override {
        return get(out, [](auto& v) { return v.get_bool(); });
    }
    bool do_read_int64(std::int64_t& out) override {
        return get(out, [](auto& v) { return v.get_int64(); });
    }
    bool do_read_uint64(std::uint64_t& out) override {
        return get(out, [](auto& v) { return v.get_uint64(); });
    }
    bool do_read_double(double& out) override {
        // The token first: reading the double consumes it.
        std::string_view token;
        on_current([&](auto& v) {
            if constexpr (requires { v.raw_json_token().get(token); }) {
                if (v.raw_json_token().get(token)) token = {};
            } else {
                token = v.raw_json_token();
            }
        });
        if (!get(out, [](auto& v) { return v.get_double(); })) return false;
        out = detail::exact_double(token, out);  // simdjson 3.0.1 misreads > 19 digits
        // "-0" is an integer literal, the integer 0 in iii::Value: read through either path, a
        // double gets +0.0 (only "-0.0" and the like are the negative zero).
        if (out == 0 && std::signbit(out) && is_integer_literal(token)) out = 0.0;
        return true;
    }
    static bool is_integer_literal(std::string_view token) noexcept {
        return !token.empty() && token.find_first_of(".eE") == std::string_view::npos;
    }
    bool do_read_string(std::string_view& out) override {
        return get(out, [](auto& v) { return v.get_string(); });
    }
    void do_read_value(Value& out) override {
        const error_code e = at_root_ ? detail::read_document(*doc_, out)
                                      : detail::read_value(value_, out, static_cast<int>(depth()));
        if (e) malformed(e);
    }
    bool do_begin_object() override {
        ondemand::object object;
        if (!get(object, [](auto& v) { return v.get_object(); })) return false;
        Frame& f = stack_.emplace_back();
        f.is_object = true;
        if (auto e = object.begin().get(f.object_it)) malformed(e);
        if (auto e = object.end().get(f.object_end)) malformed(e);
        at_root_ = false;
        return true;
    }
    bool do_next_key(std::string_view& key) override {
        Frame& f = stack_.back();
        if (f.started) ++f.object_it;  // skips the previous value if it was left unread
        f.started = true;
        if (!(f.object_it != f.object_end)) {
            stack_.pop_back();
            return false;
        }
        ondemand::field field;
        if (auto e = (*f.object_it).get(field)) malformed(e);
        // Keys almost never contain escapes: then the raw bytes are the key, and the copy into
        // simdjson's string buffer that unescaped_key() makes can be skipped (about 4% of a
        // struct decode). Stage 1 has validated that every string is closed, so the scan stops
        // at the closing quote.
        const char* raw = field.key().raw();
        const char* end = raw;
        while (*end != '"' && *end != '\\') ++end;
        if (*end == '"') {
            key = std::string_view(raw, static_cast<std::size_t>(end - raw));
        } else if (auto e = field.unescaped_key().get(key)) {
            malformed(e);
        }
        value_ = field.value();
        return true;
    }
    bool do_begin_array() override {
        ondemand::array array;
        if (!get(array, [](auto& v) { return v.get_array(); })) return false;
        Frame& f = stack_.emplace_back();
        f.is_object = false;
        if (auto e = array.begin().get(f.array_it)) malformed(e);
        if (auto e = array.end().get(f.array_end)) malformed(e);
        at_root_ = false;
        return true;
    }
    bool do_next_element() override {
        Frame& f = stack_.back();
        if (f.started) ++f.array_it;
        f.started = true;
        if (!(f.array_it != f.array_end)) {
            stack_.pop_back();
            return false;
        }
        if (auto e = (*f.array_it).get(value_)) malformed(e);
        return true;
    }
    void do_skip() override {
        // Read, not skipped: the iterator's own skip does not look inside the value, so an
        // unknown member holding invalid JSON (`"x": ["a".null]`) was accepted (found by
        // test/fuzz/typed_fuzz.cpp, which holds both readers to the same input).
        Value ignored;
        do_read_value(ignored);
    }

    ondemand::document* doc_ = nullptr;
    const char* base_ = nullptr;
    ondemand::value value_;
    bool at_root_ = true;
    std::vector<Frame> stack_;
};

// ---- iii::Value reader ----------------------------------------------------------------------

class TreeReader final : public JsonReader {
public:
    explicit TreeReader(const Value& root) : current_(&root) {}

private:
    struct Frame {
        const Value* container;
        std::size_t next = 0;
    };

    Type do_peek() override {
        switch (current_->kind()) {
            case Value::Kind::Null: return Type::Null;
            case Value::Kind::Bool: return Type::Bool;
            case Value::Kind::Int:
            case Value::Kind::Uint:
            case Value::Kind::Double: return Type::Number;
            case Value::Kind::String: return Type::String;
            case Value::Kind::Array: return Type::Array;
            case Value::Kind::Object: return Type::Object;
        }
        return Type::Null;
    }
    bool do_read_null() override { return current_->is_null(); }
    bool do_read_bool(bool& out) override {
        if (!current_->is_bool()) return false;
        out = current_->as_bool();
        return true;
    }
    bool do_read_int64(std::int64_t& out) override {
        if (current_->kind() == Value::Kind::Int) {
            out = current_->as_int();
            return true;
        }
        if (current_->kind() == Value::Kind::Uint &&
            current_->as_uint() <= static_cast<std::uint64_t>(INT64_MAX)) {
            out = static_cast<std::int64_t>(current_->as_uint());
            return true;
        }
        return false;
    }
    bool do_read_uint64(std::uint64_t& out) override {
        if (current_->kind() == Value::Kind::Uint) {
            out = current_->as_uint();
            return true;
        }
        if (current_->kind() == Value::Kind::Int && current_->as_int() >= 0) {
            out = static_cast<std::uint64_t>(current_->as_int());
            return true;
        }
        return false;
    }
    bool do_read_double(double& out) override {
        if (!current_->is_number()) return false;
        out = current_->as_double();
        return true;
    }
    bool do_read_string(std::string_view& out) override {
        if (!current_->is_string()) return false;
        out = current_->as_string();
        return true;
    }
    void do_read_value(Value& out) override { out = *current_; }
    bool do_begin_object() override {
        if (!current_->is_object()) return false;
        stack_.push_back(Frame{current_});
        return true;
    }
    bool do_next_key(std::string_view& key) override {
        Frame& f = stack_.back();
        const auto& members = f.container->as_object();
        if (f.next >= members.size()) {
            stack_.pop_back();
            return false;
        }
        const auto& member = members[f.next++];
        key = member.first;
        current_ = &member.second;
        return true;
    }
    bool do_begin_array() override {
        if (!current_->is_array()) return false;
        stack_.push_back(Frame{current_});
        return true;
    }
    bool do_next_element() override {
        Frame& f = stack_.back();
        const auto& items = f.container->as_array();
        if (f.next >= items.size()) {
            stack_.pop_back();
            return false;
        }
        current_ = &items[f.next++];
        return true;
    }
    void do_skip() override {}

    const Value* current_;
    std::vector<Frame> stack_;
};

// ---- RapidJSON writer -----------------------------------------------------------------------

using RapidWriter = detail::JsonWriter;

class TextWriter final : public JsonWriter {
public:
    explicit TextWriter(RapidWriter& w) : w_(w) {}
    void write_null() override { w_.Null(); }
    void write_bool(bool b) override { w_.Bool(b); }
    void write_int64(std::int64_t i) override { w_.Int64(i); }
    void write_uint64(std::uint64_t u) override { w_.Uint64(u); }
    void write_double(double d) override {
        // RapidJSON refuses NaN and infinities (JSON cannot spell them); serde writes null.
        if (std::isfinite(d))
            w_.Double(d);
        else
            w_.Null();
    }
    void write_string(std::string_view s) override { detail::write_string(w_, s); }
    void begin_object() override { w_.StartObject(); }
    void key(std::string_view k) override { detail::write_key(w_, k); }
    void end_object() override { w_.EndObject(); }
    void begin_array() override { w_.StartArray(); }
    void end_array() override { w_.EndArray(); }
    void write_value(const Value& v) override { detail::write_value(w_, v); }
    void write_raw(std::string_view json) override {
        // The type only matters to RapidJSON's assertion that keys are strings; a raw value is
        // never a key.
        w_.raw_value(json, rapidjson::kObjectType);
    }

private:
    RapidWriter& w_;
};

// ---- iii::Value writer ----------------------------------------------------------------------

class TreeWriter final : public JsonWriter {
public:
    Value take() { return std::move(root_); }
    bool complete() const noexcept { return has_root_ && stack_.empty(); }

    void write_null() override { put(Value()); }
    void write_bool(bool b) override { put(Value(b)); }
    void write_int64(std::int64_t i) override { put(Value(i)); }
    void write_uint64(std::uint64_t u) override { put(Value(u)); }
    void write_double(double d) override { put(std::isfinite(d) ? Value(d) : Value()); }
    void write_string(std::string_view s) override { put(Value(s)); }
    void begin_object() override { stack_.push_back(&put(Value(Value::Object{}))); }
    void key(std::string_view k) override { key_.assign(k); }
    void end_object() override { stack_.pop_back(); }
    void begin_array() override { stack_.push_back(&put(Value(Value::Array{}))); }
    void end_array() override { stack_.pop_back(); }
    void write_value(const Value& v) override { put(v); }
    void write_raw(std::string_view json) override { put(Value::parse(json)); }

private:
    // Returns where the value landed. A pointer to it stays valid while it is the innermost
    // open container, because nothing is appended to its parent until it is closed.
    Value& put(Value v) {
        if (stack_.empty()) {
            root_ = std::move(v);
            has_root_ = true;
            return root_;
        }
        Value& top = *stack_.back();
        if (top.is_object()) return top.as_object().emplace_back(std::move(key_), std::move(v)).second;
        return top.as_array().emplace_back(std::move(v));
    }

    Value root_;
    bool has_root_ = false;
    std::vector<Value*> stack_;
    std::string key_;
};

// ---- per-thread contexts --------------------------------------------------------------------

// The parser, its padded input buffer and the reader's stacks are reused across documents, so a
// steady stream of payloads allocates only what the decoded objects themselves need. One
// context per nesting level: a json_traits::read may itself call from_json (a payload holding
// JSON text), and must not clobber the document being read.
struct DecodeContext {
    ondemand::parser parser;
    detail::PaddedBuffer buffer;
    SimdReader reader;
};
struct EncodeContext {
    rapidjson::StringBuffer buffer;
    RapidWriter writer{buffer};
    TextWriter adapter{writer};
};

template <class Context>
class ContextLease {
public:
    ContextLease() {
        if (depth_ == pool_.size()) pool_.push_back(std::make_unique<Context>());
        context_ = pool_[depth_++].get();
    }
    ~ContextLease() { --depth_; }
    ContextLease(const ContextLease&) = delete;
    ContextLease& operator=(const ContextLease&) = delete;
    Context& operator*() const noexcept { return *context_; }

private:
    static thread_local std::vector<std::unique_ptr<Context>> pool_;
    static thread_local std::size_t depth_;
    Context* context_;
};
template <class Context>
thread_local std::vector<std::unique_ptr<Context>> ContextLease<Context>::pool_;
template <class Context>
thread_local std::size_t ContextLease<Context>::depth_ = 0;

}  // namespace

namespace detail {

namespace {

// The text writer does not track where it is (that would cost every write); on the rare failure
// the value is written again as a tree, and the tree's writer names the path.
Error utf8_error(WriteFn write, const void* in) {
    const Value tree = write_tree(write, in);
    rapidjson::StringBuffer buffer;
    RapidWriter writer(buffer);
    try {
        write_value(writer, tree);
    } catch (const InvalidUtf8& e) {
        return Error(Errc::Serde, e.describe());
    }
    return Error(Errc::Serde, "$: a string is not valid UTF-8");
}

}  // namespace

void read_json(std::string_view json, ReadFn read, void* out) {
    ContextLease<DecodeContext> lease;
    DecodeContext& ctx = *lease;
    struct Trim {  // on every exit, once the decoded object owns its bytes
        DecodeContext& ctx;
        ~Trim() { trim_after_parse(ctx.parser, ctx.buffer); }
    } trim{ctx};
    const simdjson::padded_string_view input = ctx.buffer.load(json);
    ondemand::document doc;
    if (auto e = ctx.parser.iterate(input).get(doc))
        throw Error(Errc::Serde, "$: " + describe_error(e, nullptr, ctx.buffer.data()));
    ctx.reader.start(doc, ctx.buffer.data());
    read(ctx.reader, out);
    ctx.reader.finish();
}

void write_json(std::string& out, WriteFn write, const void* in) {
    ContextLease<EncodeContext> lease;
    EncodeContext& ctx = *lease;
    ctx.buffer.Clear();
    ctx.writer.Reset(ctx.buffer);  // also recovers a writer left half-way by a throwing write
    try {
        write(ctx.adapter, in);
    } catch (const InvalidUtf8&) {
        throw utf8_error(write, in);
    }
    if (!ctx.writer.IsComplete())
        throw Error(Errc::Serde, "json_traits::write did not produce exactly one JSON value");
    out.assign(ctx.buffer.GetString(), ctx.buffer.GetSize());
    // One huge payload should not pin its buffer to the thread forever.
    if (ctx.buffer.GetSize() > (std::size_t{1} << 20)) {
        ctx.buffer.Clear();
        ctx.buffer.ShrinkToFit();
    }
}

void read_tree(const Value& tree, ReadFn read, void* out) {
    TreeReader reader(tree);
    read(reader, out);
}

Value write_tree(WriteFn write, const void* in) {
    TreeWriter writer;
    write(writer, in);
    if (!writer.complete())
        throw Error(Errc::Serde, "json_traits::write did not produce exactly one JSON value");
    return writer.take();
}

}  // namespace detail
}  // namespace iii
