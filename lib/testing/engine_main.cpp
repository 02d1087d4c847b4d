// iii-test-engine: the in-process test engine as a standalone program, for driving SDKs in
// other languages (or a debugger) against the same engine the C++ tests use.
//
//   iii-test-engine [--port N] [--log FILE] [--functions-available-ms N]
//                   [--generation 0.10|0.22|0.23] [--queue-worker] [--no-otel]
//                   [--namespace-grace-ms N]
//                   [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//
// Prints `iii-test-engine listening on ws://127.0.0.1:<port>` (wss:// with --tls-cert) once
// listening, then runs until SIGINT or SIGTERM and exits 0.

#include <iii/testing/engine.hpp>

#include "testing/engine_impl.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace {

void usage(std::FILE* out) {
    std::fputs(
        "usage: iii-test-engine [--port N] [--log FILE] [--functions-available-ms N]\n"
        "                       [--generation 0.10|0.22|0.23] [--queue-worker] [--no-otel]\n"
        "                       [--namespace-grace-ms N] [--full-path]\n"
        "                       [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
        "  --port N                    port on 127.0.0.1 (0, the default, picks a free one)\n"
        "  --log FILE                  append every frame in and out to FILE as JSON lines\n"
        "  --functions-available-ms N  functions-available watcher interval (default 5000)\n"
        "  --generation G              engine release to reproduce: 0.10 (default: the\n"
        "                              protocol floor every SDK must keep), 0.22 or 0.23\n"
        "  --queue-worker              0.22+: act as if the standalone queue worker were\n"
        "                              installed (enqueue works); without it enqueue fails\n"
        "                              with enqueue_error, as on a fresh 0.22 engine\n"
        "  --no-otel                   answer 404 on /otel, as the real 0.10 engine does\n"
        "  --namespace-grace-ms N      0.23: how long registrations wait for\n"
        "                              engine::workers::register (default 5000)\n"
        "  --full-path                 decode and re-encode every frame, calls and results\n"
        "                              too (what the text path saves; also set by the\n"
        "                              environment variable III_TEST_ENGINE_FULL_PATH=1)\n"
        "  --tls-cert FILE             serve wss:// with this PEM certificate chain\n"
        "  --tls-key FILE              the PEM private key of --tls-cert\n"
        "  --tls-client-ca FILE        require client certificates signed by a CA of FILE\n",
        out);
}

std::optional<unsigned long> parse_number(std::string_view text, unsigned long max) {
    if (text.empty()) return std::nullopt;
    unsigned long value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > max) return std::nullopt;
    }
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    iii::testing::EngineOptions options;
    // Nothing in this process reads the in-memory frame record (--log is the way to see
    // frames), so keeping it would only grow memory during benchmarks.
    options.record_frames = false;
    // For measurements through launchers that spawn the engine with fixed arguments (the bench).
    const char* full_path = std::getenv("III_TEST_ENGINE_FULL_PATH");
    if (full_path && std::string_view(full_path) == "1") options.forward_as_text = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 0;
        }
        if (arg == "--queue-worker") {
            options.queue_worker = true;
            continue;
        }
        if (arg == "--full-path") {
            options.forward_as_text = false;
            continue;
        }
        if (arg == "--no-otel") {
            options.otel_route = false;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "iii-test-engine: %s needs a value\n", argv[i]);
            usage(stderr);
            return 2;
        }
        const std::string_view value = argv[++i];
        if (arg == "--port") {
            auto port = parse_number(value, 65535);
            if (!port) {
                std::fprintf(stderr, "iii-test-engine: invalid port '%s'\n", argv[i]);
                return 2;
            }
            options.port = static_cast<std::uint16_t>(*port);
        } else if (arg == "--log") {
            options.log_file = std::string(value);
        } else if (arg == "--functions-available-ms") {
            auto ms = parse_number(value, std::numeric_limits<unsigned int>::max());
            if (!ms || *ms == 0) {
                std::fprintf(stderr, "iii-test-engine: invalid interval '%s'\n", argv[i]);
                return 2;
            }
            options.functions_available_interval = std::chrono::milliseconds(*ms);
        } else if (arg == "--generation") {
            auto generation = iii::testing::parse_generation(value);
            if (!generation) {
                std::fprintf(stderr, "iii-test-engine: unknown generation '%s' (0.10, 0.22, 0.23)\n",
                             argv[i]);
                return 2;
            }
            options.generation = *generation;
        } else if (arg == "--namespace-grace-ms") {
            auto ms = parse_number(value, std::numeric_limits<unsigned int>::max());
            if (!ms) {
                std::fprintf(stderr, "iii-test-engine: invalid grace '%s'\n", argv[i]);
                return 2;
            }
            options.namespace_grace = std::chrono::milliseconds(*ms);
        } else if (arg == "--tls-cert" || arg == "--tls-key" || arg == "--tls-client-ca") {
            if (!options.tls) options.tls.emplace();
            auto& field = arg == "--tls-cert" ? options.tls->cert_file
                          : arg == "--tls-key" ? options.tls->key_file
                                               : options.tls->client_ca_file;
            field = std::string(value);
        } else {
            std::fprintf(stderr, "iii-test-engine: unknown option '%s'\n", argv[i - 1]);
            usage(stderr);
            return 2;
        }
    }

    if (options.tls && (options.tls->cert_file.empty() || options.tls->key_file.empty())) {
        std::fprintf(stderr, "iii-test-engine: --tls-cert and --tls-key go together\n");
        return 2;
    }

    try {
        // On this thread, the process's only one (see EngineProcess).
        iii::testing::EngineProcess::serve(options, [](const std::string& url) {
            std::cout << "iii-test-engine listening on " << url << std::endl;  // flushes
        });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "iii-test-engine: %s\n", e.what());
        return 1;
    }
    return 0;
}
