#include "protocol/msgpack_protocol.h"

#include <msgpack/null_visitor.hpp>
#include <msgpack/pack.hpp>
#include <msgpack/parse.hpp>
#include <msgpack/unpack.hpp>  // the parser needs its helpers

#include <array>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>

#include "hubflow/json.h"
#include "protocol/utf8.h"

namespace hubflow::signalr::messagepack {

// ---- Size prefix ----------------------------------------------------------------------------------------------

void append_length_prefix(std::string& out, std::uint32_t length) {
    do {
        auto byte = static_cast<unsigned char>(length & 0x7F);
        length >>= 7;
        if (length != 0) byte |= 0x80;
        out += static_cast<char>(byte);
    } while (length != 0);
}

PrefixStatus read_length_prefix(std::string_view bytes, std::uint32_t& length, std::size_t& prefix_size) noexcept {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < max_prefix_bytes; ++i) {
        if (i == bytes.size()) return PrefixStatus::incomplete;
        const auto byte = static_cast<unsigned char>(bytes[i]);
        // The fifth byte carries bits 28-30 only: a message of 2 GiB or more is refused, as ASP.NET Core does.
        if (i == max_prefix_bytes - 1 && byte > 7) return PrefixStatus::invalid;
        value |= static_cast<std::uint32_t>(byte & 0x7F) << (7 * i);
        if ((byte & 0x80) == 0) {
            length = value;
            prefix_size = i + 1;
            return PrefixStatus::complete;
        }
    }
    return PrefixStatus::invalid;  // unreachable: the fifth byte is at most 7, so its high bit is clear
}

// ---- MessageReader ----------------------------------------------------------------------------------------------

void MessageReader::feed(std::string_view bytes) {
    if (carry_pending_) {
        // Views handed out before this feed may point into carry_, which is why the consumed part is only
        // dropped now.
        carry_.erase(0, carry_start_);
        carry_.append(bytes);
        rest_ = carry_;
        rest_in_carry_ = true;
    } else {
        rest_ = bytes;
        rest_in_carry_ = false;
    }
    carry_start_ = 0;
    carry_pending_ = false;
}

bool MessageReader::next(std::string_view& message) {
    if (!error_.empty() || rest_.empty()) return false;
    std::uint32_t length = 0;
    std::size_t prefix = 0;
    const PrefixStatus status = read_length_prefix(rest_, length, prefix);
    if (status == PrefixStatus::invalid) {
        error_ = "Messages over 2GB in size are not supported.";
        return false;
    }
    if (status == PrefixStatus::complete && length > max_message_bytes_) {
        error_ = "The message is " + std::to_string(length) + " bytes long, over the limit of " +
                 std::to_string(max_message_bytes_) + " bytes.";
        return false;
    }
    if (status == PrefixStatus::incomplete || rest_.size() - prefix < length) {
        if (rest_in_carry_) {
            carry_start_ = static_cast<std::size_t>(rest_.data() - carry_.data());
        } else {
            carry_.assign(rest_);  // nothing handed out points into carry_ when the input was not in it
            carry_start_ = 0;
        }
        carry_pending_ = true;
        rest_ = {};
        return false;
    }
    message = rest_.substr(prefix, length);
    rest_.remove_prefix(prefix + length);
    return true;
}

// ---- Parsing ------------------------------------------------------------------------------------------------------

namespace {

constexpr std::size_t max_depth = 64;

// What the element at a position of the message array is, for the message's type.
enum class Field : std::uint8_t {
    type,
    headers,
    invocation_id_or_nil,  // invocations: nil when no completion is wanted
    invocation_id,
    target,
    arguments,
    stream_ids,
    result_kind,
    completion_error,
    close_error,  // a string or nil
    allow_reconnect,
    value,  // a stream item or a completion's result: kept as argument 0
    sequence_id,
    ignored,
};

// How the values inside a container are treated.
enum class Role : std::uint8_t { top, headers, arguments, capture, skip };

struct Container {
    Role role = Role::skip;
    bool is_map = false;
    bool in_key = false;
    bool capture_root = false;  // its JSON text is a whole argument
    std::uint32_t started = 0;  // items (or keys) begun so far
};

std::string wrong_type(std::string_view name, std::string_view type) {
    std::string text = "Expected '";
    text.append(name);
    text += "' to be of type ";
    text.append(type);
    text += '.';
    return text;
}

void append_base64(std::string& out, const unsigned char* p, std::size_t n) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out += '"';
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i < n) {
        std::uint32_t v = std::uint32_t{p[i]} << 16;
        if (i + 1 < n) v |= std::uint32_t{p[i + 1]} << 8;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    out += '"';
}

