#include "auth/token_minter.h"

#include <Poco/Crypto/ECKey.h>
#include <Poco/Crypto/RSAKey.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <sstream>
#include <stdexcept>

#include "auth/jose_util.h"

namespace hubflow::signalr {

namespace {

constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxPemBytes = 1024 * 1024;

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct ClearOpenSslErrors {
    ~ClearOpenSslErrors() { ERR_clear_error(); }
};

// OpenSSL's default would prompt on the terminal for an encrypted key; refusing makes such keys fail instead.
int no_passphrase(char*, int, int, void*) {
    return 0;
}

std::string read_pem(const std::string& option, const std::string& path) {
    try {
        return detail::read_text_file(path, kMaxPemBytes);
    } catch (const std::exception& e) {
        throw std::invalid_argument(option + ": " + e.what());
    }
}

PkeyPtr parse_private_key(const std::string& pem) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return nullptr;
    return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
}

PkeyPtr parse_public_key(const std::string& pem) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return nullptr;
    return PkeyPtr(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
}

bool is_p256(EVP_PKEY* key) {
    char group[64] = {};
    size_t len = 0;
    return EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) == 1 &&
           std::string(group, len) == "prime256v1";
}

std::string bignum_param(EVP_PKEY* key, const char* name, int pad_to = 0) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) throw std::invalid_argument("cannot read the key parameters");
    std::unique_ptr<BIGNUM, BnFree> bn(raw);
    const int size = pad_to > 0 ? pad_to : BN_num_bytes(bn.get());
    std::string bytes(static_cast<std::size_t>(size), '\0');
    const int written = pad_to > 0 ? BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()), size)
                                   : BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()));
    if (written != size) throw std::invalid_argument("cannot read the key parameters");
    return detail::base64url_encode(bytes);
}

std::int64_t epoch_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string mint_token(const MintOptions& options) {
    ClearOpenSslErrors clear;
    if (options.alg != "HS256" && options.alg != "RS256" && options.alg != "ES256") {
        throw std::invalid_argument("alg: \"" + options.alg + "\" is not supported (HS256, RS256 or ES256)");
    }
    if (options.ttl_s == 0) throw std::invalid_argument("ttl_s: must not be 0");

    Poco::JWT::Token token;
    token.setType("at+jwt");
    if (!options.kid.empty()) token.header().set("kid", options.kid);
    Poco::JSON::Object& claims = token.payload();
    if (!options.iss.empty()) claims.set("iss", options.iss);
    if (!options.sub.empty()) claims.set("sub", options.sub);
    if (!options.aud.empty()) claims.set("aud", options.aud);
    if (!options.scopes.empty()) {
        if (options.scope_as_string) {
            std::string joined;
            for (const auto& s : options.scopes)
                joined += (joined.empty() ? "" : " ") + s;
            claims.set("scope", joined);
        } else {
            Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
            for (const auto& s : options.scopes)
                list->add(s);
            claims.set("scope", list);
        }
    }
    // Whole seconds: Token::setExpiration would write fractions, which some verifiers reject.
    const auto now = options.now.time_since_epoch().count() == 0 ? std::chrono::system_clock::now() : options.now;
    const std::int64_t t = epoch_seconds(now);
    // A negative lifetime mints a token that expired ttl_s ago (for tests of expiry); it was issued a minute
    // before it expired, so it is consistent in itself.
    const std::int64_t issued = options.ttl_s > 0 ? t : t + options.ttl_s - 60;
    claims.set("iat", Poco::Int64(issued));
    claims.set("nbf", Poco::Int64(issued));
    claims.set("exp", Poco::Int64(t + options.ttl_s));

    if (options.alg == "HS256") {
        if (options.secret.empty()) throw std::invalid_argument("secret: required for HS256");
        if (options.secret.size() < kMinSecretBytes) {
            throw std::invalid_argument("secret: must be at least " + std::to_string(kMinSecretBytes) + " bytes");
        }
        Poco::JWT::Signer signer(options.secret);
        return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
    }

    if (options.key_pem_file.empty()) throw std::invalid_argument("key_pem_file: required for " + options.alg);
    const std::string pem = read_pem("key_pem_file", options.key_pem_file);
    // Checked with OpenSSL first, so a wrong file gets a sentence rather than a Poco exception name.
    PkeyPtr key = parse_private_key(pem);
    if (!key) {
        throw std::invalid_argument("key_pem_file: " + options.key_pem_file +
                                    " holds no unencrypted private key in PEM form");
    }
    try {
        std::istringstream private_pem(pem);
        Poco::JWT::Signer signer;
        if (options.alg == "RS256") {
            if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
                throw std::invalid_argument("key_pem_file: " + options.key_pem_file + " is not an RSA key (RS256)");
            }
            signer.setRSAKey(new Poco::Crypto::RSAKey(nullptr, &private_pem));
        } else {
            if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC || !is_p256(key.get())) {
                throw std::invalid_argument("key_pem_file: " + options.key_pem_file +
                                            " is not an EC P-256 key (ES256)");
            }
            signer.setECKey(new Poco::Crypto::ECKey(nullptr, &private_pem));
        }
        signer.setAlgorithms({options.alg});
        return signer.sign(token, options.alg);
    } catch (const Poco::Exception& e) {
        throw std::invalid_argument("key_pem_file: " + options.key_pem_file + ": cannot sign: " + e.displayText());
    }
}

std::string jwks_for_public_key(const std::string& pem_file, const std::string& kid) {
    ClearOpenSslErrors clear;
    const std::string pem = read_pem("pem_file", pem_file);
    PkeyPtr key = parse_public_key(pem);
    if (!key) key = parse_private_key(pem);
    if (!key) throw std::invalid_argument("pem_file: " + pem_file + " holds no public or unencrypted private key");

    Poco::JSON::Object::Ptr jwk = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    try {
        if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA) {
            jwk->set("kty", "RSA");
            jwk->set("use", "sig");
            jwk->set("alg", "RS256");
            if (!kid.empty()) jwk->set("kid", kid);
            jwk->set("n", bignum_param(key.get(), OSSL_PKEY_PARAM_RSA_N));
            jwk->set("e", bignum_param(key.get(), OSSL_PKEY_PARAM_RSA_E));
        } else if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC && is_p256(key.get())) {
            jwk->set("kty", "EC");
            jwk->set("use", "sig");
            jwk->set("alg", "ES256");
            if (!kid.empty()) jwk->set("kid", kid);
            jwk->set("crv", "P-256");
            jwk->set("x", bignum_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32));
            jwk->set("y", bignum_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32));
        } else {
            throw std::invalid_argument("not an RSA or EC P-256 key");
        }
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("pem_file: " + pem_file + ": " + e.what());
    }
    Poco::JSON::Array::Ptr keys = new Poco::JSON::Array;
    keys->add(jwk);
    Poco::JSON::Object document(Poco::JSON_PRESERVE_KEY_ORDER);
    document.set("keys", keys);
    std::ostringstream out;
    document.stringify(out);
    return out.str();
}

}  // namespace hubflow::signalr
