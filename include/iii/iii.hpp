#pragma once
// Umbrella header of the iii C++ SDK.

#include <iii/channel.hpp>
#include <iii/client.hpp>
#include <iii/describe.hpp>
#include <iii/error.hpp>
#include <iii/json.hpp>
#include <iii/log.hpp>
#include <iii/options.hpp>
#include <iii/telemetry.hpp>
#include <iii/trigger.hpp>
#include <iii/typed.hpp>
#include <iii/types.hpp>
#include <iii/version.hpp>
