#pragma once
// A path (or name) made from an event: the file sink's `path`, the kafka sink's `topic`, a dead-letter file.
// Compiled once, in configure(), so that resolving an event's path costs no parsing: literal text, strftime
// runs and {field} placeholders become a list of segments. SDK 1.2.
//
// Syntax: `{name}` is a field by the shared path syntax (hubflow::FieldPath: kind, site_id, lock.id, ...);
// `{{` and `}}` are literal braces; any other run of text that holds a '%' goes through strftime (UTC), so
// `%%` is a literal percent sign.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hubflow/event.h"
#include "hubflow/json.h"

namespace hubflow {

class PathTemplate {
public:
    // Throws std::invalid_argument with a sentence saying what is wrong with `text`.
    explicit PathTemplate(std::string_view text);

    const std::string& text() const { return text_; }
    bool has_fields() const { return has_fields_; }
    bool has_time() const { return has_time_; }

    // Writes the path for `event` into `out`, replacing its contents. `second` is the UTC second (since the
    // epoch) the strftime runs are formatted from; it is only looked at when has_time(). Not const: the
    // strftime output is cached per second, since a busy sink sees the same second thousands of times.
    // Not thread-safe: one thread renders at a time (each thread may hold its own copy).
    void render(const Event& event, std::int64_t second, std::string& out);

    // What a placeholder renders as when the event has no such field, or an empty one.
    static constexpr std::string_view missing_value = "unknown";

private:
    struct Segment {
        enum class Kind { literal, time, field } kind;
        std::string text;                // literal text, or the strftime format
        std::optional<FieldPath> field;  // for Kind::field
        std::string rendered;            // strftime output for cached_second_
    };

    void refresh_time(std::int64_t second);

    std::string text_;
    std::vector<Segment> segments_;
    bool has_fields_ = false;
    bool has_time_ = false;
    std::int64_t cached_second_ = std::numeric_limits<std::int64_t>::min();
};

// Makes the bytes of `out` from `from` on safe as part of a single path component: '/', '\\' and NUL become
// '_', and so does a leading '.', so a value can be neither a separator, "." nor "..". Event data is
// untrusted; this is what keeps an event from writing outside the directory the template names.
void sanitize_path_value(std::string& out, std::size_t from);

}  // namespace hubflow
