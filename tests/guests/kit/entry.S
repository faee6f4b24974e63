/* Test-guest kit: PVH entry, Linux 64-bit entry, long-mode switch, AP trampoline, GDT, page tables, trap
 * stubs and the ring-0 <-> ring-3 switch. The selectors, sizes and offsets are mirrored in layout.h.
 *
 * Two ways in, one way on: the 32-bit PVH entry (_start) switches to long mode itself; the Linux 64-bit
 * entry (kit_linux_entry64, bzImage guests only) arrives in long mode on the loader's GDT and page tables.
 * Both continue at kit_long_mode with RDI = boot protocol (KIT_BOOT_*), RSI = its boot information and
 * EBP = 0, and end in kit_entry(protocol, info). */
#include "kit/layout.h"

/* ---- PVH ELF note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), desc = 32-bit entry point ---- */
    .section .note.xen, "a"
    .p2align 2
    .long 4, 4, 18
    .asciz "Xen"
    .long _start

/* ---- entry: 32-bit protected mode, paging off, EBX = hvm_start_info ---- */
    .section .text.entry, "ax"
    .code32
    .globl _start
_start:
    cli
    cld
    mov %ebx, %esi              /* start info, kept until guest_main */
    lgdt gdt_ptr
    xor %ebp, %ebp              /* EBP = 0: bootstrap processor */
    jmp enable_long_mode

    /* APs arrive here from the real-mode trampoline, in protected mode with the kit GDT loaded. */
    .globl kit_ap_entry32
kit_ap_entry32:
    mov $KIT_KERNEL_DS, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %ebp                /* EBP = 1: application processor */
enable_long_mode:
    mov $kit_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx       /* EFER */
    rdmsr
    or $0x100, %eax             /* LME */
    wrmsr
    mov %cr0, %eax
    and $0x9fffffff, %eax       /* caches on (an AP starts with CD/NW set) */
    or $0x80000001, %eax        /* PG, PE */
    mov %eax, %cr0
    ljmp $KIT_KERNEL_CS, $long_mode

    .code64
long_mode:
    mov %esi, %esi              /* boot information: zero-extended (upper halves are undefined here) */
    mov $KIT_BOOT_PVH, %edi
    /* Shared long-mode part: kit GDT, page tables and CS already in place; RDI = protocol, RSI = boot
     * information, EBP = 0 (bootstrap processor) or 1 (application processor). */
kit_long_mode:
    mov $KIT_KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    test %ebp, %ebp
    jnz 1f
    mov $bsp_stack_top, %rsp
    call kit_entry
    jmp kit_halt
1:  mov $KIT_AP_STACK_SIZE, %rax
    lock xadd %rax, ap_stack_next(%rip)
    mov %rax, %rsp
    call kit_ap_main
    .globl kit_halt
kit_halt:
    cli
    hlt
    jmp kit_halt

/* ---- Linux/x86 64-bit boot protocol (boot.rst "64-bit Boot Protocol"): long mode, paging on with an
 *      identity map, the loader's GDT (__BOOT_CS 0x10, __BOOT_DS 0x18), RSI = boot_params (zero page).
 *      A bzImage guest's linker script (linker_bzimage.ld) puts .text.linux64 at load address + 0x200 and
 *      .text.linux32 at the load address. Records the state the loader handed over in
 *      kit_linux_entry_state, then moves to the kit GDT, page tables and stack. ---- */
    .section .text.linux32, "ax"
    .code32
    .globl kit_linux_entry32
kit_linux_entry32:              /* the 32-bit entry (code32_start) is not supported: halt */
    cli
    hlt
    jmp kit_linux_entry32

    .section .text.linux64, "ax"
    .code64
    .globl kit_linux_entry64
