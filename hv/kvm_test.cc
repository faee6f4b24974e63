// Drives the hypervisor layer against the real /dev/kvm with a few bytes of real-mode code.
#include "hv/kvm.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace vmgen::hv {
namespace {

class KvmTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (access("/dev/kvm", R_OK | W_OK) != 0)
            GTEST_SKIP() << "/dev/kvm is not accessible";
        auto kvm = Kvm::open();
        ASSERT_TRUE(kvm) << kvm.error().message();
        m_kvm.emplace(std::move(*kvm));
        m_ram = static_cast<uint8_t*>(
            mmap(nullptr, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        ASSERT_NE(m_ram, MAP_FAILED);
    }
    void TearDown() override
    {
        if (m_ram != nullptr && m_ram != MAP_FAILED)
            munmap(m_ram, ram_size);
    }

    // A VM with 64 KiB of RAM at 0 and one vCPU in real mode at 0:0x1000 running `code`.
    std::pair<std::unique_ptr<Vm>, std::unique_ptr<Vcpu>> make_vm(std::initializer_list<uint8_t> code,
                                                                 IrqchipMode mode)
    {
        std::copy(code.begin(), code.end(), m_ram + 0x1000);
        auto vm = m_kvm->create_vm(VmOptions{.irqchip = mode, .pit = false, .ioapic_pins = 24});
        EXPECT_TRUE(vm) << vm.error().message();
        EXPECT_TRUE((*vm)->map_memory(0, 0, ram_size, m_ram));
        EXPECT_TRUE((*vm)->create_irqchip());
        auto vcpu = (*vm)->create_vcpu(0);
        EXPECT_TRUE(vcpu) << vcpu.error().message();
        auto sregs = (*vcpu)->special_registers();
        EXPECT_TRUE(sregs);
        sregs->cs.base = 0;
        sregs->cs.selector = 0;
        EXPECT_TRUE((*vcpu)->set_special_registers(*sregs));
        Registers regs{};
        regs.rip = 0x1000;
        regs.rflags = 2;
        EXPECT_TRUE((*vcpu)->set_registers(regs));
        return {std::move(*vm), std::move(*vcpu)};
    }

    static constexpr size_t ram_size = 0x10000;
    std::optional<Kvm> m_kvm;
    uint8_t* m_ram = nullptr;
};

TEST_F(KvmTest, FiltersKvmSignatureLeaves)
{
    for (const auto& e : m_kvm->supported_cpuid())
        EXPECT_FALSE(e.function >= 0x40000000 && e.function < 0x50000000) << std::hex << e.function;
}

TEST_F(KvmTest, PortIoExitsCarryDataBothWays)
{
    // mov al,0x42; out 0x10,al; in al,0x12; out 0x13,al; jmp $
    auto [vm, vcpu] = make_vm({0xb0, 0x42, 0xe6, 0x10, 0xe4, 0x12, 0xe6, 0x13, 0xeb, 0xfe}, IrqchipMode::Kernel);
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_TRUE(exit->write);
    EXPECT_EQ(exit->address, 0x10u);
    ASSERT_EQ(exit->data.size(), 1u);
    EXPECT_EQ(exit->data[0], 0x42);

    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_FALSE(exit->write);
    EXPECT_EQ(exit->address, 0x12u);
    exit->data[0] = 0x99;

    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->address, 0x13u);
    EXPECT_EQ(exit->data[0], 0x99);
}

TEST_F(KvmTest, MmioExitOutsideRam)
{
    // mov ax,0x2000; mov ds,ax; mov al,[0]; out 0x10,al; jmp $
    auto [vm, vcpu] = make_vm({0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xe6, 0x10, 0xeb, 0xfe},
                              IrqchipMode::Split);
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Mmio);
    EXPECT_FALSE(exit->write);
    EXPECT_EQ(exit->address, 0x20000u);
    EXPECT_EQ(exit->size, 1u);
    exit->data[0] = 0x5a;
    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->data[0], 0x5a);
}

