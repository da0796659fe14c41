#pragma once
// Access tokens and JWKS documents for tests, demos and the `hubflow token` helper: what an identity server would
// hand out, in the shape the signalr_hub sink's TokenVerifier accepts.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace hubflow::signalr {

struct MintOptions {
    std::string alg = "HS256";  // HS256, RS256 or ES256
    std::string secret;         // HS256: raw bytes, at least 32
    std::string key_pem_file;   // RS256/ES256: unencrypted private key PEM (PKCS#8 or traditional)
    std::string kid;            // written to the header when not empty
    std::string sub;            // omitted when empty
    std::vector<std::string> scopes;
    std::string aud;  // omitted when empty
    std::string iss;  // omitted when empty
    std::int64_t ttl_s = 3600;
    std::chrono::system_clock::time_point now;  // the epoch (the default) means the current time
    bool scope_as_string = false;               // "a b" instead of ["a","b"]
};

// Writes a compact JWS: header {"alg", "kid"?, "typ": "at+jwt"}; payload with sub/iss/aud when given, scope
// (omitted when there are no scopes), and iat = nbf = now and exp = now + ttl_s as whole seconds. Throws
// std::invalid_argument naming the option for bad options: unsupported alg, missing or short secret, missing or
// unreadable key, a key of the wrong type for alg (or not P-256 for ES256), ttl_s of 0 (a negative ttl_s mints an
// already expired token, for tests).
std::string mint_token(const MintOptions& options);

// A JWKS document {"keys":[{...}]} for the public half of the RSA or EC P-256 key in `pem_file` (a public key or
// an unencrypted private key PEM), with "use":"sig", the matching "alg", and "kid" when not empty. Throws
// std::invalid_argument when the file cannot be read or holds another kind of key.
std::string jwks_for_public_key(const std::string& pem_file, const std::string& kid);

}  // namespace hubflow::signalr
