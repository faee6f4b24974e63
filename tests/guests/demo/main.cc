// demo: what `./setup.sh` boots. Reports, in plain words, what a guest finds in the virtual machine:
// memory, processors, ACPI tables, which generation's hardware model it sees, which legacy devices
// answer, and the wall-clock time from the CMOS RTC. In generation 2 (VMBus in the DSDT) it also brings up
// VMBus with the test-guest kit the way Linux's hv_vmbus does, lists the devices the host offers, and opens
// each synthetic SCSI controller with the kit's storvsc to report its drives (REPORT LUNS, INQUIRY, READ
// CAPACITY; a disk's block 0, a DVD's ISO 9660 volume and root directory). Then it closes the channels,
// UNLOADs VMBus and powers off through ACPI.
//
// Failures: a SCSI command that completes with an error status (a DVD drive without a medium, an unreadable
// block, an unexpected answer) is a legitimate answer of the device: it is reported as a plain line and the
// demo goes on. A host that breaks the VMBus or storvsc protocol (no Hyper-V interface although the DSDT has
// VMBus, a message or completion that never comes, a refused channel open or initialisation, a malformed
// packet: everything the kit reports as an error) is a real host error: it is reported as a plain line, the
// channels are closed and VMBus is unloaded as far as possible, and the result is FAIL.
//
// All of it runs in ring 0, which is slow on the software KVM this project is tested on (about 0.7 us per
// instruction): the guest sends a handful of commands per drive and reads at most a few blocks.
#include "kit/format.h"
#include "kit/hyperv.h"
#include "kit/kit.h"
#include "kit/storvsc.h"
#include "kit/vmbus.h"
#include "kit/vmbus_session.h"

namespace {

using kit::inb;
using kit::outb;

// A device is absent when nothing decodes its ports: every read returns all ones.
bool answers(const uint16_t* ports, unsigned n)
{
    for (unsigned i = 0; i < n; ++i)
        if (inb(ports[i]) != 0xff)
            return true;
    return false;
}

struct LegacyDevice {
    const char* name;
    uint16_t ports[4];
    unsigned count;
};

// The PIC's mask registers are read/write; an absent one reads 0xff whatever was written.
bool pic_answers()
{
    uint8_t saved = inb(0x21);
    outb(0x21, 0x5a);
    bool present = inb(0x21) == 0x5a;
    outb(0x21, saved);
    return present;
}

bool com_present(uint16_t base)
{
    outb(static_cast<uint16_t>(base + 7), 0x5a);
    return inb(static_cast<uint16_t>(base + 7)) == 0x5a;
}

uint8_t cmos(uint8_t index)
{
    outb(0x70, index);
    return inb(0x71);
}

unsigned from_bcd(uint8_t v, bool binary) { return binary ? v : (v >> 4) * 10u + (v & 0xfu); }

// ---- VMBus and storage (generation 2) ----
namespace hv = kit::hv;
namespace vmbus = kit::vmbus;
namespace sv = kit::storvsc;
namespace wire = vmgen::protocols::vmbus::storvsp;

constexpr unsigned max_controllers = 4; // what a VM can have
constexpr uint64_t message_timeout_ms = 10000;
constexpr uint64_t command_timeout_ms = 10000;

// Pages for the kit (hypercall, SynIC, interrupt and monitor pages, each controller's rings) and the data
// buffer: in the kit's NOLOAD .stack section, so they add nothing to the image; the pool is zeroed in ring 3,
// where that runs at native speed.
constexpr size_t pool_pages = max_controllers * 2 * sv::ring_pages + 16;
alignas(4096) __attribute__((section(".stack"))) uint8_t g_pool[pool_pages * 4096];
alignas(4096) __attribute__((section(".stack"))) uint8_t g_buf[16384];

sv::Controller g_ctrl[max_controllers];
unsigned g_ctrl_count = 0;

// A host error: says what failed in a plain line and remembers it as the result's reason.
char g_host_error[200];
bool host_error(const char* what)
{
    kit::line("VMBus: %s failed: %s", what, hv::error());
    if (!g_host_error[0])
        kit::format(g_host_error, sizeof g_host_error, "VMBus: %s: %s", what, hv::error());
    return false;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
uint64_t be64(const uint8_t* p) { return uint64_t{be32(p)} << 32 | be32(p + 4); }
uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }

// n bytes of text with the trailing spaces (and NULs) cut.
void copy_trimmed(char* out, const uint8_t* in, unsigned n)
{
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == 0))
        --n;
    for (unsigned i = 0; i < n; ++i)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? static_cast<char>(in[i]) : '?';
    out[n] = 0;
}

