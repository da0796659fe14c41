#include "protocol/websocket.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using hubflow::signalr::append_frame;
using hubflow::signalr::apply_mask;
using hubflow::signalr::close_payload;
using hubflow::signalr::Endpoint;
using hubflow::signalr::FrameDecoder;
using hubflow::signalr::is_valid_close_code;
using hubflow::signalr::Opcode;
using hubflow::signalr::websocket_accept_key;
using hubflow::signalr::WsEvent;
using hubflow::signalr::WsView;
using Mask = std::array<std::uint8_t, 4>;

constexpr Mask test_mask{0x37, 0xfa, 0x21, 0x3d};  // the key of the RFC 6455 section 5.7 examples
constexpr std::size_t big_limit = 1 << 20;

std::string bytes(std::initializer_list<int> values) {
    std::string s;
    for (int v : values)
        s += static_cast<char>(v);
    return s;
}

// A frame with every header field under the test's control, including the ones append_frame never gets
// wrong: FIN, RSV bits, any opcode, and the length encoding (0 = minimal, else 7, 16 or 64 bits).
std::string raw_frame(std::uint8_t first_byte, std::string_view payload, const Mask* mask, int length_bits = 0,
                      std::uint64_t declared_length = UINT64_MAX) {
    const std::uint64_t size = declared_length == UINT64_MAX ? payload.size() : declared_length;
    if (length_bits == 0) length_bits = size < 126 ? 7 : size <= 0xFFFF ? 16 : 64;
    std::string f;
    f += static_cast<char>(first_byte);
    const int mask_bit = mask ? 0x80 : 0;
    if (length_bits == 7) {
        f += static_cast<char>(mask_bit | static_cast<int>(size));
    } else if (length_bits == 16) {
        f += static_cast<char>(mask_bit | 126);
        f += static_cast<char>(size >> 8);
        f += static_cast<char>(size & 0xFF);
    } else {
        f += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            f += static_cast<char>((size >> shift) & 0xFF);
    }
    std::string body(payload);
    if (mask) {
        f.append(reinterpret_cast<const char*>(mask->data()), 4);
        for (std::size_t i = 0; i < body.size(); ++i)
            body[i] = static_cast<char>(body[i] ^ (*mask)[i % 4]);
    }
    return f + body;
}

// What a client sends: masked. `fin` false makes a fragment.
std::string client_frame(Opcode op, std::string_view payload, bool fin = true) {
    return raw_frame(static_cast<std::uint8_t>((fin ? 0x80 : 0) | static_cast<int>(op)), payload, &test_mask);
}

std::string server_frame(Opcode op, std::string_view payload, bool fin = true) {
    return raw_frame(static_cast<std::uint8_t>((fin ? 0x80 : 0) | static_cast<int>(op)), payload, nullptr);
}

struct Decoded {
    bool ok = true;
    std::vector<WsEvent> events;
    std::uint16_t close_code = 0;
    std::string reason;
};

// Feeds `input` in pieces of `chunk` bytes (0 = all at once).
Decoded decode(std::string_view input, Endpoint role = Endpoint::server, std::size_t limit = big_limit,
               std::size_t chunk = 0) {
    FrameDecoder d(role, limit);
    Decoded r;
    if (chunk == 0) chunk = input.size() + 1;
    for (std::size_t i = 0; i < input.size() && r.ok; i += chunk)
        r.ok = d.feed(input.substr(i, chunk), r.events);
    if (input.empty()) r.ok = d.feed({}, r.events);
    r.close_code = d.error().close_code;
    r.reason = d.error().reason;
    EXPECT_EQ(r.ok, !d.failed());
    return r;
}

// Decodes a stream that must be refused, and checks the close code, whole and byte by byte.
void expect_violation(std::string_view input, std::uint16_t code, Endpoint role = Endpoint::server,
                      std::size_t limit = big_limit) {
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
        Decoded r = decode(input, role, limit, chunk);
        EXPECT_FALSE(r.ok) << "chunk " << chunk;
        EXPECT_EQ(r.close_code, code) << "chunk " << chunk << ": " << r.reason;
        EXPECT_FALSE(r.reason.empty());
    }
}

std::string text_of(const WsEvent& e) {
    return e.payload;
}

bool same_events(const std::vector<WsEvent>& a, const std::vector<WsEvent>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].kind != b[i].kind || a[i].payload != b[i].payload || a[i].close_code != b[i].close_code) return false;
    return true;
}

