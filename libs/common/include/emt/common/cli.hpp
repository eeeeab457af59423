#pragma once
// The command-line conventions every emtriplet tool shares (docs/cli.md):
// --help, --version, --config FILE (INI; the command line wins), --threads N,
// --quiet, --json; exit codes 0 / 1 (data or runtime error) / 2 (usage);
// errors as one line `TOOL: error: WHAT (WHERE)` on stderr.
//
// A tool's main() is:
//   int main(int argc, char** argv) {
//     return emt::run_tool("my-tool", "what it does", "my-tool [options] IN", argc, argv,
//                         [&](emt::Cli& cli) { ... return 0; });
//   }
// where the body first declares its options on cli, then calls cli.parse().
// (run_tool hands argc/argv to the Cli it creates.)
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "emt/common/interrupt.hpp"  // what run_tool installs; tools poll it

namespace emt {

namespace po = boost::program_options;

/// Options every tool has, after parsing.
struct CommonOptions {
  int threads = 1;            ///< worker threads (default: all cores)
  bool quiet = false;         ///< no progress, no informational lines
  bool json = false;          ///< one JSON object on stdout as summary
  std::string config_path;    ///< --config FILE, empty when none
  std::string command_line;   ///< the tool name and its arguments, space-joined
};

class Cli {
 public:
  Cli(std::string tool, std::string summary, std::string usage, int argc, char** argv);
  ~Cli();

  /// Tool-specific options; call add_options() on it before parse().
  po::options_description& options() { return tool_options_; }
  /// Declares a positional argument bound to option `name` (-1: unlimited).
  void positional(const std::string& name, int max_count);

  /// Parses argv and the --config file. Returns false when --help or --version
  /// was printed (the tool should exit 0). Throws emt::Error(kInvalidArgument)
  /// on unknown options or bad values. Sets TBB's thread limit (a LibTorch
  /// tool sets its own with torch::set_num_threads(common().threads)).
  [[nodiscard]] bool parse();

  [[nodiscard]] const po::variables_map& vm() const { return vm_; }
  [[nodiscard]] const CommonOptions& common() const { return common_; }
  [[nodiscard]] bool has(const std::string& name) const { return vm_.count(name) > 0 && !vm_[name].defaulted(); }
  template <class T>
  [[nodiscard]] T get(const std::string& name) const {
    require(name);
    return vm_[name].as<T>();
  }
  template <class T>
  [[nodiscard]] std::optional<T> get_optional(const std::string& name) const {
    if (!vm_.count(name)) return std::nullopt;
    return vm_[name].as<T>();
  }
  /// Throws a usage error "missing required option --NAME" when absent.
  void require(const std::string& name) const;
  [[nodiscard]] const std::string& tool() const { return tool_; }
  /// Informational line to stderr unless --quiet.
  void info(const std::string& line) const;
  /// Warning line to stderr (shown even with --quiet).
  void warn(const std::string& line) const;

 private:
  std::string tool_, summary_, usage_;
  int argc_;
  char** argv_;
  po::options_description tool_options_;
  po::positional_options_description positional_;
  po::variables_map vm_;
  CommonOptions common_;
  std::shared_ptr<void> thread_limit_;  // keeps tbb::global_control alive
};

/// Runs a tool body, turning exceptions into the one-line error convention and
/// an exit code. Installs SIGINT/SIGTERM handlers (interrupt.hpp);
/// after a signal the exit code is 128 + the signal number. Ignores SIGXFSZ,
/// so an exceeded file-size limit is a write error (EFBIG) the tool reports.
int run_tool(const std::string& tool, const std::string& summary, const std::string& usage, int argc, char** argv,
             const std::function<int(Cli&)>& body);

/// The message of a Boost.Program_options error. Boost 1.74's what() loops
/// forever when the offending value itself holds a placeholder such as
/// "%value%" (found by fuzz/fuzz_ssan_config; `--seed %value%` hung every
/// tool): such errors are described from their parts instead.
[[nodiscard]] std::string po_error_message(const po::error& error);

/// Number of hardware threads (at least 1).
[[nodiscard]] int hardware_threads() noexcept;

}  // namespace emt