const char* device_name(const vmbus::Guid& type)
{
    struct Entry {
        const vmbus::Guid* type;
        const char* name;
    };
    static const Entry names[] = {
        {&vmbus::class_scsi, "SCSI controller"},
        {&vmbus::class_ide, "IDE controller"},
        {&vmbus::class_network, "network adapter"},
        {&vmbus::class_shutdown, "shutdown"},
        {&vmbus::class_heartbeat, "heartbeat"},
        {&vmbus::class_timesync, "time synchronization"},
        {&vmbus::class_kvp, "key-value pair exchange"},
        {&vmbus::class_vss, "backup (volume shadow copy)"},
        {&vmbus::class_keyboard, "keyboard"},
        {&vmbus::class_mouse, "mouse"},
        {&vmbus::class_video, "video"},
        {&vmbus::class_balloon, "dynamic memory"},
    };
    for (const Entry& e : names)
        if (*e.type == type)
            return e.name;
    return "unknown device";
}

// One SCSI command to LUN `lun` at path 0, target 0 (where the host puts every drive), as the midlayer sends
// it. UNIT ATTENTION (a new medium, a changed capacity) is answered by sending the command again, as Linux
// does. false only for a host error (no completion, a broken reply).
bool scsi(sv::Controller& c, uint8_t lun, const uint8_t* cdb, uint32_t length, sv::Completion& done)
{
    sv::Command cmd;
    cmd.lun = lun;
    cmd.cdb_length = sv::command_size(cdb[0]);
    __builtin_memcpy(cmd.cdb, cdb, cmd.cdb_length);
    cmd.dir = length ? sv::Dir::in : sv::Dir::none;
    cmd.buffer = length ? g_buf : nullptr;
    cmd.length = length;
    for (unsigned attempt = 0;; ++attempt) {
        if (!sv::execute(c, cmd, done, command_timeout_ms))
            return false;
        if (!(done.check_condition() && done.sense_key == 0x6 && attempt < 3))
            return true;
    }
}

// GOOD (a short transfer included).
bool good(const sv::Completion& done)
{
    uint8_t code = wire::srb_status_code(done.linux_srb_status);
    return done.linux_scsi_status == 0 && (code == wire::srb_status_success || code == wire::srb_status_data_overrun);
}

// Why a command did not succeed, in words.
const char* failure_text(const sv::Completion& done, char* buf, size_t size)
{
    if (done.check_condition())
        kit::format(buf, size, "CHECK CONDITION, sense %x/%02x/%02x", done.sense_key, done.asc, done.ascq);
    else if (wire::srb_status_code(done.linux_srb_status) == wire::srb_status_invalid_lun)
        kit::format(buf, size, "no such LUN");
    else
        kit::format(buf, size, "SRB status 0x%02x, SCSI status 0x%02x", done.linux_srb_status,
                    done.linux_scsi_status);
    return buf;
}

void cdb_read10(uint8_t* cdb, uint32_t lba, uint16_t blocks)
{
    __builtin_memset(cdb, 0, 16);
    cdb[0] = 0x28;
    cdb[2] = static_cast<uint8_t>(lba >> 24);
    cdb[3] = static_cast<uint8_t>(lba >> 16);
    cdb[4] = static_cast<uint8_t>(lba >> 8);
    cdb[5] = static_cast<uint8_t>(lba);
    cdb[7] = static_cast<uint8_t>(blocks >> 8);
    cdb[8] = static_cast<uint8_t>(blocks);
}

