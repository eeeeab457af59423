// triplet-build: raw EM volumes -> aligned, filtered, histogram-matched triplet shards.
#include <chrono>
#include <iostream>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/version.hpp"
#include "emt/triplets/build.hpp"
#include "emt/triplets/spec.hpp"
#include "mpi_launch.hpp"

namespace {
/// The command line as recorded in shards: without flags that only affect how
/// the run goes (threads, output verbosity, resume), so a resumed run and an
/// uninterrupted one write identical files.
std::string recorded_command(int argc, char** argv) {
  static const std::set<std::string> flags{"--resume", "--force", "--quiet", "-q", "--json"};
  std::string out = "triplet-build";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (flags.count(a) || a.rfind("--threads=", 0) == 0 || a.rfind("--stop-after-shards=", 0) == 0) continue;
    // --part and --out too: every part, and a build into another directory,
    // records the command of the single-process build, so the manifests of
    // merged parts and of rebuilds elsewhere equal it byte for byte.
    if (a.rfind("--cache-mb=", 0) == 0 || a.rfind("--part=", 0) == 0 || a.rfind("--out=", 0) == 0) continue;
    if (a == "--threads" || a == "--stop-after-shards" || a == "--cache-mb" || a == "--part" || a == "--out" || a == "-o") {
      ++i;
      continue;
    }
    out += " " + a;
  }
  return out;
}

/// The one-line (or --json) report of a finished build.
int report(const emt::Cli& cli, const emt::triplets::BuildSummary& summary, const std::string& out) {
  if (cli.common().json) {
    auto j = summary.to_json();
    j["out"] = out;
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::int64_t rejected = 0;
  std::string reasons;
  for (const auto& [reason, n] : summary.rejected) {
    rejected += n;
    reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
  }
  cli.info(std::to_string(summary.triplets) + " triplets in " + std::to_string(summary.shards) + " shard(s), " + std::to_string(rejected) +
           " rejected (" + reasons + ") -> " + out);
  return 0;
}

/// Parses the spec and the options that shape the build (everything but MPI).
void configure(const emt::Cli& cli, int argc, char** argv, emt::triplets::BuildSpec& spec, emt::triplets::BuildOptions& options) {
  cli.require("out");
  if (!cli.has("config") && !cli.has("source")) {
    throw emt::Error(emt::ErrorKind::kInvalidArgument, "give a data spec (--config SPEC.ini) or at least one --source");
  }
  spec = cli.common().config_path.empty() ? emt::triplets::parse_spec("", "(defaults)") : emt::triplets::load_spec(cli.common().config_path);
  if (auto sources = cli.get_optional<std::vector<std::string>>("source")) {
    spec.sources.clear();
    std::set<std::string> ids;
    for (const std::string& path : *sources) {
      auto s = emt::triplets::source_from_path(path);
      std::string id = s.id;
      for (int n = 2; ids.count(id); ++n) id = s.id + "_" + std::to_string(n);
      s.id = id;
      ids.insert(id);
      if (auto step = cli.get_optional<int>("step")) s.step = *step;
      spec.sources.push_back(s);
    }
    spec.text += "\n# sources replaced on the command line (--source)\n";
  }
  if (auto t = cli.get_optional<int>("tile-size")) {
    spec.tile_size = *t;
    spec.text += "\n# output.tile_size overridden: " + std::to_string(*t) + "\n";
  }
  // The cache size changes memory use, never output: not added to spec.text.
  if (auto mb = cli.get_optional<std::int64_t>("cache-mb")) spec.cache_mb = *mb;
  emt::triplets::validate(spec, cli.common().config_path);

  options.out_dir = cli.get<std::string>("out");
  options.resume = cli.get<bool>("resume");
  options.force = cli.get<bool>("force");
  options.skip_bad_slices = cli.get<bool>("skip-bad-slices");
  options.quiet = cli.common().quiet;
  options.command = recorded_command(argc, argv);
  options.version = emt::kVersion;
  options.stop_after_shards = cli.get<int>("stop-after-shards");
  if (auto part = cli.get_optional<std::string>("part")) {
    const auto in = emt::split(*part, '/');
    if (in.size() != 2) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--part must be I/N, like 0/4, not '" + *part + "'");
    const auto i = emt::parse_int(in[0], "--part I"), n = emt::parse_int(in[1], "--part N");
    if (n < 1 || n > 9999 || i < 0 || i >= n) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--part I/N needs 0 <= I < N <= 9999");
    options.part = static_cast<int>(i);
    options.parts = static_cast<int>(n);
  }
  options.warn = [&cli](const std::string& w) { cli.warn(w); };
}
}  // namespace

