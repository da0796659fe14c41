#pragma once
// Runs a real program for integration tests: captures stdout and stderr, waits with a deadline, sends
// signals. Never sleeps blindly: callers wait on conditions with deadlines.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hubflow::test {

class Process {
public:
    Process(const std::string& program, const std::vector<std::string>& args,
            const std::map<std::string, std::string>& env = {}, const std::string& workdir = "");
    ~Process();  // kills the process if it still runs

    // Exit code, or nullopt when it did not end before the timeout. A signal death is 128 + signal.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    void signal(int sig);
    int pid() const { return pid_; }

    std::string out();  // everything read so far
    std::string err();
    // Waits until stderr contains `text`.
    bool wait_for_err(const std::string& text, std::chrono::milliseconds timeout);

private:
    void reader(int fd, std::string& into);
    int pid_ = -1;
    std::optional<int> exit_code_;
    std::mutex mutex_;
    std::string out_, err_;
    std::thread out_reader_, err_reader_;
};

struct RunResult {
    int code;
    std::string out;
    std::string err;
};

// Runs to completion (fails the calling test on timeout).
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A counter from the summary line `hubflow run` logs for each node at exit ("[node] received_events=... name=N");
// UINT64_MAX when the node or the counter is not there.
std::uint64_t logged_counter(const std::string& log, const std::string& node, const std::string& counter);

// A fixture with a directory of its own for each test (named after it), empty at the start, removed after.
class ScratchDirTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;
    // Writes `text` to the file `name` in the directory; returns its path.
    std::string write(const std::string& name, const std::string& text) const;

    std::filesystem::path dir;
};

}  // namespace hubflow::test
