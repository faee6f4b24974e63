#include "hv/kvm.h"

#include "support/errno_error.h"
#include "support/log.h"

#include <linux/kvm.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/ioctl.h>
#include <sys/mman.h>

namespace vmgen::hv {

namespace {

// ioctl that retries on EINTR (never for KVM_RUN, where EINTR is a kick).
template <typename... Args>
int retrying_ioctl(int fd, unsigned long request, Args... args)
{
    int r;
    do {
        r = ::ioctl(fd, request, args...);
    } while (r < 0 && errno == EINTR);
    return r;
}

kvm_segment to_kvm(const Segment& s)
{
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present ? 1 : 0;
    k.dpl = s.dpl;
    k.db = s.db ? 1 : 0;
    k.s = s.s ? 1 : 0;
    k.l = s.l ? 1 : 0;
    k.g = s.g ? 1 : 0;
    k.unusable = s.unusable ? 1 : 0;
    return k;
}

Segment from_kvm(const kvm_segment& k)
{
    Segment s;
    s.base = k.base;
    s.limit = k.limit;
    s.selector = k.selector;
    s.type = k.type;
    s.present = k.present != 0;
    s.dpl = k.dpl;
    s.db = k.db != 0;
    s.s = k.s != 0;
    s.l = k.l != 0;
    s.g = k.g != 0;
    s.unusable = k.unusable != 0;
    return s;
}

kvm_run* run_page(void* p) { return static_cast<kvm_run*>(p); }

// Debian 12's <linux/kvm.h> declares the variable-length ioctl structures with __DECLARE_FLEX_ARRAY, which
// in C++ adds an empty member: sizeof and the offset of the entries differ from the kernel ABI (and so do
// the ioctl numbers, which encode the size). We use the ABI layout: an 8-byte header, entries from offset 8.
struct VarHeader {
    uint32_t count;
    uint32_t padding_or_flags;
};
static_assert(sizeof(VarHeader) == 8);
constexpr unsigned long ioctl_get_supported_cpuid = _IOWR(KVMIO, 0x05, VarHeader);
constexpr unsigned long ioctl_set_cpuid2 = _IOW(KVMIO, 0x90, VarHeader);
constexpr unsigned long ioctl_set_msrs = _IOW(KVMIO, 0x89, VarHeader);
constexpr unsigned long ioctl_get_msrs = _IOWR(KVMIO, 0x88, VarHeader);
constexpr unsigned long ioctl_set_gsi_routing = _IOW(KVMIO, 0x6a, VarHeader);

// A buffer holding a VarHeader followed by `count` entries of type Entry.
template <typename Entry>
class VarBuffer {
public:
    explicit VarBuffer(size_t count) : m_bytes(std::make_unique<uint8_t[]>(sizeof(VarHeader) + count * sizeof(Entry)))
    {
        header()->count = static_cast<uint32_t>(count);
    }
    VarHeader* header() { return reinterpret_cast<VarHeader*>(m_bytes.get()); }
    Entry* entries() { return reinterpret_cast<Entry*>(m_bytes.get() + sizeof(VarHeader)); }
    void* data() { return m_bytes.get(); }

private:
    std::unique_ptr<uint8_t[]> m_bytes;
};

} // namespace

int kick_signal() { return SIGRTMIN; }

void install_kick_signal()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa{};
        sa.sa_handler = [](int) {};
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART: a blocked KVM_RUN must return EINTR
        ::sigaction(kick_signal(), &sa, nullptr);
    });
}

// ---- Kvm ----

