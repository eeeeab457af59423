// em-phantom: writes a synthetic, deterministic EM-like volume and its truth.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/text.hpp"
#include "emt/phantom/phantom.hpp"

namespace {
using emt::Error;
using emt::ErrorKind;

emt::phantom::OutputFormat parse_format(const std::string& name, const std::string& out) {
  if (name == "hdf5") return emt::phantom::OutputFormat::kHdf5;
  if (name == "png") return emt::phantom::OutputFormat::kPng;
  if (name == "tiff") return emt::phantom::OutputFormat::kTiff;
  if (name == "zarr") return emt::phantom::OutputFormat::kZarr;
  if (name == "n5") return emt::phantom::OutputFormat::kN5;
  if (name == "auto") {
    std::filesystem::path p(out);
    if (!p.has_filename()) p = p.parent_path();
    const std::string ext = p.extension().string();
    if (ext == ".zarr") return emt::phantom::OutputFormat::kZarr;
    if (ext == ".n5") return emt::phantom::OutputFormat::kN5;
    return (ext == ".h5" || ext == ".hdf5" || ext == ".hdf") ? emt::phantom::OutputFormat::kHdf5 : emt::phantom::OutputFormat::kPng;
  }
  throw Error(ErrorKind::kInvalidArgument, "--format must be hdf5, png, tiff, zarr, n5 or auto, not '" + name + "'");
}

/// --chunks ZxYxX and --compression NAME[:CNAME[:SHUFFLE]] (blosc's inner codec and shuffle).
emt::emio::ChunkedWriteOptions parse_chunking(const std::string& chunks, const std::string& compression, int level) {
  emt::emio::ChunkedWriteOptions o;
  const auto c = emt::split(chunks, 'x');
  if (c.size() != 3) throw Error(ErrorKind::kInvalidArgument, "--chunks must be ZxYxX, like 16x256x256");
  for (std::size_t i = 0; i < 3; ++i) {
    o.chunks[i] = emt::parse_int(c[i], "--chunks");
    if (o.chunks[i] < 1 || o.chunks[i] > 4096) throw Error(ErrorKind::kInvalidArgument, "--chunks entries must be in [1, 4096]");
  }
  const auto parts = emt::split(compression, ':');
  o.compression = emt::emio::parse_compression(parts.at(0));
  if (parts.size() > 1 && o.compression != emt::emio::Compression::kBlosc) {
    throw Error(ErrorKind::kInvalidArgument, "only blosc takes :CNAME[:SHUFFLE] in --compression");
  }
  if (parts.size() > 1) o.blosc_cname = parts[1];
  if (parts.size() > 2) {
    const std::string& s = parts[2];
    o.blosc_shuffle = s == "none" ? 0 : s == "byte" ? 1 : s == "bit" ? 2 : -1;
    if (o.blosc_shuffle < 0) throw Error(ErrorKind::kInvalidArgument, "blosc shuffle must be none, byte or bit, not '" + s + "'");
  }
  if (parts.size() > 3) throw Error(ErrorKind::kInvalidArgument, "--compression is NAME or blosc:CNAME:SHUFFLE");
  if (level < 0 || level > 19) throw Error(ErrorKind::kInvalidArgument, "--compression-level must be in [0, 19]");
  o.level = level;
  return o;
}
}  // namespace

