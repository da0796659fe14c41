#pragma once
// The SDK version a plugin is built against. The host refuses a plugin whose major differs from its own or
// whose minor is newer than its own: minors only add, so an older plugin keeps loading in a newer host.
#define HUBFLOW_SDK_VERSION_MAJOR 1
#define HUBFLOW_SDK_VERSION_MINOR 2
#define HUBFLOW_VERSION_STRING "0.1.0"

namespace hubflow {
inline constexpr int sdk_version_major = HUBFLOW_SDK_VERSION_MAJOR;
inline constexpr int sdk_version_minor = HUBFLOW_SDK_VERSION_MINOR;
}  // namespace hubflow
