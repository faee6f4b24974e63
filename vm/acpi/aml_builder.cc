#include "vm/acpi/aml_builder.h"

#include <array>
#include <optional>

namespace vmgen::vm::acpi {
namespace {

// Opcodes and prefixes (§20.3 "AML Byte Stream Byte Values").
constexpr uint8_t zero_op = 0x00;
constexpr uint8_t one_op = 0x01;
constexpr uint8_t name_op = 0x08;
constexpr uint8_t byte_prefix = 0x0a;
constexpr uint8_t word_prefix = 0x0b;
constexpr uint8_t dword_prefix = 0x0c;
constexpr uint8_t string_prefix = 0x0d;
constexpr uint8_t qword_prefix = 0x0e;
constexpr uint8_t scope_op = 0x10;
constexpr uint8_t buffer_op = 0x11;
constexpr uint8_t package_op = 0x12;
constexpr uint8_t method_op = 0x14;
constexpr uint8_t dual_name_prefix = 0x2e;
constexpr uint8_t multi_name_prefix = 0x2f;
constexpr uint8_t ext_op_prefix = 0x5b;
constexpr uint8_t device_op = 0x82; // after ext_op_prefix
constexpr uint8_t root_char = '\\';
constexpr uint8_t parent_prefix_char = '^';
constexpr uint8_t null_name = 0x00;
constexpr uint8_t return_op = 0xa4;
constexpr uint8_t ones_op = 0xff;

// Resource descriptor tags (§6.4.2 small items: type 0, name in bits 6:3, length in bits 2:0;
// §6.4.3 large items: bit 7 set, name in bits 6:0, then a 16-bit length).
constexpr uint8_t small_irq_no_flags = 0x22;
constexpr uint8_t small_irq_with_flags = 0x23;
constexpr uint8_t small_io_port = 0x47;
constexpr uint8_t small_end_tag = 0x79;
constexpr uint8_t large_dword_address_space = 0x87;
constexpr uint8_t large_extended_interrupt = 0x89;
constexpr uint8_t large_qword_address_space = 0x8a;
constexpr uint8_t address_space_type_memory = 0;

constexpr uint32_t max_pkg_length = (1u << 28) - 1;
constexpr size_t max_name_segments = 255;

void put_u16(std::vector<uint8_t>& out, uint16_t value)
{
    out.push_back(static_cast<uint8_t>(value));
    out.push_back(static_cast<uint8_t>(value >> 8));
}

void put_u32(std::vector<uint8_t>& out, uint32_t value)
{
    for (int shift = 0; shift < 32; shift += 8)
        out.push_back(static_cast<uint8_t>(value >> shift));
}

void put_u64(std::vector<uint8_t>& out, uint64_t value)
{
    for (int shift = 0; shift < 64; shift += 8)
        out.push_back(static_cast<uint8_t>(value >> shift));
}

// The first error among `parts`, if any.
std::optional<std::string> first_error(const std::vector<Aml>& parts)
{
    for (const Aml& part : parts) {
        if (!part.ok())
            return part.error();
    }
    return std::nullopt;
}

// `prefix` bytes, then a PkgLength covering `body`, then `body`.
Aml with_length(std::vector<uint8_t> prefix, const std::vector<uint8_t>& body, std::string_view what)
{
    auto encoded = aml::with_pkg_length(body);
    if (!encoded)
        return Aml::failed(fmt::format("{}: {}", what, encoded.error().message()));
    prefix.insert(prefix.end(), encoded->begin(), encoded->end());
    return Aml::from_bytes(std::move(prefix));
}

// Encodes `path` (NameString) and appends `terms`; shared by Scope, Device and Method bodies.
Aml named_body(std::string_view path, std::span<const uint8_t> between, const std::vector<Aml>& terms)
{
    Aml body = aml::name_string(path);
    body.append(Aml::from_bytes(std::vector<uint8_t>(between.begin(), between.end())));
    for (const Aml& term : terms)
        body.append(term);
    return body;
}

bool is_lead_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c)
{
    return is_lead_name_char(c) || (c >= '0' && c <= '9');
}

bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}
uint8_t hex_value(char c)
{
    return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'A' + 10);
}

