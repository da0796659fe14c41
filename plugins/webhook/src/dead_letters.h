#pragma once
// The webhook sink's dead-letter file: one JSON Lines record per event the receiver refused for good.
//
//   {"at":"2026-08-19T12:50:38Z","status":400,"error":"refused by the receiver","response":"...",
//    "attempts":1,"webhook_id":"msg_...","event":{...the event's payload...}}
//
// The writing is the file sink's (plugins/file): whole lines only, a partial last line left by a crash moved
// aside before appending, directories created, strftime fields in the path. Records are written with
// fsync=batch: dead letters are rare and exist to be kept. The file sink's own counters appear on the node
// with a "dead_letter_" prefix.
//
// Thread-safe: sender threads write concurrently.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "hubflow/context.h"

namespace hubflow::file {
class FileSink;
}

namespace hubflow::webhook {

struct Request;

class DeadLetters {
public:
    // Throws ConfigError naming `key` when the path is not usable as a file sink path.
    DeadLetters(const std::string& path, const std::string& key, Context& context);
    ~DeadLetters();
    DeadLetters(const DeadLetters&) = delete;
    DeadLetters& operator=(const DeadLetters&) = delete;

    void start();
    void stop();

    // One line per event of `request`. `status` 0 = no answer. Throws std::runtime_error when the file cannot
    // be written.
    void write(const Request& request, int status, const std::string& error, const std::string& response,
               std::uint64_t attempts);

private:
    class PrefixedContext;
    std::unique_ptr<PrefixedContext> context_;
    std::unique_ptr<file::FileSink> file_;
    std::mutex mutex_;
};

}  // namespace hubflow::webhook
