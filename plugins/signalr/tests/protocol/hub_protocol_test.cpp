#include "protocol/hub_protocol.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using hubflow::signalr::append_close;
using hubflow::signalr::append_completion_error;
using hubflow::signalr::append_invocation;
using hubflow::signalr::append_ping;
using hubflow::signalr::check_handshake;
using hubflow::signalr::handshake_request;
using hubflow::signalr::handshake_response;
using hubflow::signalr::HubMessage;
using hubflow::signalr::parse_handshake_response;
using hubflow::signalr::parse_message;
using hubflow::signalr::record_separator;
using hubflow::signalr::RecordSplitter;
namespace detail = hubflow::signalr::detail;

const std::string rs(1, record_separator);

std::string strip(std::string_view record) {
    EXPECT_FALSE(record.empty());
    EXPECT_EQ(record.back(), record_separator);
    return std::string(record.substr(0, record.size() - 1));
}

HubMessage parse_ok(std::string_view record) {
    HubMessage m;
    std::string error;
    EXPECT_TRUE(parse_message(record, m, error)) << record << " -> " << error;
    return m;
}

std::string parse_error(std::string_view record) {
    HubMessage m;
    std::string error;
    EXPECT_FALSE(parse_message(record, m, error)) << record;
    EXPECT_FALSE(error.empty()) << record;
    return error;
}

bool fast(std::string_view record) {
    HubMessage m;
    return detail::parse_invocation_fast(record, m);
}

std::vector<std::string> split(std::string_view message, std::string* error = nullptr) {
    RecordSplitter splitter(message);
    std::vector<std::string> records;
    std::string_view record;
    while (splitter.next(record))
        records.emplace_back(record);
    if (error) *error = std::string(splitter.error());
    return records;
}

// ---- Handshake --------------------------------------------------------------------------------------------------

TEST(Handshake, AcceptsVersionOne) {
    auto r = check_handshake(R"({"protocol":"json","version":1})");
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.error.empty());
}

TEST(Handshake, AcceptsVersionTwo) {
    EXPECT_TRUE(check_handshake(R"({"protocol":"json","version":2})").ok);
}

TEST(Handshake, AnyFieldOrderUnknownFieldsAndSpacing) {
    EXPECT_TRUE(check_handshake(R"({"version":1,"protocol":"json"})").ok);
    EXPECT_TRUE(check_handshake(" {\n\t\"version\" : 1 ,\r\n \"extra\":{\"a\":[1,2]}, \"protocol\":\"json\"} ").ok);
}

TEST(Handshake, ProtocolNameIsCaseInsensitive) {
    EXPECT_TRUE(check_handshake(R"({"protocol":"JSON","version":1})").ok);
}

TEST(Handshake, TrailingSeparatorIsTolerated) {
    EXPECT_TRUE(check_handshake(strip(handshake_request()) + rs).ok);
}

TEST(Handshake, OtherVersionsUseTheReferenceText) {
    EXPECT_EQ(check_handshake(R"({"protocol":"json","version":3})").error,
              "The server does not support version 3 of the 'json' protocol.");
    EXPECT_EQ(check_handshake(R"({"protocol":"json","version":0})").error,
              "The server does not support version 0 of the 'json' protocol.");
    EXPECT_EQ(check_handshake(R"({"protocol":"json","version":-1})").error,
              "The server does not support version -1 of the 'json' protocol.");
}

TEST(Handshake, MessagePackIsAcceptedAndNamed) {
    auto r = check_handshake(R"({"protocol":"messagepack","version":1})");
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.protocol, hubflow::signalr::HubProtocol::messagepack);
    EXPECT_TRUE(check_handshake(R"({"version":2,"protocol":"MessagePack"})").ok);
    EXPECT_EQ(check_handshake(R"({"protocol":"json","version":1})").protocol, hubflow::signalr::HubProtocol::json);
    EXPECT_EQ(check_handshake(R"({"protocol":"messagepack","version":9})").error,
              "The server does not support version 9 of the 'messagepack' protocol.");
    // Anything else is still refused with the reference text, before the version is looked at.
    EXPECT_EQ(check_handshake(R"({"protocol":"blazorpack","version":9})").error,
              "The protocol 'blazorpack' is not supported.");
    EXPECT_EQ(handshake_request(hubflow::signalr::HubProtocol::messagepack),
              std::string(R"({"protocol":"messagepack","version":1})") + rs);
}

