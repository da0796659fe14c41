#pragma once
// Dead-letter files: one JSON Lines record per event a sink refused for good, kept so that an operator can see
// why and send it again. SDK 1.2.
//
//   hubflow::DeadLetterWriter dead(path_text, context);   // in configure(): parses the path, no I/O
//   dead.open();                                          // in start(): a constant path is opened at once
//   hubflow::DeadLetterRecord record;
//   record.add_time("at", now).add_integer("status", 400).add_string("error", "refused by the receiver");
//   dead.write(record.with_json("event", payload), now);  // durable when write() returns
//
// What a record holds is the caller's: any JSON object text, one per line. The webhook sink's records are
//   {"at":"2026-08-19T12:50:38Z","status":400,"error":"...","response":"...","attempts":1,
//    "webhook_id":"msg_...","event":{...the event's payload...}}
//
// The file:
// - Whole lines only. A file found ending in a partial line (a crash during a write) has that tail moved to
//   `<path>.partial` before anything is appended; a write that fails halfway is cut back to its last whole line.
// - Every write() is fdatasync'ed (and the directory entry of a new file synced) before it returns: dead
//   letters are rare and exist to be kept. A failed sync closes the file; the next write() reopens it.
// - Files it creates are private to the service user (0600) and so are the directories it creates (0700):
//   events hold personal data. Existing files and directories keep their modes.
// - The path is a hubflow::PathTemplate: strftime fields (UTC) are formatted from the time passed to write(),
//   `{field}` placeholders read the record itself (metadata names read its top-level fields), so "{status}"
//   or "{event.kind}" split the files by what was refused.
//
// Metrics, registered on the context's node in the constructor: dead_letter_records_written,
// dead_letter_bytes_written, dead_letter_partial_lines_repaired.
//
// Thread-safe: any thread may call write(), e.g. a sink's sender threads at once; records of one write() are
// contiguous in the file. The Context must outlive the writer.

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "hubflow/context.h"

namespace hubflow {

// One record, built field by field in the order the fields are added. Names are written as JSON strings;
// adding a name twice writes it twice.
class DeadLetterRecord {
public:
    DeadLetterRecord& add_string(std::string_view name, std::string_view value);  // escaped as a JSON string
    DeadLetterRecord& add_integer(std::string_view name, std::int64_t value);
    DeadLetterRecord& add_null(std::string_view name);
    DeadLetterRecord& add_time(std::string_view name, std::chrono::system_clock::time_point t);  // RFC 3339 UTC
    // `json` is written as it is: it must be one JSON value (an event's payload, say). Line breaks in it are
    // written as spaces when the record is written, which JSON allows between tokens.
    DeadLetterRecord& add_json(std::string_view name, std::string_view json);

    // The record as a JSON object text.
    std::string text() const;
    // The record with one more field, leaving this one as it is: what a sink does to write many events with
    // the same reasons.
    std::string with_json(std::string_view name, std::string_view json) const;

private:
    void name(std::string_view name);
    std::string members_;  // `"name":value` pairs, comma-separated, without the braces
};

class DeadLetterWriter {
public:
    // `path` is a PathTemplate text. Throws std::invalid_argument with a sentence saying what is wrong with it
    // (wrap it in ConfigError with the key's name). Does no I/O.
    DeadLetterWriter(std::string_view path, Context& context);
    ~DeadLetterWriter();  // closes the file; does not throw
    DeadLetterWriter(const DeadLetterWriter&) = delete;
    DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

    // The path template's text, for log lines.
    const std::string& path() const;

    // Opens the file now when the path has neither placeholders nor strftime fields, so that a file that
    // cannot be written refuses a sink's start instead of failing its first refusal. Otherwise does nothing.
    // Throws std::runtime_error naming the file and the system's reason.
    void open();

    // Appends `records` (JSON object texts, one line each), synced before it returns. `at` is the time the
    // path's strftime fields are formatted from. Throws std::invalid_argument, writing nothing, when a record
    // is not a `{...}` text; std::runtime_error naming the file and the system's reason when it cannot be
    // written or synced (the records may then be partly written, never as a partial line).
    void write(std::span<const std::string> records, std::chrono::system_clock::time_point at);
    void write(const std::string& record, std::chrono::system_clock::time_point at);

    // Syncs and closes the open file, if any. A later write() opens it again. Throws std::runtime_error when
    // the close reports an error.
    void close();

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hubflow
