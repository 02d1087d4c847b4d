#pragma once
// Umbrella header of the iii C++ SDK.

#include <iii/client.hpp>
#include <iii/error.hpp>
#include <iii/json.hpp>
#include <iii/options.hpp>
#include <iii/trigger.hpp>
#include <iii/types.hpp>
