// The history's request language: good and bad filters, $orderby, $top, parameters, paths, tokens.
#include <gtest/gtest.h>

#include <Poco/JSON/Parser.h>

#include <random>

#include "history/history_query.h"

namespace hubflow::signalr {
namespace {

constexpr std::int64_t t10 = 1'796'551'200'000;  // 2026-12-06T10:00:00Z

TEST(ParseUtcTime, Forms) {
    EXPECT_EQ(parse_utc_time("2026-12-06T10:00:00Z")->ms, t10);
    EXPECT_EQ(parse_utc_time("2026-12-06T10:00:00.250Z")->ms, t10 + 250);
    EXPECT_EQ(parse_utc_time("2026-12-06T11:00:00+01:00")->ms, t10);
    EXPECT_EQ(parse_utc_time("2026-12-06T09:30:00-00:30")->ms, t10);
    EXPECT_EQ(parse_utc_time("1970-01-01T00:00:00Z")->ms, 0);
    EXPECT_EQ(parse_utc_time("2024-02-29T00:00:00Z")->ms, 1'709'164'800'000);
    auto fine = parse_utc_time("2026-12-06T10:00:00.0005Z");
    ASSERT_TRUE(fine);
    EXPECT_EQ(fine->ms, t10);
    EXPECT_FALSE(fine->exact);
    for (const char* bad :
         {"", "2026-12-06", "2026-12-06T10:00:00", "2026-13-06T10:00:00Z", "2026-02-30T10:00:00Z",
          "2025-02-29T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06 10:00:00Z", "2026-12-06T10:00:00.Z",
          "2026-12-06T10:00:00Zjunk", "2026-12-06T10:00:00+1:00", "x026-12-06T10:00:00Z"})
        EXPECT_FALSE(parse_utc_time(bad)) << bad;
}

TEST(ParseFilter, Bounds) {
    auto f = parse_filter("utc_date_time ge 2026-12-06T10:00:00Z and utc_date_time lt 2026-12-06T11:00:00Z");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.from_ms, t10);
    EXPECT_EQ(f.filter.to_ms, t10 + 3'600'000 - 1);
    f = parse_filter("utc_date_time gt DateTime'2026-12-06T10:00:00Z'");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.from_ms, t10 + 1);
    EXPECT_FALSE(f.filter.to_ms);
    f = parse_filter("(utc_date_time le 2026-12-06T10:00:00Z) and (utc_date_time le 2026-12-06T09:00:00Z)");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.to_ms, t10 - 3'600'000);  // the tighter bound
    f = parse_filter("utc_date_time ge '2026-12-06T10:00:00Z' and user_id eq 'o''brien'");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.from_ms, t10);
    EXPECT_EQ(f.filter.user, "o'brien");
    f = parse_filter("  user_id eq 'u1'  ");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.user, "u1");
    // A fraction finer than a millisecond rounds the bound inwards.
    f = parse_filter("utc_date_time ge 2026-12-06T10:00:00.0005Z and utc_date_time lt 2026-12-06T10:00:01.0005Z");
    ASSERT_EQ(f.error, "");
    EXPECT_EQ(f.filter.from_ms, t10 + 1);
    EXPECT_EQ(f.filter.to_ms, t10 + 1000);
}

