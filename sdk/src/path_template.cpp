#include "hubflow/path_template.h"

#include <ctime>
#include <stdexcept>

namespace hubflow {

namespace {

// strftime() returns 0 both for "did not fit" and for an empty result (e.g. "%p" in some locales), so grow
// the buffer a few times and then accept the empty result.
std::string format_time(const std::string& format, const std::tm& tm) {
    std::string buffer(format.size() * 4 + 64, '\0');
    for (int attempt = 0; attempt < 6; ++attempt) {
        std::size_t n = std::strftime(buffer.data(), buffer.size(), format.c_str(), &tm);
        if (n > 0) {
            buffer.resize(n);
            return buffer;
        }
        buffer.resize(buffer.size() * 2);
    }
    return {};
}

}  // namespace

PathTemplate::PathTemplate(std::string_view text) : text_(text) {
    if (text.empty()) throw std::invalid_argument("must not be empty");
    if (text.back() == '/') throw std::invalid_argument("names a directory; end it with a file name");

    std::string run;
    auto end_run = [&] {
        if (run.empty()) return;
        bool time = run.find('%') != std::string::npos;
        has_time_ = has_time_ || time;
        segments_.push_back({time ? Segment::Kind::time : Segment::Kind::literal, std::move(run), {}, {}});
        run.clear();
    };

    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
            run += c;
            ++i;
            continue;
        }
        if (c != '{') {
            run += c;
            continue;
        }
        std::size_t close = text.find('}', i + 1);
        if (close == std::string_view::npos)
            throw std::invalid_argument("has a '{' without a closing '}' (write '{{' for a literal brace)");
        std::string_view name = text.substr(i + 1, close - i - 1);
        if (name.empty()) throw std::invalid_argument("has an empty placeholder '{}'; name a field, as in {kind}");
        if (name.find('{') != std::string_view::npos)
            throw std::invalid_argument("has a '{' inside the placeholder '{" + std::string(name) + "}'");
        end_run();
        try {
            segments_.push_back({Segment::Kind::field, std::string(name), FieldPath(name), {}});
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("has an invalid placeholder: " + std::string(e.what()));
        }
        has_fields_ = true;
        i = close;
    }
    end_run();
}

void PathTemplate::refresh_time(std::int64_t second) {
    auto secs = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    for (auto& segment : segments_)
        if (segment.kind == Segment::Kind::time) segment.rendered = format_time(segment.text, tm);
    cached_second_ = second;
}

void PathTemplate::render(const Event& event, std::int64_t second, std::string& out) {
    out.clear();
    if (has_time_ && second != cached_second_) refresh_time(second);
    for (const auto& segment : segments_) {
        switch (segment.kind) {
            case Segment::Kind::literal:
                out += segment.text;
                break;
            case Segment::Kind::time:
                out += segment.rendered;
                break;
            case Segment::Kind::field: {
                std::size_t at = out.size();
                if (!segment.field->append_to(event, out) || out.size() == at) {
                    out.resize(at);
                    out += missing_value;
                } else {
                    sanitize_path_value(out, at);
                }
                break;
            }
        }
    }
}

void sanitize_path_value(std::string& out, std::size_t from) {
    if (from < out.size() && out[from] == '.') out[from] = '_';
    for (std::size_t i = from; i < out.size(); ++i) {
        char c = out[i];
        if (c == '/' || c == '\\' || c == '\0') out[i] = '_';
    }
}

}  // namespace hubflow
