// Differencing VHDX images: the parent locator ([MS-VHDX] 2.6.2.6), finding and checking the parent, creating a
// child. Locators carry Windows paths; on this host relative_path is taken relative to the child's folder and
// absolute_win32_path is usable when it names a POSIX path (what we write: "\\?\" then the path with backslashes),
// not a drive letter, UNC share or volume GUID path. Every path's file name beside the child is the last resort.
#include "protocols/disk/vhdx.h"
#include "support/errno_error.h"
#include "vm/disk/vhdx/vhdx.h"
#include "vm/disk/vhdx/vhdx_disk.h"
#include "vm/disk/vhdx/vhdx_internal.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace vmgen::vm::disk {

using namespace vmgen::protocols::disk;
using namespace vhdx_detail;

namespace {

constexpr std::string_view win32_prefix = "\\\\?\\"; // \\?\ (extended-length path)

// Strict UTF-8 to UTF-16LE: no NULs, no overlong forms, no surrogates, nothing past U+10FFFF.
Result<std::vector<uint8_t>> utf16le_from_utf8(std::string_view in)
{
    std::vector<uint8_t> out;
    auto unit = [&](uint32_t u) {
        out.push_back(static_cast<uint8_t>(u & 0xff));
        out.push_back(static_cast<uint8_t>(u >> 8));
    };
    for (size_t i = 0; i < in.size();) {
        const auto c = static_cast<uint8_t>(in[i]);
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || in.size() - i < len)
            return fail("not valid UTF-8 at byte {}", i);
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; ++k) {
            const auto cont = static_cast<uint8_t>(in[i + k]);
            if ((cont & 0xc0) != 0x80)
                return fail("not valid UTF-8 at byte {}", i);
            cp = cp << 6 | (cont & 0x3fu);
        }
        constexpr uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp == 0 || cp < min_for_length[len] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return fail("not valid UTF-8 (or a NUL) at byte {}", i);
        if (cp >= 0x10000) {
            unit(0xd800 + ((cp - 0x10000) >> 10));
            unit(0xdc00 + ((cp - 0x10000) & 0x3ff));
        } else {
            unit(cp);
        }
        i += len;
    }
    return out;
}

// Strict UTF-16LE (an even number of bytes) to UTF-8: surrogates paired, no NULs.
Result<std::string> utf8_from_utf16le(std::span<const uint8_t> in)
{
    if (in.size() % 2 != 0)
        return fail("odd length {}", in.size());
    std::string out;
    auto unit_at = [&](size_t i) { return static_cast<uint32_t>(in[2 * i] | in[2 * i + 1] << 8); };
    const size_t units = in.size() / 2;
    for (size_t i = 0; i < units; ++i) {
        uint32_t cp = unit_at(i);
        if (cp == 0)
            return fail("NUL character at unit {}", i);
        if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < units && unit_at(i + 1) >= 0xdc00 && unit_at(i + 1) < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (unit_at(i + 1) - 0xdc00);
            ++i;
        } else if (cp >= 0xd800 && cp < 0xe000) {
            return fail("unpaired surrogate at unit {}", i);
        }
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | cp >> 6));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xe0 | cp >> 12));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
            out.push_back(static_cast<char>(0xf0 | cp >> 18));
            out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        }
    }
    return out;
}

std::string windows_separators(std::string path)
{
    std::replace(path.begin(), path.end(), '/', '\\');
    return path;
}

std::string posix_separators(std::string path)
{
    std::replace(path.begin(), path.end(), '\\', '/');
    return path;
}

// The last component of a Windows or POSIX path ("" when it ends with a separator).
std::string file_name(const std::string& path)
{
    size_t slash = path.find_last_of("\\/");
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Where to look for the parent, in order, without duplicates.
std::vector<std::string> parent_candidates(const std::string& child_path, const ParentLocator& locator)
{
    std::error_code ec;
    const std::filesystem::path child_dir = std::filesystem::absolute(child_path, ec).parent_path();
    std::vector<std::string> out;
    auto add = [&](const std::filesystem::path& p) {
        std::string s = p.lexically_normal().string();
        if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end())
            out.push_back(std::move(s));
    };
    // relative_path: relative to the child's folder (never a rooted or drive path).
    const std::string& relative = locator.relative_path;
    if (!relative.empty() && relative[0] != '\\' && relative[0] != '/' && relative.find(':') == std::string::npos)
        add(child_dir / posix_separators(relative));
    // absolute_win32_path: "\\?\" then a rooted path; drive letters and UNC shares mean nothing here.
    std::string absolute = locator.absolute_win32_path;
    if (absolute.starts_with(win32_prefix))
        absolute.erase(0, win32_prefix.size());
    absolute = posix_separators(absolute);
    if (absolute.starts_with("/") && !absolute.starts_with("//"))
        add(absolute);
    for (const std::string* p : {&locator.relative_path, &locator.absolute_win32_path, &locator.volume_path}) {
        std::string name = file_name(*p);
        if (!name.empty() && name != "." && name != "..")
            add(child_dir / name);
    }
    return out;
}

} // namespace