// ---- Encoding -------------------------------------------------------------------------------------------------

TEST(WebSocketEncode, RfcUnmaskedText) {
    std::string out;
    append_frame(out, Opcode::text, "Hello");
    EXPECT_EQ(out, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
}

TEST(WebSocketEncode, RfcMaskedText) {
    std::string out;
    append_frame(out, Opcode::text, "Hello", &test_mask);
    EXPECT_EQ(out, bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST(WebSocketEncode, RfcPing) {
    std::string out;
    append_frame(out, Opcode::ping, "Hello");
    EXPECT_EQ(out, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
}

TEST(WebSocketEncode, RfcLengths) {
    std::string out;
    append_frame(out, Opcode::binary, std::string(256, 'x'));
    EXPECT_EQ(out.substr(0, 4), bytes({0x82, 0x7E, 0x01, 0x00}));
    EXPECT_EQ(out.size(), 4u + 256);

    out.clear();
    append_frame(out, Opcode::binary, std::string(65536, 'x'));
    EXPECT_EQ(out.substr(0, 10), bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
    EXPECT_EQ(out.size(), 10u + 65536);
}

TEST(WebSocketEncode, MinimalLengthEncodingAtTheBoundaries) {
    struct Case {
        std::size_t size;
        std::size_t header;
        int len_byte;
    };
    for (Case c : {Case{0, 2, 0}, Case{125, 2, 125}, Case{126, 4, 126}, Case{65535, 4, 126}, Case{65536, 10, 127},
                   Case{100000, 10, 127}}) {
        std::string out;
        append_frame(out, Opcode::text, std::string(c.size, 'a'));
        EXPECT_EQ(out.size(), c.header + c.size) << c.size;
        EXPECT_EQ(static_cast<std::uint8_t>(out[1]), c.len_byte) << c.size;
        out.clear();
        append_frame(out, Opcode::text, std::string(c.size, 'a'), &test_mask);
        EXPECT_EQ(out.size(), c.header + 4 + c.size) << c.size;
        EXPECT_EQ(static_cast<std::uint8_t>(out[1]), 0x80 | c.len_byte) << c.size;
    }
}

TEST(WebSocketEncode, AppendsWithoutTouchingWhatIsThere) {
    std::string out = "prefix";
    append_frame(out, Opcode::text, "a");
    append_frame(out, Opcode::pong, "");
    EXPECT_EQ(out, "prefix" + bytes({0x81, 0x01, 'a', 0x8A, 0x00}));
}

TEST(WebSocketEncode, ApplyMaskMatchesTheBytewiseDefinition) {
    std::mt19937 rng(7);
    for (std::size_t size = 0; size < 40; ++size) {
        for (std::size_t offset = 0; offset < 6; ++offset) {
            std::string data(size, '\0');
            for (auto& c : data)
                c = static_cast<char>(rng());
            std::string expected = data;
            for (std::size_t i = 0; i < size; ++i)
                expected[i] = static_cast<char>(expected[i] ^ test_mask[(offset + i) % 4]);
            apply_mask(data.data(), data.size(), test_mask, offset);
            EXPECT_EQ(data, expected) << size << "/" << offset;
        }
    }
}

TEST(WebSocketEncode, ClosePayload) {
    EXPECT_EQ(close_payload(1000, ""), bytes({0x03, 0xE8}));
    EXPECT_EQ(close_payload(1011, "oops"), bytes({0x03, 0xF3}) + "oops");
    EXPECT_EQ(close_payload(4999, "x"), bytes({0x13, 0x87, 'x'}));
}

TEST(WebSocketEncode, ClosePayloadCutsLongReasonsAtACharacterBoundary) {
    EXPECT_EQ(close_payload(1000, std::string(200, 'r')).size(), 125u);
    // 41 three-byte characters are 123 bytes: fits exactly; one more ASCII byte in front forces a cut
    // that must back up to 121 bytes rather than split a character.
    std::string euros;
    for (int i = 0; i < 41; ++i)
        euros += "\xE2\x82\xAC";
    EXPECT_EQ(close_payload(1000, euros).size(), 125u);
    const std::string cut = close_payload(1000, "a" + euros);
    EXPECT_EQ(cut.size(), 2u + 1 + 40 * 3);
    EXPECT_TRUE(hubflow::signalr::is_valid_utf8(std::string_view(cut).substr(2)));
}

TEST(WebSocketEncode, ValidCloseCodes) {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999})
        EXPECT_TRUE(is_valid_close_code(static_cast<std::uint16_t>(code))) << code;
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535})
        EXPECT_FALSE(is_valid_close_code(static_cast<std::uint16_t>(code))) << code;
}

TEST(WebSocketHandshake, AcceptKeyRfcSample) {
    EXPECT_EQ(websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

// ---- Decoding ---------------------------------------------------------------------------------------------------

TEST(WebSocketDecode, SingleMaskedTextFrame) {
    Decoded r = decode(client_frame(Opcode::text, "Hello"));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].kind, WsEvent::text);
    EXPECT_EQ(r.events[0].payload, "Hello");
}

TEST(WebSocketDecode, RfcMaskedSampleBytes) {
    Decoded r = decode(bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].payload, "Hello");
}

