#pragma once
// Builds MessagePack hub messages for the codec tests with msgpack-cxx's own packer, so the inputs are written
// by a different hand than the one under test.

#include <msgpack/pack.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace hubflow::signalr::testing {

class Pack {
public:
    Pack() : packer_(*this) {}
    void write(const char* data, std::size_t size) { bytes_.append(data, size); }

    Pack& array(std::uint32_t n) {
        packer_.pack_array(n);
        return *this;
    }
    Pack& map(std::uint32_t n) {
        packer_.pack_map(n);
        return *this;
    }
    Pack& nil() {
        packer_.pack_nil();
        return *this;
    }
    Pack& boolean(bool v) {
        v ? packer_.pack_true() : packer_.pack_false();
        return *this;
    }
    Pack& uint(std::uint64_t v) {
        packer_.pack_uint64(v);
        return *this;
    }
    Pack& sint(std::int64_t v) {
        packer_.pack_int64(v);
        return *this;
    }
    Pack& f32(float v) {
        packer_.pack_float(v);
        return *this;
    }
    Pack& f64(double v) {
        packer_.pack_double(v);
        return *this;
    }
    Pack& str(std::string_view s) {
        packer_.pack_str(static_cast<std::uint32_t>(s.size()));
        packer_.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
        return *this;
    }
    Pack& bin(std::string_view s) {
        packer_.pack_bin(static_cast<std::uint32_t>(s.size()));
        packer_.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
        return *this;
    }
    Pack& ext(std::int8_t type, std::string_view data) {
        packer_.pack_ext(data.size(), type);
        packer_.pack_ext_body(data.data(), static_cast<std::uint32_t>(data.size()));
        return *this;
    }
    Pack& raw(std::string_view bytes) {
        bytes_.append(bytes);
        return *this;
    }

    const std::string& bytes() const { return bytes_; }

private:
    std::string bytes_;
    msgpack::packer<Pack> packer_;
};

// The size prefix, written independently of the codec under test.
inline std::string prefixed(const std::string& body) {
    std::string out;
    std::size_t n = body.size();
    do {
        unsigned char b = n & 0x7F;
        n >>= 7;
        if (n) b |= 0x80;
        out += static_cast<char>(b);
    } while (n);
    return out + body;
}

}  // namespace hubflow::signalr::testing
