// A move-only std::function (C++23's std::move_only_function is not in GCC 12): completion
// handlers are move-only.
#pragma once

#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>

namespace cloudmysql::detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
public:
    unique_function() noexcept = default;

    template <class F>
    requires(!std::same_as<std::decay_t<F>, unique_function> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
        unique_function(F&& f) // NOLINT(google-explicit-constructor): like std::function
            : callable_(std::make_unique<holder<std::decay_t<F>>>(std::forward<F>(f))) {}

    R operator()(Args... args) { return callable_->call(std::forward<Args>(args)...); }
    explicit operator bool() const noexcept { return callable_ != nullptr; }

private:
    struct base {
        virtual ~base() = default;
        virtual R call(Args... args) = 0;
    };
    template <class F>
    struct holder final : base {
        explicit holder(F&& f) : fn(std::move(f)) {}
        explicit holder(const F& f) : fn(f) {}
        R call(Args... args) override { return fn(std::forward<Args>(args)...); }
        F fn;
    };
    std::unique_ptr<base> callable_;
};

} // namespace cloudmysql::detail
