// Test-guest kit: a VMBus session for guests that use VMBus rather than test its bring-up (vmbus_client checks
// and reports each step itself): the Hyper-V and VMBus bring-up in one call, and the end of such a guest with
// what Linux does on unload (vmbus::close_all: the channels still open closed, GPADLs torn down, UNLOAD).
//
//   vmbus::Session s;
//   s.pool = g_pool;
//   s.pool_pages = pool_pages;
//   if (!vmbus::start(s))
//       vmbus::finish_fail();      // "result FAIL <hv::error()>" (cleaning up what is open first)
//   ... vmbus::open_channel(...) ...
//   vmbus::finish_pass();          // cleanup, then "result PASS"
#pragma once

#include <cstddef>
#include <cstdint>

#include "kit/hyperv.h"
#include "kit/vmbus.h"

namespace kit::vmbus {

// The steps of start().
enum class Step : uint8_t { none, detect, no_synic, hypercalls, synic, pages, connect, offers };
// In plain words: "Hyper-V detection" (detect, no_synic), "hypercall page", "SynIC", "VMBus pages", "connect",
// "request offers".
const char* step_name(Step step);

struct Session {
    // What start() does.
    void* pool = nullptr; // zeroed in ring 3 (native speed) and given to hv::pages_init; nullptr: the guest did it
    size_t pool_pages = 0;
    uint8_t wakeup_vector = 0xee; // hv::start_wakeup_timer
    bool mask_pics = true;        // 0xff into both 8259 mask registers (no-ops where there are none)
    bool verbose = false;         // vmbus::set_verbose: the kit's protocol lines
    uint64_t timeout_ms = 10000;  // per host answer (connect, offers)
    // What it found.
    hv::Info info;
    uint64_t tsc_hz = 0;          // what the waits use: HV_X64_MSR_TSC_FREQUENCY when advertised, else kit::tsc_hz()
    bool tsc_hz_from_msr = false;
    uint64_t apic_hz = 0;         // HV_X64_MSR_APIC_FREQUENCY when advertised, else 0
    Step failed = Step::none;     // where start() stopped
};

// What Linux's ms_hyperv_init_platform, hyperv_init, hv_synic_enable_regs, vmbus_connect and
// vmbus_request_offers do, without lines of its own: the page pool; detection (hv::detect, and the SynIC
// feature: else "detect: no SynIC (CPUID 0x40000003 EAX=0x..): no VMBus"); the frequency MSRs and the time
// base; the 8259s masked; the wake-up timer; GUEST_OS_ID (Linux 6.1.0); the hypercall page; SynIC (SINT 2,
// vector 0xf3, no auto-EOI); VMBus pages (VP index from its MSR), connect, offers. false: `failed` says
// where, hv::error() what.
bool start(Session& session);

// The wake-up timer again (after hv::stop_wakeup_timer around work in ring 3).
void restart_wakeup_timer(const Session& session);

// The end of a guest. cleanup: vmbus::close_all, once (false when called again), a "cleanup: <error>" line for
// each problem; returns whether everything went through.
inline constexpr uint64_t cleanup_timeout_ms = 3000;
bool cleanup(uint64_t timeout_ms = cleanup_timeout_ms);
// "result PASS" after cleanup(), or "result FAIL <its error>".
[[noreturn]] void finish_pass();
// "result FAIL <hv::error()>"; before it, when connected and not cleaning up already, "failed: <the same>",
// the line `notice` (when given) and cleanup().
[[noreturn]] void finish_fail(const char* notice = nullptr);

// Ring-3 work that may fail at any depth: run_ring3 runs `work` in ring 3 (kit::run_in_ring3) behind a bail-out
// point; true when it returned, false when it bailed out (fail_now from ring 3: a longjmp back to the ring-3
// entry, which returns to ring 0). fail_now outside run_ring3 is finish_fail(). failf: hv::fail(fmt, ...), then
// fail_now.
bool run_ring3(void (*work)());
[[noreturn]] void fail_now();
[[noreturn]] void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace kit::vmbus
