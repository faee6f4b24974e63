// The fixture and file helpers shared by the VHDX tests (vhdx_test.cc, vhdx_differencing_test.cc): a scratch
// folder per test, qemu-img/qemu-io wrappers, raw access to image structures.
#pragma once

#include "vm/disk/vhdx/vhdx.h"

#include "protocols/disk/vhdx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace vmgen::vm::disk::vhdx_testing {

using namespace vmgen::protocols::disk;

inline std::vector<uint8_t> read_bytes(const std::string& path, uint64_t offset, size_t length)
{
    std::vector<uint8_t> out(length);
    int fd = ::open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, out.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
    ::close(fd);
    return out;
}

inline void write_bytes(const std::string& path, uint64_t offset, const void* data, size_t length)
{
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data, length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
    ::close(fd);
}

template <typename T>
T read_obj(const std::string& path, uint64_t offset)
{
    T t;
    auto b = read_bytes(path, offset, sizeof(T));
    std::memcpy(&t, b.data(), sizeof(T));
    return t;
}

template <typename T>
void write_obj(const std::string& path, uint64_t offset, const T& t)
{
    write_bytes(path, offset, &t, sizeof(T));
}

inline std::vector<uint8_t> whole_file(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Recomputes the CRC-32C of the `span`-byte structure at `offset` whose checksum field is at offset + 4.
inline void fix_checksum(const std::string& path, uint64_t offset, size_t span)
{
    auto b = read_bytes(path, offset, span);
    std::memset(b.data() + 4, 0, 4);
    uint32_t crc = vhdx_crc32c(b);
    write_obj(path, offset + 4, crc);
}

class VhdxTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/vhdx_test_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        m_dir = tmpl;
    }
    void TearDown() override { (void)std::system(("rm -rf " + m_dir).c_str()); }

    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    static void sh(const std::string& cmd) { ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd; }

    std::string create(const std::string& options, const std::string& size = "64M")
    {
        std::string p = path("disk.vhdx");
        sh("qemu-img create -f vhdx -o " + options + " " + p + " " + size);
        return p;
    }

    void qemu_write(const std::string& p, const std::string& writes) { sh("qemu-io -f vhdx " + writes + " " + p); }

    std::vector<uint8_t> qemu_raw(const std::string& p)
    {
        std::string raw = path("ref.raw");
        sh("rm -f " + raw + " && qemu-img convert -f vhdx -O raw " + p + " " + raw);
        return whole_file(raw);
    }

    static std::vector<uint8_t> read_all(BlockDevice& d)
    {
        std::vector<uint8_t> out(d.size());
        // In uneven pieces to cross block boundaries at odd places.
        uint64_t pos = 0;
        uint64_t piece = 3 * 4096 + d.sector_size();
        while (pos < out.size()) {
            uint64_t n = std::min<uint64_t>(piece, out.size() - pos);
            auto r = d.read(pos, std::span<uint8_t>(out).subspan(pos, n));
            EXPECT_TRUE(r) << r.error().message();
            pos += n;
            piece = piece * 7 % (5 << 20) + d.sector_size();
            piece -= piece % d.sector_size();
        }
        return out;
    }

    // File offset of the metadata table entry of item `id` ([MS-VHDX] 2.6.1.2), via region table 1.
    static uint64_t metadata_entry(const std::string& p, const VhdxGuid& id)
    {
        auto rh = read_obj<VhdxRegionTableHeader>(p, vhdx_region_table1_offset);
        for (uint32_t i = 0; i < rh.entry_count; ++i) {
            auto e = read_obj<VhdxRegionTableEntry>(p, vhdx_region_table1_offset + 16 + i * 32);
            if (e.guid != vhdx_metadata_region_guid)
                continue;
            auto mh = read_obj<VhdxMetadataTableHeader>(p, e.file_offset);
            for (uint32_t j = 0; j < mh.entry_count; ++j) {
                uint64_t at = e.file_offset + 32 + j * 32;
                if (read_obj<VhdxMetadataTableEntry>(p, at).item_id == id)
                    return at;
            }
        }
        ADD_FAILURE() << "metadata item not found";
        return 0;
    }

    // File offset of the metadata item `id` ([MS-VHDX] 2.6).
    static uint64_t metadata_item(const std::string& p, const VhdxGuid& id)
    {
        uint64_t entry = metadata_entry(p, id);
        return entry - entry % vhdx_mib + read_obj<VhdxMetadataTableEntry>(p, entry).offset;
    }

    static uint64_t bat_offset(const std::string& p)
    {
        auto rh = read_obj<VhdxRegionTableHeader>(p, vhdx_region_table1_offset);
        for (uint32_t i = 0; i < rh.entry_count; ++i) {
            auto e = read_obj<VhdxRegionTableEntry>(p, vhdx_region_table1_offset + 16 + i * 32);
            if (e.guid == vhdx_bat_region_guid)
                return e.file_offset;
        }
        ADD_FAILURE() << "no BAT";
        return 0;
    }

    // Current header slot offset (greater sequence number).
    static uint64_t current_header(const std::string& p)
    {
        auto h1 = read_obj<VhdxHeader>(p, vhdx_header1_offset);
        auto h2 = read_obj<VhdxHeader>(p, vhdx_header2_offset);
        return h1.sequence_number > h2.sequence_number ? vhdx_header1_offset : vhdx_header2_offset;
    }

    // Opening fails with `what` in the message, read-write included, and the file is left untouched.
    void expect_refused(const std::string& p, const std::string& what, const std::string& ro_what = "")
    {
        auto before = whole_file(p);
        for (bool ro : {true, false}) {
            auto d = open_vhdx(p, ro);
            ASSERT_FALSE(d) << "opened despite: " << what;
            const std::string& w = ro && !ro_what.empty() ? ro_what : what;
            EXPECT_NE(d.error().message().find(w), std::string::npos) << d.error().message();
        }
        EXPECT_EQ(whole_file(p), before);
    }

    std::string m_dir;
};

// Writes `data` as a new raw image at `path`.
inline void write_raw(const std::string& path, const std::vector<uint8_t>& data)
{
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

} // namespace vmgen::vm::disk::vhdx_testing
