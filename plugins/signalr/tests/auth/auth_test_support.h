#pragma once
// Shared by the auth tests: keys made at test time with OpenSSL, a temporary directory, and hand-made tokens for
// the cases mint_token deliberately cannot produce.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>

#include "auth/jose_util.h"
#include "auth/token_minter.h"
#include "auth/token_verifier.h"

namespace hubflow::signalr::testing {

using Clock = std::chrono::system_clock;

// A fixed "now" keeps the time checks exact.
inline constexpr std::int64_t kNowS = 1'800'000'000;
inline Clock::time_point at(std::int64_t epoch_s) {
    return Clock::time_point(std::chrono::seconds(epoch_s));
}
inline Clock::time_point test_now() {
    return at(kNowS);
}

// 32 bytes: the shortest secret the verifier accepts.
inline const std::string kSecret = "0123456789abcdef0123456789abcdef";

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "hubflow-auth-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& text) {
    // Through a rename, as editors and deploy tools do, so a reader never sees half a file.
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    std::filesystem::rename(tmp, path);
}

// The private key PEM (PKCS#8) and public key PEM of a key made for the test run.
struct TestKey {
    std::string private_pem_file;
    std::string public_pem_file;
    std::string public_pem;
};

inline TestKey write_key(EVP_PKEY* key, const std::string& base) {
    if (key == nullptr) throw std::runtime_error("key generation failed");
    TestKey out{base + ".key.pem", base + ".pub.pem", {}};
    BIO* priv = BIO_new(BIO_s_mem());
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    PEM_write_bio_PUBKEY(pub, key);
    auto text_of = [](BIO* bio) {
        char* data = nullptr;
        const long len = BIO_get_mem_data(bio, &data);
        return std::string(data, static_cast<std::size_t>(len));
    };
    write_file(out.private_pem_file, text_of(priv));
    out.public_pem = text_of(pub);
    write_file(out.public_pem_file, out.public_pem);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    return out;
}

// Keys for the whole test program, made once: RSA generation takes a noticeable fraction of a second.
struct TestKeys {
    TempDir dir;
    TestKey rsa_a, rsa_b, rsa_c, rsa_small, ec_a, ec_b, ed25519;

    TestKeys()
        : rsa_a(write_key(EVP_RSA_gen(2048), dir.file("rsa_a"))),
          rsa_b(write_key(EVP_RSA_gen(2048), dir.file("rsa_b"))),
          rsa_c(write_key(EVP_RSA_gen(2048), dir.file("rsa_c"))),
          rsa_small(write_key(EVP_RSA_gen(1024), dir.file("rsa_small"))),
          ec_a(write_key(EVP_EC_gen("P-256"), dir.file("ec_a"))),
          ec_b(write_key(EVP_EC_gen("P-256"), dir.file("ec_b"))),
          ed25519(write_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), dir.file("ed25519"))) {}
};

inline const TestKeys& keys() {
    static const TestKeys instance;
    return instance;
}

// One JWKS document holding the keys of several single-key documents from jwks_for_public_key.
inline std::string merge_jwks(std::initializer_list<std::string> documents) {
    std::string members;
    for (const auto& doc : documents) {
        const auto open = doc.find('[');
        const auto close = doc.rfind(']');
        if (open == std::string::npos || close == std::string::npos) throw std::runtime_error("not a JWKS");
        if (!members.empty()) members += ",";
        members += doc.substr(open + 1, close - open - 1);
    }
    return "{\"keys\":[" + members + "]}";
}

inline std::string b64(const std::string& text) {
    return detail::base64url_encode(text);
}

// A token with exactly this header and payload text, HMAC-SHA256-signed with `secret`: for shapes mint_token
// refuses to produce (other algorithms, odd claims, broken JSON).
inline std::string craft_hs256(const std::string& header_json, const std::string& payload_json,
                               const std::string& secret = kSecret) {
    const std::string input = b64(header_json) + "." + b64(payload_json);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
    return input + "." + b64(std::string(reinterpret_cast<const char*>(mac), mac_len));
}

// A claims object with a valid exp/nbf around test_now() plus `extra` members (text such as "\"a\":1,").
inline std::string claims(const std::string& extra = "\"sub\":\"user-1\",") {
    return "{" + extra + "\"iat\":" + std::to_string(kNowS) + ",\"nbf\":" + std::to_string(kNowS) +
           ",\"exp\":" + std::to_string(kNowS + 3600) + "}";
}

inline MintOptions hs256_options() {
    MintOptions o;
    o.alg = "HS256";
    o.secret = kSecret;
    o.sub = "user-1";
    o.scopes = {"user_api.full_access"};
    o.now = test_now();
    return o;
}

inline MintOptions signed_options(const std::string& alg, const TestKey& key, const std::string& kid) {
    MintOptions o;
    o.alg = alg;
    o.key_pem_file = key.private_pem_file;
    o.kid = kid;
    o.sub = "user-1";
    o.scopes = {"user_api.full_access"};
    o.now = test_now();
    return o;
}

inline const std::set<std::string>& allowed_reasons() {
    static const std::set<std::string> reasons = {
        "token expired", "bad signature",  "algorithm not allowed", "malformed token", "unknown key id",
        "wrong issuer",  "wrong audience", "token not yet valid",   "missing exp",     "no user claim"};
    return reasons;
}

// Asserts a refusal with `reason`, and that the reason is one of the fixed phrases and holds no token text.
inline void expect_refused(TokenVerifier& verifier, const std::string& token, Clock::time_point now,
                           const std::string& reason) {
    const VerifyResult r = verifier.verify(token, now);
    EXPECT_FALSE(r.ok) << "expected refusal: " << reason;
    EXPECT_EQ(r.reason, reason);
    EXPECT_TRUE(allowed_reasons().count(r.reason)) << r.reason;
    EXPECT_TRUE(r.principal.user_id.empty());
    if (!token.empty()) {
        EXPECT_EQ(r.reason.find(token), std::string::npos);
    }
    std::size_t start = 0;
    while (start <= token.size()) {
        const auto end = std::min(token.find('.', start), token.size());
        const std::string part = token.substr(start, end - start);
        if (part.size() >= 8) {
            EXPECT_EQ(r.reason.find(part), std::string::npos);
        }
        start = end + 1;
    }
}

inline void expect_accepted(TokenVerifier& verifier, const std::string& token, Clock::time_point now,
                            const std::string& user = "user-1") {
    const VerifyResult r = verifier.verify(token, now);
    EXPECT_TRUE(r.ok) << "refused: " << r.reason;
    EXPECT_EQ(r.principal.user_id, user);
}

}  // namespace hubflow::signalr::testing
