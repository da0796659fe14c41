#include "protocol/msgpack_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "msgpack_test_support.h"

namespace {

namespace mp = hubflow::signalr::messagepack;
using hubflow::signalr::HubMessage;
using hubflow::signalr::testing::Pack;
using hubflow::signalr::testing::prefixed;

HubMessage parse_ok(const std::string& body) {
    HubMessage m;
    std::string error;
    EXPECT_TRUE(mp::parse_message(body, m, error)) << error;
    return m;
}

std::string parse_error(const std::string& body) {
    HubMessage m;
    std::string error;
    EXPECT_FALSE(mp::parse_message(body, m, error));
    EXPECT_FALSE(error.empty());
    return error;
}

// The one message in a writer's output, prefix checked and removed.
std::string body_of(const std::string& written) {
    std::uint32_t length = 0;
    std::size_t prefix = 0;
    EXPECT_EQ(mp::read_length_prefix(written, length, prefix), mp::PrefixStatus::complete);
    EXPECT_EQ(prefix + length, written.size());
    return written.substr(prefix);
}

std::vector<std::string> read_all(mp::MessageReader& reader, std::string_view bytes) {
    reader.feed(bytes);
    std::vector<std::string> out;
    std::string_view m;
    while (reader.next(m))
        out.emplace_back(m);
    return out;
}

// ---- size prefix --------------------------------------------------------------------------------------------------

TEST(LengthPrefix, KnownEncodings) {
    struct Case {
        std::uint32_t value;
        std::string bytes;
    };
    for (const Case& c : std::vector<Case>{{0, std::string(1, '\0')},
                                           {1, "\x01"},
                                           {127, "\x7f"},
                                           {128, "\x80\x01"},
                                           {16383, "\xff\x7f"},
                                           {16384, "\x80\x80\x01"},
                                           {0x7FFFFFFF, "\xff\xff\xff\xff\x07"}}) {
        std::string out;
        mp::append_length_prefix(out, c.value);
        EXPECT_EQ(out, c.bytes) << c.value;
        std::uint32_t value = 0;
        std::size_t size = 0;
        ASSERT_EQ(mp::read_length_prefix(out + "rest", value, size), mp::PrefixStatus::complete);
        EXPECT_EQ(value, c.value);
        EXPECT_EQ(size, c.bytes.size());
    }
}

TEST(LengthPrefix, IncompleteAndInvalid) {
    std::uint32_t value = 0;
    std::size_t size = 0;
    EXPECT_EQ(mp::read_length_prefix("", value, size), mp::PrefixStatus::incomplete);
    EXPECT_EQ(mp::read_length_prefix("\x80", value, size), mp::PrefixStatus::incomplete);
    EXPECT_EQ(mp::read_length_prefix("\xff\xff\xff\xff", value, size), mp::PrefixStatus::incomplete);
    // A fifth byte over 7 means 2 GiB or more; a sixth byte is never allowed.
    EXPECT_EQ(mp::read_length_prefix("\xff\xff\xff\xff\x08", value, size), mp::PrefixStatus::invalid);
    EXPECT_EQ(mp::read_length_prefix("\x80\x80\x80\x80\x80\x01", value, size), mp::PrefixStatus::invalid);
}

// ---- writers ------------------------------------------------------------------------------------------------------

TEST(Writers, InvocationIsTheReferenceLayout) {
    std::string out = "kept";
    mp::append_invocation(out, "ReceiveMessage", "{\"id\":1}");
    const std::string expected =
        Pack().array(6).uint(1).map(0).nil().str("ReceiveMessage").array(1).str("{\"id\":1}").array(0).bytes();
    EXPECT_EQ(out, "kept" + prefixed(expected));
}

TEST(Writers, InvocationOfEveryStringSize) {
    // fixstr, str8, str16 and str32 headers, and prefixes of 1, 2 and 3 bytes.
    for (std::size_t n : {0u, 31u, 32u, 255u, 256u, 65535u, 65536u, 200000u}) {
        const std::string payload(n, 'x');
        std::string out;
        mp::append_invocation(out, "ReceiveMessage", payload);
        HubMessage m = parse_ok(body_of(out));
        EXPECT_EQ(m.type, 1);
        EXPECT_EQ(m.target, "ReceiveMessage");
        EXPECT_FALSE(m.has_invocation_id);
        ASSERT_EQ(m.arguments.size(), 1u);
        EXPECT_EQ(m.arguments[0], payload);
        EXPECT_TRUE(m.argument_is_string[0]);
    }
}

TEST(Writers, PingCloseAndCompletion) {
    std::string ping;
    mp::append_ping(ping);
    EXPECT_EQ(ping, std::string("\x02\x91\x06", 3));

    std::string close;
    mp::append_close(close, "Connection closed with an error.", true);
    EXPECT_EQ(close, prefixed(Pack().array(3).uint(7).str("Connection closed with an error.").boolean(true).bytes()));
    HubMessage m = parse_ok(body_of(close));
    EXPECT_EQ(m.type, 7);
    EXPECT_TRUE(m.has_error);
    EXPECT_EQ(m.error, "Connection closed with an error.");
    EXPECT_TRUE(m.allow_reconnect);

    std::string plain_close;
    mp::append_close(plain_close, "", false);
    EXPECT_EQ(plain_close, prefixed(Pack().array(3).uint(7).nil().boolean(false).bytes()));

    std::string completion;
    mp::append_completion_error(completion, "42", "Method does not exist.");
    EXPECT_EQ(completion,
              prefixed(Pack().array(5).uint(3).map(0).str("42").uint(1).str("Method does not exist.").bytes()));
    m = parse_ok(body_of(completion));
    EXPECT_EQ(m.type, 3);
    EXPECT_EQ(m.invocation_id, "42");
    EXPECT_TRUE(m.has_error);
    EXPECT_FALSE(m.has_result);
    EXPECT_EQ(m.error, "Method does not exist.");
}

// ---- reader -------------------------------------------------------------------------------------------------------

TEST(MessageReader, SeveralMessagesInOneFeedAreViewsOfIt) {
    std::string stream;
    mp::append_invocation(stream, "ReceiveMessage", "one");
    mp::append_ping(stream);
    mp::append_invocation(stream, "ReceiveMessage", "two");
    mp::MessageReader reader(1024);
    reader.feed(stream);
    std::string_view m;
    int count = 0;
    while (reader.next(m)) {
        EXPECT_GE(m.data(), stream.data());
        EXPECT_LE(m.data() + m.size(), stream.data() + stream.size());
        ++count;
    }
    EXPECT_EQ(count, 3);
    EXPECT_TRUE(reader.error().empty());
    EXPECT_FALSE(reader.has_partial());
}

TEST(MessageReader, AMessageSplitAnywhereIsCompletedByTheNextFeeds) {
    std::string stream;
    for (int i = 0; i < 5; ++i)
        mp::append_invocation(stream, "ReceiveMessage", std::string(100 + i * 70, static_cast<char>('a' + i)));
    // Every cut point, and byte by byte.
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        mp::MessageReader reader(4096);
        auto got = read_all(reader, std::string_view(stream).substr(0, cut));
        auto more = read_all(reader, std::string_view(stream).substr(cut));
        got.insert(got.end(), more.begin(), more.end());
        ASSERT_EQ(got.size(), 5u) << cut;
        EXPECT_FALSE(reader.has_partial());
        EXPECT_EQ(parse_ok(got[4]).arguments[0], std::string(380, 'e'));
    }
    mp::MessageReader reader(4096);
    std::vector<std::string> got;
    for (char c : stream) {
        auto some = read_all(reader, std::string_view(&c, 1));
        got.insert(got.end(), some.begin(), some.end());
    }
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(parse_ok(got[0]).arguments[0], std::string(100, 'a'));
}

