#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace hubflow::test {

Process::Process(const std::string& program, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, const std::string& workdir) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    if (!workdir.empty()) posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());

    // The test process may have signals blocked; the child starts with a clean mask.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> argv_s = {program};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(argv_s.size() + 1);
    for (auto& a : argv_s)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    std::map<std::string, std::string> merged;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : env)
        merged[k] = v;
    std::vector<std::string> env_s;
    env_s.reserve(merged.size());
    for (const auto& [k, v] : merged)
        env_s.push_back(std::string(k).append(1, '=').append(v));
    std::vector<char*> envp;
    envp.reserve(env_s.size() + 1);
    for (auto& e : env_s)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    int rc = posix_spawn(&pid_, program.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        throw std::runtime_error("cannot start " + program + ": " + std::strerror(rc));
    }
    out_reader_ = std::thread([this, fd = out_pipe[0]] { reader(fd, out_); });
    err_reader_ = std::thread([this, fd = err_pipe[0]] { reader(fd, err_); });
}

Process::~Process() {
    if (!exit_code_) {
        ::kill(pid_, SIGKILL);
        wait(std::chrono::seconds(10));
    }
    if (out_reader_.joinable()) out_reader_.join();
    if (err_reader_.joinable()) err_reader_.join();
}

void Process::reader(int fd, std::string& into) {
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::lock_guard lock(mutex_);
        into.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    if (exit_code_) return exit_code_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (out_reader_.joinable()) out_reader_.join();
            if (err_reader_.joinable()) err_reader_.join();
            return exit_code_;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void Process::signal(int sig) {
    ::kill(pid_, sig);
}

std::string Process::out() {
    std::lock_guard lock(mutex_);
    return out_;
}

std::string Process::err() {
    std::lock_guard lock(mutex_);
    return err_;
}

bool Process::wait_for_err(const std::string& text, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (err().find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
    Process p(program, args, env);
    auto code = p.wait(timeout);
    if (!code) throw std::runtime_error(program + " did not finish in time; stderr: " + p.err());
    return {*code, p.out(), p.err()};
}

std::uint64_t logged_counter(const std::string& log, const std::string& node, const std::string& counter) {
    std::smatch line;
    if (!std::regex_search(log, line, std::regex("\\[" + node + "\\] (received_events=[^\\n]*)"))) return UINT64_MAX;
    std::string text = " " + line[1].str();
    std::smatch m;
    if (!std::regex_search(text, m, std::regex(" " + counter + "=(\\d+)"))) return UINT64_MAX;
    return std::stoull(m[1]);
}

void ScratchDirTest::SetUp() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name =
        std::string("hubflow-") + info->test_suite_name() + "-" + info->name() + "-" + std::to_string(::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests have slashes in their names
    dir = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
}

void ScratchDirTest::TearDown() {
    std::filesystem::remove_all(dir);
}

std::string ScratchDirTest::write(const std::string& name, const std::string& text) const {
    const auto path = dir / name;
    std::ofstream(path) << text;
    return path.string();
}

}  // namespace hubflow::test
