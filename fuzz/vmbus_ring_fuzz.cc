// libFuzzer target: the host's VMBus ring reader and writer on hostile ring pages.
//
// Input: [u8 data pages (1..8)][control page bytes (68)][data bytes ...]. The control page and the ring data
// are filled from the input (the rest zero), then the reader drains packets until empty or corrupt, consuming
// and committing each, and the writer appends packets into the same pages. A crash, sanitizer report or access
// outside guest RAM is a bug; error Results are the expected answer to junk.
#include "vm/memory/guest_memory.h"
#include "vm/vmbus/ring_buffer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

const vmgen::vm::GuestMemory& guest_memory()
{
    static vmgen::vm::GuestMemory* memory = [] {
        auto created = vmgen::vm::GuestMemory::create({{0, 64ull << 10}});
        if (!created)
            std::abort();
        return new vmgen::vm::GuestMemory(std::move(*created));
    }();
    return *memory;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace vmgen::vm::vmbus;
    constexpr size_t control_bytes = 68;
    if (size < 1 + control_bytes)
        return 0;
    std::span<const uint8_t> input(data, size);
    size_t data_pages = 1 + input[0] % 8;
    const auto& memory = guest_memory();
    if (!memory.fill(0, 0, 16 * 4096))
        std::abort();
    // Control page at pfn 0; data pages scattered (reverse order) so that copies cross runs.
    std::vector<uint64_t> pfns {0};
    for (size_t i = 0; i < data_pages; ++i)
        pfns.push_back(static_cast<uint64_t>(8 - i));
    if (!memory.write(0, input.subspan(1, control_bytes)))
        std::abort();
    std::span<const uint8_t> ring_bytes = input.subspan(1 + control_bytes);
    for (size_t i = 0; i < data_pages && !ring_bytes.empty(); ++i) {
        size_t n = std::min<size_t>(4096, ring_bytes.size());
        if (!memory.write(pfns[i + 1] * 4096, ring_bytes.first(n)))
            std::abort();
        ring_bytes = ring_bytes.subspan(n);
    }

    auto reader = RingReader::create(memory, pfns);
    if (reader) {
        reader->begin_read();
        for (int i = 0; i < 1024; ++i) {
            auto packet = reader->peek();
            if (!packet || !packet->has_value())
                break;
            const RingPacket& p = **packet;
            if (p.header.size() + p.payload.size() + 24 != p.total_size)
                std::abort();
            reader->consume();
            if (!reader->commit())
                break;
        }
        (void)reader->end_read();
    }

    auto writer = RingWriter::create(memory, pfns);
    if (writer) {
        std::vector<uint8_t> payload(static_cast<size_t>(input[1]) * 8 + input[2] % 8, 0x5a);
        for (int i = 0; i < 64; ++i) {
            auto status = writer->write(6, 0, static_cast<uint64_t>(i), {}, payload);
            if (!status || *status == RingWriter::WriteStatus::full)
                break;
        }
    }
    return 0;
}