TEST(MessageReader, OversizedAndMalformedPrefixesAreErrors) {
    mp::MessageReader reader(100);
    std::string big;
    mp::append_invocation(big, "ReceiveMessage", std::string(200, 'x'));
    EXPECT_TRUE(read_all(reader, big).empty());
    EXPECT_NE(reader.error().find("over the limit of 100 bytes"), std::string::npos) << reader.error();
    // Once failed, always failed.
    std::string ping;
    mp::append_ping(ping);
    EXPECT_TRUE(read_all(reader, ping).empty());

    mp::MessageReader bad(100);
    EXPECT_TRUE(read_all(bad, "\xff\xff\xff\xff\x7f").empty());
    EXPECT_EQ(bad.error(), "Messages over 2GB in size are not supported.");

    // The declared size is judged before any of the message is held.
    mp::MessageReader early(100);
    EXPECT_TRUE(read_all(early, "\xc8\x01").empty());
    EXPECT_FALSE(early.error().empty());
}

TEST(MessageReader, AnEmptyMessageIsYieldedAndRejectedByTheParser) {
    mp::MessageReader reader(100);
    auto got = read_all(reader, std::string(1, '\0'));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(parse_error(got[0]), "Invalid payload: the message is empty.");
}

// ---- parser -------------------------------------------------------------------------------------------------------

TEST(Parse, InvocationFromTheOfficialClients) {
    // The JavaScript client writes streamIds (an empty array) and headers; .NET may send an id.
    HubMessage m = parse_ok(Pack()
                                .array(6)
                                .uint(1)
                                .map(1)
                                .str("h")
                                .str("v")
                                .str("7")
                                .str("SendMessage")
                                .array(2)
                                .str("a")
                                .str("b")
                                .array(0)
                                .bytes());
    EXPECT_EQ(m.type, 1);
    EXPECT_TRUE(m.has_invocation_id);
    EXPECT_EQ(m.invocation_id, "7");
    EXPECT_EQ(m.target, "SendMessage");
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(m.argument_is_string, (std::vector<bool>{true, true}));
}

