#include "auth/token_verifier.h"

#include <Poco/Crypto/ECKey.h>
#include <Poco/Crypto/EVPPKey.h>
#include <Poco/Crypto/RSAKey.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include <cmath>
#include <istream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "auth/jose_util.h"

namespace hubflow::signalr {

namespace {

using Clock = std::chrono::system_clock;
using detail::base64url_decode;

// The fixed reason phrases; nothing else is ever put in VerifyResult::reason.
constexpr const char* kExpired = "token expired";
constexpr const char* kBadSignature = "bad signature";
constexpr const char* kAlgNotAllowed = "algorithm not allowed";
constexpr const char* kMalformed = "malformed token";
constexpr const char* kUnknownKid = "unknown key id";
constexpr const char* kWrongIssuer = "wrong issuer";
constexpr const char* kWrongAudience = "wrong audience";
constexpr const char* kNotYetValid = "token not yet valid";
constexpr const char* kMissingExp = "missing exp";
constexpr const char* kNoUserClaim = "no user claim";

// Real access tokens are 1-2 KB; the cap keeps a hostile request from making the parser work on megabytes.
constexpr std::size_t kMaxTokenBytes = 64 * 1024;
constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxJwksBytes = 1024 * 1024;
// A kid-less token is tried against every key of its family, so the number of keys bounds the work per token.
constexpr std::size_t kMaxJwksKeys = 64;
constexpr int kMinRsaBits = 2048;
// Verification cost grows with the modulus; nobody issues tokens with larger keys.
constexpr int kMaxRsaBits = 8192;
constexpr auto kReloadInterval = std::chrono::seconds(30);
// Connect, send and receive each; verify() waits for a reload, so this bounds how long one token can hang.
constexpr int kFetchTimeoutS = 5;

VerifyResult refuse(const char* reason) {
    VerifyResult r;
    r.reason = reason;
    return r;
}

// ---- OpenSSL key building (JWK members -> EVP_PKEY) ----

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
struct BldFree {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// OpenSSL queues errors per thread; a stale entry would be picked up by the next Poco crypto call on this thread.
struct ClearOpenSslErrors {
    ~ClearOpenSslErrors() { ERR_clear_error(); }
};

PkeyPtr public_key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
    EVP_PKEY* key = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) return nullptr;
    return PkeyPtr(key);
}

BnPtr to_bignum(const std::string& bytes) {
    return BnPtr(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

enum class KeyKind { rsa, ec };

struct VerifyKey {
    std::string kid;
    KeyKind kind;
    Poco::SharedPtr<Poco::Crypto::RSAKey> rsa;
    Poco::SharedPtr<Poco::Crypto::ECKey> ec;
};

struct KeySet {
    std::vector<VerifyKey> keys;
};

// Reads a string member, or nullopt when it is absent; a non-string counts as absent-and-wrong via `bad`.
std::optional<std::string> string_member(const Poco::JSON::Object& obj, const std::string& name, bool& bad) {
    if (!obj.has(name)) return std::nullopt;
    const Poco::Dynamic::Var v = obj.get(name);
    if (!v.isString()) {
        bad = true;
        return std::nullopt;
    }
    return v.extract<std::string>();
}

// Builds one verification key from a JWK, or says in `why` why it is skipped.
std::optional<VerifyKey> key_from_jwk(const Poco::JSON::Object& jwk, std::string& why) {
    ClearOpenSslErrors clear;
    bool bad = false;
    const auto kty = string_member(jwk, "kty", bad);
    const auto kid = string_member(jwk, "kid", bad);
    const auto use = string_member(jwk, "use", bad);
    const auto alg = string_member(jwk, "alg", bad);
    if (bad) {
        why = "kty, kid, use and alg must be strings";
        return std::nullopt;
    }
    if (!kty) {
        why = "no kty";
        return std::nullopt;
    }
    if (use && *use != "sig") {
        why = "use is \"" + *use + "\", not \"sig\"";
        return std::nullopt;
    }
    if (jwk.has("key_ops")) {
        bool verify_op = false;
        if (jwk.isArray("key_ops")) {
            for (const auto& op : *jwk.getArray("key_ops"))
                verify_op = verify_op || (op.isString() && op == "verify");
        }
        if (!verify_op) {
            why = "key_ops does not include \"verify\"";
            return std::nullopt;
        }
    }

    VerifyKey key;
    key.kid = kid.value_or("");
    if (*kty == "RSA") {
        if (alg && *alg != "RS256") {
            why = "alg " + *alg + " is not supported for RSA keys (only RS256)";
            return std::nullopt;
        }
        const auto n_text = string_member(jwk, "n", bad);
        const auto e_text = string_member(jwk, "e", bad);
        const auto n = n_text ? base64url_decode(*n_text) : std::nullopt;
        const auto e = e_text ? base64url_decode(*e_text) : std::nullopt;
        if (!n || !e) {
            why = "n and e must be base64url strings";
            return std::nullopt;
        }
        BnPtr bn_n = to_bignum(*n);
        BnPtr bn_e = to_bignum(*e);
        if (!bn_n || !bn_e) {
            why = "out of memory";
            return std::nullopt;
        }
        const int bits = BN_num_bits(bn_n.get());
        if (bits < kMinRsaBits || bits > kMaxRsaBits) {
            why = "RSA key has " + std::to_string(bits) + " bits; " + std::to_string(kMinRsaBits) + " to " +
                  std::to_string(kMaxRsaBits) + " are accepted";
            return std::nullopt;
        }
        if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()) || BN_num_bits(bn_e.get()) > 64) {
            why = "RSA exponent is not usable";
            return std::nullopt;
        }
        std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
        if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
            !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
            why = "cannot build the RSA key";
            return std::nullopt;
        }
        PkeyPtr pkey = public_key_from_params("RSA", bld.get());
        if (!pkey || EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
            why = "cannot build the RSA key";
            return std::nullopt;
        }
        key.kind = KeyKind::rsa;
        // EVPPKey duplicates the key, so ours is freed by its unique_ptr.
        key.rsa = new Poco::Crypto::RSAKey(Poco::Crypto::EVPPKey(pkey.get()));
        return key;
    }
    if (*kty == "EC") {
        if (alg && *alg != "ES256") {
            why = "alg " + *alg + " is not supported for EC keys (only ES256)";
            return std::nullopt;
        }
        const auto crv = string_member(jwk, "crv", bad);
        if (!crv || *crv != "P-256") {
            why = "curve " + crv.value_or("(none)") + " is not supported (only P-256)";
            return std::nullopt;
        }
        const auto x_text = string_member(jwk, "x", bad);
        const auto y_text = string_member(jwk, "y", bad);
        const auto x = x_text ? base64url_decode(*x_text) : std::nullopt;
        const auto y = y_text ? base64url_decode(*y_text) : std::nullopt;
        if (!x || !y || x->size() != 32 || y->size() != 32) {
            why = "x and y must be 32-byte base64url strings";
            return std::nullopt;
        }
        std::string point = "\x04" + *x + *y;
        std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
        if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
            why = "cannot build the EC key";
            return std::nullopt;
        }
        // OpenSSL refuses points that are not on the curve here.
        PkeyPtr pkey = public_key_from_params("EC", bld.get());
        if (!pkey) {
            why = "the EC point is not valid on P-256";
            return std::nullopt;
        }
        key.kind = KeyKind::ec;
        key.ec = new Poco::Crypto::ECKey(Poco::Crypto::EVPPKey(pkey.get()));
        return key;
    }
    why = "kty " + *kty + " is not supported";
    return std::nullopt;
}