// READ CAPACITY(10), and (16) when the disk has more blocks than (10) can say. false: host error; `ok` false:
// the device refused, `done` says how.
bool read_capacity(sv::Controller& c, uint8_t lun, uint64_t& blocks, uint32_t& block_size, bool& ok,
                   sv::Completion& done)
{
    uint8_t cdb[16] = {0x25};
    if (!scsi(c, lun, cdb, 8, done))
        return false;
    ok = good(done) && done.transferred >= 8;
    if (!ok)
        return true;
    uint32_t last = be32(g_buf);
    block_size = be32(g_buf + 4);
    blocks = uint64_t{last} + 1;
    if (last == 0xffffffffu) {
        __builtin_memset(cdb, 0, sizeof cdb);
        cdb[0] = 0x9e; // SERVICE ACTION IN(16)
        cdb[1] = 0x10; // READ CAPACITY(16)
        cdb[13] = 32;
        if (!scsi(c, lun, cdb, 32, done))
            return false;
        ok = good(done) && done.transferred >= 12;
        if (!ok)
            return true;
        blocks = be64(g_buf) + 1;
        block_size = be32(g_buf + 8);
    }
    return true;
}

// "64 MiB", "2 GiB", "1536 KiB".
void size_text(uint64_t bytes, char* out, size_t size)
{
    if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
        kit::format(out, size, "%lu GiB", bytes >> 30);
    else if (bytes >= (1ull << 20))
        kit::format(out, size, "%lu MiB", bytes >> 20);
    else
        kit::format(out, size, "%lu KiB", bytes >> 10);
}

bool report_disk(sv::Controller& c, uint8_t lun, const char* prefix)
{
    uint64_t blocks = 0;
    uint32_t block_size = 0;
    bool ok = false;
    sv::Completion done;
    if (!read_capacity(c, lun, blocks, block_size, ok, done))
        return false;
    char f[64];
    if (!ok) {
        kit::line("%s, READ CAPACITY failed (%s)", prefix, failure_text(done, f, sizeof f));
        return true;
    }
    char size[32];
    size_text(blocks * block_size, size, sizeof size);
    if (block_size == 0 || block_size > sizeof g_buf) {
        kit::line("%s, %s (%lu x %u-byte blocks)", prefix, size, blocks, block_size);
        return true;
    }
    // Block 0: blank, or what it looks like.
    uint8_t cdb[16];
    cdb_read10(cdb, 0, 1);
    if (!scsi(c, lun, cdb, block_size, done))
        return false;
    const char* contents = "blank (block 0 is all zeros)";
    char t[96];
    if (!good(done) || done.transferred != block_size) {
        kit::format(t, sizeof t, "block 0 unreadable (%s)", failure_text(done, f, sizeof f));
        contents = t;
    } else {
        uint64_t any = 0;
        for (uint32_t i = 0; i < block_size; i += 8) {
            uint64_t v;
            __builtin_memcpy(&v, g_buf + i, 8);
            any |= v;
        }
        if (any && block_size >= 512 && g_buf[510] == 0x55 && g_buf[511] == 0xaa)
            contents = g_buf[450] == 0xee ? "partitioned (GPT)" : "partitioned (MBR)";
        else if (any)
            contents = "not blank (block 0 holds data)";
    }
    kit::line("%s, %s (%lu x %u-byte blocks), %s", prefix, size, blocks, block_size, contents);
    return true;
}