int main(int argc, char** argv) {
  return emt::run_tool(
      "em-phantom", "writes a synthetic EM-like volume with drift and injected defects, and its truth file",
      "em-phantom --out VOLUME.h5|DIR [--size 32x1536x1536] [--seed S] [--defect-rate R] [--max-drift PX]", argc, argv,
      [](emt::Cli& cli) {
        cli.options().add_options()
            ("out,o", emt::po::value<std::string>(), "output: an .h5 file (CREMI layout volumes/raw) or a directory (image stack)")
            ("format", emt::po::value<std::string>()->default_value("auto"), "hdf5, png, tiff, zarr (OME-Zarr 0.4), n5, or auto (from --out: .h5, .zarr, .n5, else png)")
            ("chunks", emt::po::value<std::string>()->default_value("16x256x256"), "zarr / n5: chunk shape ZxYxX")
            ("compression", emt::po::value<std::string>()->default_value("blosc"), "zarr / n5: none, zlib, gzip, zstd, xz, blosc or blosc:CNAME:SHUFFLE (CNAME lz4, lz4hc, blosclz, zstd, zlib; SHUFFLE none, byte, bit)")
            ("compression-level", emt::po::value<int>()->default_value(5), "zarr / n5: codec level")
            ("bits", emt::po::value<int>()->default_value(8), "8 or 16 bits per pixel")
            ("size", emt::po::value<std::string>()->default_value("32x1536x1536"), "DEPTHxHEIGHTxWIDTH")
            ("seed", emt::po::value<std::uint64_t>()->default_value(1), "random seed: same seed, byte-identical output")
            ("defect-rate", emt::po::value<double>()->default_value(0.15), "probability a slice gets a random defect")
            ("defects", emt::po::value<std::string>(), "explicit defects instead of random ones: Z:KIND,... with KIND in fold, padding, blur, missing, stain, flip, saturated")
            ("max-drift", emt::po::value<double>()->default_value(6.0), "largest per-slice drift in px (y and x)")
            ("cell-size", emt::po::value<double>()->default_value(96.0), "mean cell diameter in px")
            ("noise", emt::po::value<double>()->default_value(10.0), "noise sigma in grey levels")
            ("truth", emt::po::value<std::string>(), "truth JSON path (default: OUT.truth.json beside the output)")
            ("force", emt::po::bool_switch(), "write an image stack, zarr or n5 volume into an existing non-empty directory (only the names the tool writes are replaced)");
        cli.positional("out", 1);
        if (!cli.parse()) return 0;
        const auto out = cli.get<std::string>("out");

        emt::phantom::PhantomOptions options;
        const auto dims = emt::split(cli.get<std::string>("size"), 'x');
        if (dims.size() != 3) throw Error(ErrorKind::kInvalidArgument, "--size must be DEPTHxHEIGHTxWIDTH, like 32x1536x1536");
        options.depth = emt::parse_int(dims[0], "--size depth");
        options.height = emt::parse_int(dims[1], "--size height");
        options.width = emt::parse_int(dims[2], "--size width");
        options.seed = cli.get<std::uint64_t>("seed");
        options.defect_rate = cli.get<double>("defect-rate");
        options.max_drift = cli.get<double>("max-drift");
        options.cell_size = cli.get<double>("cell-size");
        options.noise_sigma = cli.get<double>("noise");
        if (auto list = cli.get_optional<std::string>("defects")) {
          for (const std::string& item : emt::split(*list, ',')) {
            const auto parts = emt::split(item, ':');
            if (parts.size() != 2) throw Error(ErrorKind::kInvalidArgument, "--defects items must be Z:KIND, not '" + item + "'");
            options.defects.emplace_back(emt::parse_int(parts[0], "--defects slice"), emt::phantom::parse_defect_kind(parts[1]));
          }
        }
        const int bits = cli.get<int>("bits");
        if (bits != 8 && bits != 16) throw Error(ErrorKind::kInvalidArgument, "--bits must be 8 or 16");
        const auto format = parse_format(cli.get<std::string>("format"), out);
        const auto chunking = parse_chunking(cli.get<std::string>("chunks"), cli.get<std::string>("compression"),
                                             cli.get<int>("compression-level"));
        std::string truth = cli.get_optional<std::string>("truth").value_or("");
        if (truth.empty()) {
          std::filesystem::path p(out);
          while (p.has_filename() == false && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
          truth = (format == emt::phantom::OutputFormat::kHdf5 ? p.replace_extension("").string() : p.string()) + ".truth.json";
        }
        const auto parent = std::filesystem::absolute(out).parent_path();
        if (!std::filesystem::is_directory(parent)) throw Error(ErrorKind::kIo, "output directory does not exist", parent.string());
        const bool force = cli.get<bool>("force");
        if (format == emt::phantom::OutputFormat::kHdf5) {
          if (std::filesystem::is_directory(out)) throw Error(ErrorKind::kIo, "output is an existing directory; an HDF5 volume does not replace it", out);
        } else {
          emt::check_output_directory(out, force);
        }
        emt::refuse_output_overlapping_inputs(truth, {out}, "--truth");
        emt::OutputLock lock(out);

        const emt::phantom::Phantom phantom(options);
        emt::Progress progress("em-phantom", options.depth, "slices", cli.common().quiet);
        emt::phantom::write_phantom(phantom, out, format, bits, truth, [&] {
          progress.tick();
          emt::throw_if_interrupted(out);
        }, force, chunking);
        progress.finish();
        if (cli.common().json) {
          nlohmann::json j{{"out", out}, {"truth", truth}, {"shape", {options.depth, options.height, options.width}},
                           {"bits", bits}, {"defects", phantom.truth().defects.size()}};
          std::cout << j.dump() << std::endl;
        } else {
          cli.info("wrote " + out + " and " + truth + " (" + std::to_string(phantom.truth().defects.size()) + " defects)");
        }
        return 0;
      });
}