TEST(WebSocketDecode, ClientRoleReadsUnmaskedFrames) {
    Decoded r =
        decode(server_frame(Opcode::text, "Hello") + server_frame(Opcode::binary, bytes({0, 1, 2})), Endpoint::client);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 2u);
    EXPECT_EQ(r.events[0].payload, "Hello");
    EXPECT_EQ(r.events[1].kind, WsEvent::binary);
    EXPECT_EQ(r.events[1].payload, bytes({0, 1, 2}));
}

TEST(WebSocketDecode, RoundTripsEveryLengthEncoding) {
    for (std::size_t size : {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}) {
        std::string payload(size, '\0');
        for (std::size_t i = 0; i < size; ++i)
            payload[i] = static_cast<char>('a' + i % 26);
        std::string masked, plain;
        append_frame(masked, Opcode::text, payload, &test_mask);
        append_frame(plain, Opcode::text, payload);
        for (auto [stream, role] : {std::pair{masked, Endpoint::server}, std::pair{plain, Endpoint::client}}) {
            Decoded r = decode(stream, role);
            ASSERT_TRUE(r.ok) << size << ": " << r.reason;
            ASSERT_EQ(r.events.size(), 1u);
            EXPECT_EQ(r.events[0].payload, payload) << size;
        }
    }
}

TEST(WebSocketDecode, NonMinimalLengthEncodingsAreAccepted) {
    // The RFC asks senders for the minimal form; readers in the wild accept the others, and so do we.
    Decoded r = decode(raw_frame(0x81, "Hello", &test_mask, 16) + raw_frame(0x81, "abc", &test_mask, 64));
    ASSERT_TRUE(r.ok) << r.reason;
    ASSERT_EQ(r.events.size(), 2u);
    EXPECT_EQ(r.events[0].payload, "Hello");
    EXPECT_EQ(r.events[1].payload, "abc");
}

TEST(WebSocketDecode, RfcFragmentedText) {
    Decoded r = decode(client_frame(Opcode::text, "Hel", false) + client_frame(Opcode::continuation, "lo"));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].kind, WsEvent::text);
    EXPECT_EQ(r.events[0].payload, "Hello");
}

TEST(WebSocketDecode, ControlFramesInsideAFragmentedMessage) {
    const std::string stream = client_frame(Opcode::text, "one ", false) + client_frame(Opcode::ping, "p1") +
                               client_frame(Opcode::continuation, "two ", false) + client_frame(Opcode::pong, "p2") +
                               client_frame(Opcode::continuation, "three");
    Decoded r = decode(stream);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 3u);
    EXPECT_EQ(r.events[0].kind, WsEvent::ping);
    EXPECT_EQ(r.events[0].payload, "p1");
    EXPECT_EQ(r.events[1].kind, WsEvent::pong);
    EXPECT_EQ(r.events[1].payload, "p2");
    EXPECT_EQ(r.events[2].kind, WsEvent::text);
    EXPECT_EQ(r.events[2].payload, "one two three");
}

TEST(WebSocketDecode, FragmentedBinaryAndEmptyFragments) {
    const std::string stream = client_frame(Opcode::binary, "", false) +
                               client_frame(Opcode::continuation, bytes({0xFF, 0x00}), false) +
                               client_frame(Opcode::continuation, "");
    Decoded r = decode(stream);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].kind, WsEvent::binary);
    EXPECT_EQ(r.events[0].payload, bytes({0xFF, 0x00}));
}

