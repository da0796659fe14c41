#pragma once
// The SignalR MessagePack hub protocol: after the (JSON) handshake, binary WebSocket messages carrying
// MessagePack arrays, each behind a variable-length size prefix. Pure codecs over bytes, shared by the server
// and the client side; they fill the same HubMessage the JSON protocol does, so everything above the codec
// treats both protocols alike.
//
// Wire format (HubProtocol.md, as ASP.NET Core and the official clients write it):
//   Invocation        [1, Headers, InvocationId|nil, Target, [Arguments], [StreamIds]?]
//   StreamItem        [2, Headers, InvocationId, Item]
//   Completion        [3, Headers, InvocationId, ResultKind (1 error, 2 void, 3 result), Error|Result?]
//   StreamInvocation  [4, Headers, InvocationId, Target, [Arguments], [StreamIds]?]
//   CancelInvocation  [5, Headers, InvocationId]
//   Ping              [6]
//   Close             [7, Error|nil, AllowReconnect?]
//   Ack, Sequence     [8 or 9, SequenceId]
// Elements after the ones listed are ignored (the protocol may add some), as are unknown message types.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/hub_protocol.h"

namespace hubflow::signalr::messagepack {

// The size prefix: 7 bits a byte, least significant group first, high bit set on every byte but the last;
// 1 to 5 bytes, so at most 2^31 - 1 (the fifth byte may not exceed 7), as ASP.NET Core's BinaryMessageParser.
constexpr std::size_t max_prefix_bytes = 5;
void append_length_prefix(std::string& out, std::uint32_t length);

enum class PrefixStatus { complete, incomplete, invalid };
// Reads the prefix at the start of `bytes`: its value and its own size when complete; incomplete when
// `bytes` ends inside it; invalid when it runs past 5 bytes or past 2^31 - 1.
PrefixStatus read_length_prefix(std::string_view bytes, std::uint32_t& length, std::size_t& prefix_size) noexcept;

// Cuts the bytes of consecutive binary WebSocket messages into MessagePack hub messages. Several messages may
// share one WebSocket message, and, since ASP.NET Core reads and writes this protocol as a byte stream, one
// message may also run on into the next WebSocket message: the incomplete tail is copied and completed by
// the next feed. A whole message inside the fed bytes is handed out as a view of them, without a copy. At
// most max_message_bytes + 5 bytes are ever held: a prefix announcing more is an error at once.
class MessageReader {
public:
    explicit MessageReader(std::size_t max_message_bytes) noexcept : max_message_bytes_(max_message_bytes) {}

    // Takes the next WebSocket message's bytes, which must stay untouched until the next feed(); views handed
    // out by next() stay valid until then too.
    void feed(std::string_view bytes);

    // Sets `message` to the next complete message (without its prefix); false when the fed bytes hold no
    // more, or on an error (then error() is set and every later call returns false).
    bool next(std::string_view& message);

    // Empty while the stream is well formed.
    const std::string& error() const noexcept { return error_; }
    // True when bytes of an unfinished message are held.
    bool has_partial() const noexcept { return carry_pending_; }

private:
    std::size_t max_message_bytes_;
    std::string_view rest_;
    bool rest_in_carry_ = false;
    std::string carry_;  // an unfinished message, from carry_start_ on
    std::size_t carry_start_ = 0;
    bool carry_pending_ = false;
    std::string error_;
};

// Parses one message (without its prefix) into `out`, reusing out's buffers, with the same meaning as the
// JSON protocol's parse_message: a string argument (or item, or result) is kept as its text; any other value
// as its JSON text (binary data as a base64 string, timestamps as ISO 8601 strings, map keys that are
// integers as strings). Returns false with `error` set for bytes that are not one MessagePack array, a
// message type that is not an integer, a known message shorter than its required elements, an element of
// the wrong MessagePack type, a string that is not UTF-8, headers that are not a map of strings to strings,
// nesting deeper than 64 levels, or bytes after the array. `out` is unspecified after a failure.
bool parse_message(std::string_view message, HubMessage& out, std::string& error);

// ---- Writers: each appends one complete message, size prefix included, to `out`. ---------------------------

// [1, {}, nil, target, [string_argument], []]
void append_invocation(std::string& out, std::string_view target, std::string_view string_argument);
// [6]
void append_ping(std::string& out);
// [7, error|nil, allow_reconnect]: nil when `error` is empty, as the reference server writes it.
void append_close(std::string& out, std::string_view error, bool allow_reconnect);
// [3, {}, invocation_id, 1, error]
void append_completion_error(std::string& out, std::string_view invocation_id, std::string_view error);

}  // namespace hubflow::signalr::messagepack
