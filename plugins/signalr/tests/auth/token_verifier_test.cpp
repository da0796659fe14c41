// TokenVerifier: configuration errors, every refusal reason, the algorithm rules, claim edges and JWKS reloads
// from a file. The JWKS-over-HTTP cases are in jwks_url_test.cpp.

#include "auth/token_verifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "auth/token_minter.h"
#include "auth_test_support.h"

namespace hubflow::signalr::testing {
namespace {

class TokenVerifierTest : public ::testing::Test {
protected:
    TempDir dir;
    std::vector<std::string> events;

    std::string jwks_path(const std::string& text) {
        const std::string path = dir.file("jwks.json");
        write_file(path, text);
        return path;
    }

    static std::string jwks(const TestKey& key, const std::string& kid) {
        return jwks_for_public_key(key.private_pem_file, kid);
    }

    TokenVerifier file_verifier(const std::string& jwks_text, AuthSettings s = {}) {
        s.jwks_file = jwks_path(jwks_text);
        return TokenVerifier(s, [this](const std::string& e) { events.push_back(e); });
    }

    static AuthSettings secret_settings() {
        AuthSettings s;
        s.hs256_secret = kSecret;
        return s;
    }
};

std::string what_of_construction(const AuthSettings& s) {
    try {
        TokenVerifier v(s);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no exception)";
}

// Replaces part `index` (0 header, 1 payload, 2 signature) of a compact token.
std::string replace_part(const std::string& token, int index, const std::string& part) {
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    std::string parts[3] = {token.substr(0, d1), token.substr(d1 + 1, d2 - d1 - 1), token.substr(d2 + 1)};
    parts[index] = part;
    return parts[0] + "." + parts[1] + "." + parts[2];
}

std::string part_of(const std::string& token, int index) {
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    if (index == 0) return token.substr(0, d1);
    if (index == 1) return token.substr(d1 + 1, d2 - d1 - 1);
    return token.substr(d2 + 1);
}

// ---- configuration ----

TEST_F(TokenVerifierTest, NoKeySourceIsAConfigurationError) {
    const std::string what = what_of_construction(AuthSettings{});
    EXPECT_NE(what.find("hs256_secret"), std::string::npos) << what;
    EXPECT_NE(what.find("jwks_file"), std::string::npos) << what;
    EXPECT_NE(what.find("jwks_url"), std::string::npos) << what;
}

TEST_F(TokenVerifierTest, SecretShorterThan32BytesIsRefusedWithoutEchoingIt) {
    AuthSettings s;
    s.hs256_secret = "a-secret-of-31-bytes-xxxxxxxxxx";
    ASSERT_EQ(s.hs256_secret.size(), 31u);
    const std::string what = what_of_construction(s);
    EXPECT_NE(what.find("hs256_secret"), std::string::npos) << what;
    EXPECT_EQ(what.find(s.hs256_secret), std::string::npos) << what;
    s.hs256_secret += "y";
    EXPECT_NO_THROW(TokenVerifier{s});
}

TEST_F(TokenVerifierTest, BadSettingsNameTheSetting) {
    AuthSettings s = secret_settings();
    s.leeway_s = -1;
    EXPECT_NE(what_of_construction(s).find("leeway_s"), std::string::npos);
    s = secret_settings();
    s.user_claim = "";
    EXPECT_NE(what_of_construction(s).find("user_claim"), std::string::npos);
    s = AuthSettings{};
    s.jwks_file = jwks_path(jwks(keys().rsa_a, "a"));
    s.jwks_url = "http://127.0.0.1:1/jwks";
    const std::string both = what_of_construction(s);
    EXPECT_NE(both.find("jwks_file"), std::string::npos) << both;
    EXPECT_NE(both.find("jwks_url"), std::string::npos) << both;
    for (const char* url : {"ftp://host/jwks", "not a url", "https://", "file:///etc/jwks.json"}) {
        s = AuthSettings{};
        s.jwks_url = url;
        EXPECT_NE(what_of_construction(s).find("jwks_url"), std::string::npos) << url;
    }
}

TEST_F(TokenVerifierTest, UnreadableJwksFileNamesSettingAndPath) {
    AuthSettings s;
    s.jwks_file = dir.file("missing.json");
    const std::string what = what_of_construction(s);
    EXPECT_NE(what.find("jwks_file"), std::string::npos) << what;
    EXPECT_NE(what.find(s.jwks_file), std::string::npos) << what;
}

TEST_F(TokenVerifierTest, InvalidJwksFilesAreConfigurationErrors) {
    AuthSettings s;
    s.jwks_file = jwks_path("{\"keys\": [\n  {\"kty\": \"RSA\",, \"n\": \"x\"}\n]}");
    std::string what = what_of_construction(s);
    EXPECT_NE(what.find("jwks_file"), std::string::npos) << what;
    EXPECT_NE(what.find("line 2"), std::string::npos) << what;

    s.jwks_file = jwks_path("{\"no_keys\": []}");
    what = what_of_construction(s);
    EXPECT_NE(what.find("keys"), std::string::npos) << what;

    s.jwks_file = jwks_path("[1, 2]");
    EXPECT_NE(what_of_construction(s).find("jwks_file"), std::string::npos);

    s.jwks_file = jwks_path("{\"keys\": []}");
    what = what_of_construction(s);
    EXPECT_NE(what.find("no usable"), std::string::npos) << what;
}

TEST_F(TokenVerifierTest, JwksWithOnlyA1024BitRsaKeyIsRefused) {
    AuthSettings s;
    s.jwks_file = jwks_path(jwks(keys().rsa_small, "small"));
    const std::string what = what_of_construction(s);
    EXPECT_NE(what.find("no usable"), std::string::npos) << what;
}

TEST_F(TokenVerifierTest, UnusableKeysAreSkippedAndReported) {
    const std::string enc_key = R"({"kty":"RSA","use":"enc","kid":"enc","n":"AQAB","e":"AQAB"})";
    const std::string p384 = R"({"kty":"EC","crv":"P-384","kid":"p384","x":"AAAA","y":"AAAA"})";
    const std::string off_curve = R"({"kty":"EC","crv":"P-256","kid":"off","x":")" + b64(std::string(32, '\x01')) +
                                  R"(","y":")" + b64(std::string(32, '\x02')) + R"("})";
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_small, "small"), jwks(keys().rsa_a, "a"),
                                       "{\"keys\":[" + enc_key + "," + p384 + "," + off_curve + "]}"}));
    std::string all;
    for (const auto& e : events)
        all += e + "\n";
    EXPECT_NE(all.find("small"), std::string::npos) << all;
    EXPECT_NE(all.find("1024 bits"), std::string::npos) << all;
    EXPECT_NE(all.find("\"enc\""), std::string::npos) << all;
    EXPECT_NE(all.find("P-384"), std::string::npos) << all;
    EXPECT_NE(all.find("\"off\""), std::string::npos) << all;
    expect_accepted(v, mint_token(signed_options("RS256", keys().rsa_a, "a")), test_now());
}

