// The overload set std::visit takes for a variant of the IR (ir::Match): one lambda per
// alternative, each taking it by const reference. Without an `auto` catch-all, a kind
// added to the variant fails to compile at every visit until that visit handles it.
#pragma once

namespace portier {

template <typename... Handlers>
struct overloaded : Handlers... {
  using Handlers::operator()...;
};
template <typename... Handlers>
overloaded(Handlers...) -> overloaded<Handlers...>;

}  // namespace portier
