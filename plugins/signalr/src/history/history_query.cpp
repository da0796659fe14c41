#include "history/history_query.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

#include "hubflow/json.h"

namespace hubflow::signalr {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

int digits(std::string_view s, std::size_t at, std::size_t n) {
    if (at + n > s.size()) return -1;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else if (c == '%') {
            auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9') return h - '0';
                if (h >= 'a' && h <= 'f') return h - 'a' + 10;
                if (h >= 'A' && h <= 'F') return h - 'A' + 10;
                return -1;
            };
            if (i + 2 >= s.size()) return std::nullopt;
            int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// --- $filter ----------------------------------------------------------------------------------------------

struct Token {
    enum class Kind { word, string, open, close, end, bad } kind;
    std::string text;  // the word, or the unquoted string
    std::size_t at;    // offset in the filter, for messages
};

class Lexer {
public:
    explicit Lexer(std::string_view s) : s_(s) {}
    Token next() {
        while (i_ < s_.size() && s_[i_] == ' ')
            ++i_;
        std::size_t at = i_;
        if (i_ >= s_.size()) return {Token::Kind::end, "", at};
        char c = s_[i_];
        if (c == '(') return ++i_, Token{Token::Kind::open, "(", at};
        if (c == ')') return ++i_, Token{Token::Kind::close, ")", at};
        if (c == '\'') return quoted(at);
        std::string word;
        while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '(' && s_[i_] != ')') {
            if (s_[i_] == '\'') {
                // DateTime'...': the prefix and its quoted literal are one token.
                Token q = quoted(i_);
                if (q.kind == Token::Kind::bad) return q;
                return {Token::Kind::word, word + "'" + q.text + "'", at};
            }
            word.push_back(s_[i_++]);
        }
        return {Token::Kind::word, word, at};
    }

private:
    Token quoted(std::size_t at) {
        ++i_;
        std::string text;
        for (;;) {
            if (i_ >= s_.size()) return {Token::Kind::bad, "an unterminated string", at};
            if (s_[i_] == '\'') {
                if (i_ + 1 < s_.size() && s_[i_ + 1] == '\'') {  // '' is a quote inside a string (OData)
                    text.push_back('\'');
                    i_ += 2;
                    continue;
                }
                ++i_;
                return {Token::Kind::string, text, at};
            }
            text.push_back(s_[i_++]);
        }
    }
    std::string_view s_;
    std::size_t i_ = 0;
};

class FilterParser {
public:
    explicit FilterParser(std::string_view s) : lex_(s) { advance(); }

    FilterResult run() {
        if (cur_.kind == Token::Kind::end) return fail("$filter is empty");
        if (!expression()) return result_;
        if (cur_.kind != Token::Kind::end) return fail(unexpected("after a complete condition"));
        return result_;
    }

private:
    void advance() { cur_ = lex_.next(); }

    FilterResult fail(std::string message) {
        if (result_.error.empty()) result_.error = "$filter: " + std::move(message);
        return result_;
    }

    std::string unexpected(const std::string& where) {
        if (cur_.kind == Token::Kind::bad) return cur_.text + " at character " + std::to_string(cur_.at + 1);
        std::string what = cur_.kind == Token::Kind::end ? std::string("the end") : "'" + cur_.text + "'";
        if (cur_.kind == Token::Kind::word) {
            if (iequals(cur_.text, "or")) return "'or' is not supported (only 'and')";
            if (iequals(cur_.text, "not")) return "'not' is not supported";
        }
        return what + " " + where + " (character " + std::to_string(cur_.at + 1) + ") is not supported";
    }

    bool expression() {
        if (!term()) return false;
        while (cur_.kind == Token::Kind::word && iequals(cur_.text, "and")) {
            advance();
            if (!term()) return false;
        }
        return true;
    }