std::uint64_t load_be(const unsigned char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | p[i];
    return v;
}

// The timestamp extension (type -1), which .NET's MessagePack writes for DateTime, as the ISO 8601 text the
// JSON protocol would carry: 2026-08-19T12:50:38.1234567Z (fraction only when there is one).
bool append_timestamp(std::string& out, const unsigned char* p, std::size_t n) {
    std::int64_t seconds = 0;
    std::uint32_t nanos = 0;
    if (n == 4) {
        seconds = static_cast<std::int64_t>(load_be(p, 4));
    } else if (n == 8) {
        const std::uint64_t v = load_be(p, 8);
        nanos = static_cast<std::uint32_t>(v >> 34);
        seconds = static_cast<std::int64_t>(v & 0x3FFFFFFFFULL);
    } else if (n == 12) {
        nanos = static_cast<std::uint32_t>(load_be(p, 4));
        seconds = static_cast<std::int64_t>(load_be(p + 4, 8));
    } else {
        return false;
    }
    if (nanos > 999'999'999) return false;
    // Years 1 to 9999, what ISO 8601 text without an extended year can say.
    if (seconds < -62'135'596'800LL || seconds > 253'402'300'799LL) return false;
    const auto t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) return false;
    char buf[64];
    int len = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    out.append(buf, static_cast<std::size_t>(len));
    if (nanos != 0) {
        len = std::snprintf(buf, sizeof buf, ".%09u", nanos);
        std::string_view fraction(buf, static_cast<std::size_t>(len));
        while (fraction.back() == '0')
            fraction.remove_suffix(1);
        out.append(fraction);
    }
    out += "Z\"";
    return true;
}

template <typename T>
void append_number(std::string& out, T value) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// The SAX side of msgpack-cxx's parser: it walks the bytes once and calls these in order, handing strings
// over as pointers into the message, so a string argument goes straight from the frame into the event's
// buffer. Returning false stops the parser; error_ then says why.
class MessageVisitor : public msgpack::null_visitor {
public:
    MessageVisitor(HubMessage& out, std::string& error) : out_(out), error_(error) {}

    bool visit_nil() { return scalar(Kind::nil); }
    bool visit_boolean(bool v) {
        boolean_ = v;
        return scalar(Kind::boolean);
    }
    bool visit_positive_integer(std::uint64_t v) {
        unsigned_ = v;
        return scalar(Kind::unsigned_integer);
    }
    bool visit_negative_integer(std::int64_t v) {
        signed_ = v;
        return scalar(Kind::signed_integer);
    }
    bool visit_float32(float v) {
        float_ = v;
        return scalar(Kind::float32);
    }
    bool visit_float64(double v) {
        double_ = v;
        return scalar(Kind::float64);
    }
    bool visit_str(const char* p, std::uint32_t n) {
        bytes_ = std::string_view(p, n);
        return scalar(Kind::str);
    }
    bool visit_bin(const char* p, std::uint32_t n) {
        bytes_ = std::string_view(p, n);
        return scalar(Kind::bin);
    }
    bool visit_ext(const char* p, std::uint32_t n) {
        bytes_ = std::string_view(p, n);  // the type byte, then the data
        return scalar(Kind::ext);
    }
    bool start_array(std::uint32_t) { return start_container(false); }
    bool start_array_item() {
        Container& c = stack_[depth_ - 1];
        if (c.role == Role::capture && c.started > 0) *capture_ += ',';
        ++c.started;
        return true;
    }
    bool end_array() { return end_container(); }
    bool start_map(std::uint32_t) { return start_container(true); }
    bool start_map_key() {
        Container& c = stack_[depth_ - 1];
        if (c.role == Role::capture && c.started > 0) *capture_ += ',';
        ++c.started;
        c.in_key = true;
        return true;
    }
    bool end_map_key() {
        Container& c = stack_[depth_ - 1];
        c.in_key = false;
        if (c.role == Role::capture) *capture_ += ':';
        return true;
    }
    bool end_map() { return end_container(); }
    void parse_error(std::size_t, std::size_t error_offset) {
        if (error_.empty())
            error_ = "The message is not valid MessagePack (at offset " + std::to_string(error_offset) + ").";
    }
    void insufficient_bytes(std::size_t, std::size_t) {
        if (error_.empty()) error_ = "The message ends inside a MessagePack value.";
    }

