#include "vmm/kvm_machine.h"

#include "support/log.h"
#include "support/thread_name.h"
#include "vm/acpi/tables.h"
#include "vm/vmbus/echo_device.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/boot/layout.h"
#include "vmm/cpuid.h"

#include <csignal>
#include <ctime>
#include <pthread.h>
#include <x86intrin.h>

namespace vmgen::vmm {

namespace {

constexpr uint32_t ia32_tsc = 0x10;

hv::Segment to_segment(const FlatSegment& f)
{
    hv::Segment s;
    s.base = f.base;
    s.limit = f.limit;
    s.selector = f.selector;
    s.type = f.type;
    s.present = true;
    s.dpl = 0;
    s.db = f.default_32 && !f.long_mode;
    s.s = true;
    s.l = f.long_mode;
    s.g = f.limit > 0xfffff;
    return s;
}

Result<void> apply_entry_state(hv::Vcpu& vcpu, const EntryState& entry)
{
    auto sregs = TRY(vcpu.special_registers());
    sregs.cs = to_segment(entry.code);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = to_segment(entry.data);
    sregs.gdt = hv::DescriptorTable{entry.gdt_base, entry.gdt_limit};
    sregs.idt = hv::DescriptorTable{0, 0};
    // A busy 64-bit TSS descriptor is required by VMX for a valid guest state; it is never used.
    sregs.tr.type = 11;
    sregs.tr.present = true;
    sregs.tr.limit = 0x67;
    sregs.tr.selector = 0;
    sregs.tr.s = false;
    sregs.cr0 = entry.cr0;
    sregs.cr3 = entry.cr3;
    sregs.cr4 = entry.cr4;
    sregs.efer = entry.efer;
    TRY(vcpu.set_special_registers(sregs));

    hv::Registers regs{};
    regs.rip = entry.rip;
    regs.rsi = entry.rsi;
    regs.rbx = entry.rbx;
    regs.rsp = entry.rsp;
    regs.rflags = 0x2;
    TRY(vcpu.set_registers(regs));
    return {};
}

} // namespace

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& config)
{
    auto machine = TRY(KvmMachine::create(config));
    return std::unique_ptr<Machine>(std::move(machine));
}

Result<std::unique_ptr<KvmMachine>> KvmMachine::create(const MachineConfig& config)
{
    if (config.generation != Generation::One && config.generation != Generation::Two)
        return fail("unknown generation {}", static_cast<int>(config.generation));
    if (config.processors == 0)
        return fail("a virtual machine needs at least one virtual processor");
    if (config.memory_bytes < (16ull << 20) || config.memory_bytes % (1ull << 20) != 0)
        return fail("memory size must be a whole number of MiB and at least 16 MiB");
    if (config.kernel_path.empty())
        return fail("no kernel given: direct boot needs --kernel (firmware boot is not implemented yet)");

    auto kvm = TRY(hv::Kvm::open());
    if (config.processors > kvm.max_vcpus())
        return fail("{} virtual processors requested, KVM supports at most {}", config.processors, kvm.max_vcpus());
    if (config.processors > 255)
        return fail("{} virtual processors requested; xAPIC ids limit a machine to 255", config.processors);

    hv::install_kick_signal();
    auto machine = std::unique_ptr<KvmMachine>(new KvmMachine(config, std::move(kvm)));
    PlatformEvents events{
        .power_off = [m = machine.get()] { m->request_stop(StopReason::PowerOff, "the guest powered off (ACPI S5)"); },
        .reset = [m = machine.get()] { m->request_stop(StopReason::Reset, "the guest reset the machine"); },
    };
    machine->m_platform = TRY(Platform::create(config, machine->m_router, std::move(events)));
    machine->m_storage = TRY(ScsiStorage::create(config));
    // Build the first boot now so configuration errors (bad kernel, too little RAM) surface before run().
    TRY(machine->build_boot());
    return machine;
}

KvmMachine::KvmMachine(MachineConfig config, hv::Kvm kvm) : m_config(std::move(config)), m_kvm(std::move(kvm)) {}

KvmMachine::~KvmMachine() { teardown_boot(); }

