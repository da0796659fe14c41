#include "protocol/hub_protocol.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <typeinfo>

#include "hubflow/json.h"

namespace hubflow::signalr {

namespace {

using Poco::Dynamic::Var;

std::string_view strip_separator(std::string_view record) {
    if (!record.empty() && record.back() == record_separator) record.remove_suffix(1);
    return record;
}

// Reserves for `extra` more bytes, growing geometrically so that many appends to one buffer stay linear.
void reserve_more(std::string& out, std::size_t extra) {
    const std::size_t needed = out.size() + extra;
    if (out.capacity() < needed) out.reserve(std::max(needed, out.capacity() * 2));
}

bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

bool is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// ---- The fast scanner ---------------------------------------------------------------------------------------
// Every function returns false for anything it does not handle, which includes every invalid input: the
// caller then hands the record to Poco, which either accepts it or produces the error. So the scanner only
// has to be right about what it accepts, and it accepts only what Poco's parser (pdjson) accepts.

// At the opening quote of a string value; appends its unescaped text to *out when there is one. The SDK's
// string reader accepts exactly what pdjson does (strict RFC 8259 strings, valid UTF-8).
bool scan_string(const char*& p, const char* end, std::string* out) {
    return out ? read_json_string(p, end, *out) : skip_json_string(p, end);
}

// At the opening quote of a member name. Only plain ASCII names are handled: escapes would need decoding
// (and Poco cuts names at an escaped NUL), and real names never have them.
bool scan_key(const char*& p, const char* end, std::string_view& key) {
    const char* start = ++p;
    while (p < end) {
        const char c = *p;
        if (c == '"') {
            key = std::string_view(start, static_cast<std::size_t>(p - start));
            ++p;
            return true;
        }
        if (c < 0x20 || c > 0x7E || c == '\\') return false;
        ++p;
    }
    return false;
}

inline void skip_space(const char*& p, const char* end) {
    while (p < end && is_json_space(*p))
        ++p;
}

inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// An integer as JSON writes it, of at most `max_digits` digits, with no fraction or exponent (those, and
// longer numbers, Poco turns into doubles or range errors, which are not this scanner's business).
bool scan_integer(const char*& p, const char* end, int max_digits, long long& value) {
    bool negative = false;
    if (p < end && *p == '-') {
        negative = true;
        ++p;
    }
    if (p >= end || !is_digit(*p)) return false;
    value = 0;
    int digits = 0;
    if (*p == '0') {
        ++p;
        digits = 1;
    } else {
        while (p < end && is_digit(*p)) {
            if (++digits > max_digits) return false;
            value = value * 10 + (*p - '0');
            ++p;
        }
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || is_digit(*p))) return false;
    if (negative) value = -value;
    return true;
}

bool scan_literal(const char*& p, const char* end, std::string_view word) {
    if (static_cast<std::size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()) != 0) return false;
    p += word.size();
    return true;
}

// The value of a member the message does not use: scalars only, containers go to Poco.
bool skip_scalar(const char*& p, const char* end) {
    if (p >= end) return false;
    long long ignored;
    switch (*p) {
        case '"':
            return scan_string(p, end, nullptr);
        case 't':
            return scan_literal(p, end, "true");
        case 'f':
            return scan_literal(p, end, "false");
        case 'n':
            return scan_literal(p, end, "null");
        default:
            return scan_integer(p, end, 18, ignored);
    }
}

// Reuses the strings already in `args` so that a steady stream of messages parses without allocating.
std::string& argument_slot(std::vector<std::string>& args, std::size_t index) {
    if (index < args.size()) {
        args[index].clear();
        return args[index];
    }
    return args.emplace_back();
}

void reset_scalars(HubMessage& out) {
    out.type = 0;
    out.invocation_id.clear();
    out.has_invocation_id = false;
    out.target.clear();
    out.error.clear();
    out.has_error = false;
    out.has_result = false;
    out.allow_reconnect = false;
}