TEST_F(TokenVerifierTest, JwkAlgMustMatchTheKeyType) {
    std::string doc = jwks(keys().rsa_b, "b");
    doc.replace(doc.find("RS256"), 5, "RS512");
    auto v = file_verifier(merge_jwks({doc, jwks(keys().rsa_a, "a")}));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(events[0].find("RS512"), std::string::npos) << events[0];
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_b, "b")), test_now(), "unknown key id");
}

// ---- accepted tokens ----

TEST_F(TokenVerifierTest, Hs256TokenFromMintTokenVerifies) {
    TokenVerifier v(secret_settings());
    const VerifyResult r = v.verify(mint_token(hs256_options()), test_now());
    ASSERT_TRUE(r.ok) << r.reason;
    EXPECT_EQ(r.reason, "");
    EXPECT_EQ(r.principal.user_id, "user-1");
    EXPECT_EQ(r.principal.scopes, std::vector<std::string>{"user_api.full_access"});
    EXPECT_NE(r.principal.claims_json.find("\"sub\":\"user-1\""), std::string::npos) << r.principal.claims_json;
}

TEST_F(TokenVerifierTest, Rs256AndEs256TokensFromMintTokenVerify) {
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_a, "rsa-a"), jwks(keys().ec_a, "ec-a")}));
    expect_accepted(v, mint_token(signed_options("RS256", keys().rsa_a, "rsa-a")), test_now());
    expect_accepted(v, mint_token(signed_options("ES256", keys().ec_a, "ec-a")), test_now());
}

