// Holds the hand-rolled invocation scanner against the Poco-based parser on many generated records: valid
// ones in every shape the scanner claims, near misses it must leave to Poco, and random mutations. The rule
// under test: whenever the fast path says it handled a record, Poco accepts it and parses it identically.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "protocol/hub_protocol.h"

namespace {

using hubflow::signalr::append_invocation;
using hubflow::signalr::HubMessage;
using hubflow::signalr::parse_message;
namespace detail = hubflow::signalr::detail;

class Generator {
public:
    explicit Generator(unsigned seed) : rng_(seed) {}

    std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }

    std::string space() {
        static const char* const spaces[] = {"", "", "", " ", "\n", "\t", "\r\n", "  "};
        return spaces[below(8)];
    }

    // A JSON string literal, sometimes (when `allow_bad`) with a defect Poco must reject.
    std::string string_literal(bool allow_bad) {
        std::string s = "\"";
        const std::size_t pieces = below(12);
        for (std::size_t i = 0; i < pieces; ++i) {
            switch (below(allow_bad ? 16 : 13)) {
                case 0:
                    s += "plain text ";
                    break;
                case 1:
                    s += R"(\")";
                    break;
                case 2:
                    s += R"(\\)";
                    break;
                case 3:
                    s += R"(\/\b\f\n\r\t)";
                    break;
                case 4: {
                    static const char hex[] = "0123456789abcdefABCDEF";
                    s += "\\u00";
                    s += hex[below(2)];
                    s += hex[below(22)];
                    break;
                }
                case 5: {
                    static const char* const bmp[] = {"\\u00e9", "\\u20AC", "\\uffff", "\\u0800", "\\ud7ff", "\\ue000"};
                    s += bmp[below(6)];
                    break;
                }
                case 6: {
                    static const char* const pairs[] = {"\\ud83d\\ude00", "\\uD800\\uDC00", "\\udbff\\udfff"};
                    s += pairs[below(3)];
                    break;
                }
                case 7:
                    s += "\xC3\xA9";
                    break;
                case 8:
                    s += "\xE2\x82\xAC";
                    break;
                case 9:
                    s += "\xF0\x9F\x98\x80";
                    break;
                case 10:
                    s += "\\u0000";
                    break;
                case 11:
                    s += std::string(below(40), 'x');
                    break;
                case 12:
                    s += R"({\"kind\":\"event\",\"n\":12})";
                    break;
                case 13: {
                    static const char* const bad_utf8[] = {"\xC3\x28", "\xED\xA0\x80", "\xC0\xAF", "\xF5\x80", "\x80"};
                    s += bad_utf8[below(5)];
                    break;
                }
                case 14: {
                    static const char* const bad_escapes[] = {"\\x41",          "\\ud800", "\\udc00x",
                                                              "\\ud800\\u0041", "\\u12",   "\\'"};
                    s += bad_escapes[below(6)];
                    break;
                }
                default:
                    s += static_cast<char>(below(0x20));  // a raw control character
                    break;
            }
        }
        return s + "\"";
    }

    std::string scalar() {
        switch (below(8)) {
            case 0:
                return string_literal(false);
            case 1:
                return "true";
            case 2:
                return "false";
            case 3:
                return "null";
            case 4:
                return std::to_string(static_cast<long long>(rng_() % 2000000) - 1000000);
            case 5:
                return "1.5e3";
            case 6:
                return "0";
            default:
                return "-7";
        }
    }

    std::string container() {
        switch (below(4)) {
            case 0:
                return "{}";
            case 1:
                return R"({"k":[1,"two",{"three":null}]})";
            case 2:
                return "[ ]";
            default:
                return "[" + scalar() + "," + scalar() + "]";
        }
    }

    std::string type_value() {
        if (chance(85)) return "1";
        static const char* const others[] = {"2",   "3",   "6",     "7",    "0",    "-1",          "01",
                                             "1.0", "1e0", "\"1\"", "true", "null", "99999999999", "10"};
        return others[below(14)];
    }

    std::string arguments(bool allow_bad) {
        std::string s = "[" + space();
        const std::size_t count = below(4);
        for (std::size_t i = 0; i < count; ++i) {
            if (i) s += space() + "," + space();
            if (chance(90))
                s += string_literal(allow_bad && chance(10));
            else
                s += chance(50) ? scalar() : container();
        }
        return s + space() + "]";
    }

    std::string record() {
        const bool allow_bad = chance(15);
        std::vector<std::string> members;
        if (chance(97)) members.push_back(member("type", type_value()));
        if (chance(97)) members.push_back(member("target", chance(95) ? string_literal(allow_bad) : scalar()));
        if (chance(95)) members.push_back(member("arguments", chance(97) ? arguments(allow_bad) : scalar()));
        if (chance(30)) members.push_back(member("invocationId", chance(90) ? string_literal(false) : scalar()));
        const std::size_t extras = chance(30) ? 1 + below(3) : 0;
        for (std::size_t i = 0; i < extras; ++i) {
            static const char* const names[] = {"extra", "headers",        "streamIds", "error", "result",
                                                "item",  "allowReconnect", "",          "Type",  "n"};
            members.push_back(member(names[below(10)], chance(70) ? scalar() : container()));
        }
        if (chance(5) && !members.empty()) members.push_back(members[below(members.size())]);  // a duplicate
        for (std::size_t i = members.size(); i > 1; --i)
            std::swap(members[i - 1], members[below(i)]);
        std::string s = space() + "{" + space();
        for (std::size_t i = 0; i < members.size(); ++i) {
            if (i) s += space() + "," + space();
            s += members[i];
        }
        return s + space() + "}" + space();
    }