namespace vhdx_detail {

std::optional<VhdxGuid> parse_braced_guid(std::string_view text)
{
    // {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}
    if (text.size() != 38 || text.front() != '{' || text.back() != '}')
        return std::nullopt;
    uint8_t digits[16];
    size_t n = 0;
    for (size_t i = 1; i < 37; ++i) {
        const char c = text[i];
        if (i == 9 || i == 14 || i == 19 || i == 24) {
            if (c != '-')
                return std::nullopt;
            continue;
        }
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return std::nullopt;
        if (n % 2 == 0)
            digits[n / 2] = static_cast<uint8_t>(v << 4);
        else
            digits[n / 2] = static_cast<uint8_t>(digits[n / 2] | v);
        ++n;
    }
    // The text shows Data1..Data3 as numbers, then the 8 bytes of Data4 in order.
    VhdxGuid g{};
    g.data1 = static_cast<uint32_t>(digits[0]) << 24 | static_cast<uint32_t>(digits[1]) << 16 |
              static_cast<uint32_t>(digits[2]) << 8 | digits[3];
    g.data2 = static_cast<uint16_t>(digits[4] << 8 | digits[5]);
    g.data3 = static_cast<uint16_t>(digits[6] << 8 | digits[7]);
    std::memcpy(g.data4, digits + 8, 8);
    return g;
}

Result<ParentLocator> parse_parent_locator(std::span<const uint8_t> item)
{
    VhdxParentLocatorHeader h;
    if (item.size() < sizeof(h))
        return fail("{} bytes, shorter than its {}-byte header", item.size(), sizeof(h));
    std::memcpy(&h, item.data(), sizeof(h));
    if (h.locator_type != vhdx_parent_locator_type_vhdx)
        return fail("unsupported locator type {} (not a VHDX parent)", guid_text(h.locator_type));
    const uint64_t table_end = sizeof(h) + uint64_t{h.key_value_count} * sizeof(VhdxParentLocatorEntry);
    if (table_end > item.size())
        return fail("{} key/value entries do not fit in the {}-byte item", h.key_value_count, item.size());

    ParentLocator out;
    bool have_linkage = false;
    std::vector<std::string> keys;
    auto string_at = [&](uint32_t i, const char* what, uint32_t offset, uint16_t length) -> Result<std::string> {
        if (length == 0)
            return fail("entry {}: empty {}", i, what);
        // Strings lie after the entry table, inside the item.
        if (offset < table_end || offset > item.size() || length > item.size() - offset)
            return fail("entry {}: {} at offset {} length {} outside the item ({} bytes, strings from offset {})", i,
                        what, offset, length, item.size(), table_end);
        return TRY_CTX(utf8_from_utf16le(item.subspan(offset, length)), "entry {}: {} is not valid UTF-16", i, what);
    };
    for (uint32_t i = 0; i < h.key_value_count; ++i) {
        VhdxParentLocatorEntry e;
        std::memcpy(&e, item.data() + sizeof(h) + i * sizeof(e), sizeof(e));
        std::string key = TRY(string_at(i, "key", e.key_offset, e.key_length));
        std::string value = TRY(string_at(i, "value", e.value_offset, e.value_length));
        if (std::find(keys.begin(), keys.end(), key) != keys.end())
            return fail("key {} appears twice", key);
        keys.push_back(key);
        if (key == "parent_linkage" || key == "parent_linkage2") {
            auto guid = parse_braced_guid(value);
            if (!guid)
                return fail("{} \"{}\" is not a braced GUID", key, value);
            if (key == "parent_linkage") {
                out.linkage = *guid;
                have_linkage = true;
            } else {
                out.linkage2 = *guid;
            }
        } else if (key == "relative_path") {
            out.relative_path = std::move(value);
        } else if (key == "volume_path") {
            out.volume_path = std::move(value);
        } else if (key == "absolute_win32_path") {
            out.absolute_win32_path = std::move(value);
        }
        // Other keys are not ours to interpret.
    }
    if (!have_linkage)
        return fail("no parent_linkage entry");
    if (out.relative_path.empty() && out.volume_path.empty() && out.absolute_win32_path.empty())
        return fail("no relative_path, volume_path or absolute_win32_path entry");
    return out;
}

Result<std::vector<uint8_t>> build_parent_locator(const std::vector<std::pair<std::string, std::string>>& entries)
{
    if (entries.size() > UINT16_MAX)
        return fail("{} parent locator entries", entries.size());
    std::vector<uint8_t> strings;
    std::vector<VhdxParentLocatorEntry> table;
    const uint64_t strings_at = sizeof(VhdxParentLocatorHeader) + entries.size() * sizeof(VhdxParentLocatorEntry);
    auto add = [&](const std::string& s, uint32_t& offset, uint16_t& length) -> Result<void> {
        std::vector<uint8_t> u = TRY_CTX(utf16le_from_utf8(s), "\"{}\"", s);
        if (u.empty() || u.size() > UINT16_MAX)
            return fail("\"{}\": {} bytes of UTF-16 (1 to {} allowed)", s, u.size(), UINT16_MAX - 1);
        offset = static_cast<uint32_t>(strings_at + strings.size());
        length = static_cast<uint16_t>(u.size());
        strings.insert(strings.end(), u.begin(), u.end());
        return {};
    };
    for (const auto& [key, value] : entries) {
        VhdxParentLocatorEntry e{};
        TRY(add(key, e.key_offset, e.key_length));
        TRY(add(value, e.value_offset, e.value_length));
        table.push_back(e);
    }
    VhdxParentLocatorHeader h{};
    h.locator_type = vhdx_parent_locator_type_vhdx;
    h.key_value_count = static_cast<uint16_t>(entries.size());
    std::vector<uint8_t> out(strings_at);
    std::memcpy(out.data(), &h, sizeof(h));
    if (!table.empty())
        std::memcpy(out.data() + sizeof(h), table.data(), table.size() * sizeof(VhdxParentLocatorEntry));
    out.insert(out.end(), strings.begin(), strings.end());
    return out;
}

Result<ResolvedParent> open_parent(const std::string& child_path, const ParentLocator& locator, uint64_t virtual_size,
                                   uint32_t logical_sector_size, OpenChain& chain)
{
    const std::vector<std::string> candidates = parent_candidates(child_path, locator);
    if (candidates.empty())
        return fail("the parent locator names no path usable on this host (relative_path \"{}\", volume_path "
                    "\"{}\", absolute_win32_path \"{}\")",
                    locator.relative_path, locator.volume_path, locator.absolute_win32_path);
    std::vector<std::string> errors;
    for (const std::string& candidate : candidates) {
        struct stat st {};
        if (::stat(candidate.c_str(), &st) != 0) {
            errors.push_back(fmt::format("{}: {}", candidate, errno_text(errno)));
            continue;
        }
        auto parent = open_image(candidate, true, chain);
        if (!parent) {
            errors.push_back(parent.error().message());
            continue;
        }
        const VhdxGuid guid = (*parent)->data_write_guid();
        const DiskInfo& info = (*parent)->info();
        if (guid != locator.linkage && (!locator.linkage2 || guid != *locator.linkage2)) {
            errors.push_back(fmt::format("{}: its DataWriteGuid {} is not the child's parent_linkage {}{} (the "
                                         "parent changed or is another image)",
                                         candidate, guid_text(guid), guid_text(locator.linkage),
                                         locator.linkage2 ? " or parent_linkage2 " + guid_text(*locator.linkage2)
                                                          : std::string()));
            continue;
        }
        if (info.virtual_size != virtual_size || info.logical_sector_size != logical_sector_size) {
            errors.push_back(fmt::format("{}: {} bytes with {}-byte sectors, the child {} bytes with {}-byte sectors",
                                         candidate, info.virtual_size, info.logical_sector_size, virtual_size,
                                         logical_sector_size));
            continue;
        }
        return ResolvedParent{std::move(*parent), candidate};
    }
    return fail("no usable parent: {}", fmt::join(errors, "; "));
}

} // namespace vhdx_detail

