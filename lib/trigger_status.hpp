#pragma once
// The registration status behind iii::Trigger (Trigger::registration_error()).
//
// The connection calls report_trigger_registration(result) for an engine-to-worker
// `triggerregistrationresult` with an error (0.22+; the core's TriggerRegistrationFailed
// action). The statuses are found by trigger id, which is a fresh UUID per registration, so
// one table serves every client of the process.

#include "iii/error.hpp"
#include "protocol.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace iii::detail {

struct TriggerStatus {
    explicit TriggerStatus(std::string trigger_id) : id(std::move(trigger_id)) {}
    ~TriggerStatus();
    const std::string id;
    std::mutex mutex;
    std::optional<RemoteError> error;
    /// Timers of wait_registration_error() calls; cancelled (on their executors) on a report.
    std::vector<std::pair<asio::any_io_executor, std::weak_ptr<asio::steady_timer>>> waiters;
};

/// Creates the status of trigger `id` and makes it findable by report_trigger_registration().
std::shared_ptr<TriggerStatus> make_trigger_status(const std::string& id);

/// Records an engine-to-worker `triggerregistrationresult`: with an error, it becomes the
/// trigger's registration_error() (and is logged as a warning); without one nothing changes (a
/// success is never inferred). Returns false when no live Trigger handle has that id.
bool report_trigger_registration(const protocol::TriggerRegistrationResult& result);

}  // namespace iii::detail
