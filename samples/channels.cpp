// File transfer over data channels: a "storage" worker keeps files in memory; the "app" worker
// uploads a file by passing a channel's read ref to `files::store` and streaming into the
// writer, then downloads it by passing a write ref to `files::fetch` and reading. Uses the
// engine at $III_URL when set, else starts the embedded test engine.

#include <iii/channel.hpp>
#include <iii/iii.hpp>

#include "sample_engine.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

struct Store {
    std::mutex mutex;
    std::map<std::string, std::vector<std::uint8_t>> files;
};

void register_storage(const std::shared_ptr<iii::Client>& worker, std::shared_ptr<Store> store) {
    // files::store {name, content: <read ref>} -> {name, bytes}
    worker->register_function(
        iii::RegisterFunctionMessage::with_id("files::store"),
        [c = worker.get(), store](iii::Value in) -> asio::awaitable<iii::Value> {
            iii::ChannelReader content(*c, iii::StreamChannelRef::from_value(in.at("content")));
            content.on_message([](const std::string& note) { std::printf("storage: note \"%s\"\n", note.c_str()); });
            auto bytes = co_await content.read_all();
            const auto size = bytes.size();
            {
                std::lock_guard lock(store->mutex);
                store->files[in.at("name").as_string()] = std::move(bytes);
            }
            iii::Value out = iii::Value::object();
            out.set("name", in.at("name")).set("bytes", size);
            co_return out;
        });
    // files::fetch {name, sink: <write ref>} -> {bytes}; streams the file into the sink.
    worker->register_function(
        iii::RegisterFunctionMessage::with_id("files::fetch"),
        [c = worker.get(), store](iii::Value in) -> asio::awaitable<iii::Value> {
            iii::ChannelWriter sink(*c, iii::StreamChannelRef::from_value(in.at("sink")));
            std::vector<std::uint8_t> file;
            {
                std::lock_guard lock(store->mutex);
                file = store->files.at(in.at("name").as_string());
            }
            std::span<const std::uint8_t> bytes(file);
            co_await sink.write(bytes);
            co_await sink.close();
            co_return iii::Value::object({{"bytes", file.size()}});
        });
}

asio::awaitable<void> upload(iii::ChannelWriter& writer, const std::vector<std::uint8_t>& file) {
    co_await writer.send_message("upload of " + std::to_string(file.size()) + " bytes");
    std::span<const std::uint8_t> bytes(file);
    co_await writer.write(bytes);
    co_await writer.close();
}

asio::awaitable<iii::Value> call(iii::Client& app, std::string function_id, iii::Value payload) {
    // The engine does not acknowledge registrations: retry while the function is on its way.
    for (int attempt = 0;; ++attempt) {
        try {
            iii::TriggerRequest request(function_id, payload);
            co_return co_await app.trigger(std::move(request));
        } catch (const iii::Error& e) {
            if (e.errc() != iii::Errc::Remote || e.remote()->code != "function_not_found" || attempt == 50)
                throw;
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, 100ms);
        co_await pause.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<int> run(std::shared_ptr<iii::Client> app) {
    std::vector<std::uint8_t> file(8u << 20);
    for (std::size_t i = 0; i < file.size(); ++i) file[i] = static_cast<std::uint8_t>(i * 31 + (i >> 12));
    const auto started = std::chrono::steady_clock::now();

    // Upload: the callee gets the read ref, we keep the writer. Both run at once.
    {
        auto channel = co_await iii::create_channel(*app);
        iii::Value payload = iii::Value::object();
        payload.set("name", "data.bin").set("content", channel.reader_ref.to_value());
        auto stored = call(*app, "files::store", payload);
        auto sent = upload(channel.writer, file);
        auto both = std::move(stored) && std::move(sent);
        auto result = co_await std::move(both);
        std::printf("app: stored %s\n", result.dump().c_str());
    }
    // Download: the callee gets the write ref, we keep the reader.
    std::vector<std::uint8_t> back;
    {
        auto channel = co_await iii::create_channel(*app);
        iii::Value payload = iii::Value::object();
        payload.set("name", "data.bin").set("sink", channel.writer_ref.to_value());
        auto fetched = call(*app, "files::fetch", payload);
        auto read = channel.reader.read_all();
        auto both = std::move(fetched) && std::move(read);
        auto [result, bytes] = co_await std::move(both);
        back = std::move(bytes);
        std::printf("app: fetched %s\n", result.dump().c_str());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("round trip of %zu bytes in %.3f s: %s\n", file.size(), seconds,
                back == file ? "identical" : "DIFFERENT");
    co_return back == file ? 0 : 1;
}

}  // namespace

int main() {
    const SampleEngine engine;  // $III_URL, else an embedded test engine
    const std::string& url = engine.url();
    auto storage = iii::register_worker(url);
    register_storage(storage, std::make_shared<Store>());
    auto app = iii::register_worker(url);

    asio::io_context io;
    int status = 1;
    asio::co_spawn(io, run(app), [&](std::exception_ptr e, int result) {
        if (!e) {
            status = result;
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "channels sample failed: %s\n", ex.what());
        }
    });
    io.run();
    return status;
}