TEST(Handshake, MalformedRequests) {
    struct Case {
        std::string request;
        std::string error_part;
    };
    for (const Case& c : std::vector<Case>{
             {"", "not valid JSON"},
             {"garbage", "not a JSON object"},
             {R"({"protocol":"json","version":1)", "not valid JSON"},
             {R"({"protocol":"json","version":1}x)", "not valid JSON"},
             {"[1]", "not a JSON object"},
             {R"("json")", "not a JSON object"},
             {R"({"version":1})", "Missing required property 'protocol'."},
             {R"({"protocol":null,"version":1})", "Missing required property 'protocol'."},
             {R"({"protocol":"json"})", "Missing required property 'version'."},
             {R"({"protocol":5,"version":1})", "Expected 'protocol' to be of type String."},
             {R"({"protocol":"json","version":"1"})", "Expected 'version' to be of type Integer."},
             {R"({"protocol":"json","version":1.0})", "Expected 'version' to be of type Integer."},
             {R"({"protocol":"json","version":true})", "Expected 'version' to be of type Integer."},
         }) {
        auto r = check_handshake(c.request);
        EXPECT_FALSE(r.ok) << c.request;
        EXPECT_NE(r.error.find(c.error_part), std::string::npos) << c.request << " -> " << r.error;
    }
}

TEST(Handshake, Response) {
    EXPECT_EQ(handshake_response(), "{}" + rs);
    EXPECT_EQ(handshake_response("The protocol 'x' is not supported."),
              R"({"error":"The protocol 'x' is not supported."})" + rs);
    // Whatever the text, the answer is valid JSON that carries it back intact.
    const std::string nasty = "quote \" backslash \\ newline \n control \x01 unicode \xC3\xA9";
    const std::string response = handshake_response(nasty);
    Poco::JSON::Parser parser;
    auto obj = parser.parse(strip(response)).extract<Poco::JSON::Object::Ptr>();
    EXPECT_EQ(obj->getValue<std::string>("error"), nasty);
    auto r = parse_handshake_response(response);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, nasty);
}

TEST(Handshake, ClientRequest) {
    EXPECT_EQ(handshake_request(), R"({"protocol":"json","version":1})" + rs);
    EXPECT_TRUE(check_handshake(strip(handshake_request())).ok);
}

TEST(Handshake, ClientReadsTheResponse) {
    EXPECT_TRUE(parse_handshake_response("{}").ok);
    EXPECT_TRUE(parse_handshake_response("{}" + rs).ok);
    EXPECT_TRUE(parse_handshake_response(R"({"minorVersion":1})").ok);
    EXPECT_TRUE(parse_handshake_response(R"({"error":null})").ok);
    auto refused = parse_handshake_response(R"({"error":"The protocol 'json' is not supported."})");
    EXPECT_FALSE(refused.ok);
    EXPECT_EQ(refused.error, "The protocol 'json' is not supported.");
    EXPECT_EQ(parse_handshake_response(R"({"type":6})").error, "Expected a handshake response from the server.");
    EXPECT_FALSE(parse_handshake_response("nope").ok);
    EXPECT_FALSE(parse_handshake_response("").ok);
    EXPECT_FALSE(parse_handshake_response("[]").ok);
    EXPECT_FALSE(parse_handshake_response(R"({"error":5})").ok);
}

// ---- Records ----------------------------------------------------------------------------------------------------

TEST(Records, OneRecord) {
    EXPECT_EQ(split(R"({"type":6})" + rs), std::vector<std::string>{R"({"type":6})"});
}

TEST(Records, BatchedRecords) {
    std::string message = "{}" + rs + R"({"type":6})" + rs + R"({"type":1,"target":"a","arguments":[]})" + rs;
    std::string error;
    auto records = split(message, &error);
    EXPECT_TRUE(error.empty());
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0], "{}");
    EXPECT_EQ(records[1], R"({"type":6})");
    EXPECT_EQ(records[2], R"({"type":1,"target":"a","arguments":[]})");
}

TEST(Records, ViewsPointIntoTheMessage) {
    const std::string message = "ab" + rs + "cd" + rs;
    RecordSplitter splitter(message);
    std::string_view record;
    ASSERT_TRUE(splitter.next(record));
    EXPECT_EQ(record.data(), message.data());
    ASSERT_TRUE(splitter.next(record));
    EXPECT_EQ(record.data(), message.data() + 3);
    EXPECT_FALSE(splitter.next(record));
}