TEST(WebSocketDecode, EmptyMessagesAndControlFrames) {
    Decoded r = decode(client_frame(Opcode::text, "") + client_frame(Opcode::ping, "") +
                       client_frame(Opcode::ping, std::string(125, 'p')));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 3u);
    EXPECT_EQ(r.events[0].kind, WsEvent::text);
    EXPECT_EQ(r.events[0].payload, "");
    EXPECT_EQ(r.events[1].kind, WsEvent::ping);
    EXPECT_EQ(r.events[2].payload, std::string(125, 'p'));
}

TEST(WebSocketDecode, Utf8CharacterSplitAcrossFragments) {
    // U+1F600 is F0 9F 98 80; cut it after every byte.
    const std::string smile = "\xF0\x9F\x98\x80";
    for (std::size_t cut = 1; cut < 4; ++cut) {
        Decoded r = decode(client_frame(Opcode::text, "a" + smile.substr(0, cut), false) +
                           client_frame(Opcode::continuation, smile.substr(cut) + "b"));
        ASSERT_TRUE(r.ok) << cut << ": " << r.reason;
        ASSERT_EQ(r.events.size(), 1u);
        EXPECT_EQ(r.events[0].payload, "a" + smile + "b");
    }
}

// A stream with a bit of everything, and every way of cutting it.
std::string mixed_stream() {
    std::string s;
    s += client_frame(Opcode::text, R"({"protocol":"json","version":1})" + std::string(1, '\x1e'));
    s += client_frame(Opcode::text, "frag-", false);
    s += client_frame(Opcode::ping, "are you there");
    s += client_frame(Opcode::continuation, std::string(300, 'x'), false);
    s += client_frame(Opcode::continuation, "\xC3\xA9nd");
    s += client_frame(Opcode::binary, std::string(70000, 'b'));
    s += client_frame(Opcode::pong, "");
    s += client_frame(Opcode::close, close_payload(1000, "bye"));
    return s;
}

TEST(WebSocketDecode, MixedStreamAllAtOnce) {
    Decoded r = decode(mixed_stream());
    ASSERT_TRUE(r.ok) << r.reason;
    ASSERT_EQ(r.events.size(), 6u);
    EXPECT_EQ(r.events[0].payload, R"({"protocol":"json","version":1})" + std::string(1, '\x1e'));
    EXPECT_EQ(r.events[1].kind, WsEvent::ping);
    EXPECT_EQ(r.events[2].payload, "frag-" + std::string(300, 'x') + "\xC3\xA9nd");
    EXPECT_EQ(r.events[3].kind, WsEvent::binary);
    EXPECT_EQ(r.events[3].payload.size(), 70000u);
    EXPECT_EQ(r.events[4].kind, WsEvent::pong);
    EXPECT_EQ(r.events[5].kind, WsEvent::close);
    EXPECT_EQ(r.events[5].close_code, 1000);
    EXPECT_EQ(r.events[5].payload, "bye");
}

TEST(WebSocketDecode, MixedStreamByteByByte) {
    Decoded whole = decode(mixed_stream());
    Decoded bytewise = decode(mixed_stream(), Endpoint::server, big_limit, 1);
    ASSERT_TRUE(bytewise.ok) << bytewise.reason;
    EXPECT_TRUE(same_events(whole.events, bytewise.events));
}

TEST(WebSocketDecode, EverySplitPointIntoTwoPieces) {
    // Smaller stream so every cut can be tried; covers cuts inside every header field and the payloads.
    std::string s = client_frame(Opcode::text, "ab", false) + client_frame(Opcode::ping, "p") +
                    client_frame(Opcode::continuation, std::string(130, 'c')) + raw_frame(0x82, "bin", &test_mask, 64) +
                    client_frame(Opcode::close, "");
    Decoded whole = decode(s);
    ASSERT_TRUE(whole.ok);
    ASSERT_EQ(whole.events.size(), 4u);
    for (std::size_t cut = 0; cut <= s.size(); ++cut) {
        FrameDecoder d(Endpoint::server, big_limit);
        std::vector<WsEvent> events;
        ASSERT_TRUE(d.feed(std::string_view(s).substr(0, cut), events));
        ASSERT_TRUE(d.feed(std::string_view(s).substr(cut), events));
        EXPECT_TRUE(same_events(events, whole.events)) << "cut at " << cut;
    }
}

