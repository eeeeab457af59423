// triplet-split: shards -> train/val/test partitions without leakage.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/triplets/split.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "triplet-split", "train/val/test partitions of a triplet-build output, without slices shared across partitions",
      "triplet-split DIR [--ratios 3:1:1] [--seed S] [--group z-block:N|none] [--materialize]", argc, argv, [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("dir", po::value<std::string>(), "triplet-build output directory (holds manifest.json)")
            ("ratios", po::value<std::string>()->default_value("3:1:1"), "TRAIN:VAL:TEST")
            ("seed", po::value<std::uint64_t>()->default_value(0), "seed for the block assignment")
            ("group", po::value<std::string>()->default_value("z-block"), "z-block:N (N middle slices per block; default max(2 step + 1, min(8 step, z span / 10))) or none")
            ("materialize", po::bool_switch(), "also write DIR/{train,val,test}/ shard sets with their own manifests");
        cli.positional("dir", 1);
        if (!cli.parse()) return 0;
        emt::triplets::SplitOptions o;
        o.ratios = emt::triplets::parse_ratios(cli.get<std::string>("ratios"));
        o.seed = cli.get<std::uint64_t>("seed");
        emt::triplets::parse_grouping(cli.get<std::string>("group"), o);
        o.materialize = cli.get<bool>("materialize");
        if (o.grouping == emt::triplets::Grouping::kNone) {
          cli.warn("--group none: neighbouring triplets share slices, so test triplets leak into training (the paper's plain random split)");
        }
        const std::string dir = cli.get<std::string>("dir");
        if (!std::filesystem::is_directory(dir)) throw emt::Error(emt::ErrorKind::kNotFound, "no such directory", dir);
        // DIR/splits (and the partitions) are written inside the build's directory: hold its lock.
        emt::OutputLock lock(dir);
        const auto result = emt::triplets::run_split(dir, o);
        if (cli.common().json) {
          std::cout << result.report.dump() << std::endl;
        } else {
          const auto& c = result.report["counts"];
          const auto& a = result.report["achieved_ratios"];
          cli.info(fmt::format("train {} / val {} / test {} (achieved {:.3f} : {:.3f} : {:.3f}), {} groups, {} guard-band triplets dropped -> {}/splits",
                               c["train"].get<long>(), c["val"].get<long>(), c["test"].get<long>(), a["train"].get<double>(),
                               a["val"].get<double>(), a["test"].get<double>(), result.groups, result.guard_dropped, dir));
        }
        return 0;
      });
}
