#pragma once
// What the UTF-8 tests share: a string that is not UTF-8, and the Errc::Serde message of a
// call that must refuse it.

#include <iii/error.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>

namespace test_support {

inline const std::string not_utf8 = "ab\xff" "cd";  // 0xFF never occurs in UTF-8

/// Runs `f`, which must throw iii::Error with Errc::Serde; returns its message.
inline std::string serde_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const iii::Error& e) {
        CHECK(e.errc() == iii::Errc::Serde);
        return e.what();
    }
    FAIL("no iii::Error thrown");
    return {};
}

}  // namespace test_support
