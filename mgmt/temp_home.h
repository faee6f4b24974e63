// TempHome: a temporary folder (a VM store root in tests), deleted with everything in it at the end.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace vmgen::mgmt {

class TempHome {
public:
    TempHome()
    {
        auto base = std::filesystem::temp_directory_path() / "vmgen-test-XXXXXX";
        std::string pattern = base.string();
        if (::mkdtemp(pattern.data()) != nullptr)
            m_path = pattern;
    }
    ~TempHome()
    {
        std::error_code ec;
        if (!m_path.empty())
            std::filesystem::remove_all(m_path, ec);
    }
    TempHome(const TempHome&) = delete;
    TempHome& operator=(const TempHome&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

} // namespace vmgen::mgmt
