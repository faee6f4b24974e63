// UTF-8 <-> UTF-16 conversion for VHD parent names (UTF-16BE in the dynamic header) and parent locators
// (UTF-16LE W2ru/W2ku). Both directions replace invalid input with U+FFFD: file contents are never trusted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vmgen::vm::disk {

inline std::u16string utf16_from_utf8(std::string_view in)
{
    std::u16string out;
    for (size_t i = 0; i < in.size();) {
        const auto c = static_cast<uint8_t>(in[i]);
        uint32_t cp = 0xfffd;
        size_t len = 1;
        if (c < 0x80) {
            cp = c;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < in.size()) {
            cp = ((c & 0x1fu) << 6) | (static_cast<uint8_t>(in[i + 1]) & 0x3fu);
            len = 2;
        } else if ((c & 0xf0) == 0xe0 && i + 2 < in.size()) {
            cp = ((c & 0x0fu) << 12) | ((static_cast<uint8_t>(in[i + 1]) & 0x3fu) << 6)
                | (static_cast<uint8_t>(in[i + 2]) & 0x3fu);
            len = 3;
        } else if ((c & 0xf8) == 0xf0 && i + 3 < in.size()) {
            cp = ((c & 0x07u) << 18) | ((static_cast<uint8_t>(in[i + 1]) & 0x3fu) << 12)
                | ((static_cast<uint8_t>(in[i + 2]) & 0x3fu) << 6) | (static_cast<uint8_t>(in[i + 3]) & 0x3fu);
            len = 4;
        }
        i += len;
        if (cp >= 0x10000 && cp <= 0x10ffff) {
            cp -= 0x10000;
            out.push_back(static_cast<char16_t>(0xd800 + (cp >> 10)));
            out.push_back(static_cast<char16_t>(0xdc00 + (cp & 0x3ff)));
        } else {
            out.push_back(static_cast<char16_t>(cp > 0xffff ? 0xfffd : cp));
        }
    }
    return out;
}

inline std::string utf8_from_utf16(const std::u16string& in)
{
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        uint32_t cp = in[i];
        if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < in.size() && in[i + 1] >= 0xdc00 && in[i + 1] < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (in[i + 1] - 0xdc00u);
            ++i;
        } else if (cp >= 0xd800 && cp < 0xe000) {
            cp = 0xfffd;
        }
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
            out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        }
    }
    return out;
}

} // namespace vmgen::vm::disk
