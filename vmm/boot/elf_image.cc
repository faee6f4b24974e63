#include "vmm/boot/elf_image.h"

#include <cstring>

namespace vmgen::vmm {

namespace {

// ELF header layout (System V ABI, "ELF Header" and "Program Header"), little-endian.
constexpr uint64_t ei_class = 4;
constexpr uint64_t ei_data = 5;
constexpr uint64_t ei_version = 6;
constexpr uint8_t elfclass32 = 1;
constexpr uint8_t elfclass64 = 2;
constexpr uint8_t elfdata2lsb = 1;
constexpr uint16_t et_exec = 2;
constexpr uint16_t et_dyn = 3;
constexpr uint16_t pn_xnum = 0xffff;
constexpr uint64_t ehdr32_size = 52;
constexpr uint64_t ehdr64_size = 64;
constexpr uint64_t phdr32_size = 32;
constexpr uint64_t phdr64_size = 56;
constexpr uint64_t note_header_size = 12;

template <typename T>
T load_le(std::span<const uint8_t> bytes, uint64_t offset)
{
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

// True if [offset, offset + size) lies within a buffer of `total` bytes (no overflow).
bool within(uint64_t offset, uint64_t size, uint64_t total) { return offset <= total && size <= total - offset; }

uint64_t align_up(uint64_t v, uint64_t alignment) { return (v + alignment - 1) & ~(alignment - 1); }

} // namespace

bool is_elf(std::span<const uint8_t> file)
{
    static constexpr uint8_t magic[4] = {0x7f, 'E', 'L', 'F'};
    return file.size() >= sizeof(magic) && std::memcmp(file.data(), magic, sizeof(magic)) == 0;
}

Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view name)
{
    if (!is_elf(file))
        return fail("{} is not an ELF file", name);
    if (file.size() <= ei_version)
        return fail("{} is truncated: {} bytes, shorter than the ELF identification", name, file.size());
    uint8_t elf_class = file[ei_class];
    if (elf_class != elfclass32 && elf_class != elfclass64)
        return fail("{}: unsupported ELF class {}", name, elf_class);
    if (file[ei_data] != elfdata2lsb)
        return fail("{}: not a little-endian ELF file", name);
    if (file[ei_version] != 1)
        return fail("{}: unsupported ELF version {}", name, file[ei_version]);

    ElfImage image;
    image.is_64 = elf_class == elfclass64;
    uint64_t ehdr_size = image.is_64 ? ehdr64_size : ehdr32_size;
    if (file.size() < ehdr_size) {
        return fail("{} is truncated: {} bytes, the ELF{} header needs {}", name, file.size(),
                    image.is_64 ? 64 : 32, ehdr_size);
    }
    auto type = load_le<uint16_t>(file, 16);
    if (type != et_exec && type != et_dyn)
        return fail("{}: ELF type {} is not an executable", name, type);
    image.machine = load_le<uint16_t>(file, 18);
    if (image.machine != elf_em_386 && image.machine != elf_em_x86_64)
        return fail("{}: ELF machine {} is not x86", name, image.machine);

    uint64_t phoff = 0;
    uint16_t phentsize = 0;
    uint16_t phnum = 0;
    if (image.is_64) {
        image.entry = load_le<uint64_t>(file, 24);
        phoff = load_le<uint64_t>(file, 32);
        phentsize = load_le<uint16_t>(file, 54);
        phnum = load_le<uint16_t>(file, 56);
    } else {
        image.entry = load_le<uint32_t>(file, 24);
        phoff = load_le<uint32_t>(file, 28);
        phentsize = load_le<uint16_t>(file, 42);
        phnum = load_le<uint16_t>(file, 44);
    }
    uint64_t phdr_size = image.is_64 ? phdr64_size : phdr32_size;
    if (phnum == 0)
        return fail("{}: the ELF file has no program headers", name);
    if (phnum == pn_xnum)
        return fail("{}: extended program header numbering (PN_XNUM) is not supported", name);
    if (phentsize < phdr_size)
        return fail("{}: ELF program header size {} is smaller than {}", name, phentsize, phdr_size);
    uint64_t table_size = uint64_t{phnum} * phentsize;
    if (!within(phoff, table_size, file.size())) {
        return fail("{}: ELF program headers [{:#x}, +{:#x}) lie outside the file ({} bytes)", name, phoff,
                    table_size, file.size());
    }

    image.segments.reserve(phnum);
    for (uint64_t i = 0; i < phnum; ++i) {
        uint64_t at = phoff + i * phentsize;
        ElfSegment s;
        s.type = load_le<uint32_t>(file, at);
        if (image.is_64) {
            s.offset = load_le<uint64_t>(file, at + 8);
            s.paddr = load_le<uint64_t>(file, at + 24);
            s.filesz = load_le<uint64_t>(file, at + 32);
            s.memsz = load_le<uint64_t>(file, at + 40);
            s.align = load_le<uint64_t>(file, at + 48);
        } else {
            s.offset = load_le<uint32_t>(file, at + 4);
            s.paddr = load_le<uint32_t>(file, at + 12);
            s.filesz = load_le<uint32_t>(file, at + 16);
            s.memsz = load_le<uint32_t>(file, at + 20);
            s.align = load_le<uint32_t>(file, at + 28);
        }
        if (s.type == elf_pt_load || s.type == elf_pt_note) {
            if (!within(s.offset, s.filesz, file.size())) {
                return fail("{}: ELF segment {} [{:#x}, +{:#x}) lies outside the file ({} bytes)", name, i,
                            s.offset, s.filesz, file.size());
            }
            if (s.type == elf_pt_load && s.filesz > s.memsz) {
                return fail("{}: ELF segment {} has more file bytes ({:#x}) than memory bytes ({:#x})", name, i,
                            s.filesz, s.memsz);
            }
        }
        image.segments.push_back(s);
    }
    return image;
}

Result<std::vector<ElfNote>> parse_elf_notes(std::span<const uint8_t> file, const ElfSegment& segment,
                                             std::string_view name)
{
    if (!within(segment.offset, segment.filesz, file.size()))
        return fail("{}: ELF note segment lies outside the file", name);
    std::span<const uint8_t> notes = file.subspan(segment.offset, segment.filesz);
    // Notes are 4-byte aligned, or 8-byte aligned in a segment that says so (e.g. GNU property notes).
    uint64_t alignment = segment.align == 8 ? 8 : 4;
    std::vector<ElfNote> result;
    uint64_t at = 0;
    while (at < notes.size()) {
        if (!within(at, note_header_size, notes.size()))
            return fail("{}: truncated ELF note header at segment offset {:#x}", name, at);
        auto namesz = load_le<uint32_t>(notes, at);
        auto descsz = load_le<uint32_t>(notes, at + 4);
        ElfNote note;
        note.type = load_le<uint32_t>(notes, at + 8);
        uint64_t name_at = at + note_header_size;
        if (!within(name_at, namesz, notes.size()))
            return fail("{}: ELF note name at segment offset {:#x} runs past its segment", name, at);
        uint64_t desc_at = align_up(name_at + namesz, alignment);
        if (!within(desc_at, descsz, notes.size()))
            return fail("{}: ELF note data at segment offset {:#x} runs past its segment", name, at);
        std::string_view note_name(reinterpret_cast<const char*>(notes.data() + name_at), namesz);
        if (!note_name.empty() && note_name.back() == '\0')
            note_name.remove_suffix(1);
        note.name = note_name;
        note.desc = notes.subspan(desc_at, descsz);
        result.push_back(note);
        at = align_up(desc_at + descsz, alignment);
    }
    return result;
}

} // namespace vmgen::vmm
