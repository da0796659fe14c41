// mint_token and jwks_for_public_key: the exact token shape, and clear errors for bad options.

#include "auth/token_minter.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <string>

#include "auth/jose_util.h"
#include "auth_test_support.h"

namespace hubflow::signalr::testing {
namespace {

std::string decoded_part(const std::string& token, int index) {
    std::size_t start = 0;
    for (int i = 0; i < index; ++i)
        start = token.find('.', start) + 1;
    const auto end = token.find('.', start);
    auto text = detail::base64url_decode(token.substr(start, end == std::string::npos ? end : end - start));
    EXPECT_TRUE(text.has_value());
    return text.value_or("");
}

Poco::JSON::Object::Ptr parse(const std::string& json) {
    Poco::JSON::Parser parser;
    return parser.parse(json).extract<Poco::JSON::Object::Ptr>();
}

std::string what_of_mint(const MintOptions& o) {
    try {
        mint_token(o);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no exception)";
}

TEST(MintToken, HeaderAndIntegerTimes) {
    MintOptions o = hs256_options();
    o.kid = "k1";
    o.iss = "https://identity.example";
    o.aud = "user_api";
    o.scopes = {"user_api.full_access", "openid"};
    const std::string token = mint_token(o);
    EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2);
    EXPECT_EQ(decoded_part(token, 0), R"({"alg":"HS256","kid":"k1","typ":"at+jwt"})");
    const std::string payload = decoded_part(token, 1);
    EXPECT_NE(payload.find("\"iat\":1800000000,"), std::string::npos) << payload;
    EXPECT_NE(payload.find("\"nbf\":1800000000"), std::string::npos) << payload;
    EXPECT_NE(payload.find("\"exp\":1800003600"), std::string::npos) << payload;
    EXPECT_NE(payload.find(R"("scope":["user_api.full_access","openid"])"), std::string::npos) << payload;
    const auto claims = parse(payload);
    EXPECT_EQ(claims->getValue<std::string>("sub"), "user-1");
    EXPECT_EQ(claims->getValue<std::string>("iss"), "https://identity.example");
    EXPECT_EQ(claims->getValue<std::string>("aud"), "user_api");
    // Whole seconds, not Poco's fractional Token::setExpiration.
    for (const char* name : {"iat", "nbf", "exp"})
        EXPECT_TRUE(claims->get(name).isInteger()) << name;
}

TEST(MintToken, OptionalPartsAreLeftOut) {
    MintOptions o = hs256_options();
    o.sub = "";
    o.scopes.clear();
    const std::string token = mint_token(o);
    EXPECT_EQ(decoded_part(token, 0), R"({"alg":"HS256","typ":"at+jwt"})");
    const auto claims = parse(decoded_part(token, 1));
    for (const char* name : {"sub", "iss", "aud", "scope", "kid"})
        EXPECT_FALSE(claims->has(name)) << name;
}

TEST(MintToken, ScopeAsString) {
    MintOptions o = hs256_options();
    o.scopes = {"openid", "user_api.full_access"};
    o.scope_as_string = true;
    EXPECT_NE(decoded_part(mint_token(o), 1).find(R"("scope":"openid user_api.full_access")"), std::string::npos);
}

TEST(MintToken, DefaultNowIsTheCurrentTime) {
    MintOptions o = hs256_options();
    o.now = {};
    const auto before =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const auto claims = parse(decoded_part(mint_token(o), 1));
    const auto iat = claims->getValue<Poco::Int64>("iat");
    EXPECT_GE(iat, before);
    EXPECT_LE(iat, before + 5);
    EXPECT_EQ(claims->getValue<Poco::Int64>("exp"), iat + 3600);
}

TEST(MintToken, SignedHeadersCarryAlgAndKid) {
    EXPECT_EQ(decoded_part(mint_token(signed_options("RS256", keys().rsa_a, "r1")), 0),
              R"({"alg":"RS256","kid":"r1","typ":"at+jwt"})");
    const std::string es = mint_token(signed_options("ES256", keys().ec_a, "e1"));
    EXPECT_EQ(decoded_part(es, 0), R"({"alg":"ES256","kid":"e1","typ":"at+jwt"})");
    EXPECT_EQ(decoded_part(es, 2).size(), 64u);  // R || S
}

TEST(MintToken, BadOptionsAreClearErrors) {
    for (const char* alg : {"HS512", "RS512", "none", "", "hs256"}) {
        MintOptions o = hs256_options();
        o.alg = alg;
        EXPECT_NE(what_of_mint(o).find("alg"), std::string::npos) << alg;
    }
    MintOptions o = hs256_options();
    o.secret = "";
    EXPECT_NE(what_of_mint(o).find("secret: required"), std::string::npos);
    o.secret = "too-short-secret";
    const std::string short_what = what_of_mint(o);
    EXPECT_NE(short_what.find("at least 32 bytes"), std::string::npos) << short_what;
    EXPECT_EQ(short_what.find("too-short-secret"), std::string::npos) << short_what;
    o = hs256_options();
    o.ttl_s = 0;
    EXPECT_NE(what_of_mint(o).find("ttl_s"), std::string::npos);

    o = signed_options("RS256", keys().rsa_a, "");
    o.key_pem_file = "";
    EXPECT_NE(what_of_mint(o).find("key_pem_file: required"), std::string::npos);
    o.key_pem_file = keys().rsa_a.private_pem_file + ".missing";
    const std::string missing = what_of_mint(o);
    EXPECT_NE(missing.find("key_pem_file"), std::string::npos) << missing;
    EXPECT_NE(missing.find(o.key_pem_file), std::string::npos) << missing;
    o.key_pem_file = keys().rsa_a.public_pem_file;  // a public key cannot sign
    EXPECT_NE(what_of_mint(o).find("no unencrypted private key"), std::string::npos);
    TempDir dir;
    write_file(dir.file("junk.pem"), "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
    o.key_pem_file = dir.file("junk.pem");
    EXPECT_NE(what_of_mint(o).find("no unencrypted private key"), std::string::npos);
    o.key_pem_file = keys().ec_a.private_pem_file;
    EXPECT_NE(what_of_mint(o).find("not an RSA key"), std::string::npos);
    o = signed_options("ES256", keys().rsa_a, "");
    EXPECT_NE(what_of_mint(o).find("not an EC P-256 key"), std::string::npos);
    o.key_pem_file = keys().ed25519.private_pem_file;
    EXPECT_NE(what_of_mint(o).find("not an EC P-256 key"), std::string::npos);
}

TEST(JwksForPublicKey, RsaDocument) {
    const auto doc = parse(jwks_for_public_key(keys().rsa_a.private_pem_file, "r1"));
    const auto key = doc->getArray("keys")->getObject(0);
    EXPECT_EQ(key->getValue<std::string>("kty"), "RSA");
    EXPECT_EQ(key->getValue<std::string>("use"), "sig");
    EXPECT_EQ(key->getValue<std::string>("alg"), "RS256");
    EXPECT_EQ(key->getValue<std::string>("kid"), "r1");
    EXPECT_EQ(key->getValue<std::string>("e"), "AQAB");
    EXPECT_EQ(detail::base64url_decode(key->getValue<std::string>("n"))->size(), 256u);
    // The public PEM gives the same document.
    EXPECT_EQ(jwks_for_public_key(keys().rsa_a.public_pem_file, "r1"),
              jwks_for_public_key(keys().rsa_a.private_pem_file, "r1"));
}

TEST(JwksForPublicKey, EcDocument) {
    const std::string text = jwks_for_public_key(keys().ec_a.public_pem_file, "");
    const auto key = parse(text)->getArray("keys")->getObject(0);
    EXPECT_EQ(key->getValue<std::string>("kty"), "EC");
    EXPECT_EQ(key->getValue<std::string>("crv"), "P-256");
    EXPECT_EQ(key->getValue<std::string>("alg"), "ES256");
    EXPECT_FALSE(key->has("kid"));
    EXPECT_EQ(detail::base64url_decode(key->getValue<std::string>("x"))->size(), 32u);
    EXPECT_EQ(detail::base64url_decode(key->getValue<std::string>("y"))->size(), 32u);
}

TEST(JwksForPublicKey, BadInputsThrow) {
    EXPECT_THROW(jwks_for_public_key("/nonexistent/key.pem", "k"), std::invalid_argument);
    EXPECT_THROW(jwks_for_public_key(keys().ed25519.public_pem_file, "k"), std::invalid_argument);
    TempDir dir;
    write_file(dir.file("empty.pem"), "");
    EXPECT_THROW(jwks_for_public_key(dir.file("empty.pem"), "k"), std::invalid_argument);
}

TEST(Base64Url, StrictAndCanonical) {
    EXPECT_EQ(detail::base64url_encode(""), "");
    EXPECT_EQ(detail::base64url_encode("ab"), "YWI");
    EXPECT_EQ(detail::base64url_encode("\xfb\xff"), "-_8");
    EXPECT_EQ(detail::base64url_decode("YWI"), std::optional<std::string>("ab"));
    EXPECT_EQ(detail::base64url_decode("YWJj"), std::optional<std::string>("abc"));
    EXPECT_FALSE(detail::base64url_decode("YWI="));  // padding
    EXPECT_FALSE(detail::base64url_decode("YWJ"));   // non-zero unused bits
    EXPECT_FALSE(detail::base64url_decode("Y"));     // impossible length
    EXPECT_FALSE(detail::base64url_decode(""));
    EXPECT_FALSE(detail::base64url_decode("+/8"));
    EXPECT_FALSE(detail::base64url_decode("YW I"));
    for (int n = 1; n < 70; ++n) {
        std::string bytes;
        for (int i = 0; i < n; ++i)
            bytes.push_back(static_cast<char>(i * 37 + n));
        EXPECT_EQ(detail::base64url_decode(detail::base64url_encode(bytes)), bytes) << n;
    }
}

TEST(JsonSyntaxError, GivesLineAndColumn) {
    EXPECT_FALSE(detail::json_syntax_error(R"({"a": [1, 2.5e3, true, null, "x\u00e9\n"]})"));
    EXPECT_EQ(detail::json_syntax_error("{\n  \"a\": 1,,\n}"),
              std::optional<std::string>("line 2, column 10: member name (a string) expected"));
    EXPECT_EQ(detail::json_syntax_error("[1, 2"),
              std::optional<std::string>("line 1, column 6: unexpected end of input"));
    EXPECT_EQ(detail::json_syntax_error("{} x"),
              std::optional<std::string>("line 1, column 4: unexpected text after the JSON value"));
    EXPECT_TRUE(detail::json_syntax_error("01"));
    EXPECT_TRUE(detail::json_syntax_error("\"tab\tin string\""));
    EXPECT_TRUE(detail::json_syntax_error(std::string(2000, '[')));
}

}  // namespace
}  // namespace hubflow::signalr::testing