Result<Kvm> Kvm::open(const char* path)
{
    UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
    if (!fd.valid())
        return errno_failure(fmt::format("opening {} (is KVM available and accessible to this user?)", path));
    int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return fail("{}: unsupported KVM API version {}", path, version);
    int run_size = ::ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0)
        return errno_failure("KVM_GET_VCPU_MMAP_SIZE");

    constexpr int required[] = {KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_EXT_CPUID, KVM_CAP_SIGNAL_MSI,
                                KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SPLIT_IRQCHIP, KVM_CAP_IRQ_ROUTING};
    constexpr const char* required_names[] = {"IRQCHIP", "USER_MEMORY", "EXT_CPUID", "SIGNAL_MSI",
                                              "IMMEDIATE_EXIT", "SPLIT_IRQCHIP", "IRQ_ROUTING"};
    for (size_t i = 0; i < std::size(required); ++i) {
        if (::ioctl(fd.get(), KVM_CHECK_EXTENSION, required[i]) <= 0)
            return fail("{}: KVM lacks the required capability KVM_CAP_{}", path, required_names[i]);
    }
    int max_vcpus = ::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = ::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = 4;

    // KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits.
    std::vector<CpuidEntry> cpuid;
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        VarBuffer<kvm_cpuid_entry2> buffer(n);
        if (::ioctl(fd.get(), ioctl_get_supported_cpuid, buffer.data()) < 0) {
            if (errno == E2BIG)
                continue;
            return errno_failure("KVM_GET_SUPPORTED_CPUID");
        }
        for (uint32_t i = 0; i < buffer.header()->count && i < n; ++i) {
            const auto& e = buffer.entries()[i];
            // Drop KVM's paravirtual leaves: the guest must not see a KVM signature (a Hyper-V identity
            // is added by the machine).
            if (e.function >= 0x40000000 && e.function < 0x50000000)
                continue;
            cpuid.push_back(CpuidEntry{e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx});
        }
        break;
    }
    if (cpuid.empty())
        return fail("KVM_GET_SUPPORTED_CPUID returned no leaves");
    return Kvm(std::move(fd), static_cast<size_t>(run_size), std::move(cpuid), static_cast<unsigned>(max_vcpus));
}

