#include "protocol/websocket.h"

#include <Poco/Base64Encoder.h>
#include <Poco/SHA1Engine.h>

#include <algorithm>
#include <cstring>
#include <sstream>

namespace hubflow::signalr {

namespace {

constexpr std::size_t max_control_payload = 125;

bool is_control(Opcode op) {
    return static_cast<std::uint8_t>(op) >= 8;
}

}  // namespace

void apply_mask(char* data, std::size_t size, const std::array<std::uint8_t, 4>& key, std::size_t offset) {
    // Eight key bytes in stream order from `offset`: eight is a multiple of four, so the same word masks
    // every following eight-byte block and the loop below vectorizes.
    std::uint8_t cycle[8];
    for (std::size_t i = 0; i < 8; ++i)
        cycle[i] = key[(offset + i) & 3];
    std::uint64_t word_mask;
    std::memcpy(&word_mask, cycle, 8);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, data + i, 8);
        w ^= word_mask;
        std::memcpy(data + i, &w, 8);
    }
    for (; i < size; ++i)
        data[i] = static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ cycle[i & 7]);
}

void append_frame(std::string& out, Opcode op, std::string_view payload, const std::array<std::uint8_t, 4>* mask) {
    const std::uint64_t size = payload.size();
    char header[14];
    std::size_t h = 0;
    header[h++] = static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
    const std::uint8_t mask_bit = mask ? 0x80 : 0;
    if (size < 126) {
        header[h++] = static_cast<char>(mask_bit | size);
    } else if (size <= 0xFFFF) {
        header[h++] = static_cast<char>(mask_bit | 126);
        header[h++] = static_cast<char>(size >> 8);
        header[h++] = static_cast<char>(size & 0xFF);
    } else {
        header[h++] = static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            header[h++] = static_cast<char>((size >> shift) & 0xFF);
    }
    if (mask) {
        std::memcpy(header + h, mask->data(), 4);
        h += 4;
    }
    // Grow geometrically: callers append many frames to one output buffer, and an exact reserve per frame
    // would copy the buffer every time.
    const std::size_t needed = out.size() + h + payload.size();
    if (out.capacity() < needed) out.reserve(std::max(needed, out.capacity() * 2));
    out.append(header, h);
    const std::size_t start = out.size();
    out.append(payload);
    if (mask) apply_mask(out.data() + start, payload.size(), *mask);
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    constexpr std::size_t max_reason = max_control_payload - 2;
    if (reason.size() > max_reason) {
        std::size_t cut = max_reason;
        // Back up over continuation bytes so the cut does not split a character.
        while (cut > 0 && (static_cast<std::uint8_t>(reason[cut]) & 0xC0) == 0x80)
            --cut;
        reason = reason.substr(0, cut);
    }
    std::string out;
    out.reserve(2 + reason.size());
    out += static_cast<char>(code >> 8);
    out += static_cast<char>(code & 0xFF);
    out.append(reason);
    return out;
}

bool is_valid_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::string websocket_accept_key(std::string_view sec_websocket_key) {
    static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    Poco::SHA1Engine sha1;
    sha1.update(sec_websocket_key.data(), static_cast<unsigned>(sec_websocket_key.size()));
    sha1.update(guid.data(), static_cast<unsigned>(guid.size()));
    const Poco::DigestEngine::Digest& digest = sha1.digest();
    std::ostringstream os;  // once per connection, so the stream-based encoder is fine here
    Poco::Base64Encoder encoder(os);
    encoder.write(reinterpret_cast<const char*>(digest.data()), static_cast<std::streamsize>(digest.size()));
    encoder.close();
    return os.str();
}

FrameDecoder::FrameDecoder(Endpoint role, std::size_t max_message_bytes)
    : role_(role), max_message_bytes_(max_message_bytes) {}

bool FrameDecoder::fail(std::uint16_t code, std::string reason) {
    failed_ = true;
    error_.close_code = code;
    error_.reason = std::move(reason);
    // Nothing more will be decoded, so release the buffers now rather than when the connection goes.
    std::string().swap(message_);
    std::string().swap(control_);
    header_have_ = 0;
    return false;
}

