#pragma once
// Access-token checking for the signalr_hub sink. Clients present a JWT issued by an OIDC server (or, for tests and
// demos, one minted with a shared secret); the hub answers 401 on the WebSocket upgrade when this says no.
//
// What is accepted:
// - Exactly three strict base64url parts (no padding, canonical). Anything else is "malformed token".
// - Algorithms follow from the configured keys only: HS256 when hs256_secret is set; RS256 and ES256 when a JWKS
//   holds RSA (>= 2048 bits) or EC P-256 keys. `none`, HS384/512, RS384/512, PS* and ES384/512 are refused, and a
//   key is only ever used for its own family, so an HS256 token "signed" with the RSA public key is refused.
// - Header `jku`, `jwk`, `x5u` and `x5c` are ignored: keys only ever come from the configured sources. `crit` is
//   refused, since no extension is understood.
// - Claims: exp (numeric) required with now < exp + leeway; nbf optional with nbf - leeway <= now and nbf <= exp;
//   iss and aud when configured; the user id claim (a non-empty string) required; scope as an array or a
//   space-separated string.
// Reasons are fixed phrases, safe to send as a 401 body; neither they nor any exception text ever hold token text,
// the secret or claim values.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hubflow::signalr {

struct AuthSettings {
    std::string hs256_secret;  // raw bytes, at least 32
    std::string jwks_file;     // path of a JWKS document (RFC 7517)
    std::string jwks_url;      // http:// or https:// URL of a JWKS document; exclusive with jwks_file
    std::string issuer;        // required `iss` when not empty
    std::string audience;      // required member of `aud` when not empty
    std::int64_t leeway_s = 30;
    std::string user_claim = "sub";
};

struct Principal {
    std::string user_id;
    std::vector<std::string> scopes;
    std::string claims_json;  // the verified payload, for role claims
};

struct VerifyResult {
    bool ok = false;
    // One of: "token expired", "bad signature", "algorithm not allowed", "malformed token", "unknown key id",
    // "wrong issuer", "wrong audience", "token not yet valid", "missing exp", "no user claim".
    std::string reason;
    Principal principal;
};

class TokenVerifier {
public:
    // Throws std::invalid_argument naming the setting for bad configuration: no key source, both jwks_file and
    // jwks_url, an unreadable or invalid JWKS file or one without a usable key, a secret shorter than 32 bytes, a
    // jwks_url that is not http(s), a negative leeway or an empty user_claim. A JWKS URL that cannot be fetched at
    // construction is not an error (the identity server may be briefly down): the fetch is retried, rate limited,
    // when a token needs an RS256/ES256 key.
    //
    // `on_jwks_event` hears, as one sentence each, JWKS loads that failed (the previous keys stay in force) and
    // keys that were skipped (weak RSA, other curves, encryption keys). It may be called from verify(), on the
    // verifying thread while a reload is under way, so it must not call back into this verifier. The sentences hold
    // file paths, URL hosts and paths (no query) and kids, but no key or token material.
    explicit TokenVerifier(AuthSettings settings, std::function<void(const std::string&)> on_jwks_event = {});
    ~TokenVerifier();
    TokenVerifier(const TokenVerifier&) = delete;
    TokenVerifier& operator=(const TokenVerifier&) = delete;

    // Never throws; thread-safe. An unknown `kid`, or a token whose algorithm family has no key yet, reloads the
    // JWKS at most once per 30 s (measured on `now`) before giving up. Such a reload runs on the calling thread and,
    // for jwks_url, can take up to a few network timeouts (5 s each): call this off any event loop. Tokens whose
    // key is known never wait for a reload in progress. A token without `kid` (or with an empty one) is tried
    // against every key of its algorithm family.
    VerifyResult verify(std::string_view token, std::chrono::system_clock::time_point now);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hubflow::signalr