TEST_F(KvmTest, UnknownMsrsExitToUserspace)
{
    // mov ecx,0x4000_0000 (66 b9 imm32); rdmsr; out 0x10,al; wrmsr; out 0x11,al; jmp $
    auto [vm, vcpu] = make_vm({0x66, 0xb9, 0x00, 0x00, 0x00, 0x40, 0x0f, 0x32, 0xe6, 0x10, 0x0f, 0x30, 0xe6, 0x11,
                               0xeb, 0xfe},
                              IrqchipMode::Kernel);
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_EQ(exit->kind, VcpuExit::Kind::MsrRead);
    EXPECT_EQ(exit->msr_index, 0x40000000u);
    vcpu->complete_msr_read(true, 0x77);
    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->data[0], 0x77); // RDMSR returned our value in EAX
    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::MsrWrite);
    EXPECT_EQ(exit->msr_index, 0x40000000u);
    EXPECT_EQ(exit->msr_value, 0x77u);
    vcpu->complete_msr_write(true);
    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->address, 0x11u);
}

TEST_F(KvmTest, FilteredMsrsKvmKnowsExitToUserspace)
{
    // IA32_TSC (0x10) is handled by KVM itself; filtered, RDMSR must come to us.
    // mov ecx,0x10; rdmsr; out 0x10,al; jmp $
    auto [vm, vcpu] =
        make_vm({0x66, 0xb9, 0x10, 0x00, 0x00, 0x00, 0x0f, 0x32, 0xe6, 0x10, 0xeb, 0xfe}, IrqchipMode::Kernel);
    const Vm::MsrRange ranges[] = {{0x10, 1}, {0x40000000, 0x200}};
    ASSERT_TRUE(vm->set_userspace_msr_ranges(ranges));
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_EQ(exit->kind, VcpuExit::Kind::MsrRead);
    EXPECT_EQ(exit->msr_index, 0x10u);
    vcpu->complete_msr_read(true, 0xab);
    exit = vcpu->run();
    ASSERT_TRUE(exit);
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->data[0], 0xab);
    auto tsc = vcpu->msr(0x10);
    ASSERT_TRUE(tsc) << tsc.error().message();
    auto khz = vm->tsc_khz(*vcpu);
    ASSERT_TRUE(khz) << khz.error().message();
    EXPECT_GT(*khz, 100'000u); // a TSC of at least 100 MHz
}

TEST_F(KvmTest, InjectedExceptionReachesTheGuest)
{
    // Real mode: IVT entry 6 (#UD) -> 0:0x1100, which does out 0x16,al. Main code: jmp $.
    m_ram[6 * 4] = 0x00;
    m_ram[6 * 4 + 1] = 0x11;
    m_ram[6 * 4 + 2] = 0x00;
    m_ram[6 * 4 + 3] = 0x00;
    m_ram[0x1100] = 0xe6;
    m_ram[0x1101] = 0x16;
    m_ram[0x1102] = 0xeb;
    m_ram[0x1103] = 0xfe;
    auto [vm, vcpu] = make_vm({0xeb, 0xfe}, IrqchipMode::Kernel);
    ASSERT_TRUE(vcpu->inject_exception(6));
    auto exit = vcpu->run();
    ASSERT_TRUE(exit) << exit.error().message();
    ASSERT_EQ(exit->kind, VcpuExit::Kind::Io);
    EXPECT_EQ(exit->address, 0x16u);
}

TEST_F(KvmTest, KickInterruptsARunningVcpu)
{
    install_kick_signal();
    auto [vm, vcpu] = make_vm({0xeb, 0xfe}, IrqchipMode::Kernel); // jmp $
    Result<VcpuExit> exit = fail("not run");
    std::thread runner([&, v = vcpu.get()] {
        v->bind_to_current_thread();
        exit = v->run();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vcpu->kick();
    runner.join();
    vcpu->unbind_thread();
    ASSERT_TRUE(exit) << exit.error().message();
    EXPECT_EQ(exit->kind, VcpuExit::Kind::Interrupted);
    vcpu->clear_kick();
}

TEST_F(KvmTest, RegistersRoundTrip)
{
    auto [vm, vcpu] = make_vm({0xeb, 0xfe}, IrqchipMode::Kernel);
    auto regs = vcpu->registers();
    ASSERT_TRUE(regs);
    regs->rbx = 0x1234;
    ASSERT_TRUE(vcpu->set_registers(*regs));
    EXPECT_EQ(vcpu->registers()->rbx, 0x1234u);
    EXPECT_NE(vcpu->describe_state().find("rip=0x1000"), std::string::npos);
}

} // namespace
} // namespace vmgen::hv