TEST(Parse, NonStringValuesBecomeJsonText) {
    HubMessage m = parse_ok(Pack()
                                .array(5)
                                .uint(1)
                                .map(0)
                                .nil()
                                .str("T")
                                .array(7)
                                .map(3)
                                .str("a")
                                .uint(1)
                                .uint(2)
                                .array(3)
                                .boolean(true)
                                .nil()
                                .sint(-5)
                                .sint(-3)
                                .str("q\"\n")
                                .f64(1.5)
                                .f32(0.25f)
                                .bin("\x01\x02\x03\x04")
                                .ext(-1, std::string("\x5f\x5e\x10\x00", 4))  // timestamp32: 2020-09-13T12:26:40Z
                                .uint(18446744073709551615ULL)
                                .array(0)
                                .bytes());
    ASSERT_EQ(m.arguments.size(), 7u);
    EXPECT_EQ(m.arguments[0], R"({"a":1,"2":[true,null,-5],"-3":"q\"\n"})");
    EXPECT_EQ(m.arguments[1], "1.5");
    EXPECT_EQ(m.arguments[2], "0.25");
    EXPECT_EQ(m.arguments[3], "\"AQIDBA==\"");
    EXPECT_EQ(m.arguments[4], "\"2020-09-13T12:26:40Z\"");
    EXPECT_EQ(m.arguments[5], "18446744073709551615");
    EXPECT_EQ(m.arguments[6], "[]");
    for (bool is_string : m.argument_is_string)
        EXPECT_FALSE(is_string);
}

TEST(Parse, TimestampsWithFractions) {
    // timestamp64: 30 bits of nanoseconds, 34 of seconds; timestamp96: 32 and 64.
    const std::uint64_t t64 = (std::uint64_t{500'000'000} << 34) | 1'600'000'000ULL;
    std::string b64;
    for (int i = 7; i >= 0; --i)
        b64 += static_cast<char>((t64 >> (8 * i)) & 0xFF);
    std::string b96 = std::string("\x00\x00\x00\x07", 4) + std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    HubMessage m = parse_ok(Pack().array(5).uint(1).map(0).nil().str("T").array(2).ext(-1, b64).ext(-1, b96).bytes());
    EXPECT_EQ(m.arguments[0], "\"2020-09-13T12:26:40.5Z\"");
    EXPECT_EQ(m.arguments[1], "\"1969-12-31T23:59:59.000000007Z\"");
}

TEST(Parse, EveryKnownMessageType) {
    HubMessage m = parse_ok(Pack().array(4).uint(2).map(0).str("1").map(1).str("k").str("v").bytes());
    EXPECT_EQ(m.type, 2);
    EXPECT_EQ(m.invocation_id, "1");
    EXPECT_EQ(m.arguments, (std::vector<std::string>{R"({"k":"v"})"}));

    m = parse_ok(Pack().array(5).uint(3).map(0).str("2").uint(3).str("done").bytes());
    EXPECT_TRUE(m.has_result);
    EXPECT_FALSE(m.has_error);
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"done"}));

    m = parse_ok(Pack().array(4).uint(3).map(0).str("3").uint(2).bytes());  // void
    EXPECT_FALSE(m.has_result);
    EXPECT_FALSE(m.has_error);
    EXPECT_TRUE(m.arguments.empty());

    m = parse_ok(Pack().array(5).uint(4).map(0).str("4").str("Stream").array(0).bytes());
    EXPECT_EQ(m.type, 4);
    EXPECT_EQ(m.target, "Stream");

    m = parse_ok(Pack().array(3).uint(5).map(0).str("5").bytes());
    EXPECT_EQ(m.type, 5);

    m = parse_ok(Pack().array(1).uint(6).bytes());
    EXPECT_EQ(m.type, 6);

    m = parse_ok(Pack().array(2).uint(7).nil().bytes());  // the JavaScript client's Close
    EXPECT_EQ(m.type, 7);
    EXPECT_FALSE(m.has_error);
    EXPECT_FALSE(m.allow_reconnect);

    m = parse_ok(Pack().array(2).uint(8).uint(12).bytes());
    EXPECT_EQ(m.type, 8);
}

TEST(Parse, NewerElementsAndTypesAreIgnored) {
    HubMessage m = parse_ok(Pack().array(3).uint(6).map(1).str("x").array(0).str("later").bytes());
    EXPECT_EQ(m.type, 6);
    m = parse_ok(Pack().array(3).uint(42).f64(1.0).map(1).uint(1).nil().bytes());
    EXPECT_EQ(m.type, 42);
    m = parse_ok(Pack().array(4).uint(7).str("bye").boolean(true).str("later").bytes());
    EXPECT_TRUE(m.allow_reconnect);
    EXPECT_EQ(m.error, "bye");
}