uint8_t irq_flag_bits(
    const aml::IrqFlags& flags, uint8_t edge_bit, uint8_t low_bit, uint8_t shared_bit, uint8_t wake_bit)
{
    uint8_t bits = 0;
    if (flags.trigger == aml::Trigger::Edge)
        bits |= edge_bit;
    if (flags.polarity == aml::Polarity::ActiveLow)
        bits |= low_bit;
    if (flags.sharing == aml::Sharing::Shared)
        bits |= shared_bit;
    if (flags.wake_capable)
        bits |= wake_bit;
    return bits;
}

// General and type-specific flags of a memory address space descriptor (§6.4.3.5.1, Table 6.44 and §6.4.3.5.4).
std::array<uint8_t, 3> memory_address_space_flags(const aml::MemoryRange& range)
{
    constexpr uint8_t general_consumer = 1u << 0;
    constexpr uint8_t general_min_fixed = 1u << 2;
    constexpr uint8_t general_max_fixed = 1u << 3;
    uint8_t general = general_min_fixed | general_max_fixed; // positive decode: bit 1 clear
    if (range.usage == aml::ResourceUsage::Consumer)
        general |= general_consumer;
    uint8_t specific = static_cast<uint8_t>(static_cast<uint8_t>(range.cacheability) << 1); // _MEM, bits 2:1
    if (range.read_write)
        specific |= 1u; // _RW; _MTP (bits 4:3) AddressRangeMemory = 0, _TTP TypeStatic = 0
    return { address_space_type_memory, general, specific };
}

std::optional<std::string> check_memory_range(const aml::MemoryRange& range, uint64_t limit)
{
    if (range.length == 0)
        return fmt::format("memory range at {:#x} is empty", range.base);
    if (range.base > limit || range.length - 1 > limit - range.base)
        return fmt::format("memory range {:#x}+{:#x} exceeds {:#x}", range.base, range.length, limit);
    return std::nullopt;
}

} // namespace

Aml Aml::from_bytes(std::vector<uint8_t> bytes)
{
    Aml aml;
    aml.m_bytes = std::move(bytes);
    return aml;
}

Aml Aml::failed(std::string message)
{
    Aml aml;
    aml.m_error = message.empty() ? std::string("AML error") : std::move(message);
    return aml;
}

void Aml::append(const Aml& other)
{
    if (!ok())
        return;
    if (!other.ok()) {
        m_error = other.m_error;
        m_bytes.clear();
        return;
    }
    m_bytes.insert(m_bytes.end(), other.m_bytes.begin(), other.m_bytes.end());
}

Result<std::vector<uint8_t>> Aml::finish() const
{
    if (!ok())
        return fail("{}", m_error);
    return m_bytes;
}

ResourceDescriptor ResourceDescriptor::from_bytes(std::vector<uint8_t> bytes)
{
    ResourceDescriptor d;
    d.m_bytes = std::move(bytes);
    return d;
}

ResourceDescriptor ResourceDescriptor::failed(std::string message)
{
    ResourceDescriptor d;
    d.m_error = message.empty() ? std::string("resource descriptor error") : std::move(message);
    return d;
}

