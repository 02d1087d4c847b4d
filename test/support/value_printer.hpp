#pragma once
// Catch2 prints an iii::Value in a failed assertion as its JSON text.

#include <iii/json.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace Catch {
template <>
struct StringMaker<iii::Value> {
    static std::string convert(const iii::Value& v) { return v.dump(); }
};
}  // namespace Catch