    // A small random edit, to produce near misses of every kind.
    std::string mutate(std::string s) {
        static const char interesting[] = "{}[]\",:\\ u0123456789abcdefnulltrue-+.eE\x1e\x01\x7f\x80\xC3\xFF";
        const std::size_t edits = 1 + below(3);
        for (std::size_t i = 0; i < edits && !s.empty(); ++i) {
            const std::size_t at = below(s.size());
            switch (below(3)) {
                case 0:
                    s.erase(at, 1);
                    break;
                case 1:
                    s.insert(at, 1, interesting[below(sizeof interesting - 1)]);
                    break;
                default:
                    s[at] = interesting[below(sizeof interesting - 1)];
                    break;
            }
        }
        return s;
    }

private:
    std::string member(const std::string& name, const std::string& value) {
        return "\"" + name + "\"" + space() + ":" + space() + value;
    }

    std::mt19937 rng_;
};

void expect_same(const HubMessage& a, const HubMessage& b, const std::string& record) {
    EXPECT_EQ(a.type, b.type) << record;
    EXPECT_EQ(a.invocation_id, b.invocation_id) << record;
    EXPECT_EQ(a.has_invocation_id, b.has_invocation_id) << record;
    EXPECT_EQ(a.target, b.target) << record;
    EXPECT_EQ(a.arguments, b.arguments) << record;
    EXPECT_EQ(a.argument_is_string, b.argument_is_string) << record;
    EXPECT_EQ(a.error, b.error) << record;
    EXPECT_EQ(a.has_error, b.has_error) << record;
    EXPECT_EQ(a.has_result, b.has_result) << record;
    EXPECT_EQ(a.allow_reconnect, b.allow_reconnect) << record;
}

struct Tally {
    int fast = 0;
    int poco_ok = 0;
    int total = 0;
};

void compare(const std::string& record, Tally& tally) {
    // One message reused across all records, as a connection would, so stale state would show up.
    static HubMessage fast_message, combined;
    HubMessage poco_message;
    std::string poco_error, combined_error;
    const bool poco_ok = detail::parse_message_poco(record, poco_message, poco_error);
    const bool fast_ok = detail::parse_invocation_fast(record, fast_message);
    ++tally.total;
    if (poco_ok) ++tally.poco_ok;
    if (fast_ok) {
        ++tally.fast;
        ASSERT_TRUE(poco_ok) << "fast path accepted what Poco rejects (" << poco_error << "): " << record;
        expect_same(fast_message, poco_message, record);
    }
    const bool combined_ok = parse_message(record, combined, combined_error);
    ASSERT_EQ(combined_ok, poco_ok) << record;
    if (poco_ok)
        expect_same(combined, poco_message, record);
    else
        EXPECT_EQ(combined_error, poco_error) << record;
}

TEST(FastPathAgainstPoco, GeneratedRecords) {
    Generator gen(20240611);
    Tally tally;
    for (int i = 0; i < 20000; ++i) {
        compare(gen.record(), tally);
        if (HasFatalFailure()) return;
    }
    // The generator aims at the hot case; make sure the comparison is not vacuous either way.
    EXPECT_GT(tally.fast, tally.total / 4) << tally.fast << " of " << tally.total;
    EXPECT_LT(tally.fast, tally.poco_ok) << "nothing fell back";
}

TEST(FastPathAgainstPoco, MutatedRecords) {
    Generator gen(777);
    Tally tally;
    for (int i = 0; i < 30000; ++i) {
        compare(gen.mutate(gen.record()), tally);
        if (HasFatalFailure()) return;
    }
    EXPECT_GT(tally.fast, 0);
    EXPECT_LT(tally.poco_ok, tally.total);
}

TEST(FastPathAgainstPoco, WriterOutputAlwaysTakesTheFastPath) {
    // Whatever text the server writes, the client reads it back without falling back to Poco.
    std::mt19937 rng(99);
    for (int i = 0; i < 5000; ++i) {
        std::string text;
        const std::size_t size = rng() % 300;
        while (text.size() < size) {
            switch (rng() % 5) {
                case 0:
                    text += static_cast<char>(rng() % 0x80);  // any ASCII, control characters included
                    break;
                case 1:
                    text += "\xC3\xA9";
                    break;
                case 2:
                    text += "\xE2\x82\xAC";
                    break;
                case 3:
                    text += "\xF0\x9F\x98\x80";
                    break;
                default:
                    text += R"({"k":"v\"q\\"})";
                    break;
            }
        }
        std::string out;
        append_invocation(out, "ReceiveMessage", text);
        out.pop_back();
        HubMessage fast_message, poco_message;
        std::string error;
        ASSERT_TRUE(detail::parse_invocation_fast(out, fast_message)) << out;
        ASSERT_TRUE(detail::parse_message_poco(out, poco_message, error)) << error;
        ASSERT_EQ(fast_message.arguments.at(0), text);
        expect_same(fast_message, poco_message, out);
    }
}

}  // namespace
