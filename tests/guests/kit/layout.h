/* Test-guest kit: fixed selectors, addresses and sizes shared by entry.S and the C++ code. */
#pragma once

#define KIT_KERNEL_CS 0x08
#define KIT_KERNEL_DS 0x10
#define KIT_USER_CS 0x18
#define KIT_USER_DS 0x20
#define KIT_TSS 0x28
#define KIT_CODE32 0x38

#define KIT_TRAMPOLINE_BASE 0x8000 /* SIPI vector 0x08 */
#define KIT_RING3_RETURN_VECTOR 0x80
#define KIT_INTERRUPT_STUB_SIZE 16 /* entry.S: one stub per vector 32-255 */

#define KIT_MAX_CPUS 256
#define KIT_BSP_STACK_SIZE 0x10000
#define KIT_USER_STACK_SIZE 0x10000
#define KIT_AP_STACK_SIZE 0x1000

/* Boot protocols (kit_entry's first argument). */
#define KIT_BOOT_PVH 0     /* 32-bit PVH entry, RSI = hvm_start_info */
#define KIT_BOOT_LINUX64 1 /* Linux 64-bit entry, RSI = boot_params */

/* kit_linux_entry_state (kit::LinuxEntryState): what the Linux 64-bit entry found. */
#define KIT_LES_RIP 0
#define KIT_LES_RSP 8
#define KIT_LES_RFLAGS 16
#define KIT_LES_CS 24
#define KIT_LES_DS 32
#define KIT_LES_ES 40
#define KIT_LES_SS 48
#define KIT_LES_CR0 56
#define KIT_LES_CR3 64
#define KIT_LES_CR4 72
#define KIT_LES_EFER 80
#define KIT_LES_GDT 88 /* sgdt: limit (2 bytes), base (8 bytes) */
#define KIT_LES_SIZE 104