TEST(Records, TrailingPartialRecordIsAnErrorAndYieldsNothing) {
    std::string error;
    EXPECT_TRUE(split(R"({"type":6})" + rs + R"({"type":6)", &error).empty());
    EXPECT_EQ(error, "Message is incomplete.");
    EXPECT_TRUE(split(R"({"type":6})", &error).empty());
    EXPECT_EQ(error, "Message is incomplete.");
}

TEST(Records, EmptyMessageHasNoRecords) {
    std::string error;
    EXPECT_TRUE(split("", &error).empty());
    EXPECT_TRUE(error.empty());
}

TEST(Records, EmptyRecordsAreYieldedAndRejectedByTheParser) {
    auto records = split(rs + rs);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0], "");
    parse_error(records[0]);
}

// ---- Parsing: invocations -------------------------------------------------------------------------------------------

TEST(ParseInvocation, TheHotCase) {
    const std::string record = R"({"type":1,"target":"ReceiveMessage","arguments":["{\"kind\":\"x\",\"n\":1}"]})";
    EXPECT_TRUE(fast(record));
    HubMessage m = parse_ok(record);
    EXPECT_EQ(m.type, 1);
    EXPECT_EQ(m.target, "ReceiveMessage");
    EXPECT_FALSE(m.has_invocation_id);
    ASSERT_EQ(m.arguments.size(), 1u);
    EXPECT_EQ(m.arguments[0], R"({"kind":"x","n":1})");
    EXPECT_EQ(m.argument_is_string, std::vector<bool>{true});
    EXPECT_FALSE(m.has_error);
    EXPECT_FALSE(m.has_result);
}

TEST(ParseInvocation, EveryFieldOrder) {
    std::vector<std::string> fields = {R"("type":1)", R"("target":"T")", R"("arguments":["a","b"])",
                                       R"("invocationId":"7")"};
    std::sort(fields.begin(), fields.end());
    int orders = 0;
    do {
        std::string record = "{" + fields[0] + "," + fields[1] + "," + fields[2] + "," + fields[3] + "}";
        EXPECT_TRUE(fast(record)) << record;
        HubMessage m = parse_ok(record);
        EXPECT_EQ(m.type, 1);
        EXPECT_EQ(m.target, "T");
        EXPECT_TRUE(m.has_invocation_id);
        EXPECT_EQ(m.invocation_id, "7");
        EXPECT_EQ(m.arguments, (std::vector<std::string>{"a", "b"}));
        ++orders;
    } while (std::next_permutation(fields.begin(), fields.end()));
    EXPECT_EQ(orders, 24);
}

TEST(ParseInvocation, WhitespaceEverywhere) {
    const std::string record = " \r\n{ \"arguments\" :\t[ \"x\" ,\n\"y\" ] , \"target\" : \"T\" ,\"type\" : 1 }\n ";
    EXPECT_TRUE(fast(record));
    HubMessage m = parse_ok(record);
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"x", "y"}));
}