namespace aml {

Result<std::vector<uint8_t>> encode_pkg_length(uint32_t value)
{
    if (value > max_pkg_length)
        return fail("PkgLength {:#x} exceeds the 28-bit maximum", value);
    if (value <= 0x3f)
        return std::vector<uint8_t> { static_cast<uint8_t>(value) };
    // Lead byte: bits 7:6 count the following bytes, bits 3:0 hold the low nibble; each following byte
    // holds the next eight bits.
    const uint8_t follow = value <= 0xfff ? 1 : value <= 0xfffff ? 2 : 3;
    std::vector<uint8_t> out;
    out.push_back(static_cast<uint8_t>((follow << 6) | (value & 0x0f)));
    for (uint8_t i = 0; i < follow; ++i)
        out.push_back(static_cast<uint8_t>(value >> (4 + 8 * i)));
    return out;
}

Result<std::vector<uint8_t>> with_pkg_length(std::span<const uint8_t> payload)
{
    if (payload.size() > max_pkg_length)
        return fail("object of {} bytes is too large for a PkgLength", payload.size());
    const auto size = static_cast<uint32_t>(payload.size());
    // The encoded length includes the PkgLength bytes: pick the smallest form that still fits.
    std::vector<uint8_t> out;
    for (uint32_t width = 1; width <= 4; ++width) {
        if (size + width > (width == 1 ? 0x3fu : width == 2 ? 0xfffu : width == 3 ? 0xfffffu : max_pkg_length))
            continue;
        out = TRY(encode_pkg_length(size + width));
        break;
    }
    if (out.empty())
        return fail("object of {} bytes is too large for a PkgLength", payload.size());
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

Aml name_string(std::string_view path)
{
    const std::string_view original = path;
    std::vector<uint8_t> out;
    if (!path.empty() && path.front() == '\\') {
        out.push_back(root_char);
        path.remove_prefix(1);
        if (path.empty()) {
            out.push_back(null_name);
            return Aml::from_bytes(std::move(out));
        }
    } else {
        while (!path.empty() && path.front() == '^') {
            out.push_back(parent_prefix_char);
            path.remove_prefix(1);
        }
    }
    if (path.empty())
        return Aml::failed(fmt::format("name '{}' has no name segment", original));

    std::vector<std::array<uint8_t, 4>> segments;
    size_t start = 0;
    while (true) {
        const size_t dot = path.find('.', start);
        const std::string_view seg = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (seg.empty() || seg.size() > 4)
            return Aml::failed(fmt::format("name '{}': segment '{}' must have 1 to 4 characters", original, seg));
        if (!is_lead_name_char(seg.front()))
            return Aml::failed(fmt::format("name '{}': segment '{}' must start with A-Z or _", original, seg));
        std::array<uint8_t, 4> encoded { '_', '_', '_', '_' };
        for (size_t i = 0; i < seg.size(); ++i) {
            if (!is_name_char(seg[i]))
                return Aml::failed(fmt::format("name '{}': invalid character in segment '{}'", original, seg));
            encoded[i] = static_cast<uint8_t>(seg[i]);
        }
        segments.push_back(encoded);
        if (dot == std::string_view::npos)
            break;
        start = dot + 1;
    }
    if (segments.size() > max_name_segments)
        return Aml::failed(fmt::format("name '{}' has more than {} segments", original, max_name_segments));

    if (segments.size() == 2) {
        out.push_back(dual_name_prefix);
    } else if (segments.size() > 2) {
        out.push_back(multi_name_prefix);
        out.push_back(static_cast<uint8_t>(segments.size()));
    }
    for (const auto& seg : segments)
        out.insert(out.end(), seg.begin(), seg.end());
    return Aml::from_bytes(std::move(out));
}

Aml integer(uint64_t value)
{
    std::vector<uint8_t> out;
    if (value == 0) {
        out.push_back(zero_op);
    } else if (value == 1) {
        out.push_back(one_op);
    } else if (value == ~uint64_t { 0 }) {
        out.push_back(ones_op);
    } else if (value <= 0xff) {
        out = { byte_prefix, static_cast<uint8_t>(value) };
    } else if (value <= 0xffff) {
        out.push_back(word_prefix);
        put_u16(out, static_cast<uint16_t>(value));
    } else if (value <= 0xffffffff) {
        out.push_back(dword_prefix);
        put_u32(out, static_cast<uint32_t>(value));
    } else {
        out.push_back(qword_prefix);
        put_u64(out, value);
    }
    return Aml::from_bytes(std::move(out));
}

Aml string(std::string_view text)
{
    std::vector<uint8_t> out { string_prefix };
    for (const char c : text) {
        const auto byte = static_cast<uint8_t>(c);
        if (byte == 0 || byte > 0x7f)
            return Aml::failed(fmt::format("string contains byte {:#04x} outside ASCII 0x01-0x7f", byte));
        out.push_back(byte);
    }
    out.push_back(0);
    return Aml::from_bytes(std::move(out));
}

Aml buffer(std::span<const uint8_t> data)
{
    std::vector<uint8_t> body = integer(data.size()).bytes();
    body.insert(body.end(), data.begin(), data.end());
    return with_length({ buffer_op }, body, "Buffer");
}

Aml package(const std::vector<Aml>& elements)
{
    if (auto error = first_error(elements))
        return Aml::failed(*error);
    if (elements.size() > 0xff)
        return Aml::failed(fmt::format("Package of {} elements exceeds 255", elements.size()));
    std::vector<uint8_t> body { static_cast<uint8_t>(elements.size()) };
    for (const Aml& element : elements)
        body.insert(body.end(), element.bytes().begin(), element.bytes().end());
    return with_length({ package_op }, body, "Package");
}

Aml name(std::string_view path, const Aml& value)
{
    Aml out = Aml::from_bytes({ name_op });
    out.append(name_string(path));
    out.append(value);
    return out;
}

Aml scope(std::string_view path, const std::vector<Aml>& terms)
{
    const Aml body = named_body(path, {}, terms);
    if (!body.ok())
        return body;
    return with_length({ scope_op }, body.bytes(), fmt::format("Scope ({})", path));
}

Aml device(std::string_view path, const std::vector<Aml>& terms)
{
    const Aml body = named_body(path, {}, terms);
    if (!body.ok())
        return body;
    return with_length({ ext_op_prefix, device_op }, body.bytes(), fmt::format("Device ({})", path));
}

Aml method(std::string_view path, uint8_t arg_count, bool serialized, const std::vector<Aml>& terms)
{
    if (arg_count > 7)
        return Aml::failed(fmt::format("Method ({}) has {} arguments, at most 7", path, arg_count));
    // MethodFlags: bits 2:0 ArgCount, bit 3 SerializeFlag, bits 7:4 SyncLevel (0).
    const std::array<uint8_t, 1> flags { static_cast<uint8_t>(arg_count | (serialized ? 0x08 : 0x00)) };
    const Aml body = named_body(path, flags, terms);
    if (!body.ok())
        return body;
    return with_length({ method_op }, body.bytes(), fmt::format("Method ({})", path));
}

Aml return_value(const Aml& value)
{
    Aml out = Aml::from_bytes({ return_op });
    out.append(value);
    return out;
}

Aml eisa_id(std::string_view id)
{
    bool valid = id.size() == 7;
    for (size_t i = 0; valid && i < 7; ++i)
        valid = i < 3 ? (id[i] >= 'A' && id[i] <= 'Z') : is_upper_hex(id[i]);
    if (!valid)
        return Aml::failed(fmt::format("EISAID '{}' must be three letters A-Z and four hex digits 0-9A-F", id));
    // Byte 0: bit 7 zero, bits 6:2 first letter, bits 1:0 top of the second letter; byte 1: bottom three bits
    // of the second letter, then the third letter; bytes 2 and 3: the hex digits in order. Letters are
    // compressed to five bits as (c - 0x40).
    const auto letter = [&](size_t i) { return static_cast<uint32_t>(id[i] - 0x40); };
    const uint32_t byte0 = (letter(0) << 2) | (letter(1) >> 3);
    const uint32_t byte1 = ((letter(1) & 0x7) << 5) | letter(2);
    const uint32_t byte2 = (uint32_t { hex_value(id[3]) } << 4) | hex_value(id[4]);
    const uint32_t byte3 = (uint32_t { hex_value(id[5]) } << 4) | hex_value(id[6]);
    return integer(byte0 | (byte1 << 8) | (byte2 << 16) | (byte3 << 24));
}

Aml resource_template(const std::vector<ResourceDescriptor>& descriptors)
{
    std::vector<uint8_t> data;
    for (const ResourceDescriptor& d : descriptors) {
        if (!d.ok())
            return Aml::failed(d.error());
        data.insert(data.end(), d.bytes().begin(), d.bytes().end());
    }
    data.push_back(small_end_tag);
    data.push_back(0); // checksum 0: the template is treated as valid
    return buffer(data);
}

ResourceDescriptor io(uint16_t base, uint8_t length, uint8_t alignment)
{
    if (length == 0)
        return ResourceDescriptor::failed(fmt::format("IO descriptor at {:#x} has length 0", base));
    if (base + length - 1 > 0xffff)
        return ResourceDescriptor::failed(fmt::format("IO range {:#x}+{:#x} exceeds 0xffff", base, length));
    std::vector<uint8_t> out { small_io_port, 0x01 }; // information: bit 0 set = 16-bit decode
    put_u16(out, base); // _MIN
    put_u16(out, base); // _MAX
    out.push_back(alignment); // _ALN
    out.push_back(length); // _LEN
    return ResourceDescriptor::from_bytes(std::move(out));
}

ResourceDescriptor irq(uint8_t irq_number)
{
    if (irq_number > 15)
        return ResourceDescriptor::failed(fmt::format("IRQ descriptor cannot hold IRQ {}", irq_number));
    std::vector<uint8_t> out { small_irq_no_flags };
    put_u16(out, static_cast<uint16_t>(1u << irq_number));
    return ResourceDescriptor::from_bytes(std::move(out));
}

ResourceDescriptor irq(uint8_t irq_number, IrqFlags flags)
{
    if (irq_number > 15)
        return ResourceDescriptor::failed(fmt::format("IRQ descriptor cannot hold IRQ {}", irq_number));
    std::vector<uint8_t> out { small_irq_with_flags };
    put_u16(out, static_cast<uint16_t>(1u << irq_number));
    // Information byte: bit 0 _HE (edge), bit 3 _LL (active low), bit 4 _SHR, bit 5 _WKC.
    out.push_back(irq_flag_bits(flags, 1u << 0, 1u << 3, 1u << 4, 1u << 5));
    return ResourceDescriptor::from_bytes(std::move(out));
}

ResourceDescriptor extended_interrupt(const std::vector<uint32_t>& interrupts, IrqFlags flags)
{
    if (interrupts.empty() || interrupts.size() > 0xff)
        return ResourceDescriptor::failed(
            fmt::format("Extended Interrupt descriptor needs 1 to 255 interrupts, not {}", interrupts.size()));
    std::vector<uint8_t> out { large_extended_interrupt };
    put_u16(out, static_cast<uint16_t>(2 + 4 * interrupts.size()));
    // Flags: bit 0 consumer, bit 1 _HE (edge), bit 2 _LL (active low), bit 3 _SHR, bit 4 _WKC.
    out.push_back(static_cast<uint8_t>(0x01 | irq_flag_bits(flags, 1u << 1, 1u << 2, 1u << 3, 1u << 4)));
    out.push_back(static_cast<uint8_t>(interrupts.size()));
    for (const uint32_t interrupt : interrupts)
        put_u32(out, interrupt);
    return ResourceDescriptor::from_bytes(std::move(out));
}

ResourceDescriptor dword_memory(const MemoryRange& range)
{
    if (auto error = check_memory_range(range, 0xffffffff))
        return ResourceDescriptor::failed("DWordMemory: " + *error);
    std::vector<uint8_t> out { large_dword_address_space };
    put_u16(out, 23); // bytes after the length field
    for (const uint8_t b : memory_address_space_flags(range))
        out.push_back(b);
    put_u32(out, 0); // _GRA
    put_u32(out, static_cast<uint32_t>(range.base)); // _MIN
    put_u32(out, static_cast<uint32_t>(range.base + range.length - 1)); // _MAX
    put_u32(out, 0); // _TRA
    put_u32(out, static_cast<uint32_t>(range.length)); // _LEN
    return ResourceDescriptor::from_bytes(std::move(out));
}

ResourceDescriptor qword_memory(const MemoryRange& range)
{
    if (auto error = check_memory_range(range, ~uint64_t { 0 }))
        return ResourceDescriptor::failed("QWordMemory: " + *error);
    std::vector<uint8_t> out { large_qword_address_space };
    put_u16(out, 43); // bytes after the length field
    for (const uint8_t b : memory_address_space_flags(range))
        out.push_back(b);
    put_u64(out, 0); // _GRA
    put_u64(out, range.base); // _MIN
    put_u64(out, range.base + range.length - 1); // _MAX
    put_u64(out, 0); // _TRA
    put_u64(out, range.length); // _LEN
    return ResourceDescriptor::from_bytes(std::move(out));
}

} // namespace aml
} // namespace vmgen::vm::acpi