    bool finished() const { return finished_; }
    std::uint32_t element_count() const { return element_count_; }
    int type() const { return type_; }
    std::int64_t result_kind() const { return result_kind_; }
    std::size_t argument_count() const { return argument_count_; }

private:
    enum class Kind : std::uint8_t { nil, boolean, unsigned_integer, signed_integer, float32, float64, str, bin, ext };

    bool fail(std::string text) {
        if (error_.empty()) error_ = std::move(text);
        return false;
    }

    Field field_at(std::uint32_t index) const {
        if (index == 0) return Field::type;
        switch (type_) {
            case message_type::invocation:
            case message_type::stream_invocation: {
                static constexpr Field fields[] = {Field::type,   Field::headers,   Field::invocation_id_or_nil,
                                                   Field::target, Field::arguments, Field::stream_ids};
                return index < 6 ? fields[index] : Field::ignored;
            }
            case message_type::stream_item:
                return index == 1   ? Field::headers
                       : index == 2 ? Field::invocation_id
                       : index == 3 ? Field::value
                                    : Field::ignored;
            case message_type::completion:
                if (index == 1) return Field::headers;
                if (index == 2) return Field::invocation_id;
                if (index == 3) return Field::result_kind;
                if (index == 4 && result_kind_ == 1) return Field::completion_error;
                if (index == 4 && result_kind_ == 3) return Field::value;
                return Field::ignored;
            case message_type::cancel_invocation:
                return index == 1 ? Field::headers : index == 2 ? Field::invocation_id : Field::ignored;
            case message_type::close:
                return index == 1 ? Field::close_error : index == 2 ? Field::allow_reconnect : Field::ignored;
            case 8:  // Ack
            case 9:  // Sequence
                return index == 1 ? Field::sequence_id : Field::ignored;
            default:
                return Field::ignored;  // Ping's nothing, or a type from a newer protocol
        }
    }

    static const char* field_name(Field f) {
        switch (f) {
            case Field::headers:
                return "headers";
            case Field::invocation_id_or_nil:
            case Field::invocation_id:
                return "invocationId";
            case Field::target:
                return "target";
            case Field::arguments:
                return "arguments";
            case Field::stream_ids:
                return "streamIds";
            case Field::result_kind:
                return "resultKind";
            case Field::completion_error:
            case Field::close_error:
                return "error";
            case Field::allow_reconnect:
                return "allowReconnect";
            case Field::sequence_id:
                return "sequenceId";
            default:
                return "type";
        }
    }

    bool checked_string(std::string& into) {
        if (!is_valid_utf8(bytes_)) return fail("A string in the message is not valid UTF-8.");
        into.assign(bytes_);
        return true;
    }

    // The next argument's buffer, reused from the last message so a steady stream allocates nothing.
    std::string& begin_argument(bool is_string) {
        auto& args = out_.arguments;
        out_.argument_is_string.push_back(is_string);
        if (argument_count_ < args.size()) {
            args[argument_count_].clear();
            return args[argument_count_++];
        }
        ++argument_count_;
        return args.emplace_back();
    }

    // A value that becomes an argument (or the item, or the result): a string as its text, else its JSON.
    bool argument_scalar() {
        if (kind_ == Kind::str) return checked_string(begin_argument(true));
        return json_scalar(begin_argument(false), false);
    }