// Parses a JWKS document. Throws std::runtime_error for a document that is not a JWKS or has no usable key;
// unusable keys are skipped and described in `skipped`.
KeySet parse_jwks(const std::string& text, std::vector<std::string>& skipped) {
    Poco::Dynamic::Var root;
    try {
        Poco::JSON::Parser parser;
        root = parser.parse(text);
    } catch (const Poco::Exception& e) {
        throw std::runtime_error("not valid JSON (" + detail::describe_json_error(text, e.message()) + ")");
    }
    if (root.type() != typeid(Poco::JSON::Object::Ptr)) throw std::runtime_error("not a JSON object");
    const auto obj = root.extract<Poco::JSON::Object::Ptr>();
    if (!obj->isArray("keys")) throw std::runtime_error("no \"keys\" array");
    KeySet set;
    std::size_t index = 0;
    for (const auto& entry : *obj->getArray("keys")) {
        const std::string label = "key " + std::to_string(index++);
        if (entry.type() != typeid(Poco::JSON::Object::Ptr)) {
            skipped.push_back(label + ": not a JSON object");
            continue;
        }
        const auto& jwk = *entry.extract<Poco::JSON::Object::Ptr>();
        const std::string name = jwk.has("kid") && jwk.get("kid").isString()
                                     ? label + " (kid \"" + jwk.get("kid").extract<std::string>() + "\")"
                                     : label;
        if (set.keys.size() >= kMaxJwksKeys) {
            skipped.push_back(name + ": more than " + std::to_string(kMaxJwksKeys) + " keys");
            continue;
        }
        std::string why;
        try {
            if (auto key = key_from_jwk(jwk, why)) {
                set.keys.push_back(std::move(*key));
                continue;
            }
        } catch (const Poco::Exception& e) {
            why = e.displayText();
        }
        skipped.push_back(name + ": " + why);
    }
    if (set.keys.empty()) {
        throw std::runtime_error("no usable signing key (RSA of 2048 bits or more, or EC P-256)");
    }
    return set;
}

