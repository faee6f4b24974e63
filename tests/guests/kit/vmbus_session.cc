// Test-guest kit: a VMBus session (see vmbus_session.h).
#include "kit/vmbus_session.h"

#include <cstdarg>

#include "kit/cpu.h"
#include "kit/format.h"
#include "kit/kit.h"

namespace kit::vmbus {

namespace {

bool g_cleaning = false;

// run_ring3's bail-out point.
void* g_bail[5];
bool g_in_ring3 = false;
void (*g_work)() = nullptr;
bool g_work_returned = false;

struct Region {
    void* p;
    size_t bytes;
};

bool stop(Session& s, Step step)
{
    s.failed = step;
    return false;
}

} // namespace

const char* step_name(Step step)
{
    switch (step) {
    case Step::none: return "nothing";
    case Step::detect:
    case Step::no_synic: return "Hyper-V detection";
    case Step::hypercalls: return "hypercall page";
    case Step::synic: return "SynIC";
    case Step::pages: return "VMBus pages";
    case Step::connect: return "connect";
    case Step::offers: return "request offers";
    }
    return "unknown step";
}

bool start(Session& s)
{
    s.failed = Step::none;
    if (s.pool) {
        // The pool may be in the NOLOAD .stack section (not zero); ring 3 clears it at native speed.
        Region r{s.pool, s.pool_pages * 4096};
        run_in_ring3([](void* arg) {
            auto* region = static_cast<Region*>(arg);
            __builtin_memset(region->p, 0, region->bytes);
        }, &r);
        hv::pages_init(s.pool, s.pool_pages);
    }

    if (!hv::detect(s.info))
        return stop(s, Step::detect);
    if (!(s.info.features & hv::feature_synic)) {
        hv::fail("detect: no SynIC (CPUID 0x40000003 EAX=0x%x): no VMBus", s.info.features);
        return stop(s, Step::no_synic);
    }
    s.tsc_hz = 0;
    s.apic_hz = 0;
    if ((s.info.features & hv::feature_frequency_msrs) && (s.info.misc & hv::misc_frequency_msrs_available)) {
        s.tsc_hz = rdmsr(hv::msr_tsc_frequency);
        s.apic_hz = rdmsr(hv::msr_apic_frequency);
    }
    s.tsc_hz_from_msr = s.tsc_hz != 0;
    if (!s.tsc_hz)
        s.tsc_hz = kit::tsc_hz();
    hv::time_init(s.tsc_hz);
    if (s.mask_pics) {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
    hv::start_wakeup_timer(s.wakeup_vector, s.apic_hz);

    wrmsr(hv::msr_guest_os_id, hv::linux_guest_os_id(6, 1, 0));
    if (!hv::enable_hypercalls())
        return stop(s, Step::hypercalls);
    hv::SynicConfig synic;
    synic.sint = message_sint;
    synic.vector = callback_vector;
    if (!hv::synic_enable(synic))
        return stop(s, Step::synic);

    set_verbose(s.verbose);
    if (!init(static_cast<uint32_t>(rdmsr(hv::msr_vp_index))))
        return stop(s, Step::pages);
    if (!connect(s.timeout_ms))
        return stop(s, Step::connect);
    if (!request_offers(s.timeout_ms))
        return stop(s, Step::offers);
    return true;
}

void restart_wakeup_timer(const Session& s) { hv::start_wakeup_timer(s.wakeup_vector, s.apic_hz); }

bool cleanup(uint64_t timeout_ms)
{
    if (g_cleaning)
        return false;
    g_cleaning = true;
    return close_all(timeout_ms, [](Teardown) { line("cleanup: %s", hv::error()); });
}

[[noreturn]] void finish_pass()
{
    if (!cleanup())
        finish_fail();
    kit::finish(true);
}

[[noreturn]] void finish_fail(const char* notice)
{
    static char reason[320];
    format(reason, sizeof reason, "%s", hv::error());
    if (!g_cleaning && bus().version) {
        line("failed: %s", reason);
        if (notice)
            line("%s", notice);
        cleanup();
    }
    kit::finish(false, reason);
}

bool run_ring3(void (*work)())
{
    g_work = work;
    g_work_returned = false;
    run_in_ring3([](void*) {
        g_in_ring3 = true;
        if (__builtin_setjmp(g_bail) == 0) {
            g_work();
            g_work_returned = true;
        }
        g_in_ring3 = false;
    }, nullptr);
    return g_work_returned;
}

[[noreturn]] void fail_now()
{
    if (g_in_ring3)
        __builtin_longjmp(g_bail, 1);
    finish_fail();
}

void failf(const char* fmt, ...)
{
    static char text[320];
    va_list ap;
    va_start(ap, fmt);
    vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    hv::fail("%s", text);
    fail_now();
}

} // namespace kit::vmbus