kit_linux_entry64:
    mov %rsp, kit_linux_entry_state + KIT_LES_RSP(%rip)
    lea bsp_stack_top(%rip), %rsp /* no stack is promised by the protocol: use ours from here on */
    pushfq
    popq kit_linux_entry_state + KIT_LES_RFLAGS(%rip)
    cli
    cld
    lea kit_linux_entry64(%rip), %rax /* where we run (the link address is $kit_linux_entry64) */
    mov %rax, kit_linux_entry_state + KIT_LES_RIP(%rip)
    movw %cs, kit_linux_entry_state + KIT_LES_CS(%rip)
    movw %ds, kit_linux_entry_state + KIT_LES_DS(%rip)
    movw %es, kit_linux_entry_state + KIT_LES_ES(%rip)
    movw %ss, kit_linux_entry_state + KIT_LES_SS(%rip)
    mov %cr0, %rax
    mov %rax, kit_linux_entry_state + KIT_LES_CR0(%rip)
    mov %cr3, %rax
    mov %rax, kit_linux_entry_state + KIT_LES_CR3(%rip)
    mov %cr4, %rax
    mov %rax, kit_linux_entry_state + KIT_LES_CR4(%rip)
    mov %rsi, %rbx              /* boot_params: rdmsr clobbers only RAX, RDX */
    mov $0xc0000080, %ecx       /* EFER */
    rdmsr
    mov %eax, kit_linux_entry_state + KIT_LES_EFER(%rip)
    mov %edx, kit_linux_entry_state + KIT_LES_EFER + 4(%rip)
    sgdt kit_linux_entry_state + KIT_LES_GDT(%rip)
    lgdt gdt_ptr(%rip)
    mov $kit_pml4, %eax
    mov %rax, %cr3
    pushq $KIT_KERNEL_CS        /* reload CS from the kit GDT */
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov %rbx, %rsi
    mov $KIT_BOOT_LINUX64, %edi
    xor %ebp, %ebp
    jmp kit_long_mode

/* ---- AP trampoline: copied to KIT_TRAMPOLINE_BASE, started by SIPI in real mode (CS = base >> 4) ---- */
    .section .text
    .code16
    .globl kit_trampoline_start, kit_trampoline_end