// ---- JWKS over HTTP(S) ----

Poco::Net::Context::Ptr tls_client_context() {
    // One context for the process: it holds the system CA store, which is costly to load.
    static const Poco::Net::Context::Ptr context = [] {
        Poco::Net::initializeSSL();
        Poco::Net::Context::Params params;
        // STRICT rather than RELAXED: with RELAXED, Poco skips the host name check for localhost and 127.0.0.1.
        // (For a client the two modes otherwise behave the same: the server's chain is always verified.)
        params.verificationMode = Poco::Net::Context::VERIFY_STRICT;
        params.loadDefaultCAs = true;
        Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
        ctx->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        return ctx;
    }();
    return context;
}

// The URL as it may appear in messages: no user info and no query, which could carry credentials.
std::string printable_url(const Poco::URI& uri) {
    return uri.getScheme() + "://" + uri.getHost() + ":" + std::to_string(uri.getPort()) + uri.getPath();
}

std::string fetch_url(const Poco::URI& uri) {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    if (uri.getScheme() == "https") {
        session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls_client_context());
    } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    }
    session->setTimeout(Poco::Timespan(kFetchTimeoutS, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, uri.getPathAndQuery(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Accept", "application/json, application/jwk-set+json");
    session->sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& body = session->receiveResponse(response);
    if (response.getStatus() != Poco::Net::HTTPResponse::HTTP_OK) {
        throw std::runtime_error("HTTP status " + std::to_string(static_cast<int>(response.getStatus())));
    }
    std::string text;
    char buffer[8192];
    while (body.read(buffer, sizeof buffer) || body.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(body.gcount()));
        if (text.size() > kMaxJwksBytes) {
            throw std::runtime_error("document larger than " + std::to_string(kMaxJwksBytes) + " bytes");
        }
    }
    return text;
}

// Poco's what() is only the exception's class name; its displayText() says what happened.
std::string describe(const std::exception& e) {
    if (const auto* poco = dynamic_cast<const Poco::Exception*>(&e)) return poco->displayText();
    return e.what();
}

bool is_number(const Poco::Dynamic::Var& v) {
    // Poco counts booleans as numeric; a JSON `true` is not a time.
    return v.isNumeric() && !v.isBoolean();
}

}  // namespace

struct TokenVerifier::Impl {
    AuthSettings settings;
    std::function<void(const std::string&)> on_event;
    std::optional<Poco::URI> url;

    std::mutex keys_mutex;
    std::shared_ptr<const KeySet> keys = std::make_shared<KeySet>();

    // Serialises reloads, so a burst of tokens with a new kid makes one fetch, not one each.
    std::mutex reload_mutex;
    std::optional<Clock::time_point> last_reload;

    bool has_jwks_source() const { return !settings.jwks_file.empty() || url.has_value(); }

    std::string source_label() const {
        return settings.jwks_file.empty() ? "jwks_url " + printable_url(*url) : "jwks_file " + settings.jwks_file;
    }

