#pragma once
// The stop flag SIGINT / SIGTERM raise (installed by emt::run_tool, cli.hpp).
// Libraries poll it in long loops, save what is finished, and stop; they
// include this header, not cli.hpp, which would drag Boost.Program_options
// into them.
#include <string>

namespace emt {

/// True once SIGINT or SIGTERM arrived (or request_stop() was called); long
/// loops poll this, save, and stop.
[[nodiscard]] bool interrupt_requested() noexcept;
/// The signal that arrived (SIGINT, SIGTERM), 0 when none.
[[nodiscard]] int interrupt_signal() noexcept;
/// Stops the work in progress as a signal would, without one (another rank
/// of the run failed): interrupt_requested() turns true, interrupt_signal()
/// stays 0, so the exit code is the reported error's, not 128 + a signal.
void request_stop() noexcept;
/// Throws Error(kAborted, "interrupted ...", where) once a signal arrived: the
/// one-line poll for loops whose partial work is discarded (temporaries are
/// removed by their owners' destructors while the exception unwinds).
void throw_if_interrupted(const std::string& where = {});
/// Makes SIGINT and SIGTERM raise the flag (a second one kills at once).
void install_interrupt_handlers();

}  // namespace emt