TEST_F(TokenVerifierTest, TokenWithoutKidIsTriedAgainstItsFamilyKeys) {
    auto v = file_verifier(merge_jwks(
        {jwks(keys().ec_a, "ec-a"), jwks(keys().rsa_a, "rsa-a"), jwks(keys().rsa_b, "rsa-b"), jwks(keys().ec_b, "")}));
    expect_accepted(v, mint_token(signed_options("RS256", keys().rsa_b, "")), test_now());
    expect_accepted(v, mint_token(signed_options("ES256", keys().ec_b, "")), test_now());
    expect_accepted(v, mint_token(signed_options("ES256", keys().ec_a, "")), test_now());
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_c, "")), test_now(), "bad signature");
}

TEST_F(TokenVerifierTest, SecretAndJwksTogetherAcceptBothFamilies) {
    auto v = file_verifier(jwks(keys().rsa_a, "a"), secret_settings());
    expect_accepted(v, mint_token(hs256_options()), test_now());
    expect_accepted(v, mint_token(signed_options("RS256", keys().rsa_a, "a")), test_now());
}

// ---- signatures and algorithms ----

TEST_F(TokenVerifierTest, TamperedPayloadIsABadSignature) {
    TokenVerifier hs(secret_settings());
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_a, "rsa-a"), jwks(keys().ec_a, "ec-a")}));
    const std::string forged_claims = claims("\"sub\":\"admin\",\"scope\":[\"user_api.full_access\"],");
    const std::string hs_token = mint_token(hs256_options());
    expect_refused(hs, replace_part(hs_token, 1, b64(forged_claims)), test_now(), "bad signature");
    for (const auto& token : {mint_token(signed_options("RS256", keys().rsa_a, "rsa-a")),
                              mint_token(signed_options("ES256", keys().ec_a, "ec-a"))}) {
        expect_refused(v, replace_part(token, 1, b64(forged_claims)), test_now(), "bad signature");
    }
}

TEST_F(TokenVerifierTest, TamperedSignatureIsABadSignature) {
    TokenVerifier hs(secret_settings());
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_a, "rsa-a"), jwks(keys().ec_a, "ec-a")}));
    auto flip_middle = [](std::string token) {
        const auto i = token.rfind('.') + 5;
        token[i] = token[i] == 'A' ? 'B' : 'A';
        return token;
    };
    expect_refused(hs, flip_middle(mint_token(hs256_options())), test_now(), "bad signature");
    expect_refused(v, flip_middle(mint_token(signed_options("RS256", keys().rsa_a, "rsa-a"))), test_now(),
                   "bad signature");
    expect_refused(v, flip_middle(mint_token(signed_options("ES256", keys().ec_a, "ec-a"))), test_now(),
                   "bad signature");
    // Signed by another key under a known kid.
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_b, "rsa-a")), test_now(), "bad signature");
    MintOptions other_secret = hs256_options();
    other_secret.secret = "another-secret-of-at-least-32-bytes!";
    expect_refused(hs, mint_token(other_secret), test_now(), "bad signature");
    // A truncated signature (40 characters, still canonical base64url).
    const std::string token = mint_token(hs256_options());
    expect_refused(hs, token.substr(0, token.size() - 3), test_now(), "bad signature");
}

TEST_F(TokenVerifierTest, SignatureIsCheckedBeforeClaims) {
    TokenVerifier v(secret_settings());
    MintOptions o = hs256_options();
    o.now = at(kNowS - 10000);  // long expired
    const std::string expired = mint_token(o);
    expect_refused(v, expired, test_now(), "token expired");
    expect_refused(v, replace_part(expired, 2, part_of(mint_token(hs256_options()), 2)), test_now(), "bad signature");
}