    void report(const std::string& message) const {
        if (!on_event) return;
        try {
            on_event(message);
        } catch (...) {
            // A failing listener must not turn a verification into an exception.
        }
    }

    // Loads the configured JWKS; throws std::runtime_error (without the setting name) on failure.
    KeySet load_jwks() const {
        const std::string text =
            settings.jwks_file.empty() ? fetch_url(*url) : detail::read_text_file(settings.jwks_file, kMaxJwksBytes);
        std::vector<std::string> skipped;
        KeySet set = parse_jwks(text, skipped);
        for (const auto& s : skipped)
            report(source_label() + ": skipped " + s);
        return set;
    }

    void install(KeySet set) {
        auto fresh = std::make_shared<const KeySet>(std::move(set));
        std::lock_guard lock(keys_mutex);
        keys = std::move(fresh);
    }

    std::shared_ptr<const KeySet> snapshot() {
        std::lock_guard lock(keys_mutex);
        return keys;
    }

    // Reloads the JWKS unless the last attempt was less than kReloadInterval ago. A failed reload keeps the
    // previous keys: an identity server hiccup must not lock everybody out.
    void maybe_reload(Clock::time_point now) {
        std::lock_guard lock(reload_mutex);
        // A clock that went backwards counts as "long ago", or the verifier would stop reloading until it caught up.
        if (last_reload && now >= *last_reload && now - *last_reload < kReloadInterval) return;
        last_reload = now;
        try {
            install(load_jwks());
        } catch (const std::exception& e) {
            report(source_label() + ": reload failed, keeping the previous keys: " + describe(e));
        } catch (...) {
            report(source_label() + ": reload failed, keeping the previous keys");
        }
    }

    enum class Pick { found, unknown_kid, wrong_family, no_family_key };

    static Pick pick_keys(const KeySet& set, KeyKind kind, const std::optional<std::string>& kid,
                          std::vector<const VerifyKey*>& out) {
        out.clear();
        bool kid_seen = false;
        for (const auto& key : set.keys) {
            if (kid && key.kid != *kid) continue;
            kid_seen = true;
            if (key.kind == kind) out.push_back(&key);
        }
        if (!out.empty()) return Pick::found;
        if (kid) return kid_seen ? Pick::wrong_family : Pick::unknown_kid;
        return Pick::no_family_key;
    }

    VerifyResult verify(std::string_view token, Clock::time_point now) {
        // Shape: exactly three non-empty strict base64url parts.
        if (token.size() > kMaxTokenBytes) return refuse(kMalformed);
        const auto dot1 = token.find('.');
        if (dot1 == std::string_view::npos) return refuse(kMalformed);
        const auto dot2 = token.find('.', dot1 + 1);
        if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
            return refuse(kMalformed);
        }
        const auto header_text = base64url_decode(token.substr(0, dot1));
        const auto payload_text = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
        const auto signature = base64url_decode(token.substr(dot2 + 1));
        if (!header_text || !payload_text || !signature) return refuse(kMalformed);

        Poco::JSON::Object::Ptr header;
        Poco::JSON::Object::Ptr payload;
        try {
            Poco::JSON::Parser parser;
            Poco::Dynamic::Var h = parser.parse(*header_text);
            parser.reset();
            Poco::Dynamic::Var p = parser.parse(*payload_text);
            if (h.type() != typeid(Poco::JSON::Object::Ptr) || p.type() != typeid(Poco::JSON::Object::Ptr)) {
                return refuse(kMalformed);
            }
            header = h.extract<Poco::JSON::Object::Ptr>();
            payload = p.extract<Poco::JSON::Object::Ptr>();
        } catch (const Poco::Exception&) {
            return refuse(kMalformed);
        }
        bool bad = false;
        const auto alg = string_member(*header, "alg", bad);
        auto kid = string_member(*header, "kid", bad);
        if (bad || !alg || header->has("crit")) return refuse(kMalformed);
        if (kid && kid->empty()) kid.reset();  // "kid":"" names no key; try the family as for no kid