Result<void> KvmMachine::build_boot()
{
    Boot boot;
    const bool gen1 = m_config.generation == Generation::One;
    hv::VmOptions options;
    options.irqchip = gen1 ? hv::IrqchipMode::Kernel : hv::IrqchipMode::Split;
    options.pit = gen1;
    boot.vm = TRY(m_kvm.create_vm(options));
    // Every synthetic (Hyper-V) MSR comes to userspace, whatever KVM itself knows. Installed first: like a
    // memory slot, a filter installed once the VM has memory slots and an irqchip waits for KVM's SRCU grace
    // period (about 14 ms on the development machines; docs/performance.md).
    TRY(boot.vm->set_userspace_msr_ranges(Enlightenments::msr_ranges()));

    boot.memory = std::make_unique<vm::GuestMemory>(
        TRY(vm::GuestMemory::create_x86(m_config.memory_bytes, layout::mmio_hole_start)));
    uint32_t slot = 0;
    for (const auto& region : boot.memory->regions())
        TRY(boot.vm->map_memory(slot++, region.gpa, region.size, region.host));
    TRY(boot.vm->create_irqchip());

    if (!gen1) {
        boot.ioapic = std::make_shared<vm::IoApic>(
            m_router, [this](unsigned pin, const vm::IoApicRoute& route) { m_router.route_changed(pin, route); });
    }

    // ACPI tables, then the kernel (the loaders pass the RSDP address to the kernel).
    auto acpi_config = m_platform->acpi_config(m_config.processors, *boot.memory);
    auto tables = TRY_CTX(vm::acpi::build_acpi_tables(acpi_config, layout::acpi_tables,
                                                      layout::acpi_tables_end - layout::acpi_tables),
                          "building ACPI tables");
    TRY(boot.memory->write(layout::acpi_tables, tables.blob));

    BootSpec spec{m_config.kernel_path, m_config.initrd_path, m_config.cmdline, tables.rsdp_gpa,
                  /*ram_is_zero=*/true}; // every boot maps fresh RAM
    auto entry = TRY(load_kernel(*boot.memory, spec));

    for (uint32_t id = 0; id < m_config.processors; ++id) {
        auto vcpu = TRY(boot.vm->create_vcpu(id));
        auto cpuid = vcpu_cpuid(m_kvm.supported_cpuid(), id, m_config.processors);
        Enlightenments::add_hyperv_cpuid(cpuid, m_config.processors);
        TRY(vcpu->set_cpuid(cpuid));
        if (id == 0)
            TRY_CTX(apply_entry_state(*vcpu, entry), "setting the boot processor's entry state");
        boot.vcpus.push_back(std::move(vcpu));
    }

    // The guest TSC of this boot (KVM starts it near 0 for new vCPUs) relative to the host's, and its rate:
    // the reference clock of the Hyper-V partition is derived from it.
    uint64_t tsc_hz = uint64_t{TRY(boot.vm->tsc_khz(*boot.vcpus.front()))} * 1000;
    uint64_t host_tsc = __rdtsc();
    uint64_t guest_tsc = TRY(boot.vcpus.front()->msr(ia32_tsc));
    auto tsc_offset = static_cast<int64_t>(guest_tsc - host_tsc);
    boot.enlightenments = TRY(Enlightenments::create(*boot.memory, m_config.processors, tsc_hz, tsc_offset,
                                                     m_router, nullptr));
    // The VMBus host, reached through the partition's HvPostMessage/HvSignalEvent; both generations have it.
    boot.vmbus = std::make_unique<vm::vmbus::VmbusServer>(*boot.memory, boot.enlightenments->partition());
    boot.enlightenments->partition().connect_vmbus(boot.vmbus.get());
    // Integration services, as enabled for this VM (Hyper-V's defaults: all but the guest service interface).
    // Instance ids are fixed per service, as the guest sees one of each.
    const auto& services = m_config.integration_services;
    if (services.shutdown) {
        auto device = std::make_unique<vm::ic::ShutdownDevice>(
            protocols::vmbus::guid("b6650ff7-33bc-4840-8048-e0676786f393"));
        boot.shutdown = device.get();
        TRY_CTX(boot.vmbus->add_device(*device), "offering the shutdown integration service");
        boot.vmbus_devices.push_back(std::move(device));
    }
    if (services.heartbeat) {
        auto device = std::make_unique<vm::ic::HeartbeatDevice>(
            protocols::vmbus::guid("2dd1ce17-079e-403c-b352-a1921ee207ee"));
        boot.heartbeat = device.get();
        TRY_CTX(boot.vmbus->add_device(*device), "offering the heartbeat integration service");
        device->start_timer();
        boot.vmbus_devices.push_back(std::move(device));
    }
    if (m_config.vmbus_echo_device) {
        auto echo = std::make_unique<vm::vmbus::EchoDevice>(
            protocols::vmbus::guid("c0ffee00-7e57-4d0c-9a5e-00000000e540"));
        TRY_CTX(boot.vmbus->add_device(*echo), "offering the VMBus echo device");
        boot.vmbus_devices.push_back(std::move(echo));
    }

    // The SCSI controllers (they persist across boots) are offered on this boot's server.
    TRY_CTX(m_storage->connect(*boot.vmbus), "offering the SCSI controllers");
    if (boot.ioapic) {
        if (auto added = m_platform->mmio().add(layout::ioapic, vm::IoApic::mmio_length, boot.ioapic); !added) {
            m_storage->disconnect(); // this boot's server is discarded
            return fail(std::move(added).error());
        }
    }
    m_router.attach(boot.vm.get(), boot.ioapic.get());
    std::lock_guard lock(m_lock); // stats() reads m_boot from other threads
    m_boot = std::move(boot);
    return {};
}