// ---- Raw value text, over JSON Poco has already accepted ----------------------------------------------------
// Poco's DOM does not keep a value's text, and re-serializing would reorder object members and round
// numbers, so non-string arguments are cut out of the record itself. The input is known valid, so this
// only tracks strings and nesting.

void raw_skip_string(const char*& p, const char* end) {
    ++p;
    while (p < end && *p != '"')
        p += (*p == '\\') ? 2 : 1;
    ++p;
}

void raw_skip_value(const char*& p, const char* end) {
    if (*p == '"') {
        raw_skip_string(p, end);
        return;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            const char c = *p;
            if (c == '"') {
                raw_skip_string(p, end);
                continue;
            }
            ++p;
            if (c == '{' || c == '[') {
                ++depth;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return;
            }
        }
        return;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_json_space(*p))
        ++p;
}

// The text of the last top-level member called `name` (Poco keeps the last of duplicate names).
std::string_view raw_member(std::string_view object, std::string_view name) {
    const char* p = object.data();
    const char* end = p + object.size();
    std::string_view found;
    std::string decoded;
    skip_space(p, end);
    ++p;  // {
    for (;;) {
        skip_space(p, end);
        if (p >= end || *p != '"') break;
        const char* key_start = p;
        raw_skip_string(p, end);
        std::string_view key(key_start + 1, static_cast<std::size_t>(p - key_start - 2));
        if (key.find('\\') != std::string_view::npos) {
            decoded.clear();
            const char* q = key_start;
            scan_string(q, end, &decoded);
            // Poco takes member names as C strings, so an escaped NUL ends the name.
            decoded.resize(std::min(decoded.size(), decoded.find('\0')));
            key = decoded;
        }
        const bool match = key == name;
        skip_space(p, end);
        ++p;  // :
        skip_space(p, end);
        const char* value_start = p;
        raw_skip_value(p, end);
        if (match) found = std::string_view(value_start, static_cast<std::size_t>(p - value_start));
        skip_space(p, end);
        if (p < end && *p == ',') ++p;
    }
    return found;
}

void raw_elements(std::string_view array, std::vector<std::string_view>& out) {
    out.clear();
    const char* p = array.data();
    const char* end = p + array.size();
    ++p;  // [
    for (;;) {
        skip_space(p, end);
        if (p >= end || *p == ']') break;
        const char* start = p;
        raw_skip_value(p, end);
        out.emplace_back(start, static_cast<std::size_t>(p - start));
        skip_space(p, end);
        if (p < end && *p == ',') ++p;
    }
}

// ---- Poco helpers ---------------------------------------------------------------------------------------------

bool is_string(const Var& v) {
    return v.type() == typeid(std::string);
}
bool is_object(const Var& v) {
    return v.type() == typeid(Poco::JSON::Object::Ptr);
}
bool is_array(const Var& v) {
    return v.type() == typeid(Poco::JSON::Array::Ptr);
}
// Poco's parser gives integers as Int64 (UInt64 beyond its range); true and false must not count, and
// Var::isInteger() says yes to bool.
bool is_int64(const Var& v) {
    return v.type() == typeid(Poco::Int64);
}

std::string wrong_type(std::string_view name, std::string_view type) {
    std::string text = "Expected '";
    text.append(name);
    text += "' to be of type ";
    text.append(type);
    text += '.';
    return text;
}

std::string missing(std::string_view name) {
    std::string text = "Missing required property '";
    text.append(name);
    text += "'.";
    return text;
}

// An optional string member: absent and null both leave `present` false.
bool optional_string(const Poco::JSON::Object& obj, const std::string& name, std::string& value, bool& present,
                     std::string& error) {
    const Var v = obj.get(name);
    present = false;
    if (v.isEmpty()) return true;
    if (!is_string(v)) {
        error = wrong_type(name, "String");
        return false;
    }
    value = v.extract<std::string>();
    present = true;
    return true;
}