TEST(Parse, BuffersAreReused) {
    HubMessage m;
    std::string error;
    ASSERT_TRUE(mp::parse_message(
        Pack().array(5).uint(1).map(0).nil().str("T").array(2).str(std::string(500, 'a')).str("b").bytes(), m, error));
    const char* first = m.arguments[0].data();
    ASSERT_TRUE(
        mp::parse_message(Pack().array(5).uint(1).map(0).nil().str("T").array(1).str("short").bytes(), m, error));
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"short"}));
    EXPECT_EQ(m.arguments[0].data(), first);
}

TEST(Parse, MalformedMessagesAreNamed) {
    struct Case {
        std::string body;
        std::string error;
    };
    const std::string deep = std::string(100, '\x91') + '\x01';
    for (const Case& c : std::vector<Case>{
             {Pack().uint(1).bytes(), "The message is not a MessagePack array."},
             {Pack().map(0).bytes(), "The message is not a MessagePack array."},
             {Pack().array(0).bytes(), "Invalid payload: the message array is empty."},
             {Pack().array(1).str("1").bytes(), "Expected 'type' to be of type Integer."},
             {Pack().array(1).array(0).bytes(), "Expected 'type' to be of type Integer."},
             {Pack().array(4).uint(1).map(0).nil().str("T").bytes(), "Invalid payload for Invocation message."},
             {Pack().array(5).uint(1).map(0).nil().uint(3).array(0).bytes(), "Expected 'target' to be of type String."},
             {Pack().array(5).uint(1).map(0).uint(1).str("T").array(0).bytes(),
              "Expected 'invocationId' to be of type String."},
             {Pack().array(5).uint(1).map(0).nil().str("T").map(0).bytes(),
              "Expected 'arguments' to be of type Array."},
             {Pack().array(5).uint(1).map(0).nil().str("T").str("x").bytes(),
              "Expected 'arguments' to be of type Array."},
             {Pack().array(5).uint(1).nil().nil().str("T").array(0).bytes(), "Expected 'headers' to be of type Map."},
             {Pack().array(5).uint(1).map(1).str("k").uint(1).nil().str("T").array(0).bytes(),
              "Expected 'headers' to map strings to strings."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).str("\xC3\x28").bytes(),
              "A string in the message is not valid UTF-8."},
             {Pack().array(5).uint(1).map(0).nil().str("T\xff").array(0).bytes(),
              "A string in the message is not valid UTF-8."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).map(1).nil().nil().bytes(),
              "A map key in a value is neither a string nor an integer."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).map(1).array(0).nil().bytes(),
              "A map key in a value is neither a string nor an integer."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).ext(5, "ab").bytes(),
              "The MessagePack extension type 5 in the message is not supported."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).ext(-1, "abc").bytes(),
              "A MessagePack timestamp in the message is malformed."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).f64(1.0 / 0.0).bytes(),
              "A number in the message is not finite."},
             {Pack().array(5).uint(3).map(0).str("1").uint(4).nil().bytes(),
              "Invalid result kind in a Completion message: expected 1, 2 or 3."},
             {Pack().array(4).uint(3).map(0).str("1").uint(1).bytes(), "Invalid payload for Completion message."},
             {Pack().array(5).uint(3).map(0).str("1").uint(1).uint(5).bytes(),
              "Expected 'error' to be of type String."},
             {Pack().array(3).uint(3).map(0).str("1").bytes(), "Invalid payload for Completion message."},
             {Pack().array(4).uint(2).map(0).nil().str("x").bytes(), "Expected 'invocationId' to be of type String."},
             {Pack().array(1).uint(7).bytes(), "Invalid payload for Close message."},
             {Pack().array(3).uint(7).nil().uint(1).bytes(), "Expected 'allowReconnect' to be of type Boolean."},
             {Pack().array(2).uint(7).array(0).bytes(), "Expected 'error' to be a single value, not an array."},
             {Pack().array(1).uint(6).uint(1).bytes(), "1 bytes follow the message's array."},
             {Pack().array(2).uint(6).bytes(), "The message ends inside a MessagePack value."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).raw("\xdb\xff\xff\xff\xff").bytes(),
              "The message ends inside a MessagePack value."},
             {Pack().array(1).raw("\xc1").bytes(), "The message is not valid MessagePack (at offset 1)."},
             {Pack().array(5).uint(1).map(0).nil().str("T").array(1).raw(deep).bytes(),
              "The message nests deeper than 64 levels."},
         }) {
        EXPECT_EQ(parse_error(c.body), c.error);
    }
}

}  // namespace