Result<std::unique_ptr<Vm>> Kvm::create_vm(const VmOptions& options) const
{
    int raw = retrying_ioctl(m_fd.get(), KVM_CREATE_VM, 0);
    if (raw < 0)
        return errno_failure("KVM_CREATE_VM");
    UniqueFd fd(raw);
    // Intel VMX needs a TSS and identity map page below 4 GiB; harmless elsewhere. Placed at the top of
    // the MMIO hole, away from everything the machines map.
    if (::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0) {
        if (::ioctl(fd.get(), KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
            return errno_failure("KVM_SET_TSS_ADDR");
        uint64_t identity = 0xfffbc000;
        if (::ioctl(fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
            log_debug("hv", "KVM_SET_IDENTITY_MAP_ADDR: {}", errno_text(errno));
    }
    if (options.user_space_msr) {
        if (::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) <= 0)
            return fail("KVM lacks KVM_CAP_X86_USER_SPACE_MSR");
        kvm_enable_cap cap{};
        cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
        cap.args[0] = KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
        if (::ioctl(fd.get(), KVM_ENABLE_CAP, &cap) < 0)
            return errno_failure("enabling KVM_CAP_X86_USER_SPACE_MSR");
    }
    return std::unique_ptr<Vm>(new Vm(std::move(fd), options, m_run_size, m_cpuid));
}

// ---- Vm ----

Vm::~Vm() = default;

Result<void> Vm::create_irqchip()
{
    if (m_options.irqchip == IrqchipMode::Kernel) {
        if (::ioctl(m_fd.get(), KVM_CREATE_IRQCHIP, 0) < 0)
            return errno_failure("KVM_CREATE_IRQCHIP");
        if (m_options.pit) {
            kvm_pit_config pit{};
            pit.flags = KVM_PIT_SPEAKER_DUMMY;
            if (::ioctl(m_fd.get(), KVM_CREATE_PIT2, &pit) < 0)
                return errno_failure("KVM_CREATE_PIT2");
        }
    } else {
        kvm_enable_cap cap{};
        cap.cap = KVM_CAP_SPLIT_IRQCHIP;
        cap.args[0] = m_options.ioapic_pins;
        if (::ioctl(m_fd.get(), KVM_ENABLE_CAP, &cap) < 0)
            return errno_failure("enabling KVM_CAP_SPLIT_IRQCHIP");
    }
    return {};
}

Result<void> Vm::map_memory(uint32_t slot, uint64_t gpa, uint64_t size, void* host)
{
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (retrying_ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return errno_failure(fmt::format("KVM_SET_USER_MEMORY_REGION slot {} at {:#x}+{:#x}", slot, gpa, size));
    return {};
}

Result<std::unique_ptr<Vcpu>> Vm::create_vcpu(uint32_t id)
{
    int raw = retrying_ioctl(m_fd.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (raw < 0)
        return errno_failure(fmt::format("KVM_CREATE_VCPU {}", id));
    UniqueFd fd(raw);
    void* run = ::mmap(nullptr, m_run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (run == MAP_FAILED)
        return errno_failure("mapping kvm_run");
    return std::unique_ptr<Vcpu>(new Vcpu(std::move(fd), id, run, m_run_size));
}

Result<void> Vm::set_irq_line(uint32_t gsi, bool level)
{
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    if (retrying_ioctl(m_fd.get(), KVM_IRQ_LINE, &irq) < 0)
        return errno_failure(fmt::format("KVM_IRQ_LINE gsi {}", gsi));
    return {};
}

Result<void> Vm::signal_msi(uint64_t address, uint32_t data)
{
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(address);
    msi.address_hi = static_cast<uint32_t>(address >> 32);
    msi.data = data;
    if (retrying_ioctl(m_fd.get(), KVM_SIGNAL_MSI, &msi) < 0)
        return errno_failure(fmt::format("KVM_SIGNAL_MSI {:#x}/{:#x}", address, data));
    return {};
}

Result<void> Vm::set_msi_routes(std::span<const MsiRoute> routes)
{
    VarBuffer<kvm_irq_routing_entry> table(routes.size());
    for (size_t i = 0; i < routes.size(); ++i) {
        auto& e = table.entries()[i];
        e.gsi = routes[i].gsi;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<uint32_t>(routes[i].address);
        e.u.msi.address_hi = static_cast<uint32_t>(routes[i].address >> 32);
        e.u.msi.data = routes[i].data;
    }
    if (retrying_ioctl(m_fd.get(), ioctl_set_gsi_routing, table.data()) < 0)
        return errno_failure("KVM_SET_GSI_ROUTING");
    return {};
}

Result<void> Vm::set_userspace_msr_ranges(std::span<const MsrRange> ranges)
{
    if (ranges.size() > KVM_MSR_FILTER_MAX_RANGES)
        return fail("at most {} MSR filter ranges", KVM_MSR_FILTER_MAX_RANGES);
    // One all-zero bitmap (0 = deny to KVM, i.e. exit to userspace) large enough for the biggest range.
    uint32_t largest = 0;
    for (const auto& r : ranges)
        largest = std::max(largest, r.count);
    std::vector<uint8_t> deny((largest + 7) / 8, 0);
    kvm_msr_filter filter{};
    filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    for (size_t i = 0; i < ranges.size(); ++i) {
        filter.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        filter.ranges[i].nmsrs = ranges[i].count;
        filter.ranges[i].base = ranges[i].base;
        filter.ranges[i].bitmap = deny.data();
    }
    if (retrying_ioctl(m_fd.get(), KVM_X86_SET_MSR_FILTER, &filter) < 0)
        return errno_failure("KVM_X86_SET_MSR_FILTER");
    return {};
}

Result<uint32_t> Vm::tsc_khz(const Vcpu& vcpu) const
{
    int khz = ::ioctl(vcpu.m_fd.get(), KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        return errno_failure("KVM_GET_TSC_KHZ");
    return static_cast<uint32_t>(khz);
}

// ---- Vcpu ----

Vcpu::~Vcpu() { ::munmap(m_run, m_run_size); }

Result<void> Vcpu::set_cpuid(std::span<const CpuidEntry> entries)
{
    VarBuffer<kvm_cpuid_entry2> buffer(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
        auto& e = buffer.entries()[i];
        e.function = entries[i].function;
        e.index = entries[i].index;
        e.flags = entries[i].flags;
        e.eax = entries[i].eax;
        e.ebx = entries[i].ebx;
        e.ecx = entries[i].ecx;
        e.edx = entries[i].edx;
    }
    if (retrying_ioctl(m_fd.get(), ioctl_set_cpuid2, buffer.data()) < 0)
        return errno_failure(fmt::format("KVM_SET_CPUID2 on vCPU {}", m_id));
    return {};
}

Result<Registers> Vcpu::registers() const
{
    kvm_regs k{};
    if (retrying_ioctl(m_fd.get(), KVM_GET_REGS, &k) < 0)
        return errno_failure("KVM_GET_REGS");
    return Registers{k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8,  k.r9,
                     k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
}

Result<void> Vcpu::set_registers(const Registers& r)
{
    kvm_regs k{r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8,  r.r9,
               r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags};
    if (retrying_ioctl(m_fd.get(), KVM_SET_REGS, &k) < 0)
        return errno_failure("KVM_SET_REGS");
    return {};
}

Result<SpecialRegisters> Vcpu::special_registers() const
{
    kvm_sregs k{};
    if (retrying_ioctl(m_fd.get(), KVM_GET_SREGS, &k) < 0)
        return errno_failure("KVM_GET_SREGS");
    SpecialRegisters s;
    s.cs = from_kvm(k.cs);
    s.ds = from_kvm(k.ds);
    s.es = from_kvm(k.es);
    s.fs = from_kvm(k.fs);
    s.gs = from_kvm(k.gs);
    s.ss = from_kvm(k.ss);
    s.tr = from_kvm(k.tr);
    s.ldt = from_kvm(k.ldt);
    s.gdt = DescriptorTable{k.gdt.base, k.gdt.limit};
    s.idt = DescriptorTable{k.idt.base, k.idt.limit};
    s.cr0 = k.cr0;
    s.cr2 = k.cr2;
    s.cr3 = k.cr3;
    s.cr4 = k.cr4;
    s.cr8 = k.cr8;
    s.efer = k.efer;
    s.apic_base = k.apic_base;
    return s;
}

Result<void> Vcpu::set_special_registers(const SpecialRegisters& s)
{
    // Start from the current state so fields we do not model (interrupt bitmap) stay valid.
    kvm_sregs k{};
    if (retrying_ioctl(m_fd.get(), KVM_GET_SREGS, &k) < 0)
        return errno_failure("KVM_GET_SREGS");
    k.cs = to_kvm(s.cs);
    k.ds = to_kvm(s.ds);
    k.es = to_kvm(s.es);
    k.fs = to_kvm(s.fs);
    k.gs = to_kvm(s.gs);
    k.ss = to_kvm(s.ss);
    k.tr = to_kvm(s.tr);
    k.ldt = to_kvm(s.ldt);
    k.gdt.base = s.gdt.base;
    k.gdt.limit = s.gdt.limit;
    k.idt.base = s.idt.base;
    k.idt.limit = s.idt.limit;
    k.cr0 = s.cr0;
    k.cr2 = s.cr2;
    k.cr3 = s.cr3;
    k.cr4 = s.cr4;
    k.cr8 = s.cr8;
    k.efer = s.efer;
    k.apic_base = s.apic_base;
    if (retrying_ioctl(m_fd.get(), KVM_SET_SREGS, &k) < 0)
        return errno_failure("KVM_SET_SREGS");
    return {};
}

Result<void> Vcpu::set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs)
{
    VarBuffer<kvm_msr_entry> buffer(msrs.size());
    for (size_t i = 0; i < msrs.size(); ++i) {
        buffer.entries()[i].index = msrs[i].first;
        buffer.entries()[i].data = msrs[i].second;
    }
    int r = retrying_ioctl(m_fd.get(), ioctl_set_msrs, buffer.data());
    if (r < 0)
        return errno_failure("KVM_SET_MSRS");
    if (static_cast<size_t>(r) != msrs.size())
        return fail("KVM_SET_MSRS: MSR {:#x} was refused", msrs[static_cast<size_t>(r)].first);
    return {};
}

Result<uint64_t> Vcpu::msr(uint32_t index) const
{
    VarBuffer<kvm_msr_entry> buffer(1);
    buffer.entries()[0].index = index;
    int r = retrying_ioctl(m_fd.get(), ioctl_get_msrs, buffer.data());
    if (r < 0)
        return errno_failure(fmt::format("KVM_GET_MSRS {:#x}", index));
    if (r != 1)
        return fail("KVM_GET_MSRS: MSR {:#x} is not readable", index);
    return uint64_t{buffer.entries()[0].data};
}

Result<void> Vcpu::inject_exception(uint8_t vector)
{
    kvm_vcpu_events events{};
    if (retrying_ioctl(m_fd.get(), KVM_GET_VCPU_EVENTS, &events) < 0)
        return errno_failure("KVM_GET_VCPU_EVENTS");
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = 0;
    events.exception.error_code = 0;
    events.flags = 0;
    if (retrying_ioctl(m_fd.get(), KVM_SET_VCPU_EVENTS, &events) < 0)
        return errno_failure("KVM_SET_VCPU_EVENTS");
    return {};
}

Result<void> Vcpu::set_runnable(bool runnable)
{
    kvm_mp_state state{};
    state.mp_state = runnable ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_INIT_RECEIVED;
    if (retrying_ioctl(m_fd.get(), KVM_SET_MP_STATE, &state) < 0)
        return errno_failure("KVM_SET_MP_STATE");
    return {};
}

void Vcpu::bind_to_current_thread() { m_thread.store(pthread_self(), std::memory_order_release); }

void Vcpu::complete_msr_read(bool ok, uint64_t value)
{
    auto* run = run_page(m_run);
    run->msr.error = ok ? 0 : 1;
    run->msr.data = ok ? value : 0;
}

void Vcpu::complete_msr_write(bool ok) { run_page(m_run)->msr.error = ok ? 0 : 1; }

void Vcpu::unbind_thread() { m_thread.store(0, std::memory_order_release); }

void Vcpu::kick()
{
    // immediate_exit covers the window before KVM_RUN; the signal interrupts a KVM_RUN in progress.
    __atomic_store_n(&run_page(m_run)->immediate_exit, 1, __ATOMIC_SEQ_CST);
    auto thread = m_thread.load(std::memory_order_acquire);
    if (thread != 0)
        ::pthread_kill(thread, kick_signal());
}

void Vcpu::clear_kick() { __atomic_store_n(&run_page(m_run)->immediate_exit, 0, __ATOMIC_SEQ_CST); }

Result<VcpuExit> Vcpu::run()
{
    auto* run = run_page(m_run);
    VcpuExit exit;
    if (::ioctl(m_fd.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            exit.kind = VcpuExit::Kind::Interrupted;
            return exit;
        }
        return errno_failure(fmt::format("KVM_RUN on vCPU {}", m_id));
    }
    exit.reason = run->exit_reason;
    switch (run->exit_reason) {
    case KVM_EXIT_IO: {
        exit.kind = VcpuExit::Kind::Io;
        exit.address = run->io.port;
        exit.size = run->io.size;
        exit.count = run->io.count;
        exit.write = run->io.direction == KVM_EXIT_IO_OUT;
        size_t bytes = size_t{run->io.size} * run->io.count;
        if (run->io.data_offset + bytes > m_run_size)
            return fail("vCPU {}: KVM reported port I/O data outside kvm_run", m_id);
        exit.data = std::span<uint8_t>(reinterpret_cast<uint8_t*>(run) + run->io.data_offset, bytes);
        break;
    }
    case KVM_EXIT_MMIO:
        exit.kind = VcpuExit::Kind::Mmio;
        exit.address = run->mmio.phys_addr;
        exit.size = std::min<uint32_t>(run->mmio.len, 8);
        exit.write = run->mmio.is_write != 0;
        exit.data = std::span<uint8_t>(run->mmio.data, exit.size);
        break;
    case KVM_EXIT_X86_RDMSR:
        exit.kind = VcpuExit::Kind::MsrRead;
        exit.msr_index = run->msr.index;
        break;
    case KVM_EXIT_X86_WRMSR:
        exit.kind = VcpuExit::Kind::MsrWrite;
        exit.msr_index = run->msr.index;
        exit.msr_value = run->msr.data;
        break;
    case KVM_EXIT_HLT:
        exit.kind = VcpuExit::Kind::Hlt;
        break;
    case KVM_EXIT_SHUTDOWN:
        exit.kind = VcpuExit::Kind::Shutdown;
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        exit.kind = VcpuExit::Kind::SystemEvent;
        exit.event_type = run->system_event.type;
        break;
    case KVM_EXIT_IOAPIC_EOI:
        exit.kind = VcpuExit::Kind::IoapicEoi;
        exit.vector = run->eoi.vector;
        break;
    case KVM_EXIT_INTR:
        exit.kind = VcpuExit::Kind::Interrupted;
        break;
    case KVM_EXIT_INTERNAL_ERROR: {
        exit.kind = VcpuExit::Kind::InternalError;
        exit.suberror = run->internal.suberror;
        const char* what = "unknown";
        switch (run->internal.suberror) {
        case KVM_INTERNAL_ERROR_EMULATION:
            what = "instruction emulation failed";
            break;
        case KVM_INTERNAL_ERROR_SIMUL_EX:
            what = "exception while delivering an exception";
            break;
        case KVM_INTERNAL_ERROR_DELIVERY_EV:
            what = "exception during event delivery";
            break;
        default:
            break;
        }
        exit.details = fmt::format("KVM internal error {} ({})", run->internal.suberror, what);
        for (uint32_t i = 0; i < run->internal.ndata && i < 16; ++i)
            exit.details += fmt::format(" {:#x}", run->internal.data[i]);
        break;
    }
    case KVM_EXIT_FAIL_ENTRY:
        exit.kind = VcpuExit::Kind::FailEntry;
        exit.details = fmt::format("VM entry failed, hardware reason {:#x}",
                                   run->fail_entry.hardware_entry_failure_reason);
        break;
    default:
        exit.kind = VcpuExit::Kind::Unknown;
        exit.details = fmt::format("unexpected KVM exit reason {}", run->exit_reason);
        break;
    }
    return exit;
}

std::string Vcpu::describe_state() const
{
    auto regs = registers();
    auto sregs = special_registers();
    if (!regs || !sregs)
        return "registers unavailable";
    return fmt::format("vCPU {}: rip={:#x} rsp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} "
                       "cs={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x}",
                       m_id, regs->rip, regs->rsp, regs->rflags, regs->rax, regs->rbx, regs->rcx, regs->rdx,
                       sregs->cs.selector, sregs->cr0, sregs->cr3, sregs->cr4, sregs->efer);
}

} // namespace vmgen::hv
