// The VM store: one folder per virtual machine under a root ($VMGEN_HOME, default ~/.local/share/vmgen).
//
//   <root>/<name>/config.json    settings (VmConfig, written atomically)
//   <root>/<name>/.lock          flock held around every read-modify-write of config.json
//   <root>/<name>/worker.pid     runtime files of a running or stopped worker (see runtime_state.h)
//
// Readers never lock (config.json is replaced atomically); writers hold the VM's lock.
#pragma once

#include "mgmt/atomic_file.h"
#include "mgmt/vm_config.h"
#include "support/result.h"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::mgmt {

struct StoreEntry {
    std::string name;
    std::filesystem::path dir;
    Result<VmConfig> config; // the error names the file and the problem when config.json is unusable
};

class Store {
public:
    explicit Store(std::filesystem::path root) : m_root(std::move(root)) {}

    // $VMGEN_HOME when set and not empty, otherwise ~/.local/share/vmgen.
    static std::filesystem::path default_root();

    [[nodiscard]] const std::filesystem::path& root() const { return m_root; }
    [[nodiscard]] std::filesystem::path vm_dir(std::string_view name) const { return m_root / std::string(name); }
    [[nodiscard]] std::filesystem::path config_path(std::string_view name) const
    {
        return vm_dir(name) / "config.json";
    }
    [[nodiscard]] bool exists(std::string_view name) const;

    // "no virtual machine named 'x'" when absent; "VM 'x': config /…/config.json: <problem>" when unusable.
    Result<VmConfig> load(std::string_view name) const;
    // Creates the VM's folder and config atomically; fails if the name is taken.
    Result<void> create(const VmConfig& config) const;
    // Takes the VM's lock (waiting for other writers); fails if the VM does not exist.
    Result<FileLock> lock(std::string_view name) const;
    // Replaces config.json. The caller holds the VM's lock.
    Result<void> save(const VmConfig& config) const;
    // Deletes the VM's folder (the caller holds the lock and has checked that the VM is off).
    Result<void> remove(std::string_view name) const;
    // Every VM folder, sorted by name; an empty list when the root does not exist yet.
    Result<std::vector<StoreEntry>> list() const;

    [[nodiscard]] Failure not_found(std::string_view name) const;

private:
    std::filesystem::path m_root;
};

} // namespace vmgen::mgmt