TEST(ParseFilter, UnsupportedPartsAreNamed) {
    struct Case {
        const char* filter;
        const char* says;
    };
    for (const auto& c : std::vector<Case>{
             {"", "empty"},
             {"utc_date_time eq 2026-12-06T10:00:00Z", "not 'eq'"},
             {"utc_date_time ge 2026-12-06T10:00:00Z or utc_date_time lt 2026-12-06T11:00:00Z", "'or'"},
             {"not utc_date_time ge 2026-12-06T10:00:00Z", "the field 'not'"},
             {"local_date_time ge 2026-12-06T10:00:00", "the field 'local_date_time'"},
             {"lock_id eq 'x'", "the field 'lock_id'"},
             {"contains(user_id,'a')", "the function 'contains'"},
             {"utc_date_time ge yesterday", "'yesterday' is not a date-time"},
             {"utc_date_time ge datetimeoffset'2026-12-06T10:00:00Z'", "datetimeoffset'2026-12-06T10:00:00Z'"},
             {"utc_date_time ge", "where a date-time was expected"},
             {"utc_date_time", "where an operator was expected"},
             {"utc_date_time ge 2026-12-06T10:00:00Z and", "where a condition was expected"},
             {"(utc_date_time ge 2026-12-06T10:00:00Z", "where ')' was expected"},
             {"utc_date_time ge 2026-12-06T10:00:00Z)", "after a complete condition"},
             {"user_id ne 'a'", "only 'eq'"},
             {"user_id eq a", "quoted string"},
             {"user_id eq ''", "names no user"},
             {"user_id eq 'a' and user_id eq 'b'", "two different user_id"},
             {"user_id eq 'a", "unterminated string"},
         }) {
        auto f = parse_filter(c.filter);
        EXPECT_NE(f.error.find(c.says), std::string::npos) << c.filter << " -> " << f.error;
        EXPECT_EQ(f.error.rfind("$filter: ", 0), 0u) << f.error;
    }
    std::string deep(40, '(');
    EXPECT_NE(parse_filter(deep).error.find("too deep"), std::string::npos);
}

TEST(ParseQuery, Parameters) {
    auto r = parse_history_query(
        "%24filter=utc_date_time%20ge%202026-12-06T10%3A00%3A00Z&$orderby=utc_date_time+desc&$top=1000&user_id=u7");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.query.filter.from_ms, t10);
    EXPECT_EQ(r.query.filter.user, "u7");
    EXPECT_TRUE(r.query.descending);
    EXPECT_EQ(r.query.top, 1000u);
    r = parse_history_query("");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.query.top, 100u);
    EXPECT_FALSE(r.query.has_filter);
    EXPECT_FALSE(r.query.descending);
    r = parse_history_query("$orderby=utc_date_time&$continuationToken=%7B%22v%22%3A1%7D&access_token=abc");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.query.continuation, "{\"v\":1}");
    EXPECT_EQ(r.query.access_token, "abc");
    r = parse_history_query("user_id=u1&$filter=user_id eq 'u1'");
    EXPECT_EQ(r.error, "");
}

TEST(ParseQuery, BadParameters) {
    struct Case {
        const char* query;
        const char* says;
    };
    for (const auto& c : std::vector<Case>{
             {"$top=0", "from 1 to 1000"},
             {"$top=1001", "from 1 to 1000"},
             {"$top=-1", "whole number"},
             {"$top=ten", "whole number"},
             {"$top=", "whole number"},
             {"$top=99999999999999999999", "whole number"},
             {"$skip=10", "$skip is not supported"},
             {"$select=id", "'$select' is not supported"},
             {"site_id=x", "'site_id' is not supported"},
             {"$top=1&$top=2", "given twice"},
             {"$orderby=local_date_time desc", "only utc_date_time"},
             {"$orderby=utc_date_time sideways", "only asc or desc"},
             {"$filter=", "$filter is empty"},
             {"$filter=%zz", "malformed percent escape"},
             {"user_id=", "user_id is empty"},
             {"user_id=a&$filter=user_id eq 'b'", "different users"},
             {"$continuationToken=", "empty"},
         }) {
        auto r = parse_history_query(c.query);
        EXPECT_NE(r.error.find(c.says), std::string::npos) << c.query << " -> " << r.error;
    }
}

TEST(ParsePath, Routes) {
    auto t = parse_history_path("/v1.1/sites/site-a/entries");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->site, "site-a");
    EXPECT_EQ(t->hub, Hub::entries);
    t = parse_history_path("/V1.1/Sites/x y/Incidents/");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->site, "x y");
    EXPECT_EQ(t->hub, Hub::incidents);
    for (const char* bad : {"/v1.1/sites//entries", "/v1.1/sites/a/locks", "/v1.1/sites/a", "/v1/sites/a/entries",
                            "/v1.1/sites/a/b/entries"})
        EXPECT_FALSE(parse_history_path(bad)) << bad;
    EXPECT_TRUE(is_history_path("/v1.1/anything"));
    EXPECT_FALSE(is_history_path("/v1/hub/entries"));
}