TEST(ParseInvocation, Escapes) {
    struct Case {
        std::string json;
        std::string text;
    };
    for (const Case& c : std::vector<Case>{
             {R"(\"quoted\")", "\"quoted\""},
             {R"(back\\slash)", "back\\slash"},
             {R"(\/)", "/"},
             {R"(\b\f\n\r\t)", "\b\f\n\r\t"},
             {R"(\u0001\u001f\u007F)", "\x01\x1f\x7f"},
             {R"(nul\u0000byte)", std::string("nul\0byte", 8)},
             {R"(\u00e9\u00C9)", "\xC3\xA9\xC3\x89"},
             {R"(\u20ac)", "\xE2\x82\xAC"},
             {R"(\ud83d\ude00)", "\xF0\x9F\x98\x80"},
             {R"(\uDBFF\uDFFF)", "\xF4\x8F\xBF\xBF"},
             {"raw \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "raw \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
             {R"(a long run of plain text that crosses several eight-byte words \" then more)",
              "a long run of plain text that crosses several eight-byte words \" then more"},
         }) {
        const std::string record = R"({"type":1,"target":"T","arguments":[")" + c.json + R"("]})";
        EXPECT_TRUE(fast(record)) << c.json;
        HubMessage m = parse_ok(record);
        ASSERT_EQ(m.arguments.size(), 1u);
        EXPECT_EQ(m.arguments[0], c.text) << c.json;
        // Poco agrees.
        HubMessage p;
        std::string error;
        ASSERT_TRUE(detail::parse_message_poco(record, p, error)) << error;
        EXPECT_EQ(p.arguments[0], c.text) << c.json;
    }
}

TEST(ParseInvocation, LongStringsGrowTheBuffer) {
    // Past any initial room, with escapes and multi-byte characters straddling every growth step.
    std::string text;
    for (int i = 0; text.size() < 200000; ++i)
        text += (i % 3 == 0) ? "\"q\" " : (i % 3 == 1) ? "\xC3\xA9\xF0\x9F\x98\x80" : "plain-run ";
    std::string record;
    append_invocation(record, "T", text);
    record.pop_back();
    HubMessage fresh;
    ASSERT_TRUE(detail::parse_invocation_fast(record, fresh));
    EXPECT_EQ(fresh.arguments.at(0), text);
    HubMessage reused;
    ASSERT_TRUE(detail::parse_invocation_fast(record, reused));
    ASSERT_TRUE(detail::parse_invocation_fast(R"({"type":1,"target":"T","arguments":["short"]})", reused));
    EXPECT_EQ(reused.arguments.at(0), "short");
    ASSERT_TRUE(detail::parse_invocation_fast(record, reused));
    EXPECT_EQ(reused.arguments.at(0), text);
}

TEST(ParseInvocation, ManySmallArguments) {
    std::string record = R"({"type":1,"target":"T","arguments":[)";
    for (int i = 0; i < 5000; ++i)
        record += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
    record += "]}";
    EXPECT_TRUE(fast(record));
    HubMessage m = parse_ok(record);
    ASSERT_EQ(m.arguments.size(), 5000u);
    EXPECT_EQ(m.arguments[4999], "4999");
}

TEST(ParseInvocation, EscapedTargetAndInvocationId) {
    HubMessage m = parse_ok(R"({"type":1,"invocationId":"a\"b","target":"Re\u0063eive","arguments":[]})");
    EXPECT_EQ(m.target, "Receive");
    EXPECT_EQ(m.invocation_id, "a\"b");
    EXPECT_TRUE(m.arguments.empty());
}

TEST(ParseInvocation, NonStringArgumentsKeepTheirJsonText) {
    const std::string record =
        R"({"type":1,"target":"T","arguments":[12.50, {"z":1, "a":[true,null]}, "s", null, true, [ ], -0.0e+1]})";
    EXPECT_FALSE(fast(record));
    HubMessage m = parse_ok(record);
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"12.50", R"({"z":1, "a":[true,null]})", "s", "null", "true", "[ ]",
                                                     "-0.0e+1"}));
    EXPECT_EQ(m.argument_is_string, (std::vector<bool>{false, false, true, false, false, false, false}));
}

TEST(ParseInvocation, UnknownFieldsAreIgnored) {
    for (const char* record : {
             R"({"type":1,"target":"T","arguments":["a"],"x":"y","n":-12,"b":false,"z":null})",
             R"({"headers":{"k":"v"},"type":1,"target":"T","arguments":["a"],"streamIds":[]})",
             R"({"type":1,"target":"T","arguments":["a"],"f":1.5e3,"":"empty name"})",
         }) {
        HubMessage m = parse_ok(record);
        EXPECT_EQ(m.type, 1);
        EXPECT_EQ(m.arguments, std::vector<std::string>{"a"});
    }
    // Scalars are skipped by the fast path itself; containers go to Poco.
    EXPECT_TRUE(fast(R"({"type":1,"target":"T","arguments":["a"],"x":"y","n":-12,"b":false,"z":null})"));
    EXPECT_FALSE(fast(R"({"headers":{"k":"v"},"type":1,"target":"T","arguments":["a"]})"));
}

TEST(ParseInvocation, DuplicateMembersLastWins) {
    HubMessage m = parse_ok(R"({"type":1,"target":"A","arguments":[1],"target":"B","arguments":["x",2]})");
    EXPECT_EQ(m.target, "B");
    EXPECT_EQ(m.arguments, (std::vector<std::string>{"x", "2"}));
    EXPECT_EQ(m.argument_is_string, (std::vector<bool>{true, false}));
}