    bool json_scalar(std::string& out, bool as_key) {
        if (as_key) {
            switch (kind_) {
                case Kind::str:
                    break;
                case Kind::unsigned_integer:
                    out += '"';
                    append_number(out, unsigned_);
                    out += '"';
                    return true;
                case Kind::signed_integer:
                    out += '"';
                    append_number(out, signed_);
                    out += '"';
                    return true;
                default:
                    return fail("A map key in a value is neither a string nor an integer.");
            }
        }
        switch (kind_) {
            case Kind::nil:
                out += "null";
                return true;
            case Kind::boolean:
                out += boolean_ ? "true" : "false";
                return true;
            case Kind::unsigned_integer:
                append_number(out, unsigned_);
                return true;
            case Kind::signed_integer:
                append_number(out, signed_);
                return true;
            case Kind::float32:
                if (!std::isfinite(float_)) return fail("A number in the message is not finite.");
                append_number(out, float_);
                return true;
            case Kind::float64:
                if (!std::isfinite(double_)) return fail("A number in the message is not finite.");
                append_number(out, double_);
                return true;
            case Kind::str:
                if (!is_valid_utf8(bytes_)) return fail("A string in the message is not valid UTF-8.");
                append_json_string(out, bytes_);
                return true;
            case Kind::bin:
                append_base64(out, reinterpret_cast<const unsigned char*>(bytes_.data()), bytes_.size());
                return true;
            case Kind::ext: {
                const auto ext_type = static_cast<signed char>(bytes_[0]);
                if (ext_type == -1 &&
                    append_timestamp(out, reinterpret_cast<const unsigned char*>(bytes_.data()) + 1, bytes_.size() - 1))
                    return true;
                return fail(ext_type == -1 ? std::string("A MessagePack timestamp in the message is malformed.")
                                           : "The MessagePack extension type " + std::to_string(ext_type) +
                                                 " in the message is not supported.");
            }
        }
        return false;
    }

    bool top_field(Field field) {
        switch (field) {
            case Field::type:
                if (kind_ == Kind::unsigned_integer && unsigned_ <= INT_MAX) {
                    type_ = static_cast<int>(unsigned_);
                } else if (kind_ == Kind::signed_integer && signed_ >= INT_MIN) {
                    type_ = static_cast<int>(signed_);  // no such type: the message is ignored
                } else {
                    return fail(wrong_type("type", "Integer"));
                }
                out_.type = type_;
                return true;
            case Field::invocation_id_or_nil:
                if (kind_ == Kind::nil) return true;
                [[fallthrough]];
            case Field::invocation_id:
                if (kind_ != Kind::str) return fail(wrong_type("invocationId", "String"));
                out_.has_invocation_id = true;
                return checked_string(out_.invocation_id);
            case Field::target:
                if (kind_ != Kind::str) return fail(wrong_type("target", "String"));
                return checked_string(out_.target);
            case Field::result_kind:
                if (kind_ != Kind::unsigned_integer || unsigned_ < 1 || unsigned_ > 3)
                    return fail("Invalid result kind in a Completion message: expected 1, 2 or 3.");
                result_kind_ = static_cast<std::int64_t>(unsigned_);
                return true;
            case Field::completion_error:
                if (kind_ != Kind::str) return fail(wrong_type("error", "String"));
                out_.has_error = true;
                return checked_string(out_.error);
            case Field::close_error:
                if (kind_ == Kind::nil) return true;
                if (kind_ != Kind::str) return fail(wrong_type("error", "String"));
                out_.has_error = true;
                return checked_string(out_.error);
            case Field::allow_reconnect:
                if (kind_ != Kind::boolean) return fail(wrong_type("allowReconnect", "Boolean"));
                out_.allow_reconnect = boolean_;
                return true;
            case Field::value:
                return argument_scalar();
            case Field::sequence_id:
                if (kind_ != Kind::unsigned_integer) return fail(wrong_type("sequenceId", "Integer"));
                return true;
            case Field::ignored:
                return true;
            case Field::headers:
                return fail(wrong_type("headers", "Map"));
            case Field::arguments:
            case Field::stream_ids:
                return fail(wrong_type(field_name(field), "Array"));
        }
        return true;
    }

    bool scalar(Kind kind) {
        kind_ = kind;
        if (depth_ == 0) return fail("The message is not a MessagePack array.");
        Container& c = stack_[depth_ - 1];
        switch (c.role) {
            case Role::top:
                return top_field(field_at(c.started - 1));
            case Role::headers:
                if (kind_ != Kind::str) return fail("Expected 'headers' to map strings to strings.");
                return true;
            case Role::arguments:
                return argument_scalar();
            case Role::capture:
                return json_scalar(*capture_, c.is_map && c.in_key);
            case Role::skip:
                return true;
        }
        return true;
    }