        // The signature check. Poco's Signer is fresh per call and only ever holds the one key being tried, with
        // only the token's algorithm allowed, so no key can be used for another family.
        const std::string token_text(token);
        Poco::JWT::Token verified;
        if (*alg == Poco::JWT::Signer::ALGO_HS256) {
            if (settings.hs256_secret.empty()) return refuse(kAlgNotAllowed);
            // Poco compares HMACs with ==, which leaks timing; a constant-time comparison first means Poco's
            // comparison only ever runs on a signature that already matched.
            unsigned char expected[EVP_MAX_MD_SIZE];
            unsigned int expected_size = 0;
            if (HMAC(EVP_sha256(), settings.hs256_secret.data(), static_cast<int>(settings.hs256_secret.size()),
                     reinterpret_cast<const unsigned char*>(token_text.data()), dot2, expected,
                     &expected_size) == nullptr ||
                signature->size() != expected_size || CRYPTO_memcmp(signature->data(), expected, expected_size) != 0) {
                return refuse(kBadSignature);
            }
            try {
                Poco::JWT::Signer signer(settings.hs256_secret);
                signer.setAlgorithms({Poco::JWT::Signer::ALGO_HS256});
                if (!signer.tryVerify(token_text, verified)) return refuse(kBadSignature);
            } catch (const Poco::Exception&) {
                return refuse(kBadSignature);
            }
        } else if (*alg == Poco::JWT::Signer::ALGO_RS256 || *alg == Poco::JWT::Signer::ALGO_ES256) {
            if (!has_jwks_source()) return refuse(kAlgNotAllowed);
            const KeyKind kind = *alg == Poco::JWT::Signer::ALGO_RS256 ? KeyKind::rsa : KeyKind::ec;
            // A JWS ES256 signature is R || S, 32 bytes each.
            if (kind == KeyKind::ec && signature->size() != 64) return refuse(kBadSignature);
            std::vector<const VerifyKey*> candidates;
            auto set = snapshot();
            Pick pick = pick_keys(*set, kind, kid, candidates);
            if (pick == Pick::unknown_kid || pick == Pick::no_family_key) {
                // Rotation: the identity server may have published a key we have not seen yet.
                maybe_reload(now);
                set = snapshot();
                pick = pick_keys(*set, kind, kid, candidates);
            }
            if (pick == Pick::unknown_kid) return refuse(kUnknownKid);
            if (pick != Pick::found) return refuse(kAlgNotAllowed);
            bool ok = false;
            for (const VerifyKey* key : candidates) {
                ClearOpenSslErrors clear;
                try {
                    Poco::JWT::Signer signer;
                    signer.setAlgorithms({*alg});
                    if (kind == KeyKind::rsa) {
                        signer.setRSAKey(key->rsa);
                    } else {
                        signer.setECKey(key->ec);
                    }
                    if (signer.tryVerify(token_text, verified)) {
                        ok = true;
                        break;
                    }
                } catch (const Poco::Exception&) {
                    // A signature Poco cannot even decode is simply not a match.
                }
            }
            if (!ok) return refuse(kBadSignature);
        } else {
            return refuse(kAlgNotAllowed);
        }

        // Claims, read from our own parse of the very bytes the signature covers.
        const long double now_s =
            std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() / 1e9L;
        const long double leeway = static_cast<long double>(settings.leeway_s);
        if (!payload->has("exp") || !is_number(payload->get("exp"))) return refuse(kMissingExp);
        const long double exp = payload->get("exp").convert<double>();
        if (!std::isfinite(static_cast<double>(exp))) return refuse(kMissingExp);
        if (!(now_s < exp + leeway)) return refuse(kExpired);
        if (payload->has("nbf")) {
            if (!is_number(payload->get("nbf"))) return refuse(kMalformed);
            const long double nbf = payload->get("nbf").convert<double>();
            if (!std::isfinite(static_cast<double>(nbf))) return refuse(kMalformed);
            // An empty validity interval is never valid, however much leeway would cover both ends (ASP.NET Core's
            // JwtBearer refuses it too).
            if (nbf > exp) return refuse(kMalformed);
            if (!(nbf - leeway <= now_s)) return refuse(kNotYetValid);
        }
        if (!settings.issuer.empty()) {
            const auto iss = string_member(*payload, "iss", bad);
            if (!iss || *iss != settings.issuer) return refuse(kWrongIssuer);
        }
        if (!settings.audience.empty()) {
            bool found = false;
            if (payload->isArray("aud")) {
                for (const auto& a : *payload->getArray("aud"))
                    found = found || (a.isString() && a == settings.audience);
            } else {
                const auto aud = string_member(*payload, "aud", bad);
                found = aud && *aud == settings.audience;
            }
            if (!found) return refuse(kWrongAudience);
        }
        bool user_bad = false;
        const auto user = string_member(*payload, settings.user_claim, user_bad);
        if (!user || user->empty()) return refuse(kNoUserClaim);

