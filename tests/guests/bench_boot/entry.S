/* bench_boot: the PVH entry point of the boot benchmark guest (bench/boot_bench.cc). Its very first
 * instruction sequence writes '<' to the COM1 transmit register, so that the byte's arrival on the VMM's
 * serial output marks "first guest instruction"; then it continues into the kit's normal entry (_start in
 * kit/entry.S). Registers the kit needs (EBX = hvm_start_info) are left untouched; EAX and EDX are free at
 * PVH entry. The note below is this image's only PVH note: bench_boot/linker.ld drops the kit's. */
    .section .note.bench_boot, "a"
    .p2align 2
    .long 4, 4, 18              /* name size, desc size, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long bench_boot_start

    .section .text.bench_entry, "ax"
    .code32
    .globl bench_boot_start
bench_boot_start:
    mov $0x3f8, %dx             /* COM1 THR */
    mov $'<', %al
    out %al, (%dx)
    jmp _start

    .section .note.GNU-stack, "", @progbits