TEST_F(TokenVerifierTest, NonCanonicalBase64IsMalformed) {
    TokenVerifier v(secret_settings());
    const std::string token = mint_token(hs256_options());
    // 32 signature bytes are 43 characters; the last one carries 2 unused bits, which must be zero.
    std::string sig = part_of(token, 2);
    ASSERT_EQ(sig.size(), 43u);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    sig.back() = alphabet[alphabet.find(sig.back()) ^ 1];
    expect_refused(v, replace_part(token, 2, sig), test_now(), "malformed token");
}

TEST_F(TokenVerifierTest, AlgNoneIsRefused) {
    TokenVerifier hs(secret_settings());
    auto rs = file_verifier(jwks(keys().rsa_a, "a"));
    const std::string body = b64(claims("\"scope\":[\"user_api.full_access\"],\"sub\":\"user-1\","));
    for (const char* header : {R"({"alg":"none","typ":"JWT"})", R"({"alg":"None"})", R"({"alg":"NONE","kid":"a"})"}) {
        // The usual unsecured form has an empty third part...
        expect_refused(hs, b64(header) + "." + body + ".", test_now(), "malformed token");
        expect_refused(rs, b64(header) + "." + body + ".", test_now(), "malformed token");
        // ...and with some signature it is an algorithm nobody allowed.
        expect_refused(hs, b64(header) + "." + body + ".AAAA", test_now(), "algorithm not allowed");
        expect_refused(rs, b64(header) + "." + body + ".AAAA", test_now(), "algorithm not allowed");
    }
}

TEST_F(TokenVerifierTest, Hs256SignedWithRsaPublicKeyPemIsRefused) {
    // The classic confusion: an attacker knows the public key and uses its PEM text as an HMAC secret.
    const std::string& pem = keys().rsa_a.public_pem;
    ASSERT_GE(pem.size(), 32u);
    MintOptions o = hs256_options();
    o.secret = pem;
    o.kid = "a";
    const std::string forged = mint_token(o);
    auto jwks_only = file_verifier(jwks(keys().rsa_a, "a"));
    expect_refused(jwks_only, forged, test_now(), "algorithm not allowed");
    // With a real secret configured too, HS256 is allowed but the PEM is not that secret.
    auto both = file_verifier(jwks(keys().rsa_a, "a"), secret_settings());
    expect_refused(both, forged, test_now(), "bad signature");
    // The JWKS text itself as a secret does no better.
    o.secret = jwks(keys().rsa_a, "a");
    expect_refused(jwks_only, mint_token(o), test_now(), "algorithm not allowed");
}

TEST_F(TokenVerifierTest, AlgorithmsFollowTheConfiguredKeys) {
    TokenVerifier hs_only(secret_settings());
    expect_refused(hs_only, mint_token(signed_options("RS256", keys().rsa_a, "a")), test_now(),
                   "algorithm not allowed");
    expect_refused(hs_only, mint_token(signed_options("ES256", keys().ec_a, "e")), test_now(), "algorithm not allowed");
    const std::string body = claims();
    for (const char* alg : {"HS384", "HS512", "RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA", "hs256", ""}) {
        const std::string header = std::string(R"({"alg":")") + alg + R"("})";
        expect_refused(hs_only, craft_hs256(header, body), test_now(), "algorithm not allowed");
    }
}

TEST_F(TokenVerifierTest, KeyIsOnlyUsedForItsOwnFamily) {
    // No EC key at all: ES256 is not allowed (after one reload attempt finds none).
    auto rsa_only = file_verifier(jwks(keys().rsa_a, "a"));
    expect_refused(rsa_only, mint_token(signed_options("ES256", keys().ec_a, "")), test_now(), "algorithm not allowed");
    // An ES256 token naming an RSA key's kid.
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_a, "rsa-a"), jwks(keys().ec_a, "ec-a")}));
    expect_refused(v, mint_token(signed_options("ES256", keys().ec_a, "rsa-a")), test_now(), "algorithm not allowed");
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_a, "ec-a")), test_now(), "algorithm not allowed");
}