bool FrameDecoder::feed(std::string_view bytes, std::vector<WsEvent>& out) {
    scratch_.clear();
    const bool ok = feed(bytes, scratch_);
    for (const WsView& v : scratch_)
        out.push_back(WsEvent{v.kind, std::string(v.payload), v.close_code});
    return ok;
}

bool FrameDecoder::feed(std::string_view bytes, std::vector<WsView>& out) {
    if (failed_) return false;
    held_used_ = 0;  // the views handed out by the last call are no longer in use
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p < end && !closed_) {
        if (!in_payload_) {
            const std::size_t take = std::min<std::size_t>(header_need_ - header_have_, end - p);
            std::memcpy(header_.data() + header_have_, p, take);
            header_have_ = static_cast<std::uint8_t>(header_have_ + take);
            p += take;
            if (header_have_ < header_need_) break;
            if (header_need_ == 2) {
                if (!on_first_two_bytes()) return false;
                if (header_need_ > 2) continue;
            }
            if (!on_full_header()) return false;
            if (remaining_ == 0 && !on_frame_end(out)) return false;
            continue;
        }
        const auto available = static_cast<std::size_t>(end - p);
        if (whole_candidate_) {
            whole_candidate_ = false;
            if (remaining_ <= available) {
                // The common case on a busy connection: the message is right here, so it is not copied.
                const std::string_view payload(p, static_cast<std::size_t>(remaining_));
                if (message_is_text_ && !is_valid_utf8(payload))
                    return fail(close_code::invalid_payload, "Text message is not valid UTF-8.");
                p += remaining_;
                remaining_ = 0;
                in_payload_ = false;
                in_message_ = false;
                header_have_ = 0;
                header_need_ = 2;
                out.push_back(WsView{message_is_text_ ? WsEvent::text : WsEvent::binary, payload, 0});
                continue;
            }
            reserve_message(remaining_);
        }
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available));
        if (!on_payload(p, n)) return false;
        p += n;
        remaining_ -= n;
        if (remaining_ == 0 && !on_frame_end(out)) return false;
    }
    return true;
}

std::string_view FrameDecoder::hold(std::string& from) {
    if (held_used_ == held_.size()) held_.emplace_back();
    std::string& slot = held_[held_used_++];
    slot.swap(from);
    from.clear();
    // A spare that once held a huge message is not kept for ever.
    if (from.capacity() > std::size_t{64} * 1024) std::string().swap(from);
    return slot;
}

// Everything that can be judged from the first two bytes is judged there, so a bad frame is refused before
// the rest of its header, let alone its payload, is waited for.
bool FrameDecoder::on_first_two_bytes() {
    const std::uint8_t b0 = header_[0];
    const std::uint8_t b1 = header_[1];
    fin_ = (b0 & 0x80) != 0;
    if (b0 & 0x70) return fail(close_code::protocol_error, "Reserved bits set without a negotiated extension.");
    const std::uint8_t op = b0 & 0x0F;
    switch (op) {
        case 0:
        case 1:
        case 2:
        case 8:
        case 9:
        case 10:
            break;
        default:
            return fail(close_code::protocol_error, "Reserved opcode " + std::to_string(op) + ".");
    }
    opcode_ = static_cast<Opcode>(op);
    masked_ = (b1 & 0x80) != 0;
    if (role_ == Endpoint::server && !masked_) return fail(close_code::protocol_error, "Client frame is not masked.");
    if (role_ == Endpoint::client && masked_) return fail(close_code::protocol_error, "Server frame is masked.");
    const std::uint8_t len7 = b1 & 0x7F;
    if (is_control(opcode_)) {
        if (!fin_) return fail(close_code::protocol_error, "Fragmented control frame.");
        if (len7 > max_control_payload)
            return fail(close_code::protocol_error, "Control frame payload over 125 bytes.");
    } else if (opcode_ == Opcode::continuation) {
        if (!in_message_) return fail(close_code::protocol_error, "Continuation frame without a message to continue.");
    } else if (in_message_) {
        return fail(close_code::protocol_error, "New data frame inside a fragmented message.");
    }
    header_need_ = static_cast<std::uint8_t>(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked_ ? 4 : 0));
    return true;
}