void KvmMachine::teardown_boot()
{
    m_router.attach(nullptr, nullptr);
    if (m_boot.ioapic)
        (void)m_platform->mmio().remove(layout::ioapic);
    {
        std::lock_guard lock(m_lock);
        m_boot.vcpus.clear();
    }
    {
        std::lock_guard lock(m_lock); // stats() and request_shutdown() use the devices and the partition
        if (m_storage)
            m_storage->disconnect(); // no hot add reaches the server from now on
        m_boot.vmbus.reset();
        if (m_storage)
            m_storage->reset_controllers(); // the next boot's guest starts from scratch
        m_boot.shutdown = nullptr;
        m_boot.heartbeat = nullptr;
        m_boot.vmbus_devices.clear();
        if (m_boot.enlightenments) {
            if (auto crash = m_boot.enlightenments->partition().crash())
                m_guest_crash = crash->params;
        }
        m_boot.enlightenments.reset();
    }
    m_boot.ioapic.reset();
    m_boot.vm.reset();
    m_boot.memory.reset();
}

void KvmMachine::request_stop(StopReason reason, std::string detail)
{
    {
        std::lock_guard lock(m_lock);
        if (m_stop)
            return;
        m_stop = RunOutcome{reason, std::move(detail)};
    }
    m_stop_cv.notify_all();
    std::lock_guard lock(m_lock);
    for (auto& vcpu : m_boot.vcpus)
        vcpu->kick();
}

void KvmMachine::turn_off() { request_stop(StopReason::TurnedOff, "turned off"); }

void KvmMachine::press_power_button() { m_platform->press_power_button(); }

Machine::ShutdownMethod KvmMachine::request_shutdown()
{
    {
        std::lock_guard lock(m_lock);
        if (m_boot.shutdown != nullptr && m_boot.shutdown->negotiated()) {
            if (auto r = m_boot.shutdown->request_shutdown(false, "vmgen stop-vm"); r)
                return ShutdownMethod::IntegrationService;
            else
                log_warn("vmm", "shutdown integration service: {}; pressing the power button", r.error().message());
        }
    }
    press_power_button();
    return ShutdownMethod::PowerButton;
}

