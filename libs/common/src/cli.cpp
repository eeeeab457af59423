#include "emt/common/cli.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <tbb/global_control.h>

#include "emt/common/error.hpp"
#include "emt/common/version.hpp"

namespace emt {

int hardware_threads() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

Cli::Cli(std::string tool, std::string summary, std::string usage, int argc, char** argv)
    : tool_(std::move(tool)), summary_(std::move(summary)), usage_(std::move(usage)), argc_(argc), argv_(argv),
      tool_options_("Options") {}

Cli::~Cli() = default;

void Cli::positional(const std::string& name, int max_count) { positional_.add(name.c_str(), max_count); }

void Cli::require(const std::string& name) const {
  if (!vm_.count(name)) throw Error(ErrorKind::kInvalidArgument, "missing required option --" + name);
}

void Cli::info(const std::string& line) const {
  if (!common_.quiet) std::fprintf(stderr, "%s: %s\n", tool_.c_str(), line.c_str());
}

void Cli::warn(const std::string& line) const { std::fprintf(stderr, "%s: warning: %s\n", tool_.c_str(), line.c_str()); }

bool Cli::parse() {
  const int argc = argc_;
  char** argv = argv_;
  po::options_description common("Common options");
  common.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>(), "INI file with option values; the command line wins")
      ("threads", po::value<int>()->default_value(hardware_threads()), "worker threads (default: all cores)")
      ("quiet,q", po::bool_switch(), "no progress or informational output")
      ("json", po::bool_switch(), "print a machine-readable JSON summary on stdout");
  po::options_description all;
  all.add(tool_options_).add(common);

  for (int i = 0; i < argc; ++i) {
    if (i) common_.command_line += ' ';
    common_.command_line += (i == 0 ? tool_ : std::string(argv[i]));
  }
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional_).run(), vm_);
    if (vm_.count("help")) {
      std::cout << tool_ << " " << kVersion << ": " << summary_ << "\n\nUsage: " << usage_ << "\n\n" << all << "\n";
      return false;
    }
    if (vm_.count("version")) {
      std::cout << tool_ << " " << kVersion << "\n";
      return false;
    }
    if (vm_.count("config")) {
      common_.config_path = vm_["config"].as<std::string>();
      std::ifstream in(common_.config_path);
      if (!in) throw Error(ErrorKind::kNotFound, "cannot open config file", common_.config_path);
      // Unregistered keys are allowed: a data spec carries sections (sources,
      // filters) that the tool reads itself through the same file.
      po::store(po::parse_config_file(in, all, /*allow_unregistered=*/true), vm_);
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw Error(ErrorKind::kInvalidArgument, po_error_message(e));
  }
  common_.threads = vm_["threads"].as<int>();
  if (common_.threads < 1) throw Error(ErrorKind::kInvalidArgument, "--threads must be at least 1");
  common_.quiet = vm_["quiet"].as<bool>();
  common_.json = vm_["json"].as<bool>();
  thread_limit_ = std::make_shared<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                        static_cast<std::size_t>(common_.threads));
  return true;
}

namespace {
// Reads the (protected) substitutions of a Boost.Program_options error.
struct PoErrorPeek : po::error_with_option_name {
  static const std::map<std::string, std::string>& substitutions(const po::error_with_option_name& e) {
    return e.*(&PoErrorPeek::m_substitutions);
  }
};
}  // namespace

std::string po_error_message(const po::error& error) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&error);
  if (named == nullptr) return error.what();
  bool safe = true;
  for (const auto& [key, value] : PoErrorPeek::substitutions(*named)) safe = safe && value.find('%') == std::string::npos;
  if (safe) return error.what();
  const char* problem = dynamic_cast<const po::validation_error*>(&error)     ? "invalid value"
                        : dynamic_cast<const po::multiple_occurrences*>(&error) ? "given more than once"
                                                                                : "cannot be parsed";
  return "option '" + named->get_option_name() + "': " + problem;
}

int run_tool(const std::string& tool, const std::string& summary, const std::string& usage, int argc, char** argv,
             const std::function<int(Cli&)>& body) {
  install_interrupt_handlers();
  // A file-size limit (ulimit -f) must be an error we report (EFBIG), not a
  // silent kill that leaves temporaries behind.
  std::signal(SIGXFSZ, SIG_IGN);
  // After a signal the exit code is 128 + its number (130 SIGINT, 143
  // SIGTERM), never 0, even when the work finished as the signal arrived.
  auto signalled = [&](int code) {
    if (interrupt_signal() == 0) return code;  // request_stop(): the error reported says why
    if (code == 0) std::fprintf(stderr, "%s: error: interrupted by signal %d\n", tool.c_str(), interrupt_signal());
    return 128 + interrupt_signal();
  };
  try {
    Cli cli(tool, summary, usage, argc, argv);
    return signalled(body(cli));
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool.c_str(), e.what());
    return signalled(exit_code_for(e.kind()));
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory (a size or option too large for this machine?)\n", tool.c_str());
    return signalled(1);
  } catch (const std::exception& e) {
    // Third-party exceptions (LibTorch's carry a backtrace) are cut to their first line.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    std::fprintf(stderr, "%s: error: %s\n", tool.c_str(), what.c_str());
    return signalled(1);
  }
}

}  // namespace emt
