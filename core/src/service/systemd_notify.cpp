#include "service/systemd_notify.h"

#include <cstdlib>
#include <cstring>

#include <systemd/sd-daemon.h>

namespace hubflow::core {

using Phase = RuntimeStatus::Phase;

SystemdNotifier::SystemdNotifier(const Runtime& runtime, LogSink& log) : runtime_(runtime), log_(log) {
    if (std::getenv("NOTIFY_SOCKET")) thread_ = std::thread([this] { watch(); });
}

SystemdNotifier::~SystemdNotifier() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    stop_.notify_all();
    thread_.join();
}

void SystemdNotifier::send(const std::string& state) {
    // unset_environment=0: plugins and child processes may look at NOTIFY_SOCKET too; NotifyAccess=main keeps
    // anyone but this process from being heard.
    int r = sd_notify(0, state.c_str());
    if (r < 0)
        log_.write(LogLevel::warn, "",
                   "could not notify systemd (" + state.substr(0, state.find('\n')) + "): " + std::strerror(-r));
}

void SystemdNotifier::reloading() {
    if (!active()) return;
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now().time_since_epoch());  // CLOCK_MONOTONIC, as systemd reads it
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now.count()) + "\nSTATUS=reloading the pipeline file");
}

void SystemdNotifier::reloaded(const std::string& outcome) {
    if (!active()) return;
    send("READY=1\nSTATUS=running " + std::to_string(runtime_.node_names().size()) + " nodes (" + outcome + ")");
}

void SystemdNotifier::watch() {
    // The runtime publishes its phase as an atomic without a wake-up; a 50 ms look is far below what systemd's
    // start timeout (90 s by default) needs to see, and costs nothing measurable.
    bool ready = false;
    {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            Phase phase = runtime_.phase();
            if (phase == Phase::draining || phase == Phase::finished) break;
            if (!ready && phase == Phase::running) {
                ready = true;
                send("READY=1\nSTATUS=running " + std::to_string(runtime_.node_names().size()) + " nodes");
            }
            stop_.wait_for(lock, std::chrono::milliseconds(50));
        }
    }
    // Draining, or run() has returned (the destructor): either way the service is on its way out.
    send("STOPPING=1\nSTATUS=draining");
}

}  // namespace hubflow::core