TEST(WebSocketDecode, RandomSplitsOfRandomStreams) {
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
        std::string stream;
        std::vector<WsEvent> expected;
        const int messages = 1 + static_cast<int>(rng() % 6);
        for (int m = 0; m < messages; ++m) {
            const bool text = rng() % 2;
            std::string message;
            const int fragments = 1 + static_cast<int>(rng() % 4);
            for (int f = 0; f < fragments; ++f) {
                std::string piece(rng() % 200, '\0');
                for (auto& c : piece)
                    c = static_cast<char>(text ? 'a' + rng() % 26 : rng());
                if (rng() % 3 == 0) piece = std::string(70000 + rng() % 100, 'L');
                message += piece;
                const Opcode op = f == 0 ? (text ? Opcode::text : Opcode::binary) : Opcode::continuation;
                stream += client_frame(op, piece, f + 1 == fragments);
                // Pings between fragments come out before the message, which is only complete at its end.
                if (f + 1 < fragments && rng() % 2) {
                    std::string ping(rng() % 126, 'p');
                    stream += client_frame(Opcode::ping, ping);
                    expected.push_back(WsEvent{WsEvent::ping, ping, 0});
                }
            }
            expected.push_back(WsEvent{text ? WsEvent::text : WsEvent::binary, message, 0});
        }
        FrameDecoder d(Endpoint::server, big_limit);
        std::vector<WsEvent> events;
        for (std::size_t pos = 0; pos < stream.size();) {
            const std::size_t n = std::min<std::size_t>(stream.size() - pos, 1 + rng() % 300);
            ASSERT_TRUE(d.feed(std::string_view(stream).substr(pos, n), events)) << d.error().reason;
            pos += n;
        }
        ASSERT_TRUE(same_events(events, expected)) << "round " << round;
    }
}

// ---- Violations --------------------------------------------------------------------------------------------------

TEST(WebSocketViolation, UnmaskedClientFrame) {
    expect_violation(server_frame(Opcode::text, "hi"), 1002);
}

TEST(WebSocketViolation, MaskedServerFrame) {
    expect_violation(client_frame(Opcode::text, "hi"), 1002, Endpoint::client);
}

TEST(WebSocketViolation, ReservedBits) {
    for (int rsv : {0x40, 0x20, 0x10, 0x70})
        expect_violation(raw_frame(static_cast<std::uint8_t>(0x81 | rsv), "hi", &test_mask), 1002);
}

TEST(WebSocketViolation, ReservedOpcodes) {
    for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15})
        expect_violation(raw_frame(static_cast<std::uint8_t>(0x80 | op), "", &test_mask), 1002);
}

TEST(WebSocketViolation, ControlFrameOver125Bytes) {
    expect_violation(client_frame(Opcode::ping, std::string(126, 'p')), 1002);
    expect_violation(client_frame(Opcode::close, close_payload(1000, "") + std::string(124, 'r')), 1002);
}

TEST(WebSocketViolation, FragmentedControlFrame) {
    expect_violation(client_frame(Opcode::ping, "p", false), 1002);
    expect_violation(client_frame(Opcode::close, "", false), 1002);
}

TEST(WebSocketViolation, ContinuationWithoutAMessage) {
    expect_violation(client_frame(Opcode::continuation, "x"), 1002);
    // Also after a message has been completed.
    expect_violation(client_frame(Opcode::text, "done") + client_frame(Opcode::continuation, "x"), 1002);
}

TEST(WebSocketViolation, NewDataFrameInsideAFragmentedMessage) {
    expect_violation(client_frame(Opcode::text, "a", false) + client_frame(Opcode::text, "b"), 1002);
    expect_violation(client_frame(Opcode::binary, "a", false) + client_frame(Opcode::binary, "b"), 1002);
}

TEST(WebSocketViolation, SixtyFourBitLengthWithTheHighBitSet) {
    expect_violation(raw_frame(0x82, "", &test_mask, 64, 0x8000000000000000ULL), 1002);
}

TEST(WebSocketViolation, MessageOverTheLimit) {
    expect_violation(client_frame(Opcode::text, std::string(101, 'x')), 1009, Endpoint::server, 100);
    expect_violation(client_frame(Opcode::binary, std::string(101, 'x')), 1009, Endpoint::server, 100);
    // The limit is on the whole message, not each fragment.
    expect_violation(client_frame(Opcode::text, std::string(60, 'x'), false) +
                         client_frame(Opcode::continuation, std::string(41, 'x')),
                     1009, Endpoint::server, 100);
}

