#include "hubflow/json_parse.h"

#include "unicode.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace hubflow {
namespace {

constexpr int max_depth = 256;

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Value document() {
        skip_ws();
        Value v = value(0);
        skip_ws();
        if (pos_ < text_.size()) fail("unexpected text after the JSON document");
        return v;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
    int line_ = 1;
    std::size_t line_start_ = 0;

    SourcePosition here() const { return {line_, static_cast<int>(pos_ - line_start_) + 1}; }

    [[noreturn]] void fail(const std::string& message) const { throw JsonSyntaxError(message, here()); }

    std::string describe_next() const {
        if (pos_ >= text_.size()) return "end of file";
        char c = text_[pos_];
        if (static_cast<unsigned char>(c) < 0x20) return "a control character";
        return std::string("'") + c + "'";
    }

    void skip_ws() {
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (c == '\n') {
                ++line_;
                line_start_ = ++pos_;
            } else if (c == ' ' || c == '\t' || c == '\r') {
                ++pos_;
            } else {
                break;
            }
        }
    }

    bool consume(char c) {
        if (pos_ < text_.size() && text_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

    Value value(int depth) {
        if (depth > max_depth) fail("nesting deeper than 256 levels");
        SourcePosition at = here();
        if (pos_ >= text_.size()) fail("expected a value, found end of file");
        Value v;
        switch (text_[pos_]) {
            case '{':
                v = object(depth);
                break;
            case '[':
                v = array(depth);
                break;
            case '"':
                v = Value(string());
                break;
            case 't':
                literal("true");
                v = Value(true);
                break;
            case 'f':
                literal("false");
                v = Value(false);
                break;
            case 'n':
                literal("null");
                break;
            default:
                if (text_[pos_] == '-' || (text_[pos_] >= '0' && text_[pos_] <= '9')) {
                    v = number();
                } else {
                    fail("expected a value, found " + describe_next());
                }
        }
        v.position = at;
        return v;
    }

    void literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) fail("expected a value, found " + describe_next());
        pos_ += word.size();
    }

    Value number() {
        std::size_t start = pos_;
        consume('-');
        if (consume('0')) {
        } else if (pos_ < text_.size() && text_[pos_] >= '1' && text_[pos_] <= '9') {
            while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
                ++pos_;
        } else {
            fail("malformed number");
        }
        bool integral = true;
        if (consume('.')) {
            integral = false;
            if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_])))
                fail("malformed number: digits expected after '.'");
            while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
                ++pos_;
        }
        if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
            integral = false;
            ++pos_;
            if (!consume('+')) consume('-');
            if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_])))
                fail("malformed number: digits expected in the exponent");
            while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
                ++pos_;
        }
        std::string_view digits = text_.substr(start, pos_ - start);
        if (integral) {
            std::int64_t i = 0;
            auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), i);
            if (ec == std::errc() && ptr == digits.data() + digits.size()) return Value(i);
        }
        std::string copy(digits);
        return Value(std::strtod(copy.c_str(), nullptr));
    }

    unsigned hex4() {
        if (pos_ + 4 > text_.size()) fail("truncated \\u escape");
        auto value = detail::parse_hex4(text_.substr(pos_, 4));
        if (!value) fail("invalid \\u escape");
        pos_ += 4;
        return *value;
    }

    std::string string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (pos_ >= text_.size()) fail("unterminated string");
            char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20)
                fail(c == '\n' ? "unterminated string (line break inside a string)"
                               : "control character inside a string; escape it");
            if (c != '\\') {
                out += c;
                ++pos_;
                continue;
            }
            ++pos_;
            if (pos_ >= text_.size()) fail("unterminated string");
            char e = text_[pos_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        if (text_.substr(pos_, 2) != "\\u") fail("unpaired surrogate in \\u escape");
                        pos_ += 2;
                        unsigned low = hex4();
                        if (low < 0xDC00 || low > 0xDFFF) fail("unpaired surrogate in \\u escape");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail("unpaired surrogate in \\u escape");
                    }
                    detail::append_utf8(out, cp);
                    break;
                }
                default:
                    --pos_;
                    fail(std::string("invalid escape '\\") + e + "'");
            }
        }
    }

    Value array(int depth) {
        ++pos_;
        Value::Array items;
        skip_ws();
        if (consume(']')) return Value(std::move(items));
        for (;;) {
            skip_ws();
            items.push_back(value(depth + 1));
            skip_ws();
            if (consume(',')) continue;
            if (consume(']')) return Value(std::move(items));
            fail("expected ',' or ']' in array, found " + describe_next());
        }
    }

    Value object(int depth) {
        ++pos_;
        Value::Object members;
        skip_ws();
        if (consume('}')) return Value(std::move(members));
        for (;;) {
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != '"')
                fail("expected a quoted key, found " + describe_next() +
                     (pos_ < text_.size() && text_[pos_] == '}' ? " (trailing comma?)" : ""));
            SourcePosition key_at = here();
            std::string key = string();
            for (const auto& [existing, _] : members)
                if (existing == key) throw JsonSyntaxError("duplicate key '" + key + "'", key_at);
            skip_ws();
            if (!consume(':')) fail("expected ':' after key '" + key + "', found " + describe_next());
            skip_ws();
            Value v = value(depth + 1);
            members.emplace_back(std::move(key), std::move(v));
            skip_ws();
            if (consume(',')) continue;
            if (consume('}')) return Value(std::move(members));
            fail("expected ',' or '}' in object, found " + describe_next());
        }
    }
};

}  // namespace

Value parse_json(std::string_view text) {
    return Parser(text).document();
}

}  // namespace hubflow
