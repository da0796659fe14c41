#pragma once
// Readiness for systemd (Type=notify): READY=1 once every node of the graph has started, RELOADING=1 and READY=1
// around a reload, STOPPING=1 when the drain begins, each with a STATUS= line for `systemctl status`. Does nothing
// unless systemd asked for it by setting NOTIFY_SOCKET, so `hubflow run` behaves the same everywhere else.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/runtime.h"

namespace hubflow::core {

class SystemdNotifier {
public:
    // Watches `runtime`'s phase from a thread of its own; `runtime` must outlive this object.
    SystemdNotifier(const Runtime& runtime, LogSink& log);
    ~SystemdNotifier();
    SystemdNotifier(const SystemdNotifier&) = delete;
    SystemdNotifier& operator=(const SystemdNotifier&) = delete;

    // True when NOTIFY_SOCKET was set, i.e. a service manager is listening.
    bool active() const { return thread_.joinable(); }

    // A reload (SIGHUP, `systemctl reload`, the admin server) begins and ends: RELOADING=1, then READY=1 again
    // once the new graph runs or the file was refused, so `systemctl reload` waits for it and sees the outcome.
    void reloading();
    void reloaded(const std::string& outcome);

private:
    void watch();
    void send(const std::string& state);

    const Runtime& runtime_;
    LogSink& log_;
    std::mutex mutex_;
    std::condition_variable stop_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace hubflow::core