bool report_dvd(sv::Controller& c, uint8_t lun, const char* prefix)
{
    uint64_t blocks = 0;
    uint32_t block_size = 0;
    bool ok = false;
    sv::Completion done;
    if (!read_capacity(c, lun, blocks, block_size, ok, done))
        return false;
    char f[64];
    if (!ok) {
        if (done.check_condition() && done.sense_key == 0x2 && done.asc == 0x3a) // NOT READY, MEDIUM NOT PRESENT
            kit::line("%s, no medium", prefix);
        else
            kit::line("%s, READ CAPACITY failed (%s)", prefix, failure_text(done, f, sizeof f));
        return true;
    }
    if (block_size != 2048 || blocks <= 16) {
        kit::line("%s, medium: %lu x %u-byte blocks (not an ISO 9660 volume)", prefix, blocks, block_size);
        return true;
    }
    // ISO 9660: the primary volume descriptor in block 16, then the root directory.
    uint8_t cdb[16];
    cdb_read10(cdb, 16, 1);
    if (!scsi(c, lun, cdb, 2048, done))
        return false;
    if (!good(done) || done.transferred != 2048) {
        kit::line("%s, medium: %lu x 2048-byte blocks, block 16 unreadable (%s)", prefix, blocks,
                  failure_text(done, f, sizeof f));
        return true;
    }
    if (!(g_buf[0] == 1 && __builtin_memcmp(g_buf + 1, "CD001", 5) == 0)) {
        kit::line("%s, medium: %lu x 2048-byte blocks (not an ISO 9660 volume)", prefix, blocks);
        return true;
    }
    char volume[33];
    copy_trimmed(volume, g_buf + 40, 32);
    uint32_t root_extent = le32(g_buf + 156 + 2), root_bytes = le32(g_buf + 156 + 10);
    uint32_t dir_bytes = root_bytes < 8192 ? root_bytes : 8192;
    uint16_t dir_blocks = static_cast<uint16_t>((dir_bytes + 2047) / 2048);
    kit::printf("vmgen-guest: %s, medium: volume %s (%lu x 2048-byte blocks)", prefix, volume[0] ? volume : "(unnamed)",
                blocks);
    if (dir_blocks == 0 || root_extent >= blocks) {
        kit::print(", no root directory\n");
        return true;
    }
    cdb_read10(cdb, root_extent, dir_blocks);
    if (!scsi(c, lun, cdb, dir_blocks * 2048u, done))
        return false;
    if (!good(done) || done.transferred != dir_blocks * 2048u) {
        kit::printf(", root directory unreadable (%s)\n", failure_text(done, f, sizeof f));
        return true;
    }
    // The files in the root directory (records do not cross 2048-byte blocks; "." and ".." come first).
    const uint8_t* dir = g_buf;
    unsigned files = 0;
    char text_file[32] = "";
    uint32_t text_extent = 0, text_bytes = 0;
    for (uint32_t off = 0; off < dir_bytes;) {
        uint8_t len = dir[off];
        if (len == 0) {
            off = (off / 2048 + 1) * 2048;
            continue;
        }
        if (len < 34 || off + len > dir_bytes)
            break;
        uint8_t name_len = dir[off + 32];
        const uint8_t* name = dir + off + 33;
        bool special = name_len == 1 && (name[0] == 0 || name[0] == 1);
        if (!special && 33u + name_len <= len) {
            char n[32];
            unsigned k = 0;
            for (; k < name_len && k < sizeof n - 1 && name[k] != ';'; ++k)
                n[k] = name[k] >= 0x20 && name[k] < 0x7f ? static_cast<char>(name[k]) : '?';
            if (k > 0 && n[k - 1] == '.')
                --k; // "NAME." (no extension)
            n[k] = 0;
            bool is_dir = (dir[off + 25] & 0x02) != 0;
            if (files < 4)
                kit::printf("%s%s%s", files == 0 ? ", files: " : ", ", n, is_dir ? "/" : "");
            ++files;
            if (!is_dir && !text_file[0] && k > 4 && __builtin_memcmp(n + k - 4, ".TXT", 4) == 0) {
                __builtin_memcpy(text_file, n, k + 1);
                text_extent = le32(dir + off + 2);
                text_bytes = le32(dir + off + 10);
            }
        }
        off += len;
    }
    if (files > 4)
        kit::printf(" and %u more", files - 4);
    kit::print(files == 0 ? ", no files\n" : "\n");
    // The first line of the first text file.
    if (!text_file[0] || text_bytes == 0 || text_extent >= blocks)
        return true;
    cdb_read10(cdb, text_extent, 1);
    if (!scsi(c, lun, cdb, 2048, done))
        return false;
    if (!good(done) || done.transferred != 2048) {
        kit::line("storage: SCSI %u:%u file %s unreadable (%s)", c.index, lun, text_file,
                  failure_text(done, f, sizeof f));
        return true;
    }
    char text[72];
    unsigned n = 0;
    for (; n < text_bytes && n < 2048 && n < sizeof text - 1 && g_buf[n] != '\n' && g_buf[n] != '\r'; ++n)
        text[n] = g_buf[n] >= 0x20 && g_buf[n] < 0x7f ? static_cast<char>(g_buf[n]) : '?';
    text[n] = 0;
    kit::line("storage: SCSI %u:%u file %s: \"%s\"", c.index, lun, text_file, text);
    return true;
}