kit_trampoline_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl KIT_TRAMPOLINE_BASE + (trampoline_gdt_ptr - kit_trampoline_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $KIT_CODE32, $kit_ap_entry32
    .p2align 2
trampoline_gdt_ptr:
    .word kit_gdt_end - kit_gdt - 1
    .long kit_gdt
kit_trampoline_end:
    .code64

/* ---- exception stubs: push (error code, vector), call kit_exception(frame) which does not return ---- */
    .macro EXC vec, has_error
exc_\vec:
    .if \has_error == 0
    pushq $0
    .endif
    pushq $\vec
    jmp exc_common
    .endm

    EXC 0,0
    EXC 1,0
    EXC 2,0
    EXC 3,0
    EXC 4,0
    EXC 5,0
    /* #UD: also the ring-3 return path on hypervisors that turn a ring-3 `int n` into #UD. */
exc_6:
    cmpq $ring3_gate_site, (%rsp)
    je ring3_gate
    cmpq $ring3_return_site, (%rsp)
    je kit_ring3_return
    cmpq $ring3_ud2_site, (%rsp)
    je kit_ring3_return
    pushq $0
    pushq $6
    jmp exc_common
    EXC 7,0
    EXC 8,1
    EXC 9,0
    EXC 10,1
    EXC 11,1
    EXC 12,1
    EXC 13,1
    EXC 14,1
    EXC 15,0
    EXC 16,0
    EXC 17,1
    EXC 18,0
    EXC 19,0
    EXC 20,0
    EXC 21,1
    EXC 22,0
    EXC 23,0
    EXC 24,0
    EXC 25,0
    EXC 26,0
    EXC 27,0
    EXC 28,0
    EXC 29,1
    EXC 30,1
    EXC 31,0

exc_common:
    mov $KIT_KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %rsp, %rdi              /* frame: vector, error, rip, cs, rflags, rsp, ss */
    and $-16, %rsp
    call kit_exception
    jmp kit_halt

    .section .rodata
    .p2align 3
    .globl kit_exception_stubs
kit_exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_\v
    .endr

/* ---- interrupt stubs, vectors 32-255, KIT_INTERRUPT_STUB_SIZE bytes each: push the vector, then
 *      kit_interrupt(vector) with the caller-saved registers kept. Ring 0 only (kernel data segments). */
    .section .text
    .balign KIT_INTERRUPT_STUB_SIZE
    .globl kit_interrupt_stubs
kit_interrupt_stubs:
    .set vec, 32
    .rept 224
    .balign KIT_INTERRUPT_STUB_SIZE
    pushq $vec
    jmp interrupt_common
    .set vec, vec + 1
    .endr

interrupt_common:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbp
    mov %rsp, %rbp
    mov 80(%rsp), %rdi          /* the vector the stub pushed */
    and $-16, %rsp
    cld
    call kit_interrupt
    mov %rbp, %rsp
    pop %rbp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $8, %rsp                /* the vector */
    iretq

/* ---- ring 3: kit_run_in_ring3(fn, arg) runs fn(arg) at CPL 3 with IOPL 3; fn's return traps back
 *      through vector KIT_RING3_RETURN_VECTOR (or #UD where the hypervisor refuses `int n` in ring 3),
 *      which resumes the caller of kit_run_in_ring3 on its own stack. ---- */
    .section .text
    .globl kit_run_in_ring3
kit_run_in_ring3:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, ring3_saved_rsp(%rip)
    mov %rsp, kit_tss+4(%rip)   /* TSS.RSP0: where the return trap lands */
    pushq $(KIT_USER_DS | 3)
    mov $user_stack_top, %rax
    push %rax
    pushq $0x3002               /* RFLAGS: IOPL 3, interrupts off */
    pushq $(KIT_USER_CS | 3)
    lea ring3_start(%rip), %rax
    push %rax
    mov %rdi, %rax
    mov %rsi, %rdi
    iretq
ring3_start:
    call *%rax
ring3_return_site:
    int $KIT_RING3_RETURN_VECTOR
ring3_ud2_site:
    ud2                         /* also returns (see exc_6) */

/* ---- ring-3 gate: kit_ring3_call(nr, a, b, c) (an ordinary SysV function) executes `ud2` at
 *      ring3_gate_site; exc_6 recognises the address and comes here on the ring-0 stack (TSS.RSP0) with the
 *      frame {rip, cs, rflags, rsp, ss} and the caller's argument registers untouched. The handler runs with
 *      interrupts off; its result goes back in RAX, and iretq resumes after the ud2 (at the `ret`). The
 *      caller-saved registers are the caller's to lose (it made a function call), the callee-saved ones are
 *      kept by the C++ handler. Works from ring 0 as well (then it is just a slow call). ---- */
    .globl kit_ring3_call
kit_ring3_call:
ring3_gate_site:
    ud2
    ret

ring3_gate:
    sub $8, %rsp                /* the 5-quadword frame leaves RSP 8 off a 16-byte boundary */
    call kit_ring3_gate_dispatch
    add $8, %rsp
    addq $2, (%rsp)             /* past the ud2 */
    iretq

    .globl kit_ring3_return
kit_ring3_return:
    mov ring3_saved_rsp(%rip), %rsp
    mov $KIT_KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

/* ---- data ---- */
    .section .data
    .p2align 4
    .globl kit_gdt, kit_gdt_end, kit_gdt_ptr
kit_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
    .quad 0x00cf92000000ffff    /* 0x10 kernel data */
    .quad 0x00affa000000ffff    /* 0x18 user code, 64-bit, DPL 3 */
    .quad 0x00cff2000000ffff    /* 0x20 user data, DPL 3 */
    .quad 0, 0                  /* 0x28 TSS, filled in by traps_init() */
    .quad 0x00cf9a000000ffff    /* 0x38 kernel code, 32-bit (AP trampoline) */
kit_gdt_end:
    .p2align 3
gdt_ptr:
    .word kit_gdt_end - kit_gdt - 1
    .quad kit_gdt

    .p2align 3
ap_stack_next:
    .quad ap_stacks + KIT_AP_STACK_SIZE
ring3_saved_rsp:
    .quad 0

    .p2align 3
    .globl kit_linux_entry_state
kit_linux_entry_state:          /* struct LinuxEntryState (kit.h), offsets KIT_LES_* */
    .fill KIT_LES_SIZE, 1, 0

/* Identity map of the low 4 GiB with 2 MiB pages, user accessible; 0xfe000000 and up (I/O APIC, local
 * APIC) uncached. Built by the assembler: no boot-time work. */
    .section .data.page_tables, "aw"
    .p2align 12
    .globl kit_pml4
kit_pml4:
    .quad kit_pdpt + 0x7
    .fill 511, 8, 0
kit_pdpt:
    .quad kit_pd + 0x0007
    .quad kit_pd + 0x1007
    .quad kit_pd + 0x2007
    .quad kit_pd + 0x3007
    .fill 508, 8, 0
kit_pd:
    .set addr, 0
    .rept 2048
    .if addr >= 0xfe000000
    .quad addr + 0x9f           /* P RW US PWT PCD PS */
    .else
    .quad addr + 0x87           /* P RW US PS */
    .endif
    .set addr, addr + 0x200000
    .endr

/* Stacks: not loaded, never need to be zero. */
    .section .stack, "aw", @nobits
    .p2align 12
    .space KIT_BSP_STACK_SIZE
bsp_stack_top:
    .space KIT_USER_STACK_SIZE
user_stack_top:
    .globl ap_stacks
ap_stacks:
    .space KIT_AP_STACK_SIZE * KIT_MAX_CPUS

    .section .note.GNU-stack, "", @progbits
