#pragma once
// Small helpers shared by the token verifier, the minter and the role directory: strict base64url, bounded
// file reading and JSON syntax diagnostics. Internal to the auth code; not part of the sink's API.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hubflow::signalr::detail {

// True when `s` is non-empty base64url as JWS writes it (RFC 7515 section 2): alphabet [A-Za-z0-9_-], no
// padding, and canonical (the unused low bits of the last character are zero). Canonical matters because
// otherwise several spellings decode to the same signature, and a token string would not identify one token.
bool is_strict_base64url(std::string_view s);

// Decodes strict base64url (see above); nullopt for anything else. Never throws.
std::optional<std::string> base64url_decode(std::string_view s);

// Encodes without padding.
std::string base64url_encode(std::string_view bytes);

// Reads a whole file, refusing files larger than max_bytes. Throws std::runtime_error with a sentence that names
// the path and the cause (the caller prefixes the setting name).
std::string read_text_file(const std::string& path, std::size_t max_bytes);

// Where the first JSON syntax error in `text` is, as "line L, column C: what" (1-based), or nullopt when the text
// is well-formed. Poco's parser reports no position, so diagnostics for hand-edited files run this afterwards.
std::optional<std::string> json_syntax_error(std::string_view text);

// "line L, column C: what" when the position is known, else Poco's own message.
std::string describe_json_error(std::string_view text, const std::string& parser_message);

}  // namespace hubflow::signalr::detail
