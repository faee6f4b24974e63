#include "vm/io/io_bus.h"

#include "support/log.h"

#include <algorithm>
#include <mutex>

namespace vmgen::vm {

Result<void> IoBus::add(uint64_t base, uint64_t length, std::shared_ptr<IoHandler> handler)
{
    if (length == 0 || base + length < base)
        return fail("{} bus: invalid range {:#x}+{:#x}", m_name, base, length);
    std::unique_lock lock(m_lock);
    auto next = m_entries.lower_bound(base);
    if (next != m_entries.end() && next->first < base + length)
        return fail("{} bus: {} at {:#x}+{:#x} overlaps {}", m_name, handler->name(), base, length,
                    next->second.handler->name());
    if (next != m_entries.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.length > base)
            return fail("{} bus: {} at {:#x}+{:#x} overlaps {}", m_name, handler->name(), base, length,
                        prev->second.handler->name());
    }
    m_entries.emplace(base, Entry{length, std::move(handler)});
    return {};
}

Result<void> IoBus::remove(uint64_t base)
{
    std::unique_lock lock(m_lock);
    if (m_entries.erase(base) == 0)
        return fail("{} bus: nothing registered at {:#x}", m_name, base);
    return {};
}

const std::pair<const uint64_t, IoBus::Entry>* IoBus::find(uint64_t address) const
{
    auto it = m_entries.upper_bound(address);
    if (it == m_entries.begin())
        return nullptr;
    --it;
    if (address - it->first >= it->second.length)
        return nullptr;
    return &*it;
}

bool IoBus::read(uint64_t address, std::span<uint8_t> data) const
{
    std::shared_lock lock(m_lock);
    if (const auto* e = find(address)) {
        auto handler = e->second.handler;
        uint64_t offset = address - e->first;
        lock.unlock();
        handler->read(offset, data);
        return true;
    }
    std::fill(data.begin(), data.end(), 0xff);
    return false;
}

bool IoBus::write(uint64_t address, std::span<const uint8_t> data) const
{
    std::shared_lock lock(m_lock);
    if (const auto* e = find(address)) {
        auto handler = e->second.handler;
        uint64_t offset = address - e->first;
        lock.unlock();
        handler->write(offset, data);
        return true;
    }
    return false;
}

bool IoBus::is_claimed(uint64_t address) const
{
    std::shared_lock lock(m_lock);
    return find(address) != nullptr;
}

std::vector<IoBus::Range> IoBus::ranges() const
{
    std::shared_lock lock(m_lock);
    std::vector<Range> out;
    for (auto& [base, e] : m_entries)
        out.push_back(Range{base, e.length, std::string(e.handler->name())});
    return out;
}

} // namespace vmgen::vm
