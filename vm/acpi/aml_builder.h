// A small ACPI Machine Language encoder (ACPI Specification 6.5, chapter 20 "ACPI Machine Language
// Specification", and §6.4 "Resource Data Types for ACPI").
//
// Every builder returns an `Aml` value holding encoded bytes; composite terms (scope, device, method,
// package, buffer) encode their children and prefix a PkgLength. Construction reads like ASL:
//
//   using namespace vmgen::vm::acpi::aml;
//   device("COM1", {name("_HID", eisa_id("PNP0501")),
//                   name("_UID", integer(1)),
//                   name("_CRS", resource_template({io(0x3f8, 8), irq(4)}))});
//
// Mistakes (an invalid name segment, a non-ASCII string, a package past 255 elements) do not throw: the
// value carries the first error and every term built from it inherits it, so the caller checks once, with
// `Aml::finish()`, when the definition block is assembled.
#pragma once

#include "support/result.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::vm::acpi {

class Aml {
public:
    Aml() = default;
    static Aml from_bytes(std::vector<uint8_t> bytes);
    static Aml failed(std::string message);

    [[nodiscard]] bool ok() const { return m_error.empty(); }
    [[nodiscard]] const std::string& error() const { return m_error; }
    [[nodiscard]] const std::vector<uint8_t>& bytes() const { return m_bytes; }

    // Appends `other` after this one; an error in either is kept (the first one wins).
    void append(const Aml& other);

    // The encoded bytes, or the first error met while building.
    [[nodiscard]] Result<std::vector<uint8_t>> finish() const;

private:
    std::vector<uint8_t> m_bytes;
    std::string m_error;
};

// One resource descriptor (§6.4) for a resource template; the end tag is added by resource_template().
class ResourceDescriptor {
public:
    static ResourceDescriptor from_bytes(std::vector<uint8_t> bytes);
    static ResourceDescriptor failed(std::string message);

    [[nodiscard]] bool ok() const { return m_error.empty(); }
    [[nodiscard]] const std::string& error() const { return m_error; }
    [[nodiscard]] const std::vector<uint8_t>& bytes() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
    std::string m_error;
};

namespace aml {

// PkgLength (§20.2.4) encoding `value`, which counts the PkgLength bytes themselves: one byte up to 63,
// then 2, 3 or 4 bytes up to 2^12-1, 2^20-1 and 2^28-1. Fails above 2^28-1.
Result<std::vector<uint8_t>> encode_pkg_length(uint32_t value);

// PkgLength followed by `payload`, the length chosen so that it covers its own encoding.
Result<std::vector<uint8_t>> with_pkg_length(std::span<const uint8_t> payload);

// NameString (§20.2.2): an optional root prefix `\` or parent prefixes `^`, then dot-separated segments of
// up to four characters ([A-Z_][A-Z0-9_]*), padded with `_` to four. A lone `\` is the root (NullName).
// One segment encodes as a NameSeg, two as a DualNamePath, more as a MultiNamePath.
Aml name_string(std::string_view path);

// Integer data (§20.2.3): Zero, One and Ones opcodes, else the smallest of BytePrefix, WordPrefix,
// DWordPrefix and QWordPrefix that holds it. Ones is 64-bit all-ones (definition blocks of revision 2).
Aml integer(uint64_t value);

// String (§20.2.3): StringPrefix, ASCII characters 0x01-0x7F, NUL terminator.
Aml string(std::string_view text);

// DefBuffer (§20.2.5.4) with a constant size and contents.
Aml buffer(std::span<const uint8_t> data);

// DefPackage (§20.2.5.4): at most 255 elements (integers, strings, buffers, packages or name strings).
Aml package(const std::vector<Aml>& elements);

// DefName (§20.2.5.1): Name (path, value).
Aml name(std::string_view path, const Aml& value);

// DefScope (§20.2.5.1): Scope (path) { terms }.
Aml scope(std::string_view path, const std::vector<Aml>& terms);

// DefDevice (§20.2.5.2): Device (path) { terms }.
Aml device(std::string_view path, const std::vector<Aml>& terms);

// DefMethod (§20.2.5.2): Method (path, arg_count, Serialized|NotSerialized) { terms }. Sync level 0.
Aml method(std::string_view path, uint8_t arg_count, bool serialized, const std::vector<Aml>& terms);

// DefReturn (§20.2.5.3): Return (value).
Aml return_value(const Aml& value);

// EISAID (§19.6.35): "PNP0501" (three upper-case letters, four hex digits) compressed into a 32-bit
// integer, encoded like any integer (so "PNP0000", 0x0000D041, takes a WordPrefix, as iasl emits it).
Aml eisa_id(std::string_view id);

// ResourceTemplate (§19.6.117): a buffer holding the descriptors and an end tag (§6.4.2.9) whose checksum
// byte is 0 ("treat as valid").
Aml resource_template(const std::vector<ResourceDescriptor>& descriptors);

// I/O Port Descriptor (§6.4.2.5), 16-bit decode, fixed base: IO (Decode16, base, base, alignment, length).
ResourceDescriptor io(uint16_t base, uint8_t length, uint8_t alignment = 1);

enum class Trigger : uint8_t { Edge, Level };
enum class Polarity : uint8_t { ActiveHigh, ActiveLow };
enum class Sharing : uint8_t { Exclusive, Shared };

struct IrqFlags {
    Trigger trigger = Trigger::Edge;
    Polarity polarity = Polarity::ActiveHigh;
    Sharing sharing = Sharing::Exclusive;
    bool wake_capable = false;
};

// IRQ Descriptor (§6.4.2.1) for one IRQ 0-15. Without flags the two-byte form (IRQNoFlags: edge,
// active-high, exclusive); with flags the three-byte form.
ResourceDescriptor irq(uint8_t irq_number);
ResourceDescriptor irq(uint8_t irq_number, IrqFlags flags);

// Extended Interrupt Descriptor (§6.4.3.6), ResourceConsumer, without a resource source; 1-255 interrupts.
ResourceDescriptor extended_interrupt(const std::vector<uint32_t>& interrupts, IrqFlags flags);

enum class Cacheability : uint8_t { NonCacheable = 0, Cacheable = 1, WriteCombining = 2, Prefetchable = 3 };
enum class ResourceUsage : uint8_t { Producer, Consumer };

// A memory range [base, base + length) for the address space descriptors; MinFixed and MaxFixed,
// positive decode, AddressRangeMemory, TypeStatic, no translation, granularity 0.
struct MemoryRange {
    uint64_t base = 0;
    uint64_t length = 0;
    ResourceUsage usage = ResourceUsage::Consumer;
    Cacheability cacheability = Cacheability::NonCacheable;
    bool read_write = true;
};

// DWord Address Space Descriptor (§6.4.3.5.2) of resource type memory; the range must lie below 4 GiB.
ResourceDescriptor dword_memory(const MemoryRange& range);
// QWord Address Space Descriptor (§6.4.3.5.1) of resource type memory.
ResourceDescriptor qword_memory(const MemoryRange& range);

} // namespace aml
} // namespace vmgen::vm::acpi
