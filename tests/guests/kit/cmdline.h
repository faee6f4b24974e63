// Test-guest kit: the kernel command line as the guests read it: tokens separated by spaces (tabs and
// newlines too), each a "word" or a "key=value". Unknown tokens are the guest's to ignore.
//
//   for (kit::cmdline::Reader r(kit::cmdline::get(start_info)); r.next();) {
//       uint64_t n;
//       kit::cmdline::Word w;
//       if (r.is("noshutdown"))            // the whole token
//           ...
//       else if (r.number("qd=", n))       // "qd=" then decimal digits (at least one)
//           ...
//       else if (r.value("mode=", w))      // "mode=" then anything (maybe nothing): w.is("fast")
//           ...
//   }
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocols/boot/pvh.h"

namespace kit::cmdline {

// The command line in the PVH start info (cmdline_paddr), nullptr when there is none.
const char* get(const vmgen::protocols::pvh::StartInfo* start_info);

// `length` characters at `text` (a piece of the command line, not NUL terminated).
struct Word {
    const char* text = nullptr;
    unsigned length = 0;
    bool is(const char* s) const; // exactly s
    // One or more decimal digits and nothing else (no overflow check); the value is not changed when not.
    bool number(uint64_t& value) const;
};

class Reader {
public:
    explicit Reader(const char* s) : rest_(s ? s : "") {}
    // Moves to the next token; false at the end.
    bool next();
    Word token() const { return token_; }
    // The token is exactly `word`.
    bool is(const char* word) const { return token_.is(word); }
    // The token starts with `key`: value = the rest (maybe empty).
    bool value(const char* key, Word& value) const;
    // The token is `key` then one or more decimal digits (accumulated in the value's width: no overflow
    // check). The value is not changed when it is not.
    bool number(const char* key, uint64_t& value) const;
    bool number(const char* key, uint32_t& value) const;

private:
    const char* rest_;
    Word token_;
};

} // namespace kit::cmdline