// Parses `text` as a JSON object, or explains why not.
Poco::JSON::Object::Ptr parse_object(std::string_view text, std::string_view what, std::string& error) {
    // Poco reports a top-level scalar with an internal-sounding error; say what is actually wrong.
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] != '{') {
        error = std::string(what) + " is not a JSON object.";
        return nullptr;
    }
    Var root;
    try {
        Poco::JSON::Parser parser;
        root = parser.parse(std::string(text));
    } catch (const Poco::Exception& e) {
        error = std::string(what) + " is not valid JSON: " + e.message();
        return nullptr;
    }
    if (!is_object(root)) {
        error = std::string(what) + " is not a JSON object.";
        return nullptr;
    }
    return root.extract<Poco::JSON::Object::Ptr>();
}

// Stores a value as an argument: a string's text, or the value's JSON text from the record.
void store_value(const Var& v, std::string_view raw, HubMessage& out, std::size_t index) {
    std::string& slot = argument_slot(out.arguments, index);
    if (is_string(v)) {
        slot = v.extract<std::string>();
        out.argument_is_string.push_back(true);
    } else {
        slot.assign(raw);
        out.argument_is_string.push_back(false);
    }
}

}  // namespace

// ---- Handshake ----------------------------------------------------------------------------------------------

HandshakeResult check_handshake(std::string_view record_without_separator) {
    HandshakeResult result;
    auto obj = parse_object(strip_separator(record_without_separator), "The handshake request", result.error);
    if (!obj) return result;
    const Var protocol = obj->get("protocol");
    if (protocol.isEmpty()) {
        result.error = missing("protocol");
        return result;
    }
    if (!is_string(protocol)) {
        result.error = wrong_type("protocol", "String");
        return result;
    }
    const Var version = obj->get("version");
    if (version.isEmpty()) {
        result.error = missing("version");
        return result;
    }
    if (!is_int64(version)) {
        result.error = wrong_type("version", "Integer");
        return result;
    }
    const auto& name = protocol.extract<std::string>();
    if (ascii_iequals(name, "json")) {
        result.protocol = HubProtocol::json;
    } else if (ascii_iequals(name, "messagepack")) {
        result.protocol = HubProtocol::messagepack;
    } else {
        result.error = "The protocol '" + name + "' is not supported.";
        return result;
    }
    const Poco::Int64 v = version.extract<Poco::Int64>();
    if (v != 1 && v != 2) {
        result.error = "The server does not support version " + std::to_string(v) + " of the '" +
                       std::string(protocol_name(result.protocol)) + "' protocol.";
        return result;
    }
    result.ok = true;
    return result;
}

std::string_view protocol_name(HubProtocol protocol) {
    return protocol == HubProtocol::messagepack ? "messagepack" : "json";
}

std::string handshake_response(std::string_view error) {
    if (error.empty()) return std::string("{}") + record_separator;
    std::string out = "{\"error\":";
    append_json_string(out, error);
    out += '}';
    out += record_separator;
    return out;
}

std::string handshake_request(HubProtocol protocol) {
    std::string request = R"({"protocol":")";
    request += protocol_name(protocol);
    request += R"(","version":1})";
    request += record_separator;
    return request;
}

HandshakeResult parse_handshake_response(std::string_view record) {
    HandshakeResult result;
    auto obj = parse_object(strip_separator(record), "The handshake response", result.error);
    if (!obj) return result;
    // The reference client's check: a server that answers with a message did not do the handshake.
    if (obj->has("type")) {
        result.error = "Expected a handshake response from the server.";
        return result;
    }
    const Var error = obj->get("error");
    if (!error.isEmpty()) {
        result.error = is_string(error) ? error.extract<std::string>() : wrong_type("error", "String");
        return result;
    }
    result.ok = true;
    return result;
}

// ---- Records ------------------------------------------------------------------------------------------------

RecordSplitter::RecordSplitter(std::string_view message) noexcept : rest_(message) {
    if (!message.empty() && message.back() != record_separator) {
        rest_ = {};
        error_ = "Message is incomplete.";
    }
}