TEST(ParseInvocation, MissingOrWrongFields) {
    EXPECT_EQ(parse_error(R"({"type":1,"arguments":[]})"), "Missing required property 'target'.");
    EXPECT_EQ(parse_error(R"({"type":1,"target":"","arguments":[]})"), "Missing required property 'target'.");
    EXPECT_EQ(parse_error(R"({"type":1,"target":"T"})"), "Missing required property 'arguments'.");
    EXPECT_EQ(parse_error(R"({"type":4,"target":"T"})"), "Missing required property 'arguments'.");
    EXPECT_EQ(parse_error(R"({"type":1,"target":5,"arguments":[]})"), "Expected 'target' to be of type String.");
    EXPECT_EQ(parse_error(R"({"type":1,"target":"T","arguments":"a"})"), "Expected 'arguments' to be of type Array.");
    EXPECT_EQ(parse_error(R"({"type":1,"target":"T","arguments":[],"invocationId":3})"),
              "Expected 'invocationId' to be of type String.");
}

TEST(ParseInvocation, NullInvocationIdMeansNone) {
    HubMessage m = parse_ok(R"({"type":1,"target":"T","arguments":[],"invocationId":null})");
    EXPECT_FALSE(m.has_invocation_id);
}

// ---- Parsing: type ----------------------------------------------------------------------------------------------

TEST(ParseType, MustBeAnInteger) {
    EXPECT_EQ(parse_error(R"({"target":"T","arguments":[]})"), "Missing required property 'type'.");
    EXPECT_EQ(parse_error(R"({"type":null})"), "Missing required property 'type'.");
    for (const char* type : {R"("1")", "1.0", "1e0", "true", "[1]", "{}", "4294967297", "-2147483649"})
        EXPECT_EQ(parse_error(std::string(R"({"type":)") + type + R"(,"target":"T","arguments":[]})"),
                  "Expected 'type' to be of type Integer.")
            << type;
}

TEST(ParseType, BeyondSixtyFourBitsIsBadJson) {
    // Poco's own number parser refuses it, before the type is looked at.
    EXPECT_NE(parse_error(R"({"type":99999999999999999999})").find("not valid JSON"), std::string::npos);
}

TEST(ParseType, UnknownTypesParseForTheCallerToIgnore) {
    for (int type : {0, 8, 9, 42, -3}) {
        HubMessage m = parse_ok(R"({"type":)" + std::to_string(type) + R"(,"whatever":[1,2]})");
        EXPECT_EQ(m.type, type);
    }
}

// ---- Parsing: other messages -------------------------------------------------------------------------------------

TEST(ParseOther, Ping) {
    HubMessage m = parse_ok(R"({"type":6})");
    EXPECT_EQ(m.type, 6);
    EXPECT_TRUE(m.arguments.empty());
}

TEST(ParseOther, Close) {
    HubMessage m = parse_ok(R"({"type":7})");
    EXPECT_EQ(m.type, 7);
    EXPECT_FALSE(m.has_error);
    EXPECT_FALSE(m.allow_reconnect);
    m = parse_ok(R"({"allowReconnect":true,"error":"Connection closed with an error.","type":7})");
    EXPECT_TRUE(m.has_error);
    EXPECT_EQ(m.error, "Connection closed with an error.");
    EXPECT_TRUE(m.allow_reconnect);
    EXPECT_EQ(parse_error(R"({"type":7,"allowReconnect":"yes"})"), "Expected 'allowReconnect' to be of type Boolean.");
    EXPECT_EQ(parse_error(R"({"type":7,"error":1})"), "Expected 'error' to be of type String.");
}