int main(int argc, char** argv) {
  // Before anything else: MPI_Init may consume launcher arguments.
  const emt::MpiLaunch mpi(&argc, &argv);
  return emt::run_tool(
      "triplet-build", "raw EM volumes -> aligned, filtered, histogram-matched triplet shards",
      "triplet-build --config SPEC.ini [--source PATH ...] --out DIR [--resume] [--force]\n"
      "       mpirun -n N triplet-build --config SPEC.ini --out DIR   (rank R builds part R of N, rank 0 merges)",
      argc, argv, [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("out,o", po::value<std::string>(), "output directory for shards, manifest.json, rejected.csv")
            ("source", po::value<std::vector<std::string>>(), "replaces the spec's sources: HDF5 FILE[:dataset], Zarr / OME-Zarr / N5 / precomputed directory (CONTAINER:dataset, PATH:LEVEL), image directory, glob or multipage TIFF (repeatable)")
            ("step", po::value<int>(), "slice step k for --source inputs: triplets (z-k, z, z+k)")
            ("tile-size", po::value<int>(), "overrides output.tile_size")
            ("part", po::value<std::string>(), "job arrays: build part I of N (I = 0..N-1) into OUT/parts/; then --merge OUT")
            ("merge", po::value<std::string>(), "job arrays: assemble OUT from its finished parts (byte-identical to a single-process build)")
            ("cache-mb", po::value<std::int64_t>(), "decoded-chunk cache per Zarr/N5/precomputed source in MiB (overrides input.cache_mb; not recorded: it changes no output)")
            ("resume", po::bool_switch(), "finish an interrupted build in --out")
            ("force", po::bool_switch(), "replace a build of a different spec in --out")
            ("skip-bad-slices", po::bool_switch(), "treat unreadable slices as missing (reported) instead of failing")
            ("stop-after-shards", po::value<int>()->default_value(-1), "testing: stop as if interrupted after N shards");
        const auto started = std::chrono::steady_clock::now();
        bool help = false;
        std::string merge_dir;
        emt::triplets::BuildSpec spec;
        emt::triplets::BuildOptions options;
        emt::triplets::BuildSummary summary;
        std::optional<emt::triplets::BuildSummary> merged;
        // Under mpirun every step below runs on every rank and its outcome is
        // agreed on (mpi_launch.hpp); in a plain run together() just runs it.
        if (const int rc = mpi.together([&] {
              if (!cli.parse()) {
                help = true;
                return;
              }
              if (auto dir = cli.get_optional<std::string>("merge")) {
                if (cli.has("out") || cli.has("part") || cli.has("source") || !cli.common().config_path.empty()) {
                  throw emt::Error(emt::ErrorKind::kInvalidArgument, "--merge DIR takes no --out, --part, --source or --config");
                }
                if (mpi.size() > 1) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--merge runs as one process, not under mpirun");
                merge_dir = *dir;
                summary = emt::triplets::merge_parts(merge_dir, cli.common().quiet);
                return;
              }
              configure(cli, argc, argv, spec, options);
              if (mpi.active()) {
                if (cli.has("part")) {
                  throw emt::Error(emt::ErrorKind::kInvalidArgument, "--part is for job arrays; under mpirun rank R builds part R of N by itself");
                }
                options.part = mpi.rank();
                options.parts = mpi.size();
                options.quiet = options.quiet || mpi.rank() != 0;  // one progress display, rank 0's
              }
              summary = emt::triplets::run_build(spec, options);
              // Job arrays: the last part to finish assembles OUT (--merge does the same by hand).
              if (!mpi.active() && options.parts > 1) merged = emt::triplets::merge_parts_if_complete(options.out_dir, options.quiet);
            })) {
          return rc;
        }
        if (help) return 0;
        if (!merge_dir.empty()) {
          if (cli.common().json) {
            auto j = summary.to_json();
            j["out"] = merge_dir;
            std::cout << j.dump() << std::endl;
          } else {
            cli.info(std::to_string(summary.triplets) + " triplets in " + std::to_string(summary.shards) + " shard(s) merged -> " + merge_dir);
          }
          return 0;
        }
        if (merged) {
          if (!cli.common().json) {
            cli.info(fmt::format("part {} of {} finished last; every part is done, merged:", options.part, options.parts));
          }
          return report(cli, *merged, options.out_dir);
        }
        if (mpi.size() > 1) {
          // Every part is finished (the agreement above is the barrier): rank 0
          // assembles OUT; until then OUT holds only parts/, nothing that looks complete.
          const double megabytes_read = mpi.sum(summary.megabytes_read);
          if (const int rc = mpi.together([&] {
                if (mpi.rank() == 0) summary = emt::triplets::merge_parts(options.out_dir, options.quiet);
              })) {
            return rc;
          }
          if (mpi.rank() != 0) return 0;
          summary.megabytes_read = megabytes_read;
          summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        }
        return report(cli, summary, options.out_dir);
      });
}
