#include "client/blocking_worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace hubflow::signalr {

BlockingWorker::BlockingWorker() {
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    thread_ = std::thread([this] { main(); });
}

BlockingWorker::~BlockingWorker() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        queue_.clear();
    }
    wake_.notify_one();
    thread_.join();
    ::close(event_fd_);
}

void BlockingWorker::post(std::function<void()> work, std::function<void()> then) {
    {
        std::lock_guard lock(mutex_);
        queue_.emplace_back(std::move(work), std::move(then));
    }
    wake_.notify_one();
}

void BlockingWorker::run_finished() {
    std::uint64_t count;
    while (::read(event_fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    std::vector<std::function<void()>> ready;
    {
        std::lock_guard lock(mutex_);
        ready.swap(finished_);
    }
    for (auto& then : ready)
        then();
}

void BlockingWorker::main() {
    for (;;) {
        std::pair<std::function<void()>, std::function<void()>> call;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            call = std::move(queue_.front());
            queue_.pop_front();
        }
        call.first();
        if (!call.second) continue;
        {
            std::lock_guard lock(mutex_);
            finished_.push_back(std::move(call.second));
        }
        const std::uint64_t one = 1;
        while (::write(event_fd_, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

}  // namespace hubflow::signalr
