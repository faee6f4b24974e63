// Test-guest kit: the kernel command line (see cmdline.h).
#include "kit/cmdline.h"

namespace kit::cmdline {

namespace {

bool separator(char c) { return c == ' ' || c == '\t' || c == '\n'; }

template <class T> bool parse_digits(const Word& w, T& value)
{
    if (w.length == 0)
        return false;
    T v = 0;
    for (unsigned i = 0; i < w.length; ++i) {
        if (w.text[i] < '0' || w.text[i] > '9')
            return false;
        v = static_cast<T>(v * 10 + static_cast<T>(w.text[i] - '0'));
    }
    value = v;
    return true;
}

template <class T> bool parse_number(const Reader& r, const char* key, T& value)
{
    Word w;
    return r.value(key, w) && parse_digits(w, value);
}

} // namespace

const char* get(const vmgen::protocols::pvh::StartInfo* start_info)
{
    if (start_info && start_info->magic == vmgen::protocols::pvh::start_info_magic && start_info->cmdline_paddr)
        return reinterpret_cast<const char*>(start_info->cmdline_paddr);
    return nullptr;
}

bool Word::is(const char* s) const
{
    unsigned i = 0;
    for (; i < length && s[i]; ++i)
        if (text[i] != s[i])
            return false;
    return i == length && !s[i];
}

bool Word::number(uint64_t& value) const { return parse_digits(*this, value); }

bool Reader::next()
{
    while (separator(*rest_))
        ++rest_;
    const char* t = rest_;
    while (*rest_ && !separator(*rest_))
        ++rest_;
    token_ = Word{t, static_cast<unsigned>(rest_ - t)};
    return token_.length != 0;
}

bool Reader::value(const char* key, Word& value) const
{
    unsigned k = 0;
    for (; key[k]; ++k)
        if (k >= token_.length || token_.text[k] != key[k])
            return false;
    value = Word{token_.text + k, token_.length - k};
    return true;
}

bool Reader::number(const char* key, uint64_t& value) const { return parse_number(*this, key, value); }
bool Reader::number(const char* key, uint32_t& value) const { return parse_number(*this, key, value); }

} // namespace kit::cmdline
