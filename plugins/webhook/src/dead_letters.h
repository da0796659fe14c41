#pragma once
// The webhook sink's dead-letter file: one JSON Lines record per event the receiver refused for good.
//
//   {"at":"2026-08-19T12:50:38Z","status":400,"error":"refused by the receiver","response":"...",
//    "attempts":1,"webhook_id":"msg_...","event":{...the event's payload...}}
//
// This class only builds that record; the writing is the SDK's hubflow::DeadLetterWriter (whole lines only, a
// partial last line left by a crash moved aside before appending, private directories and files, strftime
// fields in the path, every write synced: dead letters are rare and exist to be kept). Its counters appear on
// the node with a "dead_letter_" prefix.
//
// Thread-safe: sender threads write concurrently.

#include <cstdint>
#include <string>

#include "hubflow/context.h"
#include "hubflow/dead_letters.h"

namespace hubflow::webhook {

struct Request;

class DeadLetters {
public:
    // Throws ConfigError naming `key` when the path is not a usable path template.
    DeadLetters(const std::string& path, const std::string& key, Context& context);

    // Opens a path without placeholders at once, so that an unwritable file refuses the start.
    void start();
    void stop();

    // One line per event of `request`. `status` 0 = no answer. Throws std::runtime_error when the file cannot
    // be written.
    void write(const Request& request, int status, const std::string& error, const std::string& response,
               std::uint64_t attempts);

private:
    DeadLetterWriter writer_;
};

}  // namespace hubflow::webhook
