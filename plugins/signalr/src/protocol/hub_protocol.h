#pragma once
// The SignalR JSON hub protocol: the handshake, splitting a WebSocket text message into records, parsing
// records into messages and writing the messages hubflow sends. Pure codecs, shared by the server and the
// client side.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hubflow::signalr {

// Ends every record, the handshake included.
constexpr char record_separator = '\x1e';

// Message types of the hub protocol.
namespace message_type {
constexpr int invocation = 1;
constexpr int stream_item = 2;
constexpr int completion = 3;
constexpr int stream_invocation = 4;
constexpr int cancel_invocation = 5;
constexpr int ping = 6;
constexpr int close = 7;
}  // namespace message_type

// ---- Handshake --------------------------------------------------------------------------------------------

// The two hub protocols of ASP.NET Core SignalR. JSON: text WebSocket messages of records ending in 0x1E.
// MessagePack: binary WebSocket messages of size-prefixed MessagePack arrays (protocol/msgpack_protocol.h).
// The handshake is JSON text in both.
enum class HubProtocol : std::uint8_t { json, messagepack };

// "json" or "messagepack", as the handshake names them.
std::string_view protocol_name(HubProtocol protocol);

struct HandshakeResult {
    bool ok = false;
    std::string error;  // when !ok: for the server, the text to send back; for the client, why it failed
    HubProtocol protocol = HubProtocol::json;  // server side, when ok: the protocol the client asked for
};

// Server side: checks the client's handshake request. Accepts {"protocol":"json","version":1} and
// {"protocol":"messagepack","version":1}, and version 2 of each (version 2 differs only by stateful
// reconnect, which needs negotiation, so it is served as version 1); fields in any order, unknown fields
// ignored, protocol name case-insensitive as the reference server does. A trailing record separator, if
// present, is ignored.
HandshakeResult check_handshake(std::string_view record_without_separator);

// Server side: "{}\x1e" when `error` is empty, else {"error":"..."}\x1e.
std::string handshake_response(std::string_view error = {});

// Client side: {"protocol":"json","version":1}\x1e, or "messagepack".
std::string handshake_request(HubProtocol protocol = HubProtocol::json);

// Client side: reads the server's answer. {} is success, {"error":"..."} is a refusal (ok false, error the
// server's text); a message with a "type" means the server skipped the handshake. A trailing record
// separator, if present, is ignored.
HandshakeResult parse_handshake_response(std::string_view record);

// ---- Records ----------------------------------------------------------------------------------------------

// Splits one complete WebSocket text message into its records, without copying. A message that does not end
// with a separator yields nothing at all and reports "Message is incomplete.": a peer that split a record
// across messages is broken, and acting on the records before the broken one would be a guess. An empty
// message has no records; an empty record (two separators in a row) is yielded as an empty view, which the
// message parser rejects as it does any bad JSON.
class RecordSplitter {
public:
    explicit RecordSplitter(std::string_view message) noexcept;

    // Sets `record` to the next record, without its separator; false when there are no more (or on error).
    bool next(std::string_view& record) noexcept;

    // Empty when the message is well formed, else the error text.
    std::string_view error() const noexcept { return error_; }

private:
    std::string_view rest_;
    std::string_view error_;
};

// ---- Messages ---------------------------------------------------------------------------------------------

struct HubMessage {
    int type = 0;
    std::string invocation_id;
    bool has_invocation_id = false;
    std::string target;
    // Invocation and StreamInvocation: the arguments. StreamItem: its item; Completion: its result, if any.
    // Each: a JSON string's unescaped text when it is a string, else the value's JSON text as written.
    std::vector<std::string> arguments;
    std::vector<bool> argument_is_string;
    std::string error;  // Completion and Close
    bool has_error = false;
    bool has_result = false;       // Completion
    bool allow_reconnect = false;  // Close
};

// Parses one record (without its separator) into `out`, reusing out's buffers. Fields in any order,
// unknown fields ignored; a message of an unknown type parses fine (type kept) for the caller to skip.
// Returns false with `error` set on bad JSON, a record that is not an object, a missing or non-integer
// type, a known field of the wrong JSON type, a known type missing a required field (target and arguments
// for invocations; invocationId for stream items, completions and cancellations), or a Completion with both
// result and error. `out` is unspecified after a failure.
bool parse_message(std::string_view record, HubMessage& out, std::string& error);

namespace detail {
// The two halves of parse_message, visible so the tests can hold them against each other.

// The hot case, an Invocation whose arguments are all strings, parsed straight from the text. Returns false
// for anything else, valid or not: false means "not handled here", never "invalid". When it returns true,
// `out` equals what parse_message_poco produces for the same record.
bool parse_invocation_fast(std::string_view record, HubMessage& out);

// The general parser, on Poco's JSON parser.
bool parse_message_poco(std::string_view record, HubMessage& out, std::string& error);
}  // namespace detail

// ---- Writers ----------------------------------------------------------------------------------------------
// Each appends one complete record, separator included, to `out`.

// {"type":1,"target":"...","arguments":["<escaped>"]}
void append_invocation(std::string& out, std::string_view target, std::string_view string_argument);
// {"type":6}
void append_ping(std::string& out);
// {"type":7}, with "error" when `error` is not empty and "allowReconnect":true when asked.
void append_close(std::string& out, std::string_view error, bool allow_reconnect);
// {"type":3,"invocationId":"...","error":"..."}
void append_completion_error(std::string& out, std::string_view invocation_id, std::string_view error);

}  // namespace hubflow::signalr
