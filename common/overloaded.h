// One visitor from several lambdas, for std::visit over a variant:
//
//   std::visit(Overloaded{[&](const Ping& p) {...}, [&](const Pong& p) {...}}, msg);
//
// Write no catch-all (`auto`) lambda: then an alternative without a handler fails to
// compile, so a type added to a message variant must be handled (or explicitly
// refused) at every dispatch. For one handler of several types, on_any_of:
//
//   std::visit(Overloaded{[&](Ready&) {...}, on_any_of<Shutdown, RingReset>([&] {...})}, msg);
#pragma once

#include <utility>

namespace tw {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

namespace detail {
template <class T, class F>
struct OnOne {
  F f;
  void operator()(T&) const { f(); }
  void operator()(const T&) const { f(); }
};
template <class F, class... Ts>
struct OnAnyOf : OnOne<Ts, F>... {
  explicit OnAnyOf(F f) : OnOne<Ts, F>{f}... {}
  using OnOne<Ts, F>::operator()...;
};
}  // namespace detail

// A visitor arm that calls `f()` for any of Ts (and for nothing else).
template <class... Ts, class F>
detail::OnAnyOf<F, Ts...> on_any_of(F f) {
  return detail::OnAnyOf<F, Ts...>(std::move(f));
}

}  // namespace tw
