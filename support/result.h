// Result<T>: a value or an Error, in the shape of std::expected.
//
// We carry our own small type rather than std::expected because the fuzz builds use clang 14, whose
// concepts level hides libstdc++ 12's <expected>. The API is the subset of std::expected we use, so a later
// switch is mechanical. No exceptions cross module boundaries: functions that can fail return Result, and
// TRY() propagates the error (GNU statement expression, supported by GCC and clang).
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace vmgen {

// An error: a human-readable message naming the problem. Context is prepended at module boundaries:
//   "loading kernel /x/bzImage: truncated setup header (512 bytes, need 1024)".
class Error {
public:
    explicit Error(std::string message) : m_message(std::move(message)) {}

    template <typename... Args>
    static Error format(fmt::format_string<Args...> f, Args&&... args)
    {
        return Error(fmt::format(f, std::forward<Args>(args)...));
    }

    [[nodiscard]] const std::string& message() const { return m_message; }

    // Returns a copy of this error with "context: " prepended.
    [[nodiscard]] Error with_context(std::string_view context) const
    {
        return Error(fmt::format("{}: {}", context, m_message));
    }

private:
    std::string m_message;
};

// Wraps an Error for construction of a failed Result (like std::unexpected).
struct Failure {
    Error error;
};

template <typename... Args>
[[nodiscard]] Failure fail(fmt::format_string<Args...> f, Args&&... args)
{
    return Failure{Error::format(f, std::forward<Args>(args)...)};
}
[[nodiscard]] inline Failure fail(Error e) { return Failure{std::move(e)}; }

template <typename T>
class [[nodiscard]] Result {
public:
    using value_type = T;

    Result(T value) : m_storage(std::in_place_index<0>, std::move(value)) {} // NOLINT(google-explicit-constructor)
    Result(Failure f) : m_storage(std::in_place_index<1>, std::move(f.error)) {} // NOLINT(google-explicit-constructor)
    template <typename U>
        requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, Result> &&
                 !std::is_same_v<std::remove_cvref_t<U>, Failure> && !std::is_same_v<std::remove_cvref_t<U>, T>)
    Result(U&& value) : m_storage(std::in_place_index<0>, T(std::forward<U>(value))) {} // NOLINT

    [[nodiscard]] bool has_value() const { return m_storage.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() &
    {
        assert(has_value());
        return std::get<0>(m_storage);
    }
    const T& value() const&
    {
        assert(has_value());
        return std::get<0>(m_storage);
    }
    T&& value() &&
    {
        assert(has_value());
        return std::get<0>(std::move(m_storage));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    [[nodiscard]] const Error& error() const&
    {
        assert(!has_value());
        return std::get<1>(m_storage);
    }
    Error&& error() &&
    {
        assert(!has_value());
        return std::get<1>(std::move(m_storage));
    }

    template <typename U>
    T value_or(U&& fallback) const&
    {
        return has_value() ? value() : T(std::forward<U>(fallback));
    }

private:
    std::variant<T, Error> m_storage;
};

template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;
    Result() = default;
    Result(Failure f) : m_error(std::move(f.error)), m_failed(true) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool has_value() const { return !m_failed; }
    explicit operator bool() const { return has_value(); }
    void value() const { assert(has_value()); }
    void operator*() const { assert(has_value()); }
    [[nodiscard]] const Error& error() const&
    {
        assert(m_failed);
        return m_error;
    }
    Error&& error() &&
    {
        assert(m_failed);
        return std::move(m_error);
    }

private:
    Error m_error{""};
    bool m_failed = false;
};

namespace detail {
template <typename T>
T take_value(Result<T>&& r)
{
    return std::move(*r);
}
inline void take_value(Result<void>&& /*r*/) {}
} // namespace detail

} // namespace vmgen

// TRY(expr): evaluates a Result; on failure returns its error from the enclosing function (which must
// return a Result), otherwise yields the value.
#define TRY(expr)                                                                                        \
    __extension__({                                                                                      \
        auto _vmgen_try_result = (expr);                                                                 \
        if (!_vmgen_try_result) [[unlikely]]                                                             \
            return ::vmgen::Failure{std::move(_vmgen_try_result).error()};                               \
        ::vmgen::detail::take_value(std::move(_vmgen_try_result));                                       \
    })

// TRY_CTX(expr, "context {}", args...): like TRY but prepends context to the error message.
#define TRY_CTX(expr, ...)                                                                               \
    __extension__({                                                                                      \
        auto _vmgen_try_result = (expr);                                                                 \
        if (!_vmgen_try_result) [[unlikely]]                                                             \
            return ::vmgen::Failure{                                                                     \
                std::move(_vmgen_try_result).error().with_context(fmt::format(__VA_ARGS__))};            \
        ::vmgen::detail::take_value(std::move(_vmgen_try_result));                                       \
    })