// One controller, already initialised: REPORT LUNS at target 0, then each drive.
bool report_controller(sv::Controller& c)
{
    uint8_t cdb[16] = {0xa0};
    constexpr uint32_t report_bytes = 8 + 64 * 8; // 64 locations per controller
    cdb[9] = report_bytes & 0xff;
    cdb[8] = report_bytes >> 8;
    sv::Completion done;
    if (!scsi(c, 0, cdb, report_bytes, done))
        return false;
    if (!good(done) || done.transferred < 8) {
        char f[64];
        kit::line("storage: SCSI controller %u: REPORT LUNS failed (%s)", c.index, failure_text(done, f, sizeof f));
        return true;
    }
    uint32_t count = be32(g_buf) / 8;
    if (count > (done.transferred - 8) / 8)
        count = (done.transferred - 8) / 8;
    uint8_t luns[64];
    unsigned n = 0;
    for (uint32_t i = 0; i < count && n < sizeof luns; ++i) {
        const uint8_t* e = g_buf + 8 + 8 * i;
        luns[n++] = e[1]; // peripheral or flat addressing, LUNs 0..63
    }
    const char* level = c.version == wire::version_win10    ? ", Windows 10"
                        : c.version == wire::version_win8_1 ? ", Windows 8.1"
                        : c.version == wire::version_win8   ? ", Windows 8"
                                                            : "";
    if (n == 0)
        kit::line("storage: SCSI controller %u: no drives (storage protocol %u.%u%s)", c.index, c.version >> 8,
                  c.version & 0xff, level);
    else
        kit::line("storage: SCSI controller %u: %u drive%s (storage protocol %u.%u%s)", c.index, n, n == 1 ? "" : "s",
                  c.version >> 8, c.version & 0xff, level);
    for (unsigned i = 0; i < n; ++i) {
        uint8_t lun = luns[i];
        uint8_t inq[16] = {0x12, 0, 0, 0, 36};
        if (!scsi(c, lun, inq, 36, done))
            return false;
        char prefix[80];
        if (!good(done) || done.transferred < 36) {
            char f[64];
            kit::line("storage: SCSI %u:%u INQUIRY failed (%s)", c.index, lun, failure_text(done, f, sizeof f));
            continue;
        }
        uint8_t pq = g_buf[0] >> 5, pdt = g_buf[0] & 0x1f;
        char vendor[9], product[17];
        copy_trimmed(vendor, g_buf + 8, 8);
        copy_trimmed(product, g_buf + 16, 16);
        if (pq != 0) {
            kit::line("storage: SCSI %u:%u no drive (INQUIRY peripheral qualifier %u)", c.index, lun, pq);
            continue;
        }
        const char* kind = pdt == 0 ? "disk" : pdt == 5 ? "DVD" : nullptr;
        if (kind)
            kit::format(prefix, sizeof prefix, "storage: SCSI %u:%u %s %s %s", c.index, lun, kind, vendor, product);
        else
            kit::format(prefix, sizeof prefix, "storage: SCSI %u:%u device type 0x%02x %s %s", c.index, lun, pdt,
                        vendor, product);
        if (pdt == 0) {
            if (!report_disk(c, lun, prefix))
                return false;
        } else if (pdt == 5) {
            if (!report_dvd(c, lun, prefix))
                return false;
        } else {
            kit::line("%s", prefix);
        }
    }
    return true;
}