TEST(ParseOther, Completion) {
    HubMessage m = parse_ok(R"({"type":3,"invocationId":"1","result":{"a":1}})");
    EXPECT_TRUE(m.has_result);
    EXPECT_FALSE(m.has_error);
    EXPECT_EQ(m.arguments, std::vector<std::string>{R"({"a":1})"});
    EXPECT_EQ(m.argument_is_string, std::vector<bool>{false});

    m = parse_ok(R"({"type":3,"invocationId":"1","result":"text"})");
    EXPECT_EQ(m.arguments, std::vector<std::string>{"text"});
    EXPECT_EQ(m.argument_is_string, std::vector<bool>{true});

    m = parse_ok(R"({"type":3,"invocationId":"1","result":null})");
    EXPECT_TRUE(m.has_result);
    EXPECT_EQ(m.arguments, std::vector<std::string>{"null"});

    m = parse_ok(R"({"type":3,"invocationId":"1","error":"Method does not exist."})");
    EXPECT_TRUE(m.has_error);
    EXPECT_FALSE(m.has_result);
    EXPECT_EQ(m.error, "Method does not exist.");
    EXPECT_TRUE(m.arguments.empty());

    m = parse_ok(R"({"type":3,"invocationId":"1"})");
    EXPECT_FALSE(m.has_error);
    EXPECT_FALSE(m.has_result);

    m = parse_ok(R"({"type":3,"invocationId":"1","result":1,"error":null})");
    EXPECT_TRUE(m.has_result);
    EXPECT_FALSE(m.has_error);
}

TEST(ParseOther, CompletionWithResultAndErrorIsAnError) {
    EXPECT_EQ(parse_error(R"({"type":3,"invocationId":"1","result":1,"error":"e"})"),
              "The 'error' and 'result' properties are mutually exclusive.");
    EXPECT_EQ(parse_error(R"({"type":3,"invocationId":"1","result":null,"error":"e"})"),
              "The 'error' and 'result' properties are mutually exclusive.");
    EXPECT_EQ(parse_error(R"({"type":3,"result":1})"), "Missing required property 'invocationId'.");
}

TEST(ParseOther, StreamItemAndCancel) {
    HubMessage m = parse_ok(R"({"type":2,"invocationId":"4","item":[1, 2]})");
    EXPECT_EQ(m.arguments, std::vector<std::string>{"[1, 2]"});
    EXPECT_EQ(parse_error(R"({"type":2,"invocationId":"4"})"), "Missing required property 'item'.");
    EXPECT_EQ(parse_error(R"({"type":2,"item":1})"), "Missing required property 'invocationId'.");
    EXPECT_EQ(parse_ok(R"({"type":5,"invocationId":"4"})").invocation_id, "4");
    EXPECT_EQ(parse_error(R"({"type":5})"), "Missing required property 'invocationId'.");
}

TEST(ParseOther, MalformedJson) {
    for (const std::string& record : {
             std::string(""),
             std::string(" "),
             std::string("{"),
             std::string(R"({"type":6} x)"),
             std::string(R"({"type":6}{"type":6})"),
             std::string(R"({"type":6,})"),
             std::string(R"({'type':6})"),
             std::string(R"({"type":NaN})"),
             std::string(R"({"type":01})"),
             std::string(R"({"type":1,"target":"T","arguments":["unterminated]})"),
             std::string(R"({"type":1,"target":"T","arguments":["raw)") + "\n" + R"(newline"]})",
             std::string(R"({"type":1,"target":"T","arguments":["bad \x escape"]})"),
             std::string(R"({"type":1,"target":"T","arguments":["lone \ud800 surrogate"]})"),
             std::string(R"({"type":1,"target":"T","arguments":["lone \udc00 low"]})"),
             std::string(R"({"type":1,"target":"T","arguments":["bad utf-8 )") + "\xC3\x28" + R"("]})",
             std::string(R"({"type":1,"target":"T","arguments":["a",]})"),
         }) {
        EXPECT_FALSE(fast(record)) << record;
        parse_error(record);
    }
    EXPECT_EQ(parse_error("[1,2]"), "Message is not a JSON object.");
    EXPECT_NE(parse_error("{").find("Message is not valid JSON"), std::string::npos);
}

TEST(ParseOther, ReusingTheMessageClearsWhatWasThere) {
    HubMessage m;
    std::string error;
    ASSERT_TRUE(parse_message(R"({"type":1,"invocationId":"9","target":"T","arguments":["a","b","c"]})", m, error));
    ASSERT_TRUE(parse_message(R"({"type":1,"target":"U","arguments":["x"]})", m, error));
    EXPECT_FALSE(m.has_invocation_id);
    EXPECT_EQ(m.invocation_id, "");
    EXPECT_EQ(m.target, "U");
    EXPECT_EQ(m.arguments, std::vector<std::string>{"x"});
    EXPECT_EQ(m.argument_is_string, std::vector<bool>{true});
    ASSERT_TRUE(parse_message(R"({"type":7,"error":"e","allowReconnect":true})", m, error));
    ASSERT_TRUE(parse_message(R"({"type":6})", m, error));
    EXPECT_FALSE(m.has_error);
    EXPECT_FALSE(m.allow_reconnect);
    EXPECT_TRUE(m.arguments.empty());
    EXPECT_TRUE(m.target.empty());
}

