// triplet-inspect: summary, montages and verification of a shard directory.
#include <filesystem>
#include <iostream>
#include <memory>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/triplets/inspect.hpp"
#include "emt/triplets/split.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "triplet-inspect", "summary, montages and checksum verification of a triplet-build output",
      "triplet-inspect DIR [--montage OUT.png [--rejected] [--rows N]] [--verify] [--json]", argc, argv, [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("dir", po::value<std::string>(), "triplet-build output directory")
            ("montage", po::value<std::string>(), "write a PNG grid of triplets (slice 0 | 1 | 2 per row, captioned)")
            ("rejected", po::bool_switch(), "montage of rejected tiles re-read from the sources, with reason and value")
            ("rows", po::value<int>()->default_value(8), "rows in the montage")
            ("verify", po::bool_switch(), "recompute every shard's SHA-256 and check the schema; exit 1 on any mismatch");
        cli.positional("dir", 1);
        if (!cli.parse()) return 0;
        cli.require("dir");
        const auto dir = cli.get<std::string>("dir");
        const int rows = cli.get<int>("rows");
        if (rows < 1) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--rows must be at least 1");
        std::unique_ptr<emt::OutputLock> lock;
        if (auto out = cli.get_optional<std::string>("montage")) {
          emt::refuse_output_overlapping_inputs(*out, emt::triplets::shard_directory_inputs(dir), "--montage");
          if (std::filesystem::is_directory(*out)) throw emt::Error(emt::ErrorKind::kIo, "--montage names a directory; give a .png file", *out);
          lock = std::make_unique<emt::OutputLock>(*out);
        }
        if (cli.get<bool>("verify")) {
          const auto problems = emt::triplets::verify_directory(dir);
          for (const auto& p : problems) std::cerr << "triplet-inspect: " << p << "\n";
          if (!problems.empty()) {
            throw emt::Error(emt::ErrorKind::kDataLoss, std::to_string(problems.size()) + " problem(s) found", dir);
          }
          cli.info("verified: every shard matches the manifest");
        }
        if (auto out = cli.get_optional<std::string>("montage")) {
          emt::triplets::MontageOptions mo;
          mo.rejected = cli.get<bool>("rejected");
          mo.max_rows = rows;
          const cv::Mat image = emt::triplets::montage(dir, mo);
          emt::emio::write_image_atomic(*out, image, ".png");
          cli.info("montage: " + *out);
        }
        const auto summary = emt::triplets::summarize(dir);
        if (cli.common().json) {
          std::cout << summary.dump() << std::endl;
        } else if (!cli.common().quiet) {
          std::cout << emt::triplets::format_summary(summary);
        }
        return 0;
      });
}