// Closes what is open and UNLOADs (vmbus::close_all); false (and a host error) if the host does not answer.
bool vmbus_cleanup()
{
    return vmbus::close_all(message_timeout_ms, [](vmbus::Teardown what) {
        host_error(what == vmbus::Teardown::channel ? "closing a SCSI controller's channel"
                   : what == vmbus::Teardown::gpadl ? "tearing down a GPADL"
                                                    : "UNLOAD");
    });
}

bool vmbus_devices()
{
    vmbus::Session session;
    session.pool = g_pool;
    session.pool_pages = pool_pages;
    session.mask_pics = false;
    session.timeout_ms = message_timeout_ms;
    if (!vmbus::start(session)) {
        if (session.failed == vmbus::Step::no_synic)
            hv::fail("CPUID 0x40000003 EAX=0x%x has no SynIC", session.info.features);
        host_error(vmbus::step_name(session.failed));
        vmbus_cleanup(); // connected (the offers failed): UNLOAD; nothing before that
        return false;
    }

    const vmbus::Bus& bus = vmbus::bus();
    kit::printf("vmgen-guest: VMBus: protocol %u.%u, %u device%s offered", bus.version >> 16, bus.version & 0xffff,
                bus.offer_count, bus.offer_count == 1 ? "" : "s");
    for (unsigned i = 0; i < bus.offer_count; ++i)
        kit::printf("%s%s", i == 0 ? ": " : ", ", device_name(bus.offers[i].type));
    kit::print("\n");

    // storvsc_probe for each SCSI controller, in offer order (controller 0, 1, ...).
    bool ok = true;
    unsigned scsi_offers = 0;
    for (unsigned i = 0; i < bus.offer_count && ok; ++i) {
        const vmbus::Offer& o = bus.offers[i];
        if (!(o.type == vmbus::class_scsi))
            continue;
        ++scsi_offers;
        if (g_ctrl_count == max_controllers) {
            kit::line("storage: SCSI controller %u not opened: this guest handles %u", scsi_offers - 1,
                      max_controllers);
            continue;
        }
        sv::Controller& c = g_ctrl[g_ctrl_count++];
        if (!sv::open(c, o, g_ctrl_count - 1, message_timeout_ms))
            ok = host_error("opening a SCSI controller's channel");
        else if (!sv::init(c, false, message_timeout_ms))
            ok = host_error("storvsc initialisation");
        else if (!report_controller(c))
            ok = host_error("SCSI command");
    }
    if (scsi_offers == 0)
        kit::line("storage: no SCSI controllers offered");
    return vmbus_cleanup() && ok;
}

} // namespace

