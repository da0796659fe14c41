#pragma once
// RFC 6455 framing for both ends of a connection: the SignalR server (which reads masked client frames and
// writes unmasked ones) and the SignalR client (the reverse). Pure codecs: no sockets, no threads, no clocks.

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/utf8.h"

namespace hubflow::signalr {

enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Which end of the connection decodes: a server expects masked frames, a client unmasked ones.
enum class Endpoint : std::uint8_t { server, client };

// Close codes this project sends or checks (RFC 6455 section 7.4.1).
namespace close_code {
constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t going_away = 1001;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t unsupported_data = 1003;
constexpr std::uint16_t no_status = 1005;  // never sent: what a Close without a payload means
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t policy_violation = 1008;
constexpr std::uint16_t message_too_big = 1009;
constexpr std::uint16_t internal_error = 1011;
}  // namespace close_code

// XORs `size` bytes in place with the masking key, starting at byte `offset` of the key's cycle.
void apply_mask(char* data, std::size_t size, const std::array<std::uint8_t, 4>& key, std::size_t offset = 0);

// Appends one complete frame (FIN set, minimal length encoding). Servers pass no mask; clients pass a fresh
// random key per frame, and the payload is masked on the way in.
void append_frame(std::string& out, Opcode op, std::string_view payload,
                  const std::array<std::uint8_t, 4>* mask = nullptr);

// The payload of a Close frame: the code in network order, then the reason. The reason is cut to 123 bytes
// at a character boundary so the frame stays within the 125-byte control-frame limit and valid UTF-8.
std::string close_payload(std::uint16_t code, std::string_view reason);

// True for the codes a peer may put in a Close frame: 1000-1003, 1007-1014 and 3000-4999.
bool is_valid_close_code(std::uint16_t code) noexcept;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC 6455 GUID)).
std::string websocket_accept_key(std::string_view sec_websocket_key);

struct WsEvent {
    enum Kind : std::uint8_t { text, binary, ping, pong, close };
    Kind kind = text;
    std::string payload;           // the whole message, the control payload, or the Close reason
    std::uint16_t close_code = 0;  // Close only: the peer's code, 1005 when its Close had no payload
};

// A WsEvent whose payload views bytes that stay valid until the decoder's next feed() or its end: the input
// itself when a whole unmasked frame was in it, else storage the decoder reuses. What a connection's read
// loop wants: no copy and no allocation per message.
struct WsView {
    WsEvent::Kind kind = WsEvent::text;
    std::string_view payload;
    std::uint16_t close_code = 0;
};

struct WsError {
    std::uint16_t close_code = 0;  // what to send in our Close before dropping the connection
    std::string reason;            // for logs; short enough to be a Close reason too
};

// Incremental decoder for one connection's inbound byte stream. Input may be split anywhere, down to single
// bytes. Data messages come out whole (continuation frames reassembled, control frames delivered when they
// arrive, even in the middle of a fragmented message). At most max_message_bytes of message data is held,
// plus a partial frame header (14 bytes) and one control frame (125 bytes): the size limit is applied to each
// frame's declared length before any of its payload is buffered.
class FrameDecoder {
public:
    FrameDecoder(Endpoint role, std::size_t max_message_bytes);

    // Decodes `bytes`, appending complete messages and control frames to `out`. Returns false on a protocol
    // violation: error() then says which close code to fail the connection with. Events appended before the
    // violation are genuine and may be acted on. After a violation every call returns false; after a Close
    // frame the rest of the input is ignored (the peer must send nothing after it). The views are valid until
    // the next call: `bytes` must stay untouched until then too.
    bool feed(std::string_view bytes, std::vector<WsView>& out);

    // The same, with events that own their payloads (a copy each), for callers that keep them.
    bool feed(std::string_view bytes, std::vector<WsEvent>& out);

    bool failed() const noexcept { return failed_; }
    const WsError& error() const noexcept { return error_; }
    bool close_received() const noexcept { return closed_; }
    // Bytes currently held: partial message, partial control frame, partial header.
    std::size_t buffered_bytes() const noexcept {
        return message_.size() + control_.size() + (in_payload_ ? 0 : header_have_);
    }

private:
    bool fail(std::uint16_t code, std::string reason);
    bool on_first_two_bytes();
    bool on_full_header();
    bool on_payload(const char* data, std::size_t size);
    bool on_frame_end(std::vector<WsView>& out);
    void reserve_message(std::uint64_t frame_length);
    // Moves `from`'s text into storage that lives until the next feed, handing `from` a spare buffer.
    std::string_view hold(std::string& from);

    Endpoint role_;
    std::size_t max_message_bytes_;

    // Header being assembled; it is 2 to 14 bytes long and header_need_ grows once the first two are known.
    std::array<std::uint8_t, 14> header_{};
    std::uint8_t header_have_ = 0;
    std::uint8_t header_need_ = 2;

    // Frame whose payload is being read.
    bool in_payload_ = false;
    bool fin_ = false;
    bool masked_ = false;
    Opcode opcode_ = Opcode::continuation;
    std::array<std::uint8_t, 4> mask_{};
    std::size_t mask_offset_ = 0;
    std::uint64_t remaining_ = 0;

    // Data message being reassembled.
    bool in_message_ = false;
    bool message_is_text_ = false;
    std::string message_;
    std::string control_;
    // Payloads of this feed's events that had to be copied (masked, fragmented, or split between two feeds).
    // The strings are reused from feed to feed, so their buffers are too. A deque, because views of short
    // payloads point into the string objects themselves, which must not move when more are added.
    std::deque<std::string> held_;
    std::size_t held_used_ = 0;
    std::vector<WsView> scratch_;  // for the owning feed()
    // The frame being read is a whole unfragmented unmasked data message: if all of it is in the input, it is
    // handed out as a view of the input.
    bool whole_candidate_ = false;
    Utf8Validator utf8_;

    bool failed_ = false;
    bool closed_ = false;
    WsError error_;
};

}  // namespace hubflow::signalr
