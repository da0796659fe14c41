#pragma once
// Runs a source's blocking calls (the OAuth2 token request, the DNS lookup) on a thread of its own, one at a
// time and in the order posted, so that the event loop keeps reading its open hubs meanwhile. What follows a
// call runs back on the loop thread: the loop polls event_fd() and calls run_finished() when it is readable.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace hubflow::signalr {

class BlockingWorker {
public:
    BlockingWorker();
    // Waits for the call in progress (each is bounded by a timeout of its own) and drops the ones not started.
    ~BlockingWorker();
    BlockingWorker(const BlockingWorker&) = delete;
    BlockingWorker& operator=(const BlockingWorker&) = delete;

    // Readable once a call has finished.
    int event_fd() const { return event_fd_; }

    // `work` runs on the worker thread; afterwards `then` (if any) runs on the loop thread, in run_finished().
    void post(std::function<void()> work, std::function<void()> then = {});

    // Loop thread: runs the follow-ups of the calls finished so far.
    void run_finished();

private:
    void main();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;
    std::vector<std::function<void()>> finished_;
    bool stopping_ = false;
    int event_fd_ = -1;
    std::thread thread_;
};

}  // namespace hubflow::signalr
