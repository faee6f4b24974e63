// Helpers shared by the benchmarks that boot a guest with `vmgen run --stats` and read its lines back
// (ring_bench.cc, storage_bench.cc): the monotonic clock, "prefix k=v k=v ..." lines, medians.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace vmgen::bench {

inline int64_t now_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t {ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

using Fields = std::map<std::string, std::string>;

// "prefix k=v k=v ..." -> fields, for the first line of `text` that starts with `prefix`.
inline std::optional<Fields> parse_line(const std::string& text, std::string_view prefix)
{
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with(prefix))
            continue;
        Fields f;
        std::istringstream words(line); // every k=v word of the line
        std::string word;
        while (words >> word) {
            auto eq = word.find('=');
            if (eq != std::string::npos)
                f[word.substr(0, eq)] = word.substr(eq + 1);
        }
        return f;
    }
    return std::nullopt;
}

// The field as a number; 0 when it is missing.
inline double num(const Fields& f, const std::string& key)
{
    auto it = f.find(key);
    return it == f.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
}

inline double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace vmgen::bench
