// KvmMachine: the Machine implementation on KVM. One thread per vCPU runs KVM_RUN and dispatches exits
// to the platform's buses; the thread calling run() waits for a stop request (power off, reset, crash,
// turn off) and then stops every vCPU. A reset with ResetAction::Restart rebuilds the KVM VM, guest RAM
// and boot state and starts again; devices with host-side state (COM port connections, the RTC, the SCSI
// controllers and their drives) persist.
#pragma once

#include "hv/kvm.h"
#include "vm/memory/guest_memory.h"
#include "vm/ic/heartbeat_device.h"
#include "vm/ic/shutdown_device.h"
#include "vm/vmbus/server.h"
#include "vmm/enlightenments.h"
#include "vmm/interrupt_router.h"
#include "vmm/machine.h"
#include "vmm/platform.h"
#include "vmm/scsi_storage.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace vmgen::vmm {

class KvmMachine final : public Machine {
public:
    static Result<std::unique_ptr<KvmMachine>> create(const MachineConfig& config);
    ~KvmMachine() override;

    Result<RunOutcome> run() override;
    void turn_off() override;
    void press_power_button() override;
    ShutdownMethod request_shutdown() override;
    [[nodiscard]] MachineStats stats() const override;
    [[nodiscard]] const MachineConfig& config() const override { return m_config; }

    Result<void> add_scsi_drive(const ScsiDriveConfig& drive) override;
    Result<void> remove_scsi_drive(unsigned controller, unsigned location) override;
    Result<void> set_dvd_media(unsigned controller, unsigned location, const std::string& path) override;
    Result<unsigned> add_scsi_controller() override;
    [[nodiscard]] std::vector<ScsiDriveConfig> scsi_drives() const override;
    [[nodiscard]] unsigned scsi_controllers() const override;

    // Called by devices and vCPU threads: the first stop request wins.
    void request_stop(StopReason reason, std::string detail);

private:
    // Everything that is rebuilt when the guest resets.
    struct Boot {
        std::unique_ptr<hv::Vm> vm;
        std::unique_ptr<vm::GuestMemory> memory; // stable address: the partition and devices refer to it
        std::unique_ptr<Enlightenments> enlightenments;
        std::vector<std::unique_ptr<vm::vmbus::Device>> vmbus_devices; // outlive the server, which uses them
        vm::ic::ShutdownDevice* shutdown = nullptr;   // in vmbus_devices when the service is enabled
        vm::ic::HeartbeatDevice* heartbeat = nullptr; // likewise
        std::unique_ptr<vm::vmbus::VmbusServer> vmbus; // torn down first: its channel workers use the above
        std::vector<std::unique_ptr<hv::Vcpu>> vcpus;
        std::shared_ptr<vm::IoApic> ioapic;
    };

    KvmMachine(MachineConfig config, hv::Kvm kvm);
    Result<void> build_boot();
    void teardown_boot();
    void vcpu_thread(hv::Vcpu& vcpu);
    Result<bool> handle_exit(hv::Vcpu& vcpu, const hv::VcpuExit& exit);

    MachineConfig m_config;
    hv::Kvm m_kvm;
    InterruptRouter m_router;
    std::unique_ptr<Platform> m_platform;
    // Outlives every boot's VMBus server (declared before m_boot); offered again on each new one.
    std::unique_ptr<ScsiStorage> m_storage;
    Boot m_boot;

    mutable std::mutex m_lock;
    std::condition_variable m_stop_cv;
    std::optional<RunOutcome> m_stop; // set once per boot
    std::atomic<bool> m_running{false};
    std::vector<std::optional<clockid_t>> m_vcpu_clocks; // running vCPU threads' CPU clocks
    std::chrono::steady_clock::time_point m_started{};
    std::chrono::nanoseconds m_previous_boots_cpu{0};
    unsigned m_resets = 0;
    struct ExitCounters {
        std::atomic<uint64_t> port_io{0}, mmio{0}, msr{0}, hypercall{0}, other{0};
    };
    ExitCounters m_exits;
    std::optional<std::array<uint64_t, 5>> m_guest_crash; // from boots already torn down
};

} // namespace vmgen::vmm