TEST(WebSocketViolation, MessageAtTheLimitIsFine) {
    Decoded r = decode(client_frame(Opcode::text, std::string(60, 'x'), false) +
                           client_frame(Opcode::continuation, std::string(40, 'x')),
                       Endpoint::server, 100);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.events.at(0).payload.size(), 100u);
    // Control frames do not count against the message limit.
    EXPECT_TRUE(decode(client_frame(Opcode::ping, std::string(125, 'p')), Endpoint::server, 10).ok);
}

TEST(WebSocketViolation, OversizedMessageIsRefusedOnItsHeaderAlone) {
    // A peer declaring a huge frame is refused before it sends (and we hold) any payload.
    FrameDecoder d(Endpoint::server, 32 * 1024);
    std::vector<WsEvent> events;
    const std::string frame = raw_frame(0x82, "", &test_mask, 64, 1ULL << 40);
    ASSERT_EQ(frame.size(), 14u);
    EXPECT_FALSE(d.feed(frame, events));
    EXPECT_EQ(d.error().close_code, 1009);
    EXPECT_EQ(d.buffered_bytes(), 0u);

    FrameDecoder d2(Endpoint::server, 100);
    const std::string header = raw_frame(0x81, "", &test_mask, 16, 101);
    EXPECT_FALSE(d2.feed(header, events));
    EXPECT_EQ(d2.error().close_code, 1009);
}

TEST(WebSocketViolation, BufferingStaysBounded) {
    constexpr std::size_t limit = 1000;
    const std::string stream = client_frame(Opcode::text, std::string(600, 'a'), false) +
                               client_frame(Opcode::ping, std::string(125, 'p')) +
                               client_frame(Opcode::continuation, std::string(400, 'b'));
    FrameDecoder d(Endpoint::server, limit);
    std::vector<WsEvent> events;
    std::size_t most = 0;
    for (char c : stream) {
        ASSERT_TRUE(d.feed(std::string_view(&c, 1), events));
        most = std::max(most, d.buffered_bytes());
    }
    EXPECT_LE(most, limit + 125 + 14);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].payload.size(), limit);
    EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(WebSocketViolation, InvalidUtf8InText) {
    for (const std::string& bad :
         {bytes({0x80}), bytes({0xC0, 0xAF}), bytes({0xC1, 0xBF}), bytes({0xE0, 0x80, 0xAF}), bytes({0xED, 0xA0, 0x80}),
          bytes({0xF0, 0x80, 0x80, 0xAF}), bytes({0xF4, 0x90, 0x80, 0x80}), bytes({0xF5, 0x80, 0x80, 0x80}),
          bytes({0xFF}), bytes({0xC3, 0x28}), bytes({0xE2, 0x82, 0x28})})
        expect_violation(client_frame(Opcode::text, "ok " + bad + " ok"), 1007);
}

TEST(WebSocketViolation, TextEndingInsideACharacter) {
    expect_violation(client_frame(Opcode::text, "ab\xE2\x82"), 1007);
    expect_violation(client_frame(Opcode::text, "ab\xE2", false) + client_frame(Opcode::continuation, ""), 1007);
}

TEST(WebSocketViolation, InvalidUtf8FailsBeforeTheMessageEnds) {
    FrameDecoder d(Endpoint::server, big_limit);
    std::vector<WsEvent> events;
    EXPECT_FALSE(d.feed(client_frame(Opcode::text, "a\xFF", false), events));
    EXPECT_EQ(d.error().close_code, 1007);
}

TEST(WebSocketViolation, BinaryIsNotUtf8Checked) {
    Decoded r = decode(client_frame(Opcode::binary, bytes({0xFF, 0xC0, 0x80})));
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.events.at(0).payload, bytes({0xFF, 0xC0, 0x80}));
}

TEST(WebSocketViolation, ValidUtf8Accepted) {
    const std::string text = "plain \xC3\xA9 \xE2\x82\xAC \xED\x9F\xBF \xEE\x80\x80 \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF";
    Decoded r = decode(client_frame(Opcode::text, text), Endpoint::server, big_limit, 1);
    ASSERT_TRUE(r.ok) << r.reason;
    EXPECT_EQ(r.events.at(0).payload, text);
}

TEST(WebSocketViolation, CloseWithOneBytePayload) {
    expect_violation(client_frame(Opcode::close, "x"), 1002);
}

