#pragma once
// Small, allocation-free JSON helpers for hot paths: writing and reading JSON strings, and reading fields of
// an event by path. They work on the text directly instead of building a document.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hubflow/event.h"

namespace hubflow {

// Appends `text` as a quoted JSON string (with escapes) to `out`.
void append_json_string(std::string& out, std::string_view text);

// Reads the JSON string whose opening quote is at `p` (in text ending at `end`): appends its unescaped text
// to `out` and moves `p` past the closing quote. Strict, as RFC 8259 and UTF-8 (RFC 3629) ask: false for a
// missing closing quote, a raw control character, an unknown escape, a lone surrogate or invalid UTF-8 (`p`
// is then somewhere inside the string and `out` has unspecified text after what it held before), and for `p`
// not at a quote (nothing moved or appended).
bool read_json_string(const char*& p, const char* end, std::string& out);

// The same checks as read_json_string, moving `p` past the string without keeping its text.
bool skip_json_string(const char*& p, const char* end);

// A field of an event, named by the path syntax every component shares:
//   kind, site_id, user_id, id, source, received_at  -> the event's metadata when set, else the payload's
//                                                       field of that name
//   a.b.c                                            -> payload field c of object b of object a
//   payload.x                                        -> payload field x, ignoring metadata
// A JSON string yields its unescaped text; a number, true or false its JSON text; an object or array its
// JSON text as written. null and absent fields are "not found".
class FieldPath {
public:
    explicit FieldPath(std::string_view path);  // throws std::invalid_argument for an empty segment

    const std::string& text() const { return text_; }

    // Appends the field's value to `out`; returns false (and appends nothing) when not found.
    bool append_to(const Event& event, std::string& out) const;
    std::optional<std::string> get(const Event& event) const;

private:
    enum class Meta { none, kind, site_id, user_id, id, source, received_at };
    std::string text_;
    Meta meta_ = Meta::none;
    std::vector<std::string> segments_;  // payload path
};

// Looks up a dotted path in a JSON object text. Same conventions as FieldPath. Returns false when the text
// is not an object, is malformed along the way, or the field is absent or null.
bool find_json_field(std::string_view json, const std::vector<std::string>& path, std::string& out);

// A top-level member to look up with find_json_members.
struct JsonMember {
    std::string_view name;
    std::string* out;  // the value is appended here, as find_json_field appends it
};

// Looks up several top-level members of a JSON object in one pass over the text, which stops as soon as each
// has been seen: what a source does to fill an event's metadata from its payload. For each member, the first
// of that name decides, as in find_json_field, and nothing is appended when it is absent or null. Returns
// how many were found. At most 64 members are looked for.
std::size_t find_json_members(std::string_view json, std::span<const JsonMember> members);

// RFC 3339 UTC with whole seconds: 2026-08-19T12:50:38Z
std::string format_utc(std::chrono::system_clock::time_point t);

}  // namespace hubflow