    bool term() {
        if (cur_.kind == Token::Kind::open) {
            if (++depth_ > 32) return fail("parentheses nested too deep"), false;
            advance();
            if (!expression()) return false;
            if (cur_.kind != Token::Kind::close) return fail(unexpected("where ')' was expected")), false;
            --depth_;
            advance();
            return true;
        }
        if (cur_.kind != Token::Kind::word) return fail(unexpected("where a condition was expected")), false;
        std::string field = cur_.text;
        std::size_t field_at = cur_.at;
        if (field.find('(') != std::string::npos || field.find('/') != std::string::npos) {
            return fail("'" + field + "' is not supported (only utc_date_time and user_id)"), false;
        }
        const bool time = iequals(field, "utc_date_time");
        const bool user = iequals(field, "user_id");
        if (!time && !user) {
            advance();
            if (cur_.kind == Token::Kind::open) return fail("the function '" + field + "' is not supported"), false;
            return fail("the field '" + field + "' (character " + std::to_string(field_at + 1) +
                        ") is not supported: only utc_date_time and user_id"),
                   false;
        }
        advance();
        if (cur_.kind != Token::Kind::word) return fail(unexpected("where an operator was expected")), false;
        std::string op = cur_.text;
        advance();
        if (user) {
            if (!iequals(op, "eq")) return fail("user_id supports only 'eq', not '" + op + "'"), false;
            if (cur_.kind == Token::Kind::bad) return fail(unexpected("")), false;
            if (cur_.kind != Token::Kind::string)
                return fail("user_id eq needs a quoted string, as user_id eq 'abc'"), false;
            if (cur_.text.empty()) return fail("user_id eq '' names no user"), false;
            if (result_.filter.user && *result_.filter.user != cur_.text)
                return fail("two different user_id conditions"), false;
            result_.filter.user = cur_.text;
            advance();
            return true;
        }
        const bool ge = iequals(op, "ge"), gt = iequals(op, "gt"), le = iequals(op, "le"), lt = iequals(op, "lt");
        if (!ge && !gt && !le && !lt) return fail("utc_date_time supports ge, gt, le and lt, not '" + op + "'"), false;
        std::string literal;
        if (cur_.kind == Token::Kind::word) {
            literal = cur_.text;
            if (literal.size() > 10 && iequals(std::string_view(literal).substr(0, 9), "DateTime'") &&
                literal.back() == '\'') {
                literal = literal.substr(9, literal.size() - 10);
            } else if (literal.find('\'') != std::string::npos) {
                return fail("the literal " + literal + " is not supported (use DateTime'...' or a bare date-time)"),
                       false;
            }
        } else if (cur_.kind == Token::Kind::string) {
            literal = cur_.text;
        } else {
            return fail(unexpected("where a date-time was expected")), false;
        }
        auto t = parse_utc_time(literal);
        if (!t) return fail("'" + literal + "' is not a date-time such as 2026-12-06T10:00:00Z"), false;
        // Bounds are kept inclusive, in whole milliseconds (event times have no finer grain).
        std::int64_t bound;
        if (ge)
            bound = t->exact ? t->ms : t->ms + 1;
        else if (gt)
            bound = t->ms + 1;
        else if (le)
            bound = t->ms;
        else
            bound = t->exact ? t->ms - 1 : t->ms;
        if (ge || gt)
            result_.filter.from_ms = std::max(result_.filter.from_ms.value_or(INT64_MIN), bound);
        else
            result_.filter.to_ms = std::min(result_.filter.to_ms.value_or(INT64_MAX), bound);
        advance();
        return true;
    }

    Lexer lex_;
    Token cur_{Token::Kind::end, "", 0};
    FilterResult result_;
    int depth_ = 0;
};

// --- tokens -----------------------------------------------------------------------------------------------

std::string hmac_hex(std::string_view key, std::string_view text) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
         text.size(), mac, &len);
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < 16 && i < len; ++i) {  // 128 bits are plenty for a token MAC
        out.push_back(hex[mac[i] >> 4]);
        out.push_back(hex[mac[i] & 15]);
    }
    return out;
}

// The token's JSON without its MAC, in one fixed order, so that the MAC can be recomputed from parsed values.
std::string canonical(const ContinuationState& s) {
    std::string out = "{\"v\":1,\"site\":";
    append_json_string(out, s.site);
    out += ",\"hub\":\"";
    out += s.hub == Hub::incidents ? "incidents" : "entries";
    out += "\"";
    if (s.filter.user) {
        out += ",\"user\":";
        append_json_string(out, *s.filter.user);
    }
    if (s.filter.from_ms) out += ",\"from\":" + std::to_string(*s.filter.from_ms);
    if (s.filter.to_ms) out += ",\"to\":" + std::to_string(*s.filter.to_ms);
    out += ",\"order\":\"";
    out += s.descending ? "desc" : "asc";
    out += "\",\"snap\":" + std::to_string(s.snapshot);
    out += ",\"at\":[" + std::to_string(s.after.event_ms) + "," + std::to_string(s.after.seq) + "]";
    out += ",\"exp\":" + std::to_string(s.expires_s);
    return out;
}

}  // namespace

