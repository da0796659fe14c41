// Randomized and mutation tests of the MessagePack hub protocol decoder. Generated messages (every type, every
// value kind, nested) must parse to what was generated; mutations of them (bytes flipped, cut, inserted,
// repeated) must either parse or fail with an error text, never crash or read out of bounds (the sanitizer
// build runs this too); whatever the decoder accepts, msgpack-cxx's own object unpacker must accept as one
// array with the same type. The stream reader must cut any split of a stream into the same messages.

#include <gtest/gtest.h>

#include <msgpack/object.hpp>
#include <msgpack/unpack.hpp>

#include <random>
#include <string>
#include <vector>

#include "msgpack_test_support.h"
#include "protocol/msgpack_protocol.h"

namespace {

namespace mp = hubflow::signalr::messagepack;
using hubflow::signalr::HubMessage;
using hubflow::signalr::testing::Pack;

class Generator {
public:
    explicit Generator(unsigned seed) : rng_(seed) {}

    std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

    std::string text() {
        static const std::string pieces[] = {"plain ",
                                             "\"quoted\"",
                                             "\\",
                                             "\n\t",
                                             "\xC3\xA9",
                                             "\xE2\x82\xAC",
                                             "\xF0\x9F\x98\x80",
                                             std::string(1, '\0'),
                                             "{\"id\":\"e-1\"}"};
        std::string s;
        const std::size_t n = below(8);
        for (std::size_t i = 0; i < n; ++i)
            s += below(10) == 0 ? std::string(below(300), 'x') : pieces[below(9)];
        return s;
    }

    // Any value, `depth` levels of containers at most.
    void value(Pack& p, int depth) {
        switch (below(depth > 0 ? 12 : 10)) {
            case 0:
                p.nil();
                break;
            case 1:
                p.boolean(below(2) == 1);
                break;
            case 2:
                p.uint(rng_() >> below(64));
                break;
            case 3:
                p.sint(-static_cast<std::int64_t>(rng_() >> (1 + below(63))) - 1);
                break;
            case 4:
                p.f64(static_cast<double>(rng_() % 100000) / 7.0);
                break;
            case 5:
                p.f32(static_cast<float>(rng_() % 1000) / 4.0f);
                break;
            case 6:
            case 7:
                p.str(text());
                break;
            case 8:
                p.bin(std::string(below(20), '\x7f'));
                break;
            case 9:
                p.ext(-1, std::string("\x00\x00\x00\x01", 4));
                break;
            case 10: {
                const std::uint32_t n = static_cast<std::uint32_t>(below(4));
                p.array(n);
                for (std::uint32_t i = 0; i < n; ++i)
                    value(p, depth - 1);
                break;
            }
            default: {
                const std::uint32_t n = static_cast<std::uint32_t>(below(4));
                p.map(n);
                for (std::uint32_t i = 0; i < n; ++i) {
                    below(3) == 0 ? p.uint(i) : p.str("k" + std::to_string(i));
                    value(p, depth - 1);
                }
                break;
            }
        }
    }

    void headers(Pack& p) {
        const std::uint32_t n = static_cast<std::uint32_t>(below(3));
        p.map(n);
        for (std::uint32_t i = 0; i < n; ++i)
            p.str("h" + std::to_string(i)).str(text());
    }

    struct Generated {
        std::string body;
        int type = 0;
        std::vector<std::string> string_arguments;  // of an invocation whose arguments are all strings
        bool all_strings = false;
    };

    Generated message() {
        Generated g;
        Pack p;
        const int types[] = {1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 42};
        g.type = types[below(12)];
        const std::uint32_t extra = below(4) == 0 ? static_cast<std::uint32_t>(below(3)) : 0;
        switch (g.type) {
            case 1:
            case 4: {
                const bool stream_ids = extra > 0 || below(2) == 1;  // element 5 is always streamIds
                p.array(5 + (stream_ids ? 1 : 0) + extra).uint(static_cast<std::uint64_t>(g.type));
                headers(p);
                if (g.type == 1 && below(2) == 0)
                    p.nil();
                else
                    p.str(std::to_string(below(1000)));
                p.str(below(2) ? "ReceiveMessage" : text());
                const std::uint32_t n = static_cast<std::uint32_t>(below(4));
                g.all_strings = below(2) == 1;
                p.array(n);
                for (std::uint32_t i = 0; i < n; ++i) {
                    if (g.all_strings) {
                        g.string_arguments.push_back(text());
                        p.str(g.string_arguments.back());
                    } else {
                        value(p, 4);
                    }
                }
                if (stream_ids) p.array(1).str("s");
                break;
            }
            case 2:
                p.array(4 + extra).uint(2);
                headers(p);
                p.str("i");
                value(p, 4);
                break;
            case 3: {
                const std::uint64_t kind = 1 + below(3);
                p.array((kind == 2 ? 4 : 5) + extra).uint(3);
                headers(p);
                p.str("i").uint(kind);
                if (kind == 1) p.str(text());
                if (kind == 3) value(p, 4);
                break;
            }
            case 5:
                p.array(3 + extra).uint(5);
                headers(p);
                p.str("i");
                break;
            case 6:
                p.array(1 + extra).uint(6);
                break;
            case 7:
                p.array(3 + extra).uint(7);
                below(2) ? p.nil() : p.str(text());
                p.boolean(below(2) == 1);
                break;
            case 8:
                p.array(2 + extra).uint(8).uint(below(100));
                break;
            default:
                p.array(2 + extra).uint(42);
                value(p, 3);
                break;
        }
        for (std::uint32_t i = 0; i < extra; ++i)
            value(p, 2);
        g.body = p.bytes();
        return g;
    }