    bool push(Role role, bool is_map, bool capture_root = false) {
        if (depth_ == max_depth) return fail("The message nests deeper than " + std::to_string(max_depth) + " levels.");
        stack_[depth_++] = Container{role, is_map, false, capture_root, 0};
        return true;
    }

    // A map or an array that becomes an argument: its JSON text, written as the parser walks it.
    bool begin_capture(bool is_map) {
        capture_ = &begin_argument(false);
        *capture_ += is_map ? '{' : '[';
        return push(Role::capture, is_map, true);
    }

    bool start_container(bool is_map) {
        if (depth_ == 0) {
            if (is_map || finished_) return fail("The message is not a MessagePack array.");
            return push(Role::top, false);
        }
        Container& c = stack_[depth_ - 1];
        switch (c.role) {
            case Role::top: {
                const Field field = field_at(c.started - 1);
                switch (field) {
                    case Field::headers:
                        return is_map ? push(Role::headers, true) : fail(wrong_type("headers", "Map"));
                    case Field::arguments:
                        return !is_map ? push(Role::arguments, false) : fail(wrong_type("arguments", "Array"));
                    case Field::stream_ids:
                        return !is_map ? push(Role::skip, false) : fail(wrong_type("streamIds", "Array"));
                    case Field::value:
                        return begin_capture(is_map);
                    case Field::ignored:
                        return push(Role::skip, is_map);
                    default:
                        return field == Field::type
                                   ? fail(wrong_type("type", "Integer"))
                                   : fail(std::string("Expected '") + field_name(field) +
                                          "' to be a single value, not " + (is_map ? "a map." : "an array."));
                }
            }
            case Role::headers:
                return fail("Expected 'headers' to map strings to strings.");
            case Role::arguments:
                return begin_capture(is_map);
            case Role::capture:
                if (c.is_map && c.in_key) return fail("A map key in a value is neither a string nor an integer.");
                *capture_ += is_map ? '{' : '[';
                return push(Role::capture, is_map);
            case Role::skip:
                return push(Role::skip, is_map);
        }
        return true;
    }

    bool end_container() {
        const Container c = stack_[--depth_];
        if (c.role == Role::capture) {
            *capture_ += c.is_map ? '}' : ']';
            if (c.capture_root) capture_ = nullptr;
        } else if (c.role == Role::top) {
            finished_ = true;
            element_count_ = c.started;
        }
        return true;
    }

    HubMessage& out_;
    std::string& error_;
    std::array<Container, max_depth> stack_{};
    std::size_t depth_ = 0;
    bool finished_ = false;
    std::uint32_t element_count_ = 0;
    int type_ = 0;
    std::int64_t result_kind_ = 0;
    std::size_t argument_count_ = 0;
    std::string* capture_ = nullptr;
    // The scalar being visited.
    Kind kind_ = Kind::nil;
    bool boolean_ = false;
    std::uint64_t unsigned_ = 0;
    std::int64_t signed_ = 0;
    float float_ = 0;
    double double_ = 0;
    std::string_view bytes_;
};

void reset(HubMessage& out) {
    out.type = 0;
    out.invocation_id.clear();
    out.has_invocation_id = false;
    out.target.clear();
    out.argument_is_string.clear();
    out.error.clear();
    out.has_error = false;
    out.has_result = false;
    out.allow_reconnect = false;
}

// The shortest message of each known type, in elements; the texts are the official JavaScript client's.
const char* too_short(int type, std::uint32_t elements, std::int64_t result_kind) {
    switch (type) {
        case message_type::invocation:
            return elements < 5 ? "Invalid payload for Invocation message." : nullptr;
        case message_type::stream_invocation:
            return elements < 5 ? "Invalid payload for StreamInvocation message." : nullptr;
        case message_type::stream_item:
            return elements < 4 ? "Invalid payload for StreamItem message." : nullptr;
        case message_type::completion:
            return elements < 4 || (result_kind != 2 && elements < 5) ? "Invalid payload for Completion message."
                                                                      : nullptr;
        case message_type::cancel_invocation:
            return elements < 3 ? "Invalid payload for CancelInvocation message." : nullptr;
        case message_type::close:
            return elements < 2 ? "Invalid payload for Close message." : nullptr;
        case 8:
            return elements < 2 ? "Invalid payload for Ack message." : nullptr;
        case 9:
            return elements < 2 ? "Invalid payload for Sequence message." : nullptr;
        default:
            return nullptr;
    }
}

}  // namespace