bool RecordSplitter::next(std::string_view& record) noexcept {
    if (rest_.empty()) return false;
    // The constructor checked that the message ends with a separator, so there always is one.
    const std::size_t end = rest_.find(record_separator);
    record = rest_.substr(0, end);
    rest_.remove_prefix(end + 1);
    return true;
}

// ---- Messages -----------------------------------------------------------------------------------------------

namespace detail {

bool parse_invocation_fast(std::string_view record, HubMessage& out) {
    const char* p = record.data();
    const char* const end = p + record.size();
    reset_scalars(out);
    bool seen_type = false, seen_target = false, seen_arguments = false;
    std::size_t argument_count = 0;

    skip_space(p, end);
    if (p >= end || *p != '{') return false;
    ++p;
    skip_space(p, end);
    for (;;) {
        std::string_view key;
        if (p >= end || *p != '"' || !scan_key(p, end, key)) return false;
        skip_space(p, end);
        if (p >= end || *p != ':') return false;
        ++p;
        skip_space(p, end);
        if (p >= end) return false;
        // A repeated member goes to Poco, whose "last one wins" is not worth copying here.
        if (key == "type") {
            long long type;
            if (seen_type || !scan_integer(p, end, 9, type) || type != message_type::invocation) return false;
            seen_type = true;
        } else if (key == "target") {
            if (seen_target || *p != '"' || !scan_string(p, end, &out.target)) return false;
            seen_target = true;
        } else if (key == "invocationId") {
            if (out.has_invocation_id || *p != '"' || !scan_string(p, end, &out.invocation_id)) return false;
            out.has_invocation_id = true;
        } else if (key == "arguments") {
            if (seen_arguments || *p != '[') return false;
            seen_arguments = true;
            ++p;
            skip_space(p, end);
            if (p < end && *p == ']') {
                ++p;
            } else {
                for (;;) {
                    if (p >= end || *p != '"') return false;
                    if (!scan_string(p, end, &argument_slot(out.arguments, argument_count))) return false;
                    ++argument_count;
                    skip_space(p, end);
                    if (p >= end) return false;
                    if (*p == ']') {
                        ++p;
                        break;
                    }
                    if (*p != ',') return false;
                    ++p;
                    skip_space(p, end);
                }
            }
        } else if (key == "error" || key == "result" || key == "item" || key == "allowReconnect" ||
                   !skip_scalar(p, end)) {
            return false;  // members with type rules of their own (rare in an invocation), or not a scalar
        }
        skip_space(p, end);
        if (p >= end) return false;
        if (*p == '}') {
            ++p;
            break;
        }
        if (*p != ',') return false;
        ++p;
        skip_space(p, end);
    }
    skip_space(p, end);
    if (p != end || !seen_type || !seen_arguments || out.target.empty()) return false;
    out.type = message_type::invocation;
    out.arguments.resize(argument_count);
    out.argument_is_string.assign(argument_count, true);
    return true;
}

bool parse_message_poco(std::string_view record, HubMessage& out, std::string& error) {
    reset_scalars(out);
    out.argument_is_string.clear();
    std::size_t argument_count = 0;
    auto fail = [&](std::string text) {
        error = std::move(text);
        out.arguments.clear();
        out.argument_is_string.clear();
        return false;
    };

    auto obj = parse_object(record, "Message", error);
    if (!obj) return fail(std::move(error));

    const Var type = obj->get("type");
    if (type.isEmpty()) return fail(missing("type"));
    if (!is_int64(type)) return fail(wrong_type("type", "Integer"));
    const Poco::Int64 type_value = type.extract<Poco::Int64>();
    if (type_value < INT_MIN || type_value > INT_MAX) return fail(wrong_type("type", "Integer"));
    out.type = static_cast<int>(type_value);

    // Known members are type-checked whatever the message type, as the reference parser does.
    bool has_target = false;
    if (!optional_string(*obj, "invocationId", out.invocation_id, out.has_invocation_id, error) ||
        !optional_string(*obj, "target", out.target, has_target, error) ||
        !optional_string(*obj, "error", out.error, out.has_error, error))
        return fail(std::move(error));
    const Var allow_reconnect = obj->get("allowReconnect");
    if (!allow_reconnect.isEmpty()) {
        if (allow_reconnect.type() != typeid(bool)) return fail(wrong_type("allowReconnect", "Boolean"));
        out.allow_reconnect = allow_reconnect.extract<bool>();
    }
    const Var arguments = obj->get("arguments");
    const bool has_arguments = !arguments.isEmpty();
    if (has_arguments && !is_array(arguments)) return fail(wrong_type("arguments", "Array"));
    out.has_result = obj->has("result");
    const bool has_item = obj->has("item");

    switch (out.type) {
        case message_type::invocation:
        case message_type::stream_invocation:
            if (out.target.empty()) return fail(missing("target"));
            if (!has_arguments) return fail(missing("arguments"));
            break;
        case message_type::stream_item:
            if (!out.has_invocation_id) return fail(missing("invocationId"));
            if (!has_item) return fail(missing("item"));
            break;
        case message_type::completion:
            if (!out.has_invocation_id) return fail(missing("invocationId"));
            if (out.has_result && out.has_error)
                return fail("The 'error' and 'result' properties are mutually exclusive.");
            break;
        case message_type::cancel_invocation:
            if (!out.has_invocation_id) return fail(missing("invocationId"));
            break;
        default:
            break;
    }

    // Values: the stream item or the completion's result, else the arguments.
    if (out.type == message_type::stream_item || (out.type == message_type::completion && out.has_result)) {
        const char* name = out.type == message_type::stream_item ? "item" : "result";
        store_value(obj->get(name), raw_member(record, name), out, argument_count++);
    } else if (has_arguments && out.type != message_type::completion) {
        const auto& array = arguments.extract<Poco::JSON::Array::Ptr>();
        std::vector<std::string_view> raw;
        bool all_strings = true;
        for (std::size_t i = 0; i < array->size() && all_strings; ++i)
            all_strings = is_string(array->get(static_cast<unsigned>(i)));
        if (!all_strings) raw_elements(raw_member(record, "arguments"), raw);
        for (std::size_t i = 0; i < array->size(); ++i)
            store_value(array->get(static_cast<unsigned>(i)), all_strings ? std::string_view() : raw[i], out,
                        argument_count++);
    }
    out.arguments.resize(argument_count);
    return true;
}

}  // namespace detail