TEST(WebSocketViolation, CloseWithForbiddenCodes) {
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        expect_violation(client_frame(Opcode::close, bytes({code >> 8, code & 0xFF})), 1002);
}

TEST(WebSocketViolation, CloseWithInvalidUtf8Reason) {
    expect_violation(client_frame(Opcode::close, bytes({0x03, 0xE8, 0xC3, 0x28})), 1002);
    expect_violation(client_frame(Opcode::close, bytes({0x03, 0xE8, 0xE2, 0x82})), 1002);
}

TEST(WebSocketViolation, StaysFailed) {
    FrameDecoder d(Endpoint::server, big_limit);
    std::vector<WsEvent> events;
    EXPECT_FALSE(d.feed(server_frame(Opcode::text, "unmasked"), events));
    EXPECT_TRUE(d.failed());
    EXPECT_FALSE(d.feed(client_frame(Opcode::text, "fine"), events));
    EXPECT_TRUE(events.empty());
    EXPECT_EQ(d.error().close_code, 1002);
}

TEST(WebSocketViolation, EventsBeforeTheViolationAreDelivered) {
    FrameDecoder d(Endpoint::server, big_limit);
    std::vector<WsEvent> events;
    EXPECT_FALSE(
        d.feed(client_frame(Opcode::text, "first") + client_frame(Opcode::ping, "p") + raw_frame(0x83, "", &test_mask),
               events));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(text_of(events[0]), "first");
    EXPECT_EQ(events[1].kind, WsEvent::ping);
}

// ---- Close -------------------------------------------------------------------------------------------------------

TEST(WebSocketClose, ValidCodesAndReasons) {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999}) {
        Decoded r =
            decode(client_frame(Opcode::close, close_payload(static_cast<std::uint16_t>(code), "why \xC3\xA9")));
        ASSERT_TRUE(r.ok) << code;
        ASSERT_EQ(r.events.size(), 1u);
        EXPECT_EQ(r.events[0].kind, WsEvent::close);
        EXPECT_EQ(r.events[0].close_code, code);
        EXPECT_EQ(r.events[0].payload, "why \xC3\xA9");
    }
}

TEST(WebSocketClose, EmptyCloseMeansNoStatus) {
    Decoded r = decode(client_frame(Opcode::close, ""));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].close_code, 1005);
    EXPECT_EQ(r.events[0].payload, "");
}

TEST(WebSocketClose, NothingIsReadAfterAClose) {
    FrameDecoder d(Endpoint::server, big_limit);
    std::vector<WsEvent> events;
    EXPECT_TRUE(d.feed(client_frame(Opcode::close, close_payload(1001, "")) + client_frame(Opcode::text, "late") +
                           "garbage that would be a violation",
                       events));
    EXPECT_TRUE(d.close_received());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].close_code, 1001);
    EXPECT_TRUE(d.feed(client_frame(Opcode::text, "later"), events));
    EXPECT_EQ(events.size(), 1u);
}

TEST(WebSocketClose, CloseInsideAFragmentedMessageDropsIt) {
    Decoded r = decode(client_frame(Opcode::text, "half", false) + client_frame(Opcode::close, ""));
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].kind, WsEvent::close);
}

// ---- UTF-8 validator ---------------------------------------------------------------------------------------------

TEST(Utf8, WholeAndChunkedAgree) {
    const std::vector<std::pair<std::string, bool>> cases = {
        {"", true},
        {"ascii only, long enough for the eight-byte loop", true},
        {"\xC2\x80\xDF\xBF", true},
        {"\xE0\xA0\x80\xEF\xBF\xBF", true},
        {"\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", true},
        {"\xED\x9F\xBF", true},
        {"\xED\xA0\x80", false},
        {"\xC0\x80", false},
        {"\xE0\x9F\xBF", false},
        {"\xF0\x8F\xBF\xBF", false},
        {"\xF4\x90\x80\x80", false},
        {"\xF8\x88\x80\x80\x80", false},
        {"abcdefgh\x80", false},
        {"\xC2", false},
        {"abcdefghijklmnop\xE2\x82", false},
    };
    for (const auto& [text, valid] : cases) {
        EXPECT_EQ(hubflow::signalr::is_valid_utf8(text), valid) << text;
        hubflow::signalr::Utf8Validator v;
        bool ok = true;
        for (char c : text)
            ok = v.feed(std::string_view(&c, 1)) && ok;
        EXPECT_EQ(ok && v.complete(), valid) << text;
    }
}

}  // namespace

