#include "auth/jose_util.h"

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace hubflow::signalr::detail {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Value of each base64url character, or -1.
constexpr std::array<int, 256> make_decode_table() {
    std::array<int, 256> table{};
    for (auto& v : table)
        v = -1;
    for (int i = 0; i < 64; ++i)
        table[static_cast<unsigned char>(kAlphabet[i])] = i;
    return table;
}
constexpr std::array<int, 256> kDecode = make_decode_table();

int value_of(char c) {
    return kDecode[static_cast<unsigned char>(c)];
}

}  // namespace

bool is_strict_base64url(std::string_view s) {
    if (s.empty() || s.size() % 4 == 1) return false;
    for (char c : s) {
        if (value_of(c) < 0) return false;
    }
    // A 2-character tail carries 8 data bits out of 12, a 3-character tail 16 out of 18: the rest must be zero.
    const int last = value_of(s.back());
    if (s.size() % 4 == 2) return (last & 0x0f) == 0;
    if (s.size() % 4 == 3) return (last & 0x03) == 0;
    return true;
}

std::optional<std::string> base64url_decode(std::string_view s) {
    if (!is_strict_base64url(s)) return std::nullopt;
    std::string out;
    out.reserve(s.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : s) {
        acc = (acc << 6) | static_cast<std::uint32_t>(value_of(c));
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
        }
    }
    if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
    return out;
}

std::string read_text_file(const std::string& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    std::string text;
    char buffer[8192];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_bytes) {
            throw std::runtime_error(path + " is larger than " + std::to_string(max_bytes) + " bytes");
        }
    }
    if (in.bad()) throw std::runtime_error("cannot read " + path);
    return text;
}

namespace {

// A strict RFC 8259 syntax checker that only finds where the text goes wrong. It builds nothing: Poco parses.
class JsonChecker {
public:
    explicit JsonChecker(std::string_view text) : text_(text) {}

    std::optional<std::string> run() {
        skip_ws();
        if (!value(0)) return where();
        skip_ws();
        if (pos_ != text_.size()) {
            what_ = "unexpected text after the JSON value";
            return where();
        }
        return std::nullopt;
    }

private:
    static constexpr int kMaxDepth = 512;

    bool fail(const char* what) {
        what_ = what;
        return false;
    }
    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return at_end() ? '\0' : text_[pos_]; }

    void skip_ws() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
            ++pos_;
    }

    bool value(int depth) {
        if (depth > kMaxDepth) return fail("nesting too deep");
        if (at_end()) return fail("unexpected end of input");
        switch (peek()) {
            case '{':
                return object(depth + 1);
            case '[':
                return array(depth + 1);
            case '"':
                return string();
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
                return fail("unexpected character");
        }
    }

    bool literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return fail("invalid literal");
        pos_ += word.size();
        return true;
    }

    bool digits() {
        if (at_end() || peek() < '0' || peek() > '9') return fail("digit expected");
        while (!at_end() && peek() >= '0' && peek() <= '9')
            ++pos_;
        return true;
    }

    bool number() {
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
        } else if (!digits()) {
            return false;
        }
        if (peek() == '.') {
            ++pos_;
            if (!digits()) return false;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!digits()) return false;
        }
        return true;
    }

    bool string() {
        ++pos_;  // opening quote
        while (true) {
            if (at_end()) return fail("unterminated string");
            const char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
            if (c == '\\') {
                ++pos_;
                if (at_end()) return fail("unterminated string");
                const char e = text_[pos_];
                if (e == 'u') {
                    for (int i = 1; i <= 4; ++i) {
                        const char h = pos_ + i < text_.size() ? text_[pos_ + i] : '\0';
                        if (!std::isxdigit(static_cast<unsigned char>(h))) {
                            pos_ += i;
                            return fail("invalid \\u escape");
                        }
                    }
                    pos_ += 4;
                } else if (std::strchr("\"\\/bfnrt", e) == nullptr || e == '\0') {
                    return fail("invalid escape");
                }
            }
            ++pos_;
        }
    }

    bool array(int depth) {
        ++pos_;
        skip_ws();
        if (peek() == ']') {
            ++pos_;
            return true;
        }
        while (true) {
            skip_ws();
            if (!value(depth)) return false;
            skip_ws();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                return true;
            }
            return fail(at_end() ? "unexpected end of input" : "',' or ']' expected");
        }
    }

    bool object(int depth) {
        ++pos_;
        skip_ws();
        if (peek() == '}') {
            ++pos_;
            return true;
        }
        while (true) {
            skip_ws();
            if (peek() != '"') return fail(at_end() ? "unexpected end of input" : "member name (a string) expected");
            if (!string()) return false;
            skip_ws();
            if (peek() != ':') return fail(at_end() ? "unexpected end of input" : "':' expected");
            ++pos_;
            skip_ws();
            if (!value(depth)) return false;
            skip_ws();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                return true;
            }
            return fail(at_end() ? "unexpected end of input" : "',' or '}' expected");
        }
    }

    std::string where() const {
        std::size_t line = 1;
        std::size_t column = 1;
        const std::size_t end = pos_ < text_.size() ? pos_ : text_.size();
        for (std::size_t i = 0; i < end; ++i) {
            if (text_[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + what_;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    std::string what_;
};

}  // namespace

std::optional<std::string> json_syntax_error(std::string_view text) {
    return JsonChecker(text).run();
}

std::string describe_json_error(std::string_view text, const std::string& parser_message) {
    if (auto where = json_syntax_error(text)) return *where;
    return parser_message;
}

}  // namespace hubflow::signalr::detail