bool parse_message(std::string_view record, HubMessage& out, std::string& error) {
    if (detail::parse_invocation_fast(record, out)) return true;
    return detail::parse_message_poco(record, out, error);
}

// ---- Writers ------------------------------------------------------------------------------------------------

void append_invocation(std::string& out, std::string_view target, std::string_view string_argument) {
    // Fixed text plus quotes is 43 bytes; escapes may add more, which the string's own growth absorbs.
    reserve_more(out, 48 + target.size() + string_argument.size() + string_argument.size() / 8);
    out += R"({"type":1,"target":)";
    append_json_string(out, target);
    out += R"(,"arguments":[)";
    append_json_string(out, string_argument);
    out += "]}";
    out += record_separator;
}

void append_ping(std::string& out) {
    out += R"({"type":6})";
    out += record_separator;
}

void append_close(std::string& out, std::string_view error, bool allow_reconnect) {
    out += R"({"type":7)";
    if (!error.empty()) {
        out += R"(,"error":)";
        append_json_string(out, error);
    }
    if (allow_reconnect) out += R"(,"allowReconnect":true)";
    out += '}';
    out += record_separator;
}

void append_completion_error(std::string& out, std::string_view invocation_id, std::string_view error) {
    out += R"({"type":3,"invocationId":)";
    append_json_string(out, invocation_id);
    out += R"(,"error":)";
    append_json_string(out, error);
    out += '}';
    out += record_separator;
}

}  // namespace hubflow::signalr
