#include "mgmt/store.h"

#include "mgmt/vm_settings.h"
#include "support/errno_error.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace vmgen::mgmt {

std::filesystem::path Store::default_root()
{
    if (const char* env = std::getenv("VMGEN_HOME"); env != nullptr && *env != '\0')
        return env;
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
        if (auto* pw = ::getpwuid(::getuid()); pw != nullptr)
            home = pw->pw_dir;
    }
    return std::filesystem::path(home != nullptr ? home : "/") / ".local" / "share" / "vmgen";
}

Failure Store::not_found(std::string_view name) const
{
    return fail("no virtual machine named '{}' (store {})", name, m_root.string());
}

bool Store::exists(std::string_view name) const
{
    if (!validate_vm_name(name))
        return false;
    std::error_code ec;
    return std::filesystem::is_directory(vm_dir(name), ec);
}

Result<VmConfig> Store::load(std::string_view name) const
{
    if (auto valid = validate_vm_name(name); !valid)
        return fail(valid.error());
    if (!exists(name))
        return not_found(name);
    auto path = config_path(name);
    auto text = read_small_file(path);
    if (!text)
        return fail("VM '{}': config {}", name, text.error().message());
    auto config = parse_vm_config(*text, path.string(), name);
    if (!config)
        return fail("VM '{}': {}", name, config.error().message());
    return config;
}

Result<void> Store::create(const VmConfig& config) const
{
    TRY(validate_vm_name(config.name));
    std::error_code ec;
    std::filesystem::create_directories(m_root, ec);
    if (ec)
        return fail("creating the store {}: {}", m_root.string(), ec.message());
    if (exists(config.name))
        return fail("a virtual machine named '{}' already exists", config.name);

    std::string temp = (m_root / ".new-XXXXXX").string();
    if (::mkdtemp(temp.data()) == nullptr)
        return errno_failure(fmt::format("creating a folder in {}", m_root.string()));
    auto result = [&]() -> Result<void> {
        TRY(write_file_atomically(std::filesystem::path(temp) / "config.json", serialize_vm_config(config)));
        // The lock file exists from the start, so that taking the lock never changes the folder.
        TRY(FileLock::acquire(std::filesystem::path(temp) / ".lock"));
        if (::chmod(temp.c_str(), 0755) != 0)
            return errno_failure(fmt::format("chmod {}", temp));
        auto target = vm_dir(config.name);
        if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) != 0) {
            if (errno == EEXIST || errno == ENOTEMPTY)
                return fail("a virtual machine named '{}' already exists", config.name);
            return errno_failure(fmt::format("renaming {} to {}", temp, target.string()));
        }
        return sync_directory(m_root);
    }();
    if (!result)
        std::filesystem::remove_all(temp, ec);
    return result;
}

Result<FileLock> Store::lock(std::string_view name) const
{
    TRY(validate_vm_name(name));
    if (!exists(name))
        return not_found(name);
    auto lock = FileLock::acquire(vm_dir(name) / ".lock");
    if (!lock) {
        if (!exists(name))
            return not_found(name);
        return fail("VM '{}': {}", name, lock.error().message());
    }
    // remove-vm may have deleted the folder while we waited.
    if (!exists(name))
        return not_found(name);
    return lock;
}

Result<void> Store::save(const VmConfig& config) const
{
    auto path = config_path(config.name);
    auto result = write_file_atomically(path, serialize_vm_config(config));
    if (!result)
        return fail("VM '{}': saving config: {}", config.name, result.error().message());
    return {};
}

Result<void> Store::remove(std::string_view name) const
{
    TRY(validate_vm_name(name));
    if (!exists(name))
        return not_found(name);
    // Rename first so that a half-deleted folder never looks like a (broken) virtual machine.
    std::string temp = (m_root / ".removing-XXXXXX").string();
    if (::mkdtemp(temp.data()) == nullptr)
        return errno_failure(fmt::format("creating a folder in {}", m_root.string()));
    auto graveyard = std::filesystem::path(temp) / "vm";
    if (::rename(vm_dir(name).c_str(), graveyard.c_str()) != 0) {
        auto err = errno;
        ::rmdir(temp.c_str());
        return errno_failure(fmt::format("VM '{}': moving {} away", name, vm_dir(name).string()), err);
    }
    TRY(sync_directory(m_root));
    std::error_code ec;
    std::filesystem::remove_all(temp, ec);
    if (ec)
        return fail("VM '{}': deleting {}: {}", name, temp, ec.message());
    return {};
}

Result<std::vector<StoreEntry>> Store::list() const
{
    std::vector<StoreEntry> entries;
    std::error_code ec;
    if (!std::filesystem::exists(m_root, ec))
        return entries;
    std::filesystem::directory_iterator it(m_root, ec);
    if (ec)
        return fail("listing the store {}: {}", m_root.string(), ec.message());
    for (const auto& entry : it) {
        auto name = entry.path().filename().string();
        if (name.empty() || name.front() == '.')
            continue;
        std::error_code type_ec;
        if (!entry.is_directory(type_ec))
            continue;
        entries.push_back(StoreEntry{name, entry.path(), load(name)});
    }
    std::sort(entries.begin(), entries.end(), [](const StoreEntry& a, const StoreEntry& b) { return a.name < b.name; });
    return entries;
}

} // namespace vmgen::mgmt