std::optional<ParsedTime> parse_utc_time(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.f...](Z|+hh:mm|-hh:mm)
    int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
    int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return std::nullopt;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || day > month_days[month - 1] || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap) return std::nullopt;
    std::size_t i = 19;
    std::int64_t ms = 0;
    bool exact = true;
    if (i < s.size() && s[i] == '.') {
        ++i;
        std::size_t start = i;
        int place = 100;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (place > 0)
                ms += (s[i] - '0') * place;
            else if (s[i] != '0')
                exact = false;
            place /= 10;
            ++i;
        }
        if (i == start || i - start > 9) return std::nullopt;
    }
    std::int64_t offset_s = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
        if (oh < 0 || om < 0 || s[i + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
        offset_s = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    std::int64_t seconds = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                           hour * 3600 + minute * 60 + second - offset_s;
    return ParsedTime{seconds * 1000 + ms, exact};
}

std::optional<std::int64_t> event_time_ms(std::string_view payload) {
    std::string value;
    JsonMember member{"utc_date_time", &value};
    if (find_json_members(payload, std::span<const JsonMember>(&member, 1)) == 0) return std::nullopt;
    auto t = parse_utc_time(value);
    if (!t) return std::nullopt;
    return t->ms;
}

FilterResult parse_filter(std::string_view text) {
    return FilterParser(text).run();
}

bool is_history_path(std::string_view path) {
    return path.size() >= 6 && iequals(path.substr(0, 6), "/v1.1/");
}

std::optional<HistoryTarget> parse_history_path(std::string_view path) {
    if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    constexpr std::string_view prefix = "/v1.1/sites/";
    if (path.size() <= prefix.size() || !iequals(path.substr(0, prefix.size()), prefix)) return std::nullopt;
    path.remove_prefix(prefix.size());
    auto slash = path.find('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    HistoryTarget t;
    t.site = std::string(path.substr(0, slash));
    std::string_view rest = path.substr(slash + 1);
    if (iequals(rest, "entries"))
        t.hub = Hub::entries;
    else if (iequals(rest, "incidents"))
        t.hub = Hub::incidents;
    else
        return std::nullopt;
    return t;
}

QueryResult parse_history_query(std::string_view raw) {
    QueryResult r;
    auto fail = [&](std::string message) {
        r.error = std::move(message);
        return r;
    };
    std::optional<std::string> filter_text, orderby, top, user, token, access;
    std::size_t start = 0;
    while (start <= raw.size()) {
        std::size_t amp = raw.find('&', start);
        if (amp == std::string_view::npos) amp = raw.size();
        std::string_view pair = raw.substr(start, amp - start);
        start = amp + 1;
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        auto name = percent_decode(pair.substr(0, eq), true);
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!name || !value) return fail("the query string holds a malformed percent escape");
        std::optional<std::string>* slot = nullptr;
        if (iequals(*name, "$filter"))
            slot = &filter_text;
        else if (iequals(*name, "$orderby"))
            slot = &orderby;
        else if (iequals(*name, "$top"))
            slot = &top;
        else if (iequals(*name, "user_id"))
            slot = &user;
        else if (iequals(*name, "$continuationToken") || iequals(*name, "continuation_token"))
            slot = &token;
        else if (iequals(*name, "access_token"))
            slot = &access;
        else if (iequals(*name, "$skip") || iequals(*name, "$skiptoken"))
            return fail(*name + " is not supported: page with the continuation token");
        else
            return fail("the query parameter '" + *name + "' is not supported");
        if (*slot) return fail("the query parameter '" + *name + "' is given twice");
        *slot = std::move(*value);
    }
    HistoryQuery& q = r.query;
    if (filter_text) {
        FilterResult f = parse_filter(*filter_text);
        if (!f.error.empty()) return fail(f.error);
        q.filter = f.filter;
        q.has_filter = true;
    }
    if (user) {
        if (user->empty()) return fail("user_id is empty");
        if (q.filter.user && *q.filter.user != *user)
            return fail("user_id and the $filter's user_id name different users");
        q.filter.user = *user;
        q.has_filter = true;
    }
    if (orderby) {
        std::string_view o = *orderby;
        while (!o.empty() && o.front() == ' ')
            o.remove_prefix(1);
        while (!o.empty() && o.back() == ' ')
            o.remove_suffix(1);
        auto space = o.find(' ');
        std::string_view field = o.substr(0, space);
        std::string_view dir = space == std::string_view::npos ? std::string_view{} : o.substr(space + 1);
        while (!dir.empty() && dir.front() == ' ')
            dir.remove_prefix(1);
        if (!iequals(field, "utc_date_time"))
            return fail("$orderby: '" + std::string(o) + "' is not supported: only utc_date_time asc or desc");
        if (dir.empty() || iequals(dir, "asc"))
            q.descending = false;
        else if (iequals(dir, "desc"))
            q.descending = true;
        else
            return fail("$orderby: '" + std::string(dir) + "' is not supported: only asc or desc");
        q.has_orderby = true;
    }
    if (top) {
        const std::string& t = *top;
        if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return fail("$top must be a whole number from 1 to 1000, not '" + t + "'");
        long n = std::stol(t);
        if (n < 1 || n > 1000) return fail("$top must be from 1 to 1000, not " + t);
        q.top = static_cast<std::size_t>(n);
    }
    if (token) {
        if (token->empty()) return fail("$continuationToken is empty");
        q.continuation = std::move(*token);
    }
    q.access_token = std::move(access);
    return r;
}

std::string encode_continuation(const ContinuationState& state, std::string_view key) {
    std::string text = canonical(state);
    text += ",\"mac\":\"" + hmac_hex(key, text) + "\"}";
    return text;
}

ContinuationResult decode_continuation(std::string_view text, std::string_view key, std::int64_t now_s) {
    ContinuationResult r;
    const std::string unknown = "unknown continuation token";
    try {
        Poco::JSON::Parser parser;
        auto value = parser.parse(std::string(text));
        auto o = value.extract<Poco::JSON::Object::Ptr>();
        if (!o) throw std::runtime_error("not an object");
        ContinuationState& s = r.state;
        if (o->getValue<int>("v") != 1) throw std::runtime_error("version");
        s.site = o->getValue<std::string>("site");
        std::string hub = o->getValue<std::string>("hub");
        if (hub != "entries" && hub != "incidents") throw std::runtime_error("hub");
        s.hub = hub == "incidents" ? Hub::incidents : Hub::entries;
        if (o->has("user")) s.filter.user = o->getValue<std::string>("user");
        if (o->has("from")) s.filter.from_ms = o->getValue<std::int64_t>("from");
        if (o->has("to")) s.filter.to_ms = o->getValue<std::int64_t>("to");
        std::string order = o->getValue<std::string>("order");
        if (order != "asc" && order != "desc") throw std::runtime_error("order");
        s.descending = order == "desc";
        s.snapshot = o->getValue<std::uint64_t>("snap");
        auto at = o->getArray("at");
        if (!at || at->size() != 2) throw std::runtime_error("at");
        s.after.event_ms = at->getElement<std::int64_t>(0);
        s.after.seq = at->getElement<std::uint64_t>(1);
        s.expires_s = o->getValue<std::int64_t>("exp");
        std::string mac = o->getValue<std::string>("mac");
        std::string expected = hmac_hex(key, canonical(s));
        if (mac.size() != expected.size() || CRYPTO_memcmp(mac.data(), expected.data(), mac.size()) != 0)
            throw std::runtime_error("mac");
        if (o->size() != 11u - !s.filter.user - !s.filter.from_ms - !s.filter.to_ms)
            throw std::runtime_error("members");
    } catch (const std::exception&) {
        r.error = unknown;
        return r;
    }
    if (now_s > r.state.expires_s) r.error = "expired continuation token: start the query again";
    return r;
}

std::string history_body(const std::vector<std::string>& items, const std::string& token) {
    std::size_t size = 64 + token.size() * 2;
    for (const auto& i : items)
        size += i.size() + 1;
    std::string out;
    out.reserve(size);
    out += "{\"items\":[";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        std::string_view item = items[i];
        auto first = item.find_first_not_of(" \t\r\n");
        if (first != std::string_view::npos && (item[first] == '{' || item[first] == '['))
            out += item;
        else
            append_json_string(out, item);
    }
    out += ']';
    if (!token.empty()) {
        out += ",\"continuation_token\":";
        append_json_string(out, token);
    }
    out += '}';
    return out;
}

}  // namespace hubflow::signalr
