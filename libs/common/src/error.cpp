#include "emt/common/error.hpp"

namespace emt {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kDataLoss: return "data loss";
    case ErrorKind::kInvalidData: return "invalid data";
    case ErrorKind::kIo: return "i/o";
    case ErrorKind::kAborted: return "aborted";
  }
  return "unknown";
}

int exit_code_for(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return 2;
    case ErrorKind::kNotFound:
    case ErrorKind::kDataLoss:
    case ErrorKind::kInvalidData:
    case ErrorKind::kIo:
    case ErrorKind::kAborted: return 1;
  }
  return 1;
}

static std::string compose(const std::string& what, const std::string& where) {
  return where.empty() ? what : what + " (" + where + ")";
}

Error::Error(ErrorKind kind, std::string what, std::string where)
    : std::runtime_error(compose(what, where)),
      kind_(kind),
      message_(std::move(what)),
      where_(std::move(where)) {}

}  // namespace emt
