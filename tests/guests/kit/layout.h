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

#define KIT_MAX_CPUS 256
#define KIT_BSP_STACK_SIZE 0x10000
#define KIT_USER_STACK_SIZE 0x10000
#define KIT_AP_STACK_SIZE 0x1000
