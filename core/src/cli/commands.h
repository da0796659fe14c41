#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime/log.h"

namespace hubflow::core {

struct CliOptions {
    std::vector<std::string> plugin_dirs;
    std::string describe;
    LogLevel log_level = LogLevel::info;
    std::vector<std::pair<std::string, std::string>> token;  // options of the 'token' command, in order
    std::string top_admin;                                   // 'top': the admin server's URL
    std::string top_token_env;                               // 'top': variable holding the admin token
    bool top_once = false;                                   // 'top': one table, then exit
};

int command_run(const std::string& file, const CliOptions& options);
int command_validate(const std::string& file, const CliOptions& options);
int command_graph(const std::string& file, const CliOptions& options);
int command_plugins(const CliOptions& options);
int command_top(const CliOptions& options);
int command_token(const std::vector<std::pair<std::string, std::string>>& options);

}  // namespace hubflow::core