TEST(FrameDecoderViews, AWholeUnmaskedMessageIsAViewOfTheInput) {
    FrameDecoder d(Endpoint::client, big_limit);
    const std::string input = server_frame(Opcode::text, "first") + server_frame(Opcode::binary, "second") +
                              server_frame(Opcode::ping, "p") + server_frame(Opcode::text, "third");
    std::vector<WsView> views;
    ASSERT_TRUE(d.feed(input, views));
    ASSERT_EQ(views.size(), 4u);
    EXPECT_EQ(views[0].kind, WsEvent::text);
    EXPECT_EQ(views[0].payload, "first");
    EXPECT_EQ(views[1].kind, WsEvent::binary);
    EXPECT_EQ(views[1].payload, "second");
    EXPECT_EQ(views[2].kind, WsEvent::ping);
    EXPECT_EQ(views[2].payload, "p");
    EXPECT_EQ(views[3].payload, "third");
    const auto inside = [&](std::string_view v) {
        return v.data() >= input.data() && v.data() + v.size() <= input.data() + input.size();
    };
    EXPECT_TRUE(inside(views[0].payload));
    EXPECT_TRUE(inside(views[1].payload));
    EXPECT_TRUE(inside(views[3].payload));
}

TEST(FrameDecoderViews, CopiedMessagesStayValidUntilTheNextFeedAndReuseTheirStorage) {
    // A message split between two reads, a fragmented one and a masked one are copied; their views hold
    // until the next feed, and after the first rounds no new storage is taken.
    FrameDecoder d(Endpoint::client, big_limit);
    std::vector<WsView> views;
    std::set<const char*> storage;
    for (int round = 0; round < 50; ++round) {
        const std::string message = "round " + std::to_string(100 + round) + std::string(300, 'x');  // one length
        const std::string split = server_frame(Opcode::text, message);
        const std::string fragments = server_frame(Opcode::text, "frag", false) + server_frame(Opcode::ping, "") +
                                      server_frame(Opcode::continuation, "ment");
        views.clear();
        ASSERT_TRUE(d.feed(std::string_view(split).substr(0, 100), views));
        EXPECT_TRUE(views.empty());
        std::string second = split.substr(100) + fragments;
        ASSERT_TRUE(d.feed(second, views));
        second.assign(second.size(), '\0');  // the views of copied payloads do not depend on the input
        ASSERT_EQ(views.size(), 3u);
        EXPECT_EQ(views[0].payload, message);
        EXPECT_EQ(views[1].kind, WsEvent::ping);
        EXPECT_EQ(views[2].payload, "fragment");
        if (round >= 5) {
            EXPECT_TRUE(storage.count(views[0].payload.data())) << "round " << round;
            EXPECT_TRUE(storage.count(views[2].payload.data())) << "round " << round;
        }
        storage.insert(views[0].payload.data());
        storage.insert(views[2].payload.data());
    }
}

TEST(FrameDecoderViews, ViewsBeforeAViolationStayUsable) {
    FrameDecoder d(Endpoint::client, big_limit);
    std::vector<WsView> views;
    std::string input = server_frame(Opcode::text, "fine", false) + server_frame(Opcode::continuation, " too") +
                        server_frame(Opcode::text, "\xC3\x28");
    EXPECT_FALSE(d.feed(input, views));
    ASSERT_EQ(views.size(), 1u);
    EXPECT_EQ(views[0].payload, "fine too");
    EXPECT_EQ(d.error().close_code, 1007);
}

TEST(FrameDecoderViews, ManyShortCopiedMessagesInOneFeedKeepTheirText) {
    // Masked frames are always copied; short payloads live inside the held string objects themselves, so
    // those must not move while a feed adds more (the sanitizer build checks the reads below).
    FrameDecoder d(Endpoint::server, big_limit);
    std::string input;
    for (int i = 0; i < 200; ++i)
        input += client_frame(Opcode::text, "m" + std::to_string(i));
    std::vector<WsView> views;
    ASSERT_TRUE(d.feed(input, views));
    ASSERT_EQ(views.size(), 200u);
    for (int i = 0; i < 200; ++i)
        EXPECT_EQ(views[static_cast<std::size_t>(i)].payload, "m" + std::to_string(i));
}