Result<RunOutcome> KvmMachine::run()
{
    m_started = std::chrono::steady_clock::now();
    for (;;) {
        if (!m_boot.vm)
            TRY(build_boot());
        {
            std::lock_guard lock(m_lock);
            // A turn-off requested before run() still ends this boot at once.
            if (m_stop && m_stop->reason != StopReason::TurnedOff)
                m_stop.reset();
        }

        // vCPU threads block every signal but the kick, so the CLI's own handlers run elsewhere.
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(m_lock);
            m_vcpu_clocks.assign(m_boot.vcpus.size(), std::nullopt);
        }
        std::mutex started_lock;
        std::condition_variable started_cv;
        size_t started = 0;
        m_running = true;
        for (size_t i = 0; i < m_boot.vcpus.size(); ++i) {
            threads.emplace_back([&, i] {
                set_thread_name("vcpu{}", i);
                sigset_t set;
                sigfillset(&set);
                sigdelset(&set, hv::kick_signal());
                pthread_sigmask(SIG_SETMASK, &set, nullptr);
                clockid_t clock{};
                if (pthread_getcpuclockid(pthread_self(), &clock) == 0) {
                    std::lock_guard lock(m_lock);
                    m_vcpu_clocks[i] = clock;
                }
                m_boot.vcpus[i]->bind_to_current_thread();
                {
                    std::lock_guard lock(started_lock);
                    ++started;
                }
                started_cv.notify_all();
                vcpu_thread(*m_boot.vcpus[i]);
                std::lock_guard lock(m_lock); // kicks happen under m_lock: never signal an exited thread
                m_boot.vcpus[i]->unbind_thread();
                // This thread's CPU time moves to the total before its clock goes away with it.
                timespec ts{};
                if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
                    m_previous_boots_cpu += std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
                m_vcpu_clocks[i].reset();
            });
        }
        {
            std::unique_lock lock(started_lock);
            started_cv.wait(lock, [&] { return started == threads.size(); });
        }

        RunOutcome outcome;
        {
            std::unique_lock lock(m_lock);
            m_stop_cv.wait(lock, [&] { return m_stop.has_value(); });
            outcome = *m_stop;
        }
        {
            std::lock_guard lock(m_lock);
            for (auto& vcpu : m_boot.vcpus)
                vcpu->kick();
        }
        for (auto& t : threads)
            t.join();

        m_running = false;

        if (outcome.reason == StopReason::Reset && m_config.on_reset == ResetAction::Restart) {
            log_info("vmm", "guest reset: restarting");
            ++m_resets;
            teardown_boot();
            std::lock_guard lock(m_lock);
            m_stop.reset();
            continue;
        }
        teardown_boot();
        return outcome;
    }
}

void KvmMachine::vcpu_thread(hv::Vcpu& vcpu)
{
    for (;;) {
        {
            std::lock_guard lock(m_lock);
            if (m_stop)
                return;
        }
        auto exit = vcpu.run();
        if (!exit) {
            request_stop(StopReason::InternalError, exit.error().message());
            return;
        }
        auto keep_going = handle_exit(vcpu, *exit);
        if (!keep_going) {
            request_stop(StopReason::InternalError, keep_going.error().message());
            return;
        }
        if (!*keep_going)
            return;
    }
}

Result<bool> KvmMachine::handle_exit(hv::Vcpu& vcpu, const hv::VcpuExit& exit)
{
    using Kind = hv::VcpuExit::Kind;
    switch (exit.kind) {
    case Kind::Io:
        if (exit.write && exit.address == Enlightenments::hypercall_port && exit.size == 1 && exit.count == 1) {
            m_exits.hypercall.fetch_add(1, std::memory_order_relaxed);
            TRY_CTX(m_boot.enlightenments->hypercall(vcpu), "vCPU {} hypercall", vcpu.id());
            return true;
        }
        m_exits.port_io.fetch_add(1, std::memory_order_relaxed);
        for (uint32_t i = 0; i < exit.count; ++i) {
            auto chunk = exit.data.subspan(size_t{i} * exit.size, exit.size);
            if (exit.write)
                m_platform->pio().write(exit.address, chunk);
            else
                m_platform->pio().read(exit.address, chunk);
        }
        return true;
    case Kind::Mmio:
        m_exits.mmio.fetch_add(1, std::memory_order_relaxed);
        if (exit.write)
            m_platform->mmio().write(exit.address, exit.data);
        else
            m_platform->mmio().read(exit.address, exit.data);
        return true;
    case Kind::MsrRead: {
        m_exits.msr.fetch_add(1, std::memory_order_relaxed);
        // Synthetic MSRs go to the Hyper-V partition; any other MSR KVM left to us does not exist: #GP,
        // as on hardware without it.
        auto value = vm::hyperv::Partition::handles_msr(exit.msr_index)
            ? m_boot.enlightenments->partition().read_msr(vcpu.id(), exit.msr_index)
            : Result<uint64_t>(fail("not implemented"));
        if (!value)
            log_debug("vmm", "vCPU {}: RDMSR {:#x}: {}, #GP", vcpu.id(), exit.msr_index, value.error().message());
        vcpu.complete_msr_read(value.has_value(), value.value_or(0));
        return true;
    }
    case Kind::MsrWrite: {
        m_exits.msr.fetch_add(1, std::memory_order_relaxed);
        auto written = vm::hyperv::Partition::handles_msr(exit.msr_index)
            ? m_boot.enlightenments->partition().write_msr(vcpu.id(), exit.msr_index, exit.msr_value)
            : Result<void>(fail("not implemented"));
        if (!written)
            log_debug("vmm", "vCPU {}: WRMSR {:#x} <- {:#x}: {}, #GP", vcpu.id(), exit.msr_index, exit.msr_value,
                      written.error().message());
        vcpu.complete_msr_write(written.has_value());
        return true;
    }
    case Kind::IoapicEoi:
        m_exits.other.fetch_add(1, std::memory_order_relaxed);
        m_router.end_of_interrupt(exit.vector);
        return true;
    case Kind::Interrupted:
        vcpu.clear_kick();
        return true;
    case Kind::Hlt:
        // Only reachable without an in-kernel LAPIC, which our machines always have: treat as stopped.
        request_stop(StopReason::InternalError, fmt::format("vCPU {} halted with no interrupt controller", vcpu.id()));
        return false;
    case Kind::Shutdown:
        request_stop(StopReason::TripleFault,
                     fmt::format("triple fault (the processor shut down); {}", vcpu.describe_state()));
        return false;
    case Kind::SystemEvent:
        if (exit.event_type == 2) {
            request_stop(StopReason::Reset, "the guest reset the machine");
        } else if (exit.event_type == 1) {
            request_stop(StopReason::PowerOff, "the guest powered off");
        } else {
            request_stop(StopReason::InternalError,
                         fmt::format("guest system event {}: {}", exit.event_type, vcpu.describe_state()));
        }
        return false;
    case Kind::InternalError:
    case Kind::FailEntry:
    case Kind::Unknown:
        request_stop(StopReason::InternalError, fmt::format("{}; {}", exit.details, vcpu.describe_state()));
        return false;
    }
    return true;
}