TEST_F(TokenVerifierTest, TokenFromA1024BitKeyIsRefused) {
    auto v = file_verifier(merge_jwks({jwks(keys().rsa_small, "small"), jwks(keys().rsa_a, "a")}));
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_small, "small")), test_now(), "unknown key id");
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_small, "")), test_now(), "bad signature");
}

// ---- shape ----

TEST_F(TokenVerifierTest, TokenShapeIsStrict) {
    TokenVerifier v(secret_settings());
    const std::string token = mint_token(hs256_options());
    const std::string h = part_of(token, 0), p = part_of(token, 1), s = part_of(token, 2);
    const std::vector<std::string> bad = {
        "",
        ".",
        "..",
        "...",
        h,
        h + "." + p,
        token + ".",
        token + "." + s,  // four parts
        "." + p + "." + s,
        h + ".." + s,
        h + "." + p + "." + s + "=",
        h + "=." + p + "." + s,
        h + "." + p + "." + s.substr(0, 10) + "+" + s.substr(11),
        h + "." + p + "." + s.substr(0, 10) + "/" + s.substr(11),
        h + "." + p + "." + s.substr(0, 10) + "*" + s.substr(11),
        h + "." + p + "." + s.substr(0, 10) + " " + s.substr(11),
        " " + token,
        token + "\n",
        std::string(token).insert(5, 1, '\0'),
        h + "." + p + "." + s.substr(0, 41),  // 42 characters: a length no base64 has (mod 4 == 1 after trim)
        h + "." + p + "x." + s,               // payload of length 4k+1
        "Bearer " + token,
        std::string(70 * 1024, 'a') + "." + p + "." + s,
    };
    for (const auto& t : bad) {
        SCOPED_TRACE(t.substr(0, 80));
        const VerifyResult r = v.verify(t, test_now());
        EXPECT_FALSE(r.ok);
        // A wrong length may decode to a wrong signature; everything else is malformed.
        EXPECT_TRUE(r.reason == "malformed token" || r.reason == "bad signature") << r.reason;
        if (t.size() >= 8) {
            EXPECT_EQ(r.reason.find(t.substr(0, 16)), std::string::npos);
        }
    }
    expect_refused(v, token + "." + s, test_now(), "malformed token");
    expect_refused(v, h + "." + p + "." + s.substr(0, 10) + "+" + s.substr(11), test_now(), "malformed token");
    expect_refused(v, h + "." + p + "." + s.substr(0, 10) + "/" + s.substr(11), test_now(), "malformed token");
    expect_refused(v, token + "=", test_now(), "malformed token");
}

TEST_F(TokenVerifierTest, BrokenHeaderOrPayloadIsMalformed) {
    TokenVerifier v(secret_settings());
    const std::string body = claims();
    expect_refused(v, craft_hs256("not json", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"(["HS256"])", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"typ":"JWT"})", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":256})", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256","kid":7})", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256","crit":["exp"],"exp":1})", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256"} trailing)", body), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256"})", "not json"), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256"})", "[1,2]"), test_now(), "malformed token");
    expect_refused(v, craft_hs256(R"({"alg":"HS256"})", "\"text\""), test_now(), "malformed token");
    // The same header and payload are fine when well formed.
    expect_accepted(v, craft_hs256(R"({"alg":"HS256"})", body), test_now());
}

// ---- claims ----

TEST_F(TokenVerifierTest, ExpIsRequiredAndNumeric) {
    TokenVerifier v(secret_settings());
    const std::string h = R"({"alg":"HS256"})";
    expect_refused(v, craft_hs256(h, R"({"sub":"user-1"})"), test_now(), "missing exp");
    expect_refused(v, craft_hs256(h, R"({"sub":"user-1","exp":"1900000000"})"), test_now(), "missing exp");
    expect_refused(v, craft_hs256(h, R"({"sub":"user-1","exp":true})"), test_now(), "missing exp");
    expect_refused(v, craft_hs256(h, R"({"sub":"user-1","exp":null})"), test_now(), "missing exp");
    expect_refused(v, craft_hs256(h, R"({"sub":"user-1","exp":[1900000000]})"), test_now(), "missing exp");
    expect_accepted(v, craft_hs256(h, R"({"sub":"user-1","exp":1900000000})"), test_now());
}

