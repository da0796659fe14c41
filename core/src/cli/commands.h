#pragma once

#include <string>
#include <vector>

#include "runtime/log.h"

namespace hubflow::core {

struct CliOptions {
    std::vector<std::string> plugin_dirs;
    std::string describe;
    LogLevel log_level = LogLevel::info;
};

int command_run(const std::string& file, const CliOptions& options);
int command_validate(const std::string& file, const CliOptions& options);
int command_graph(const std::string& file, const CliOptions& options);
int command_plugins(const CliOptions& options);

}  // namespace hubflow::core
