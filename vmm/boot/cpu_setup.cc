#include "vmm/boot/cpu_setup.h"

#include "vmm/boot/layout.h"

#include <array>

namespace vmgen::vmm {

namespace {

constexpr uint64_t page_size = 4096;
constexpr uint64_t entries_per_table = 512;
constexpr uint64_t large_page = 2ull << 20;
constexpr uint64_t pml4 = layout::page_tables;
constexpr uint64_t pdpt = pml4 + page_size;
constexpr uint64_t first_pd = pdpt + page_size;
constexpr uint64_t pd_count = identity_map_end >> 30; // one page directory per GiB
static_assert(first_pd + pd_count * page_size <= layout::page_tables_end);
static_assert(boot_stack_top <= layout::page_tables && boot_stack_top - page_size >= layout::boot_params + 4096);

FlatSegment code_segment(bool long_mode)
{
    FlatSegment s;
    s.selector = boot_code_selector;
    s.type = 0xb; // execute/read, accessed
    s.code = true;
    s.long_mode = long_mode;
    s.default_32 = !long_mode; // L=1 requires D=0
    return s;
}

FlatSegment data_segment()
{
    FlatSegment s;
    s.selector = boot_data_selector;
    s.type = 0x3; // read/write, accessed
    s.code = false;
    s.default_32 = true;
    return s;
}

Result<void> write_gdt(const vm::GuestMemory& memory, const FlatSegment& code, const FlatSegment& data)
{
    std::array<uint64_t, boot_gdt_entries> gdt{};
    gdt[boot_code_selector / 8] = gdt_descriptor(code);
    gdt[boot_data_selector / 8] = gdt_descriptor(data);
    TRY_CTX(memory.write_obj(layout::gdt, gdt), "writing the boot GDT");
    return {};
}

EntryState base_state(const FlatSegment& code, const FlatSegment& data)
{
    EntryState state;
    state.code = code;
    state.data = data;
    state.gdt_base = layout::gdt;
    state.gdt_limit = boot_gdt_entries * 8 - 1;
    state.rsp = boot_stack_top;
    return state;
}

} // namespace

uint64_t gdt_descriptor(const FlatSegment& segment)
{
    // Limit 0xfffff pages with G=1 gives 4 GiB; base 0 (flat).
    uint64_t limit_pages = segment.limit >> 12;
    uint64_t d = 0;
    d |= limit_pages & 0xffff;
    d |= (limit_pages >> 16 & 0xf) << 48;
    d |= (segment.base & 0xffffff) << 16;
    d |= (segment.base >> 24 & 0xff) << 56;
    d |= uint64_t{segment.type} << 40;
    d |= uint64_t{1} << 44; // S: code/data
    d |= uint64_t{1} << 47; // P
    d |= uint64_t{segment.long_mode ? 1u : 0u} << 53;
    d |= uint64_t{segment.default_32 ? 1u : 0u} << 54;
    d |= uint64_t{1} << 55; // G: 4 KiB granularity
    return d;
}

Result<EntryState> protected32_entry(const vm::GuestMemory& memory, uint64_t rip, uint64_t rbx)
{
    FlatSegment code = code_segment(false);
    FlatSegment data = data_segment();
    TRY(write_gdt(memory, code, data));
    EntryState state = base_state(code, data);
    state.mode = EntryState::Mode::Protected32;
    state.rip = rip;
    state.rbx = rbx;
    state.cr0 = cr0_pe | cr0_et;
    return state;
}

Result<EntryState> long64_entry(const vm::GuestMemory& memory, uint64_t rip, uint64_t rsi)
{
    FlatSegment code = code_segment(true);
    FlatSegment data = data_segment();
    TRY(write_gdt(memory, code, data));

    std::array<uint64_t, entries_per_table> table{};
    table[0] = pdpt | pte_present | pte_writable;
    TRY_CTX(memory.write_obj(pml4, table), "writing the boot PML4");
    table = {};
    for (uint64_t i = 0; i < pd_count; ++i)
        table[i] = (first_pd + i * page_size) | pte_present | pte_writable;
    TRY_CTX(memory.write_obj(pdpt, table), "writing the boot PDPT");
    for (uint64_t i = 0; i < pd_count; ++i) {
        for (uint64_t j = 0; j < entries_per_table; ++j)
            table[j] = ((i * entries_per_table + j) * large_page) | pte_present | pte_writable | pte_large;
        TRY_CTX(memory.write_obj(first_pd + i * page_size, table), "writing the boot page directory {}", i);
    }

    EntryState state = base_state(code, data);
    state.mode = EntryState::Mode::Long64;
    state.rip = rip;
    state.rsi = rsi;
    state.cr0 = cr0_pe | cr0_et | cr0_pg;
    state.cr3 = pml4;
    state.cr4 = cr4_pae;
    state.efer = efer_lme | efer_lma;
    return state;
}

} // namespace vmgen::vmm