TEST(Continuation, RoundTripAndRefusals) {
    ContinuationState s;
    s.site = "site \"a\"";
    s.hub = Hub::incidents;
    s.filter.from_ms = t10;
    s.filter.user = "u1";
    s.descending = true;
    s.snapshot = 42;
    s.after = {t10 + 5, 17};
    s.expires_s = 2'000'000'000;
    const std::string key(32, 'k');
    std::string text = encode_continuation(s, key);
    Poco::JSON::Parser().parse(text);  // plain JSON
    auto r = decode_continuation(text, key, 1'900'000'000);
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.state.site, s.site);
    EXPECT_EQ(r.state.hub, Hub::incidents);
    EXPECT_EQ(r.state.filter, s.filter);
    EXPECT_TRUE(r.state.descending);
    EXPECT_EQ(r.state.snapshot, 42u);
    EXPECT_EQ(r.state.after, s.after);

    EXPECT_EQ(decode_continuation(text, key, 2'000'000'001).error.rfind("expired", 0), 0u);
    EXPECT_EQ(decode_continuation(text, std::string(32, 'x'), 0).error, "unknown continuation token");
    std::string forged = text;
    forged.replace(forged.find("\"snap\":42"), 9, "\"snap\":43");
    EXPECT_EQ(decode_continuation(forged, key, 0).error, "unknown continuation token");
    for (const char* bad : {"", "{}", "[1]", "not json", "{\"v\":1}", "null"})
        EXPECT_EQ(decode_continuation(bad, key, 0).error, "unknown continuation token") << bad;
}

TEST(Body, ItemsAndToken) {
    EXPECT_EQ(history_body({}, ""), R"({"items":[]})");
    EXPECT_EQ(history_body({R"({"id":"a"})", "plain"}, R"({"v":1})"),
              R"({"items":[{"id":"a"},"plain"],"continuation_token":"{\"v\":1}"})");
}

// Not the fuzzing to come: a seeded sweep of byte mutations of good requests and tokens, so that every branch
// of the parsers meets truncation, stray bytes and swapped characters (run under ASan/UBSan in the sanitizer
// build). Each must end in an answer or a named error.
TEST(ParseQuery, MutatedInputAnswersOrNamesAnError) {
    const std::vector<std::string> seeds = {
        "$filter=utc_date_time%20ge%20DateTime'2026-12-06T10:00:00Z'%20and%20(utc_date_time%20lt%202026-12-06T11:00:"
        "00.5%2B01:00)%20and%20user_id%20eq%20'a''b'&$orderby=utc_date_time%20desc&$top=17",
        "user_id=u&$continuationToken=%7B%22v%22%3A1%7D&access_token=x",
    };
    ContinuationState state;
    state.site = "s";
    state.filter.from_ms = t10;
    state.snapshot = 9;
    state.after = {t10, 3};
    state.expires_s = 2'000'000'000;
    const std::string key(32, 'k');
    const std::string token = encode_continuation(state, key);
    std::mt19937 rng(12);
    static const char chars[] = "()' %&=$+-:.TZ0129aqeglt\"\x00\xff";
    const std::string alphabet(chars, sizeof chars - 1);
    for (int i = 0; i < 20000; ++i) {
        std::string text = i % 3 == 2 ? token : seeds[static_cast<std::size_t>(i) % 2];
        for (int m = 0; m < 1 + i % 4; ++m) {
            std::size_t at = rng() % (text.size() + 1);
            switch (rng() % 3) {
                case 0:
                    text.insert(at, 1, alphabet[rng() % alphabet.size()]);
                    break;
                case 1:
                    if (at < text.size()) text.erase(at, 1);
                    break;
                default:
                    text.resize(at);
            }
        }
        if (i % 3 == 2) {
            auto r = decode_continuation(text, key, 0);
            if (r.error.empty()) {
                EXPECT_EQ(encode_continuation(r.state, key), encode_continuation(state, key));
            }
        } else {
            auto r = parse_history_query(text);
            if (!r.error.empty()) {
                EXPECT_LT(r.error.size(), 400u);
            }
            auto f = parse_filter(text);
            EXPECT_TRUE(!f.error.empty() || f.filter.from_ms || f.filter.to_ms || f.filter.user) << text;
        }
    }
}

}  // namespace
}  // namespace hubflow::signalr