Result<void> create_vhdx_differencing(const std::string& path, const std::string& parent_path)
{
    auto make = [&]() -> Result<void> {
        OpenChain chain;
        std::unique_ptr<VhdxDisk> parent = TRY_CTX(open_image(parent_path, true, chain), "parent");
        const DiskInfo& info = parent->info();
        std::error_code ec;
        const auto parent_abs = std::filesystem::absolute(parent_path, ec).lexically_normal();
        if (ec)
            return fail("resolving {}: {}", parent_path, ec.message());
        const auto child_dir = std::filesystem::absolute(path, ec).lexically_normal().parent_path();
        if (ec)
            return fail("resolving {}: {}", path, ec.message());
        const std::string relative = parent_abs.lexically_relative(child_dir).string();
        if (relative.empty())
            return fail("no relative path from {} to {}", child_dir.string(), parent_abs.string());
        const std::vector<std::pair<std::string, std::string>> entries = {
            {"parent_linkage", "{" + guid_text(parent->data_write_guid()) + "}"},
            {"relative_path", windows_separators(relative)},
            {"absolute_win32_path", std::string(win32_prefix) + windows_separators(parent_abs.string())},
        };
        CreateParams params;
        params.parent_locator = TRY_CTX(build_parent_locator(entries), "parent locator");
        // The child copies the parent's virtual disk metadata ([MS-VHDX] 2.6.1.2 IsVirtualDisk); the block size
        // is the parent's, or Hyper-V's 2 MiB default for differencing images under a fixed parent.
        params.size = info.virtual_size;
        params.block_size = info.type == DiskType::Fixed ? 2U << 20 : info.block_size;
        params.logical_sector_size = info.logical_sector_size;
        params.physical_sector_size = info.physical_sector_size;
        params.disk_id = parent->disk_id();
        return create_image_file(path, params);
    };
    TRY_CTX(make(), "creating differencing VHDX image {}", path);
    return {};
}

} // namespace vmgen::vm::disk