bool parse_message(std::string_view message, HubMessage& out, std::string& error) {
    reset(out);
    error.clear();
    if (message.empty()) {
        error = "Invalid payload: the message is empty.";
        return false;
    }
    MessageVisitor visitor(out, error);
    std::size_t offset = 0;
    const bool parsed = msgpack::parse(message.data(), message.size(), offset, visitor);
    auto fail = [&](std::string text) {
        if (error.empty()) error = std::move(text);
        out.arguments.clear();
        out.argument_is_string.clear();
        return false;
    };
    if (!parsed || !error.empty()) return fail("The message is not valid MessagePack.");
    if (!visitor.finished()) return fail("The message is not a MessagePack array.");
    if (offset != message.size())
        return fail(std::to_string(message.size() - offset) + " bytes follow the message's array.");
    if (visitor.element_count() == 0) return fail("Invalid payload: the message array is empty.");
    if (const char* why = too_short(visitor.type(), visitor.element_count(), visitor.result_kind())) return fail(why);
    if (visitor.type() == message_type::completion) out.has_result = visitor.result_kind() == 3;
    out.arguments.resize(visitor.argument_count());
    return true;
}

// ---- Writers ------------------------------------------------------------------------------------------------------

namespace {

// msgpack-cxx's packer writes to any object with write(data, size).
struct Appender {
    std::string& out;
    void write(const char* data, std::size_t size) { out.append(data, size); }
};

std::uint32_t str_size(std::string_view s) {
    const std::size_t n = s.size();
    const std::size_t header = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
    return static_cast<std::uint32_t>(header + n);
}

void pack_string(msgpack::packer<Appender>& p, std::string_view s) {
    p.pack_str(static_cast<std::uint32_t>(s.size()));
    p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

}  // namespace

void append_invocation(std::string& out, std::string_view target, std::string_view string_argument) {
    // The size is known in advance, so the prefix goes first and the payload is packed in place: one copy of
    // the event's text.
    const std::uint32_t body = 4 + str_size(target) + 1 + str_size(string_argument) + 1;
    out.reserve(out.size() + max_prefix_bytes + body);
    append_length_prefix(out, body);
    Appender sink{out};
    msgpack::packer<Appender> p(sink);
    // Six elements, the last an empty streamIds array, as ASP.NET Core writes it.
    p.pack_array(6);
    p.pack_uint8(message_type::invocation);
    p.pack_map(0);
    p.pack_nil();
    pack_string(p, target);
    p.pack_array(1);
    pack_string(p, string_argument);
    p.pack_array(0);
}

void append_ping(std::string& out) {
    append_length_prefix(out, 2);
    out += '\x91';  // fixarray of 1
    out += static_cast<char>(message_type::ping);
}

void append_close(std::string& out, std::string_view error, bool allow_reconnect) {
    std::string body;
    Appender sink{body};
    msgpack::packer<Appender> p(sink);
    p.pack_array(3);
    p.pack_uint8(message_type::close);
    if (error.empty())
        p.pack_nil();
    else
        pack_string(p, error);
    if (allow_reconnect)
        p.pack_true();
    else
        p.pack_false();
    append_length_prefix(out, static_cast<std::uint32_t>(body.size()));
    out += body;
}

void append_completion_error(std::string& out, std::string_view invocation_id, std::string_view error) {
    std::string body;
    Appender sink{body};
    msgpack::packer<Appender> p(sink);
    p.pack_array(5);
    p.pack_uint8(message_type::completion);
    p.pack_map(0);
    pack_string(p, invocation_id);
    p.pack_uint8(1);  // error result
    pack_string(p, error);
    append_length_prefix(out, static_cast<std::uint32_t>(body.size()));
    out += body;
}

}  // namespace hubflow::signalr::messagepack