extern "C" void guest_main(const kit::StartInfo* start)
{
    // Memory, from the PVH memory map.
    uint64_t ram = 0;
    unsigned ranges = 0;
    if (start != nullptr && start->version >= 1 && start->memmap_paddr != 0) {
        const auto* map = reinterpret_cast<const vmgen::protocols::pvh::MemmapEntry*>(start->memmap_paddr);
        for (uint32_t i = 0; i < start->memmap_entries && i < 128; ++i) {
            if (map[i].type == vmgen::protocols::pvh::memmap_type_ram) {
                ram += map[i].size;
                ++ranges;
            }
        }
    }
    kit::line("memory: %u MiB of RAM in %u ranges (PVH memory map)", static_cast<unsigned>(ram >> 20), ranges);

    // ACPI.
    const kit::Acpi& acpi = kit::acpi();
    bool checksums = acpi.rsdp != nullptr && acpi.rsdp_checksum_ok && acpi.rsdp_extended_checksum_ok &&
                     acpi.root != nullptr;
    kit::printf("vmgen-guest: ACPI: RSDP revision %u at 0x%lx, tables:", acpi.rsdp_revision,
                reinterpret_cast<unsigned long>(acpi.rsdp));
    const uint8_t* all[kit::acpi_max_tables + 2] = {acpi.root};
    unsigned n = 1;
    for (unsigned i = 0; i < acpi.table_count; ++i)
        all[n++] = acpi.tables[i];
    if (acpi.dsdt != nullptr)
        all[n++] = acpi.dsdt;
    for (unsigned i = 0; i < n; ++i) {
        char sig[5];
        kit::signature_string(all[i], sig);
        bool ok = kit::checksum_ok(all[i], kit::table_length(all[i]));
        checksums &= ok;
        kit::printf(" %s%s", sig, ok ? "" : "(bad checksum)");
    }
    kit::print(checksums ? " (all checksums valid)\n" : "\n");

    // Processors.
    kit::Madt madt = kit::parse_madt(acpi.madt);
    if (!madt.valid)
        kit::finish(false, "no MADT");
    kit::SmpResult smp = kit::start_aps(madt, 10000);
    kit::printf("vmgen-guest: processors: %u of %u online (APIC ids", smp.online, smp.expected);
    for (unsigned i = 0; i < smp.online && i < kit::madt_max_lapics; ++i)
        kit::printf(" %u", smp.online_ids[i]);
    kit::print(")\n");

    // Which hardware model: generation 2 has VMBus in the DSDT and no 8259s in the MADT.
    bool vmbus = acpi.dsdt != nullptr && kit::table_contains(acpi.dsdt, "VMBus", 5);
    if (vmbus && !madt.pcat_compat)
        kit::line("hardware model: generation 2 virtual machine (DSDT has \\_SB.VMOD.VMBS with _HID \"VMBus\"; "
                  "MADT without PC/AT 8259s)");
    else
        kit::line("hardware model: generation 1 virtual machine (PC/AT compatible: MADT declares 8259 PICs)");

    // Legacy devices.
    static const LegacyDevice devices[] = {
        {"PIT", {0x40, 0x41, 0x42}, 3},     {"i8042", {0x60, 0x64}, 2},  {"IDE", {0x1f7, 0x177, 0x3f6}, 3},
        {"floppy", {0x3f4, 0x3f2}, 2},      {"VGA", {0x3cc, 0x3da}, 2},  {"DMA", {0x08, 0xd0}, 2},
        {"POST port 0x80", {0x80}, 1},      {"port 0x92", {0x92}, 1},
    };
    kit::printf("vmgen-guest: legacy hardware: PIC %s", pic_answers() ? "present" : "absent");
    for (const auto& d : devices)
        kit::printf(", %s %s", d.name, answers(d.ports, d.count) ? "present" : "absent");
    kit::outl(0xcf8, 0x80000000u);
    bool pci = kit::inl(0xcf8) == 0x80000000u;
    kit::printf(", PCI %s\n", pci ? "present" : "absent");
    kit::line("serial: COM1 %s, COM2 %s", com_present(0x3f8) ? "present" : "absent",
              com_present(0x2f8) ? "present" : "absent");

    // Wall-clock time from the CMOS RTC.
    bool binary = (cmos(0x0b) & 0x04) != 0;
    kit::line("clock: CMOS RTC says %02u%02u-%02u-%02u %02u:%02u:%02u", from_bcd(cmos(0x32), binary),
              from_bcd(cmos(0x09), binary), from_bcd(cmos(0x08), binary), from_bcd(cmos(0x07), binary),
              from_bcd(cmos(0x04), binary), from_bcd(cmos(0x02), binary), from_bcd(cmos(0x00), binary));

    // VMBus devices and storage: generation 2 only (generation 1 has no VMBus in its DSDT).
    bool devices_ok = true;
    if (vmbus) {
        devices_ok = vmbus_devices();
        hv::stop_wakeup_timer();
    }

    bool pass = checksums && smp.online == smp.expected && devices_ok;
    kit::finish(pass, pass ? nullptr : devices_ok ? "see above" : g_host_error);
}
