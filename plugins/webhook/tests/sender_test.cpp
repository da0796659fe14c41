// The pure pieces of a request: Retry-After, the Standard Webhooks secret and signature, excerpts, URLs.

#include "sender.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

using hubflow::webhook::decode_secret;
using hubflow::webhook::parse_retry_after;
using hubflow::webhook::printable_excerpt;
using hubflow::webhook::redacted_url;
using hubflow::webhook::sign;
using namespace std::chrono_literals;

// Wed, 21 Oct 2026 07:28:00 GMT
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1792567680));

TEST(RetryAfter, DelaySeconds) {
    EXPECT_EQ(parse_retry_after("0", now), 0ms);
    EXPECT_EQ(parse_retry_after(" 120 ", now), 120s);
    EXPECT_EQ(parse_retry_after("99999999999", now), std::chrono::hours(1));  // capped
}

TEST(RetryAfter, HttpDate) {
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now), 30s);
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", now), 0ms);      // in the past
    EXPECT_EQ(parse_retry_after("Wednesday, 21-Oct-26 07:29:00 GMT", now), 60s);  // RFC 850, still legal
}

TEST(RetryAfter, Garbage) {
    EXPECT_FALSE(parse_retry_after("", now));
    EXPECT_FALSE(parse_retry_after("soon", now));
    EXPECT_FALSE(parse_retry_after("-5", now));
}

TEST(Secret, DecodesWithOrWithoutPrefix) {
    EXPECT_EQ(decode_secret("whsec_aGVsbG8gd29ybGQ="), "hello world");
    EXPECT_EQ(decode_secret("aGVsbG8gd29ybGQ="), "hello world");
    EXPECT_THROW(decode_secret("whsec_"), std::invalid_argument);
    EXPECT_THROW(decode_secret("whsec_a*b"), std::invalid_argument);
}

TEST(Signature, IsV1Base64OfHmacSha256) {
    // HMAC-SHA256 with key "key" of "msg_1.1700000000.{}", computed independently with
    //   printf 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac key -binary | base64
    const std::string sig = sign("key", "msg_1", 1700000000, "{}");
    EXPECT_EQ(sig.rfind("v1,", 0), 0u);
    EXPECT_EQ(sig.size(), 3u + 44u);  // 32 bytes in base64, no line breaks
    EXPECT_EQ(sig, "v1," + std::string("XaXLFEFQ69Q4+demDWPEv5ydXczDW2mM5crCUEFcFBA="));
}

TEST(Excerpt, CutsAndRepairsUtf8) {
    EXPECT_EQ(printable_excerpt("plain", 100), "plain");
    EXPECT_EQ(printable_excerpt("abcdef", 3), "abc");
    EXPECT_EQ(printable_excerpt("bad \xff byte", 100), "bad ? byte");
    EXPECT_EQ(printable_excerpt("caf\xc3\xa9", 4), "caf?");  // a two-byte character cut in half
}

TEST(Url, LogsNeitherQueryNorCredentials) {
    EXPECT_EQ(redacted_url(Poco::URI("https://hooks.example.com/in?token=secret")), "https://hooks.example.com/in");
    EXPECT_EQ(redacted_url(Poco::URI("http://127.0.0.1:8080")), "http://127.0.0.1:8080/");
}

}  // namespace
