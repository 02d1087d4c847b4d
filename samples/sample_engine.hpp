#pragma once
// The engine the samples talk to: $III_URL when it is set (a real engine), otherwise an embedded
// iii::testing::Engine that lives as long as this object.

#include <iii/testing/engine.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

class SampleEngine {
public:
    SampleEngine() {
        if (const char* env = std::getenv("III_URL"); env && *env) {
            url_ = env;
            return;
        }
        embedded_ = std::make_unique<iii::testing::Engine>();
        url_ = embedded_->url();
        std::printf("started the embedded test engine at %s\n", url_.c_str());
    }

    /// ws://host:port of the engine.
    const std::string& url() const { return url_; }

private:
    std::unique_ptr<iii::testing::Engine> embedded_;
    std::string url_;
};