// ---- Writers ------------------------------------------------------------------------------------------------------

TEST(Writers, Invocation) {
    std::string out;
    append_invocation(out, "ReceiveMessage", R"({"kind":"x"})");
    EXPECT_EQ(out, R"({"type":1,"target":"ReceiveMessage","arguments":["{\"kind\":\"x\"}"]})" + rs);
}

TEST(Writers, InvocationEscapesAndParsesBack) {
    const std::vector<std::string> texts = {"",
                                            "plain",
                                            "quote \" and backslash \\",
                                            "controls \x01\x02\n\r\t\b\f\x1f",
                                            "\x1e record separator",
                                            "unicode \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                                            std::string("nul \0 inside", 12),
                                            R"({"nested":"json \"with\" escapes","n":[1,2]})"};
    for (const auto& text : texts) {
        std::string out = "keep";
        append_invocation(out, "Target \"x\"", text);
        ASSERT_EQ(out.substr(0, 4), "keep");
        const std::string record = strip(std::string_view(out).substr(4));
        // No raw separator may leak into the record, or the reader would split it.
        EXPECT_EQ(record.find(record_separator), std::string::npos);
        EXPECT_TRUE(fast(record)) << record;
        HubMessage m = parse_ok(record);
        EXPECT_EQ(m.type, 1);
        EXPECT_EQ(m.target, "Target \"x\"");
        ASSERT_EQ(m.arguments.size(), 1u);
        EXPECT_EQ(m.arguments[0], text);
        Poco::JSON::Parser parser;
        auto obj = parser.parse(record).extract<Poco::JSON::Object::Ptr>();
        EXPECT_EQ(obj->getArray("arguments")->getElement<std::string>(0), text);
    }
}

TEST(Writers, Ping) {
    std::string out;
    append_ping(out);
    EXPECT_EQ(out, R"({"type":6})" + rs);
    EXPECT_EQ(parse_ok(strip(out)).type, 6);
}

TEST(Writers, Close) {
    std::string out;
    append_close(out, "", false);
    EXPECT_EQ(out, R"({"type":7})" + rs);
    out.clear();
    append_close(out, "Connection closed with an error.", true);
    EXPECT_EQ(out, R"({"type":7,"error":"Connection closed with an error.","allowReconnect":true})" + rs);
    HubMessage m = parse_ok(strip(out));
    EXPECT_EQ(m.type, 7);
    EXPECT_EQ(m.error, "Connection closed with an error.");
    EXPECT_TRUE(m.allow_reconnect);
    out.clear();
    append_close(out, "", true);
    EXPECT_EQ(out, R"({"type":7,"allowReconnect":true})" + rs);
    out.clear();
    append_close(out, "bad \"thing\"", false);
    m = parse_ok(strip(out));
    EXPECT_EQ(m.error, "bad \"thing\"");
    EXPECT_FALSE(m.allow_reconnect);
}

TEST(Writers, CompletionError) {
    std::string out;
    append_completion_error(out, "12", "Method does not exist.");
    EXPECT_EQ(out, R"({"type":3,"invocationId":"12","error":"Method does not exist."})" + rs);
    out.clear();
    append_completion_error(out, "id \"q\"", "line\nbreak");
    HubMessage m = parse_ok(strip(out));
    EXPECT_EQ(m.type, 3);
    EXPECT_EQ(m.invocation_id, "id \"q\"");
    EXPECT_TRUE(m.has_error);
    EXPECT_EQ(m.error, "line\nbreak");
}

TEST(Writers, BatchedWritesSplitBack) {
    std::string out;
    append_ping(out);
    append_invocation(out, "A", "1");
    append_invocation(out, "B", "two\x1e");
    append_close(out, "", false);
    std::string error;
    auto records = split(out, &error);
    EXPECT_TRUE(error.empty());
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(parse_ok(records[2]).arguments.at(0), "two\x1e");
}

}  // namespace