TEST_F(TokenVerifierTest, ExpWithLeewayEdges) {
    TokenVerifier v(secret_settings());  // leeway 30 s
    const std::string h = R"({"alg":"HS256"})";
    const std::string token = craft_hs256(h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS) + "}");
    expect_accepted(v, token, at(kNowS + 29));
    expect_accepted(v, token, at(kNowS + 30) - std::chrono::milliseconds(1));
    expect_refused(v, token, at(kNowS + 30), "token expired");
    expect_refused(v, token, at(kNowS + 31), "token expired");

    AuthSettings s = secret_settings();
    s.leeway_s = 0;
    TokenVerifier strict(s);
    expect_accepted(strict, token, at(kNowS - 1));
    expect_refused(strict, token, at(kNowS), "token expired");

    // Fractional seconds, as Poco's Token::setExpiration writes them.
    const std::string fractional = craft_hs256(h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS) + ".5}");
    expect_accepted(strict, fractional, at(kNowS));
    expect_refused(strict, fractional, at(kNowS) + std::chrono::milliseconds(500), "token expired");

    // A minted token lives ttl_s.
    MintOptions o = hs256_options();
    o.ttl_s = 60;
    const std::string minted = mint_token(o);
    expect_accepted(strict, minted, at(kNowS + 59));
    expect_refused(strict, minted, at(kNowS + 60), "token expired");
}

TEST_F(TokenVerifierTest, NbfWithLeewayEdges) {
    TokenVerifier v(secret_settings());
    const std::string h = R"({"alg":"HS256"})";
    auto with_nbf = [&](const std::string& nbf) {
        return craft_hs256(h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS + 3600) + R"(,"nbf":)" + nbf + "}");
    };
    expect_accepted(v, with_nbf(std::to_string(kNowS + 30)), test_now());
    expect_refused(v, with_nbf(std::to_string(kNowS + 31)), test_now(), "token not yet valid");
    expect_refused(v, with_nbf(std::to_string(kNowS + 30)), test_now() - std::chrono::milliseconds(1),
                   "token not yet valid");
    expect_refused(v, with_nbf("\"soon\""), test_now(), "malformed token");
    expect_refused(v, with_nbf("false"), test_now(), "malformed token");

    AuthSettings s = secret_settings();
    s.leeway_s = 0;
    TokenVerifier strict(s);
    expect_accepted(strict, with_nbf(std::to_string(kNowS)), test_now());
    expect_refused(strict, with_nbf(std::to_string(kNowS + 1)), test_now(), "token not yet valid");
    // nbf is optional.
    expect_accepted(strict, craft_hs256(h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS + 10) + "}"), test_now());

    // nbf after exp: never valid, even when the leeway covers both.
    const std::string inverted = craft_hs256(
        h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS + 5) + R"(,"nbf":)" + std::to_string(kNowS + 10) + "}");
    expect_refused(v, inverted, test_now(), "malformed token");
    expect_accepted(v,
                    craft_hs256(h, R"({"sub":"user-1","exp":)" + std::to_string(kNowS + 5) + R"(,"nbf":)" +
                                       std::to_string(kNowS + 5) + "}"),
                    test_now());
}