Result<void> KvmMachine::add_scsi_drive(const ScsiDriveConfig& drive) { return m_storage->add_drive(drive); }

Result<void> KvmMachine::remove_scsi_drive(unsigned controller, unsigned location)
{
    return m_storage->remove_drive(controller, location);
}

Result<void> KvmMachine::set_dvd_media(unsigned controller, unsigned location, const std::string& path)
{
    return m_storage->set_dvd_media(controller, location, path);
}

Result<unsigned> KvmMachine::add_scsi_controller() { return m_storage->add_controller(); }

std::vector<ScsiDriveConfig> KvmMachine::scsi_drives() const { return m_storage->drives(); }

unsigned KvmMachine::scsi_controllers() const { return m_storage->controller_count(); }

MachineStats KvmMachine::stats() const
{
    MachineStats s;
    s.exits.port_io = m_exits.port_io.load(std::memory_order_relaxed);
    s.exits.mmio = m_exits.mmio.load(std::memory_order_relaxed);
    s.exits.msr = m_exits.msr.load(std::memory_order_relaxed);
    s.exits.hypercall = m_exits.hypercall.load(std::memory_order_relaxed);
    s.exits.other = m_exits.other.load(std::memory_order_relaxed);
    std::lock_guard lock(m_lock);
    if (m_started != std::chrono::steady_clock::time_point{})
        s.uptime = std::chrono::steady_clock::now() - m_started;
    s.vcpu_cpu_time = m_previous_boots_cpu;
    for (auto clock : m_vcpu_clocks) {
        timespec ts{};
        if (clock && clock_gettime(*clock, &ts) == 0)
            s.vcpu_cpu_time += std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    }
    s.memory_assigned_bytes = m_config.memory_bytes;
    s.guest_crash = m_guest_crash;
    if (m_boot.enlightenments) {
        if (auto crash = m_boot.enlightenments->partition().crash())
            s.guest_crash = crash->params;
    }
    s.resets = m_resets;
    s.shutdown_service_ready = m_boot.shutdown != nullptr && m_boot.shutdown->negotiated();
    s.heartbeat = HeartbeatState::Disabled;
    if (m_config.integration_services.heartbeat) {
        s.heartbeat = HeartbeatState::NoContact;
        if (m_boot.heartbeat != nullptr) {
            switch (m_boot.heartbeat->status()) {
            case vm::ic::HeartbeatStatus::NoContact:
                break;
            case vm::ic::HeartbeatStatus::Ok:
                s.heartbeat = HeartbeatState::Ok;
                break;
            case vm::ic::HeartbeatStatus::LostCommunication:
                s.heartbeat = HeartbeatState::LostCommunication;
                break;
            }
        }
    }
    return s;
}

} // namespace vmgen::vmm