    std::string mutate(std::string s) {
        const std::size_t edits = 1 + below(4);
        for (std::size_t e = 0; e < edits; ++e) {
            switch (below(5)) {
                case 0:
                    if (!s.empty()) s[below(s.size())] = static_cast<char>(rng_());
                    break;
                case 1:
                    s.resize(below(s.size() + 1));
                    break;
                case 2:
                    s.insert(below(s.size() + 1), 1, static_cast<char>(rng_()));
                    break;
                case 3:
                    if (!s.empty()) {
                        const std::size_t at = below(s.size());
                        s.insert(at, s.substr(at, below(16)));
                    }
                    break;
                default: {
                    // A byte that is a MessagePack type marker of interest: big containers, long strings.
                    static const char markers[] = {'\xdc', '\xdd', '\xde', '\xdf', '\xdb', '\xc6', '\xc9', '\xc1'};
                    if (!s.empty()) s[below(s.size())] = markers[below(8)];
                    break;
                }
            }
        }
        return s;
    }

private:
    std::mt19937 rng_;
};

// What msgpack-cxx's object unpacker makes of the bytes: the message type, or -1 when it does not see one
// complete array with an integer first.
long long unpacked_type(const std::string& body) {
    try {
        std::size_t offset = 0;
        msgpack::object_handle h = msgpack::unpack(body.data(), body.size(), offset);
        if (offset != body.size()) return -1;
        const msgpack::object& o = h.get();
        if (o.type != msgpack::type::ARRAY || o.via.array.size == 0) return -1;
        const msgpack::object& t = o.via.array.ptr[0];
        if (t.type == msgpack::type::POSITIVE_INTEGER) return static_cast<long long>(t.via.u64);
        if (t.type == msgpack::type::NEGATIVE_INTEGER) return t.via.i64;
        return -1;
    } catch (const std::exception&) {
        return -1;
    }
}

TEST(MessagePackFuzz, GeneratedMessagesParseToWhatWasGenerated) {
    Generator gen(1234);
    HubMessage m;
    std::string error;
    for (int i = 0; i < 20000; ++i) {
        const auto g = gen.message();
        ASSERT_TRUE(mp::parse_message(g.body, m, error)) << i << ": " << error;
        EXPECT_EQ(m.type, g.type);
        if (g.type == 1 && g.all_strings) {
            EXPECT_EQ(m.arguments, g.string_arguments);
            EXPECT_EQ(m.argument_is_string, std::vector<bool>(g.string_arguments.size(), true));
        }
    }
}

TEST(MessagePackFuzz, MutatedMessagesFailCleanlyOrAgreeWithMsgpackCxx) {
    Generator gen(99);
    HubMessage m;
    std::string error;
    int accepted = 0, rejected = 0;
    for (int i = 0; i < 60000; ++i) {
        const std::string body = gen.mutate(gen.message().body);
        if (mp::parse_message(body, m, error)) {
            ++accepted;
            EXPECT_EQ(unpacked_type(body), m.type) << i;
            EXPECT_EQ(m.arguments.size(), m.argument_is_string.size());
        } else {
            ++rejected;
            EXPECT_FALSE(error.empty()) << i;
        }
    }
    // Both outcomes must actually be exercised.
    EXPECT_GT(accepted, 1000);
    EXPECT_GT(rejected, 10000);
}

TEST(MessagePackFuzz, RandomBytesFailCleanly) {
    std::mt19937 rng(7);
    HubMessage m;
    std::string error;
    for (int i = 0; i < 50000; ++i) {
        std::string body(rng() % 64, '\0');
        for (char& c : body)
            c = static_cast<char>(rng());
        if (!mp::parse_message(body, m, error)) {
            EXPECT_FALSE(error.empty());
        }
    }
}

TEST(MessagePackFuzz, AnySplitOfAStreamGivesTheSameMessages) {
    Generator gen(5);
    std::mt19937 rng(11);
    for (int round = 0; round < 300; ++round) {
        std::string stream;
        std::vector<std::string> expected;
        const int count = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < count; ++i) {
            expected.push_back(gen.message().body);
            mp::append_length_prefix(stream, static_cast<std::uint32_t>(expected.back().size()));
            stream += expected.back();
        }
        mp::MessageReader reader(1 << 20);
        std::vector<std::string> got;
        std::size_t at = 0;
        while (at < stream.size()) {
            const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + rng() % 64);
            // Each piece lives only until the next feed, as a socket's read buffer does.
            std::string piece = stream.substr(at, n);
            reader.feed(piece);
            std::string_view message;
            while (reader.next(message))
                got.emplace_back(message);
            piece.assign(n, '#');
            at += n;
        }
        ASSERT_TRUE(reader.error().empty()) << reader.error();
        EXPECT_FALSE(reader.has_partial());
        EXPECT_EQ(got, expected) << round;
    }
}

TEST(MessagePackFuzz, MutatedStreamsFailCleanly) {
    Generator gen(17);
    std::mt19937 rng(3);
    HubMessage m;
    std::string error;
    for (int round = 0; round < 3000; ++round) {
        std::string stream;
        for (int i = 0; i < 3; ++i) {
            const std::string body = gen.message().body;
            mp::append_length_prefix(stream, static_cast<std::uint32_t>(body.size()));
            stream += body;
        }
        stream = gen.mutate(stream);
        mp::MessageReader reader(4096);
        std::size_t at = 0;
        while (at < stream.size() && reader.error().empty()) {
            const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + rng() % 200);
            reader.feed(std::string_view(stream).substr(at, n));
            std::string_view message;
            while (reader.next(message))
                if (!mp::parse_message(message, m, error)) {
                    EXPECT_FALSE(error.empty());
                }
            at += n;
        }
    }
}

}  // namespace
