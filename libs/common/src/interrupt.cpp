#include "emt/common/interrupt.hpp"

#include <csignal>

#include "emt/common/error.hpp"

namespace emt {
namespace {
volatile std::sig_atomic_t g_interrupted = 0;  // the signal number, 0 for none
volatile std::sig_atomic_t g_stop_requested = 0;
void on_signal(int signo) {
  // A second SIGINT/SIGTERM kills at once (the default action): the first
  // one asked for a clean stop, which may take a second or two.
  if (g_interrupted != 0) std::signal(signo, SIG_DFL);
  g_interrupted = signo;
}
}  // namespace

bool interrupt_requested() noexcept { return g_interrupted != 0 || g_stop_requested != 0; }
void request_stop() noexcept { g_stop_requested = 1; }
int interrupt_signal() noexcept { return g_interrupted; }
void throw_if_interrupted(const std::string& where) {
  if (interrupt_requested()) throw Error(ErrorKind::kAborted, "interrupted; nothing of this run was kept", where);
}
void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

}  // namespace emt