        VerifyResult result;
        result.ok = true;
        result.principal.user_id = *user;
        if (payload->isArray("scope")) {
            for (const auto& s : *payload->getArray("scope")) {
                if (s.isString()) result.principal.scopes.push_back(s.extract<std::string>());
            }
        } else if (payload->has("scope") && payload->get("scope").isString()) {
            // get() returns the value by copy, so the string is copied out of it rather than referenced.
            const std::string list = payload->get("scope").extract<std::string>();
            std::size_t pos = 0;
            while (pos < list.size()) {
                const auto end = list.find(' ', pos);
                const auto len = (end == std::string::npos ? list.size() : end) - pos;
                if (len > 0) result.principal.scopes.push_back(list.substr(pos, len));
                if (end == std::string::npos) break;
                pos = end + 1;
            }
        }
        result.principal.claims_json = *payload_text;
        return result;
    }
};

TokenVerifier::TokenVerifier(AuthSettings settings, std::function<void(const std::string&)> on_jwks_event)
    : impl_(std::make_unique<Impl>()) {
    impl_->on_event = std::move(on_jwks_event);
    if (settings.user_claim.empty()) throw std::invalid_argument("user_claim: must not be empty");
    if (settings.leeway_s < 0) throw std::invalid_argument("leeway_s: must not be negative");
    if (!settings.hs256_secret.empty() && settings.hs256_secret.size() < kMinSecretBytes) {
        // Never the secret itself, nor its length.
        throw std::invalid_argument("hs256_secret: must be at least " + std::to_string(kMinSecretBytes) + " bytes");
    }
    if (!settings.jwks_file.empty() && !settings.jwks_url.empty()) {
        throw std::invalid_argument("jwks_file, jwks_url: set one of them, not both");
    }
    if (settings.hs256_secret.empty() && settings.jwks_file.empty() && settings.jwks_url.empty()) {
        throw std::invalid_argument("hs256_secret, jwks_file, jwks_url: no key source; set at least one");
    }
    if (!settings.jwks_url.empty()) {
        try {
            Poco::URI uri(settings.jwks_url);
            if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty()) {
                throw std::invalid_argument("scheme");
            }
            impl_->url = uri;
        } catch (const std::exception&) {  // Poco::SyntaxException included
            throw std::invalid_argument("jwks_url: must be an http:// or https:// URL with a host");
        }
    }
    impl_->settings = std::move(settings);

    if (!impl_->settings.jwks_file.empty()) {
        try {
            impl_->install(impl_->load_jwks());
        } catch (const std::exception& e) {
            throw std::invalid_argument("jwks_file: " + impl_->settings.jwks_file + ": " + describe(e));
        }
    } else if (impl_->url) {
        // Not counted against the reload interval: the first token that needs a key may try again at once.
        try {
            impl_->install(impl_->load_jwks());
        } catch (const std::exception& e) {
            impl_->report(impl_->source_label() +
                          ": initial fetch failed, will retry when a token needs a key: " + describe(e));
        } catch (...) {
            impl_->report(impl_->source_label() + ": initial fetch failed, will retry when a token needs a key");
        }
    }
}

TokenVerifier::~TokenVerifier() = default;

VerifyResult TokenVerifier::verify(std::string_view token, std::chrono::system_clock::time_point now) {
    try {
        return impl_->verify(token, now);
    } catch (...) {
        // Anything unforeseen (allocation, a Poco conversion) still ends as a refusal, never as an exception.
        return refuse(kMalformed);
    }
}

}  // namespace hubflow::signalr
