#pragma once
/// @file
/// The export macro of libiii-sdk and libiii-sdk-testing.
///
/// Both libraries are built with `-fvisibility=hidden`: only declarations marked III_API are in
/// their dynamic symbol tables, so the Asio, websocketpp, simdjson and internal code compiled
/// into them stays private (no symbol clashes with another copy of Asio in the application,
/// and a smaller, explicit ABI). Consumers need no define: the attribute means the same thing
/// when building and when using the library.

#if defined(__GNUC__) || defined(__clang__)
/// Marks a class or function as part of the exported ABI.
#define III_API __attribute__((visibility("default")))
#else
#define III_API
#endif