bool FrameDecoder::on_full_header() {
    const std::uint8_t len7 = header_[1] & 0x7F;
    std::size_t pos = 2;
    std::uint64_t length = len7;
    if (len7 == 126) {
        length = (std::uint64_t{header_[2]} << 8) | header_[3];
        pos = 4;
    } else if (len7 == 127) {
        length = 0;
        for (std::size_t i = 2; i < 10; ++i)
            length = (length << 8) | header_[i];
        pos = 10;
        if (length >> 63) return fail(close_code::protocol_error, "64-bit payload length with the high bit set.");
    }
    if (masked_) std::memcpy(mask_.data(), header_.data() + pos, 4);
    mask_offset_ = 0;
    remaining_ = length;
    in_payload_ = true;

    if (is_control(opcode_)) {
        control_.clear();
        return true;
    }
    if (opcode_ != Opcode::continuation) {
        in_message_ = true;
        message_is_text_ = opcode_ == Opcode::text;
        message_.clear();
        utf8_.reset();
    }
    // message_.size() never exceeds the limit, so the subtraction cannot wrap.
    if (length > max_message_bytes_ - message_.size())
        return fail(close_code::message_too_big,
                    "Message over the limit of " + std::to_string(max_message_bytes_) + " bytes.");
    whole_candidate_ = fin_ && !masked_ && opcode_ != Opcode::continuation && length > 0;
    if (!whole_candidate_) reserve_message(length);
    return true;
}

void FrameDecoder::reserve_message(std::uint64_t frame_length) {
    const std::size_t needed = message_.size() + static_cast<std::size_t>(frame_length);
    if (message_.capacity() < needed) {
        // The first frame gets exactly its size; continuations grow geometrically, capped at the limit, so many
        // small fragments stay linear.
        std::size_t grow = message_.empty() ? needed : std::min(max_message_bytes_, message_.capacity() * 2);
        message_.reserve(std::max(needed, grow));
    }
}

bool FrameDecoder::on_payload(const char* data, std::size_t size) {
    std::string& target = is_control(opcode_) ? control_ : message_;
    const std::size_t start = target.size();
    target.append(data, size);
    if (masked_) {
        apply_mask(target.data() + start, size, mask_, mask_offset_);
        mask_offset_ = (mask_offset_ + size) & 3;
    }
    // Text is validated as it arrives, so a bad byte fails the connection without waiting for the rest.
    if (!is_control(opcode_) && message_is_text_ && !utf8_.feed(std::string_view(target.data() + start, size)))
        return fail(close_code::invalid_payload, "Text message is not valid UTF-8.");
    return true;
}

bool FrameDecoder::on_frame_end(std::vector<WsView>& out) {
    in_payload_ = false;
    header_have_ = 0;
    header_need_ = 2;
    switch (opcode_) {
        case Opcode::continuation:
        case Opcode::text:
        case Opcode::binary:
            if (!fin_) return true;
            if (message_is_text_ && !utf8_.complete())
                return fail(close_code::invalid_payload, "Text message is not valid UTF-8.");
            in_message_ = false;
            out.push_back(WsView{message_is_text_ ? WsEvent::text : WsEvent::binary, hold(message_), 0});
            return true;
        case Opcode::ping:
        case Opcode::pong:
            out.push_back(WsView{opcode_ == Opcode::ping ? WsEvent::ping : WsEvent::pong, hold(control_), 0});
            return true;
        case Opcode::close: {
            std::uint16_t code = close_code::no_status;
            if (control_.size() == 1) return fail(close_code::protocol_error, "Close frame with a 1-byte payload.");
            if (control_.size() >= 2) {
                code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(control_[0]) << 8) |
                                                  static_cast<std::uint8_t>(control_[1]));
                if (!is_valid_close_code(code))
                    return fail(close_code::protocol_error, "Invalid close code " + std::to_string(code) + ".");
                control_.erase(0, 2);  // the reason
                if (!is_valid_utf8(control_))
                    return fail(close_code::protocol_error, "Close reason is not valid UTF-8.");
            }
            closed_ = true;
            std::string().swap(message_);  // whatever message was in progress will never be finished
            out.push_back(WsView{WsEvent::close, hold(control_), code});
            return true;
        }
    }
    return true;
}

}  // namespace hubflow::signalr
