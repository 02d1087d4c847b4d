#pragma once
// What a documented snippet sees when test/snippets/extract.py turns it into a coroutine: the
// whole public API, `client` (see Env) and the engine's address in place of the documented one.

#include <iii/channel.hpp>
#include <iii/describe.hpp>
#include <iii/iii.hpp>
#include <iii/typed.hpp>

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace snippets {

/// Handed to every snippet body.
struct Env {
    std::shared_ptr<iii::Client> client;  ///< connected to the test engine
};

struct Snippet {
    const char* where;                     ///< "README.md:25"
    asio::awaitable<void> (*body)(Env&);
    std::vector<std::string> calls;        ///< function ids it calls but does not register
    std::vector<std::string> registers;    ///< function ids it registers
};

/// Every snippet, in documentation order (generated).
std::vector<Snippet> all();

/// The test engine's URL, standing in for the documented "ws://localhost:49134".
std::string engine_url();

}  // namespace snippets
