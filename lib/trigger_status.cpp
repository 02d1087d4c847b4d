#include "trigger_status.hpp"

#include "iii/client.hpp"

#include "log.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <unordered_map>

namespace iii {
namespace detail {
namespace {

struct Table {
    std::mutex mutex;
    std::unordered_map<std::string, std::weak_ptr<TriggerStatus>> statuses;
};

// Named: no temporaries inside co_await expressions (GCC 12).
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

Table& table() {
    static Table* instance = new Table;  // never destroyed: statuses may outlive static teardown
    return *instance;
}

}  // namespace

TriggerStatus::~TriggerStatus() {
    Table& t = table();
    std::lock_guard lock(t.mutex);
    auto it = t.statuses.find(id);
    if (it != t.statuses.end() && it->second.expired()) t.statuses.erase(it);
}

std::shared_ptr<TriggerStatus> make_trigger_status(const std::string& id) {
    auto status = std::make_shared<TriggerStatus>(id);
    Table& t = table();
    std::lock_guard lock(t.mutex);
    t.statuses[id] = status;
    return status;
}

bool report_trigger_registration(const protocol::TriggerRegistrationResult& result) {
    if (!result.error) return true;  // no ack means nothing; never "active"
    log(LogLevel::Warn, "trigger {} ({} -> {}) failed to register: {}: {}", result.id,
        result.trigger_type, result.function_id, result.error->code, result.error->message);
    std::shared_ptr<TriggerStatus> status;
    {
        Table& t = table();
        std::lock_guard lock(t.mutex);
        auto it = t.statuses.find(result.id);
        if (it != t.statuses.end()) status = it->second.lock();
    }
    if (!status) return false;
    std::vector<std::pair<asio::any_io_executor, std::weak_ptr<asio::steady_timer>>> waiters;
    {
        std::lock_guard lock(status->mutex);
        status->error = result.error;
        waiters.swap(status->waiters);
    }
    // Timers are not thread-safe: each is cancelled on its own executor.
    for (auto& [executor, weak] : waiters)
        if (auto timer = weak.lock()) asio::post(executor, [timer] { timer->cancel(); });
    return true;
}

}  // namespace detail

Trigger::Trigger(std::string id_, std::string trigger_type_,
                 std::weak_ptr<detail::Connection> connection)
    : id(std::move(id_)), trigger_type(std::move(trigger_type_)),
      connection_(std::move(connection)), status_(detail::make_trigger_status(id)) {}

std::optional<RemoteError> Trigger::registration_error() const {
    if (!status_) return std::nullopt;
    std::lock_guard lock(status_->mutex);
    return status_->error;
}

asio::awaitable<std::optional<RemoteError>> Trigger::wait_registration_error(
    std::chrono::milliseconds timeout) const {
    auto status = status_;
    if (!status) co_return std::nullopt;
    auto executor = co_await asio::this_coro::executor;
    auto timer = std::make_shared<asio::steady_timer>(executor, timeout);
    {
        std::lock_guard lock(status->mutex);
        if (status->error) co_return status->error;
        status->waiters.emplace_back(executor, timer);
    }
    auto [ec] = co_await timer->async_wait(detail::use_tuple);
    std::optional<RemoteError> error;
    {
        std::lock_guard lock(status->mutex);
        error = status->error;
        auto& w = status->waiters;
        w.erase(std::remove_if(w.begin(), w.end(),
                               [&](const auto& entry) { return entry.second.lock() == timer; }),
                w.end());
    }
    if (error) co_return error;
    // Aborted without a report: the caller's own cancellation.
    if (ec == asio::error::operation_aborted)
        throw std::system_error(asio::error::operation_aborted, "wait_registration_error cancelled");
    co_return std::nullopt;
}

}  // namespace iii
