#pragma once
// Integrity of ZIP archives (LibTorch checkpoints are ZIP files of stored
// members). LibTorch's reader does not check the members' CRC-32, so a
// flipped byte in a weight loads silently; this check reads the central
// directory and recomputes every member's CRC-32 before anything is loaded.
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace emt {

/// CRC-32 (the ZIP / PNG polynomial: zlib's crc32) of `data`, continuing from `crc`.
[[nodiscard]] std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0) noexcept;

/// Throws Error(kDataLoss) naming `path` (and the member) when the file is
/// not a well-formed ZIP archive or a member's bytes do not match its CRC-32;
/// kNotFound when it does not exist. Members are stored (the tensors) or
/// deflated (LibTorch's small code files); other methods are refused.
void verify_zip_archive(const std::filesystem::path& path);

}  // namespace emt
