// Test-guest kit: everything a test guest includes. A guest defines guest_main(); the kit's entry
// (entry.S, kit_entry) has already set up long mode, COM1, the IDT and the TSS when it is called.
// PVH guests (<name>.elf) get the hvm_start_info; bzImage guests (<name>.bzImage, entered through the
// Linux 64-bit boot protocol) get nullptr and read linux_boot_params() instead.
//
//   extern "C" void guest_main(const kit::StartInfo*)
//   {
//       kit::line("hello from cpu %u", kit::apic_id());
//       kit::finish(true);
//   }
//
// Output protocol: every line starts with "vmgen-guest: "; a guest ends with "vmgen-guest: result PASS"
// or "vmgen-guest: result FAIL <reason>" and then powers off through ACPI.
#pragma once

#include "kit/acpi.h"
#include "kit/apic.h"
#include "kit/cpu.h"
#include "kit/serial.h"
#include "kit/smp.h"
#include "kit/traps.h"
#include "kit/layout.h"
#include "protocols/boot/linux_boot.h"
#include "protocols/boot/pvh.h"

#include <cstddef>

namespace kit {

using StartInfo = vmgen::protocols::pvh::StartInfo;

enum class BootProtocol : uint32_t {
    pvh = KIT_BOOT_PVH,         // 32-bit PVH entry (ELF note), EBX = hvm_start_info
    linux64 = KIT_BOOT_LINUX64, // Linux boot protocol, 64-bit entry at load address + 0x200, RSI = boot_params
};
BootProtocol boot_protocol();

// The zero page the loader passed to the Linux 64-bit entry; nullptr after a PVH boot.
const vmgen::protocols::linux_boot::BootParams* linux_boot_params();

// The processor state the Linux 64-bit entry found, recorded before the kit changes anything (entry.S).
struct LinuxEntryState {
    uint64_t rip; // the entry's run-time address
    uint64_t rsp;
    uint64_t rflags;
    uint64_t cs, ds, es, ss; // selectors
    uint64_t cr0, cr3, cr4;
    uint64_t efer;
    uint16_t gdt_limit; // the loader's GDT (sgdt)
    uint64_t gdt_base;
    uint8_t pad[6];
} __attribute__((packed));
static_assert(sizeof(LinuxEntryState) == KIT_LES_SIZE);
static_assert(offsetof(LinuxEntryState, rip) == KIT_LES_RIP);
static_assert(offsetof(LinuxEntryState, rsp) == KIT_LES_RSP);
static_assert(offsetof(LinuxEntryState, rflags) == KIT_LES_RFLAGS);
static_assert(offsetof(LinuxEntryState, cs) == KIT_LES_CS);
static_assert(offsetof(LinuxEntryState, ds) == KIT_LES_DS);
static_assert(offsetof(LinuxEntryState, es) == KIT_LES_ES);
static_assert(offsetof(LinuxEntryState, ss) == KIT_LES_SS);
static_assert(offsetof(LinuxEntryState, cr0) == KIT_LES_CR0);
static_assert(offsetof(LinuxEntryState, cr3) == KIT_LES_CR3);
static_assert(offsetof(LinuxEntryState, cr4) == KIT_LES_CR4);
static_assert(offsetof(LinuxEntryState, efer) == KIT_LES_EFER);
static_assert(offsetof(LinuxEntryState, gdt_limit) == KIT_LES_GDT);
const LinuxEntryState& linux_entry_state();

// Prints the result line and powers off (never returns).
[[noreturn]] void finish(bool pass, const char* reason = nullptr);

} // namespace kit

// start_info: the PVH start info, nullptr when booted through the Linux boot protocol.
extern "C" void guest_main(const kit::StartInfo* start_info);
// The Linux 64-bit entry point (entry.S); its link address is where a bzImage guest must be loaded + 0x200.
extern "C" void kit_linux_entry64();
