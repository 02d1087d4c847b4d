// libFuzzer target for the typed decode of described structs (iii/describe.hpp, lib/typed.cpp):
// what a typed handler does with an invocation's data. A struct with every supported kind of
// member is read from the bytes by the simdjson reader and, differentially, from the parsed
// iii::Value by the tree reader. Invariants: both readers accept or refuse the same input, and
// agree on the result; a decoded value writes, reads back and writes again to the same text;
// every failure is iii::Error(Errc::Serde).

#include <iii/describe.hpp>
#include <iii/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

enum class Kind { Small, Large };
III_DESCRIBE_ENUM(Kind, (Small, "small"), (Large, "large"));

struct Leaf {
    std::string name;
    std::optional<std::int32_t> n;
    bool flag = false;
};
III_DESCRIBE(Leaf, name, n, flag);

struct Root {
    std::uint64_t id = 0;
    std::int8_t tiny = 0;
    double weight = 0;
    std::optional<Kind> kind;
    std::vector<Leaf> leaves;
    std::map<std::string, std::vector<std::int64_t>> tables;
    std::optional<std::vector<std::optional<std::string>>> notes;
    iii::Value extra;
};
III_DESCRIBE(Root, id, tiny, weight, kind, leaves, tables, notes, extra);

}  // namespace fuzz

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

template <class F>
std::optional<fuzz::Root> attempt(F&& read) {
    try {
        return read();
    } catch (const iii::Error& e) {
        require(e.errc() == iii::Errc::Serde);
        return std::nullopt;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto direct = attempt([&] { return iii::from_json<fuzz::Root>(text); });
    std::optional<iii::Value> tree;
    try {
        tree = iii::Value::parse(text);
    } catch (const iii::Error& e) {
        require(e.errc() == iii::Errc::Serde);
    }
    if (tree) {
        const auto via_tree = attempt([&] { return iii::from_value<fuzz::Root>(*tree); });
        require(direct.has_value() == via_tree.has_value());
        if (direct) require(iii::to_json(*direct) == iii::to_json(*via_tree));
    } else {
        require(!direct);
    }
    if (direct) {
        const std::string once = iii::to_json(*direct);
        const std::string twice = iii::to_json(iii::from_json<fuzz::Root>(once));
        require(once == twice);
    }
    return 0;
}
