#pragma once
// One event as a disk buffer record's payload. Pure functions over bytes, versioned so a record written by a
// newer hubflow is refused rather than misread.
//
// Layout, version 1 (integers little-endian): u8 version | i64 received_at (ns since the epoch) |
// 6 x (u32 length, bytes): kind, site_id, user_id, id, source, payload.

#include <optional>
#include <string>
#include <string_view>

#include "hubflow/event.h"

namespace hubflow::core::buffer {

inline constexpr unsigned char event_record_version = 1;

// Appends the record of `event` to `out`.
void encode_event(const Event& event, std::string& out);

// Fills `event` from a record; on failure returns a sentence saying what is wrong with it (an unknown version,
// a length that runs past the end, bytes left over) and leaves `event` unspecified.
std::optional<std::string> decode_event(std::string_view record, Event& event);

}  // namespace hubflow::core::buffer