TEST_F(TokenVerifierTest, IssuerWhenConfigured) {
    AuthSettings s = secret_settings();
    s.issuer = "https://identity.example";
    TokenVerifier v(s);
    MintOptions o = hs256_options();
    o.iss = "https://identity.example";
    expect_accepted(v, mint_token(o), test_now());
    o.iss = "https://identity.example/";
    expect_refused(v, mint_token(o), test_now(), "wrong issuer");
    o.iss = "";
    expect_refused(v, mint_token(o), test_now(), "wrong issuer");
    expect_refused(v,
                   craft_hs256(R"({"alg":"HS256"})", claims(R"("sub":"user-1","iss":["https://identity.example"],)")),
                   test_now(), "wrong issuer");
    // Not configured: any issuer.
    TokenVerifier any(secret_settings());
    o.iss = "https://elsewhere.example";
    expect_accepted(any, mint_token(o), test_now());
}

TEST_F(TokenVerifierTest, AudienceAsStringOrArray) {
    AuthSettings s = secret_settings();
    s.audience = "user_api";
    TokenVerifier v(s);
    const std::string h = R"({"alg":"HS256"})";
    expect_accepted(v, craft_hs256(h, claims(R"("sub":"user-1","aud":"user_api",)")), test_now());
    expect_accepted(v, craft_hs256(h, claims(R"("sub":"user-1","aud":["other","user_api"],)")), test_now());
    expect_accepted(v, craft_hs256(h, claims(R"("sub":"user-1","aud":[1,"user_api"],)")), test_now());
    expect_refused(v, craft_hs256(h, claims(R"("sub":"user-1","aud":["other"],)")), test_now(), "wrong audience");
    expect_refused(v, craft_hs256(h, claims(R"("sub":"user-1","aud":"user_api2",)")), test_now(), "wrong audience");
    expect_refused(v, craft_hs256(h, claims(R"("sub":"user-1","aud":[],)")), test_now(), "wrong audience");
    expect_refused(v, craft_hs256(h, claims(R"("sub":"user-1",)")), test_now(), "wrong audience");
    MintOptions o = hs256_options();
    o.aud = "user_api";
    expect_accepted(v, mint_token(o), test_now());
    TokenVerifier any(secret_settings());
    o.aud = "something-else";
    expect_accepted(any, mint_token(o), test_now());
}

TEST_F(TokenVerifierTest, UserClaimIsRequired) {
    TokenVerifier v(secret_settings());
    const std::string h = R"({"alg":"HS256"})";
    expect_refused(v, craft_hs256(h, claims("")), test_now(), "no user claim");
    expect_refused(v, craft_hs256(h, claims(R"("sub":"",)")), test_now(), "no user claim");
    expect_refused(v, craft_hs256(h, claims(R"("sub":42,)")), test_now(), "no user claim");
    expect_refused(v, craft_hs256(h, claims(R"("sub":{"id":"u"},)")), test_now(), "no user claim");
    MintOptions o = hs256_options();
    o.sub = "";
    expect_refused(v, mint_token(o), test_now(), "no user claim");

    AuthSettings s = secret_settings();
    s.user_claim = "oid";
    TokenVerifier oid(s);
    expect_accepted(oid, craft_hs256(h, claims(R"("sub":"subject","oid":"object-id",)")), test_now(), "object-id");
    expect_refused(oid, craft_hs256(h, claims(R"("sub":"subject",)")), test_now(), "no user claim");
}

TEST_F(TokenVerifierTest, ScopeAsArrayOrSpaceSeparatedString) {
    TokenVerifier v(secret_settings());
    MintOptions o = hs256_options();
    o.scopes = {"openid", "user_api.full_access"};
    const std::vector<std::string> expected = {"openid", "user_api.full_access"};
    EXPECT_EQ(v.verify(mint_token(o), test_now()).principal.scopes, expected);
    o.scope_as_string = true;
    EXPECT_EQ(v.verify(mint_token(o), test_now()).principal.scopes, expected);

    const std::string h = R"({"alg":"HS256"})";
    auto scopes_of = [&](const std::string& scope_member) {
        const VerifyResult r = v.verify(craft_hs256(h, claims(R"("sub":"user-1",)" + scope_member)), test_now());
        EXPECT_TRUE(r.ok) << r.reason;
        return r.principal.scopes;
    };
    EXPECT_EQ(scopes_of(R"("scope":"  openid   user_api.full_access ",)"), expected);
    EXPECT_EQ(scopes_of(R"("scope":["openid",7,"user_api.full_access"],)"), expected);
    EXPECT_TRUE(scopes_of("").empty());
    EXPECT_TRUE(scopes_of(R"("scope":"",)").empty());
    EXPECT_TRUE(scopes_of(R"("scope":42,)").empty());
}

// ---- JWKS file reloads ----

TEST_F(TokenVerifierTest, UnknownKidReloadsTheFileAtMostEvery30Seconds) {
    AuthSettings s;
    s.jwks_file = jwks_path(jwks(keys().rsa_a, "a"));
    TokenVerifier v(s);
    const std::string token_b = mint_token(signed_options("RS256", keys().rsa_b, "b"));
    const std::string token_c = mint_token(signed_options("RS256", keys().rsa_c, "c"));

    // The identity server rotates in key b: the first token with kid b reloads and verifies.
    write_file(s.jwks_file, merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b")}));
    expect_accepted(v, token_b, test_now());

    // Key c arrives 10 s later: too soon after the last reload, so c stays unknown for now.
    write_file(s.jwks_file, merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b"), jwks(keys().rsa_c, "c")}));
    expect_refused(v, token_c, at(kNowS + 10), "unknown key id");
    expect_refused(v, token_c, at(kNowS + 29), "unknown key id");
    // 30 s after the last reload, one more is allowed.
    expect_accepted(v, token_c, at(kNowS + 30));
    expect_accepted(v, token_b, at(kNowS + 30));
    expect_accepted(v, mint_token(signed_options("RS256", keys().rsa_a, "a")), at(kNowS + 30));
}

TEST_F(TokenVerifierTest, BrokenJwksReloadKeepsThePreviousKeys) {
    auto v = file_verifier(jwks(keys().rsa_a, "a"));
    const std::string token_a = mint_token(signed_options("RS256", keys().rsa_a, "a"));
    write_file(dir.file("jwks.json"), "{\"keys\": [");
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_b, "b")), test_now(), "unknown key id");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(events[0].find("reload failed"), std::string::npos) << events[0];
    EXPECT_NE(events[0].find("jwks.json"), std::string::npos) << events[0];
    expect_accepted(v, token_a, test_now());

    std::filesystem::remove(dir.file("jwks.json"));
    expect_refused(v, mint_token(signed_options("RS256", keys().rsa_b, "b")), at(kNowS + 31), "unknown key id");
    EXPECT_EQ(events.size(), 2u);
    expect_accepted(v, token_a, at(kNowS + 31));
}

TEST_F(TokenVerifierTest, MissingFamilyTriggersAReloadToo) {
    auto v = file_verifier(jwks(keys().rsa_a, "a"));
    const std::string es = mint_token(signed_options("ES256", keys().ec_a, ""));
    expect_refused(v, es, test_now(), "algorithm not allowed");
    write_file(dir.file("jwks.json"), merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().ec_a, "e")}));
    expect_refused(v, es, at(kNowS + 1), "algorithm not allowed");  // rate limited
    expect_accepted(v, es, at(kNowS + 30));
}

TEST_F(TokenVerifierTest, ClockGoingBackwardsDoesNotBlockReloads) {
    auto v = file_verifier(jwks(keys().rsa_a, "a"));
    MintOptions o = signed_options("RS256", keys().rsa_b, "b");
    o.now = at(kNowS - 7200);
    o.ttl_s = 10000;
    const std::string token_b = mint_token(o);
    expect_refused(v, token_b, test_now(), "unknown key id");
    write_file(dir.file("jwks.json"), merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b")}));
    expect_accepted(v, token_b, at(kNowS - 3600));
}

TEST_F(TokenVerifierTest, ConcurrentVerificationAndReloads) {
    auto v = file_verifier(jwks(keys().rsa_a, "a"), secret_settings());
    const std::vector<std::string> good = {mint_token(signed_options("RS256", keys().rsa_a, "a")),
                                           mint_token(hs256_options())};
    const std::string unknown = mint_token(signed_options("RS256", keys().rsa_b, "b"));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i) {
                const auto now = at(kNowS + i * 31);  // every call may reload
                if (!v.verify(good[(i + t) % 2], now).ok) ++failures;
                if (v.verify(unknown, now).reason != "unknown key id") ++failures;
            }
        });
    }
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hubflow::signalr::testing
