#pragma once
// Errors that tools report as one line: `TOOL: error: WHAT (WHERE)`.
//
// Libraries throw emt::Error with a specific kind; the kind decides the exit
// code (usage errors exit 2, everything else 1), and `where` names the file
// (optionally FILE:DATASET or FILE:INDEX) the problem is about.
#include <stdexcept>
#include <string>

namespace emt {

enum class ErrorKind {
  kInvalidArgument,  ///< bad option value or combination: a usage error (exit 2)
  kNotFound,         ///< a named file, dataset or key does not exist
  kDataLoss,         ///< a file exists but is truncated, corrupt or fails a checksum
  kInvalidData,      ///< readable but unusable: wrong dtype, rank, shape, too small
  kIo,               ///< the OS refused: unwritable directory, disk full
  kAborted,          ///< interrupted by a signal; finished work is kept
};

[[nodiscard]] const char* to_string(ErrorKind kind) noexcept;
/// Process exit code for an error of this kind: 2 for usage errors, else 1.
[[nodiscard]] int exit_code_for(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string what, std::string where = {});
  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] const std::string& where() const noexcept { return where_; }

 private:
  ErrorKind kind_;
  std::string message_;
  std::string where_;
};

}  // namespace emt
