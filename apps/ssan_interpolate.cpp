// ssan-interpolate: replaces chosen or detected-defective slices of a volume.
#include <iostream>

#include <torch/torch.h>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/text.hpp"
#include "emt/ssan/distributed.hpp"
#include "emt/ssan/interpolate.hpp"
#include "emt/triplets/spec.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "ssan-interpolate", "regenerates chosen or detected-defective slices of a volume with a trained SSAN",
      "ssan-interpolate --checkpoint CKPT --input VOLUME [--slices 12,40] [--detect-defects] --out OUT | --in-place", argc, argv,
      [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("checkpoint", po::value<std::string>(), "SSAN checkpoint (RUN/best.pt) or state dict (MODEL.pth + MODEL.json, ssan-export or Python); needed by --method ssan")
            ("method", po::value<std::string>()->default_value("ssan"),
             "ssan (the model), or a model-free baseline through the same alignment: linear (mean of the neighbours), flow (Farneback, half way)")
            ("input", po::value<std::string>(), "HDF5 FILE[:dataset], image directory, glob or multipage TIFF")
            ("slices", po::value<std::string>(), "slices to replace: 12,40,50:53")
            ("detect-defects", po::bool_switch(), "also replace slices the pipeline's defect filter flags (reported)")
            ("out,o", po::value<std::string>(), "output volume (.h5 for HDF5 input, else a directory of PNGs) plus OUT.report.json")
            ("in-place", po::bool_switch(), "write the replaced slices into the input itself")
            ("force", po::bool_switch(), "--out may be an existing non-empty directory (only its slice images NNNN.png are replaced)")
            ("tile", po::value<int>()->default_value(256), "tile side for prediction")
            ("overlap", po::value<int>()->default_value(32), "tile overlap, blended with linear ramps")
            ("search-radius", po::value<int>()->default_value(0),
             "alignment search radius between the neighbours, px (0: twice the training data's, from the checkpoint; 32 without one)")
            ("detect-fraction", po::value<double>()->default_value(0.25), "--detect-defects flags a slice when this share of its tiles is anomalous")
            ("spec", po::value<std::string>(), "data spec whose [filters] (for --detect-defects) and 16-bit mapping override the checkpoint's "
             "preprocessing record (e.g. data_specs/isbi2012.ini)")
            ("reference", po::value<std::string>()->default_value("checkpoint"),
             "what the neighbours are histogram-matched to: checkpoint (the training data's reference, the default) or volume "
             "(one from this volume's clean slices, the behaviour before checkpoints carried it)")
            ("device", po::value<std::string>()->default_value("auto"), "cpu, cuda, cuda:N or auto (CUDA when this LibTorch has it and a GPU is visible)");
        if (!cli.parse()) return 0;
        torch::set_num_threads(cli.common().threads);
        emt::ssan::InterpolateOptions o;
        o.method = emt::ssan::parse_fill_method(cli.get<std::string>("method"));
        if (o.method == emt::ssan::FillMethod::kSsan) {
          cli.require("checkpoint");
          o.checkpoint = cli.get<std::string>("checkpoint");
        }
        cli.require("input");
        o.input = cli.get<std::string>("input");
        if (auto s = cli.get_optional<std::string>("slices")) o.slices = emt::parse_index_list(*s);
        o.detect_defects = cli.get<bool>("detect-defects");
        o.in_place = cli.get<bool>("in-place");
        o.force = cli.get<bool>("force");
        if (o.in_place && cli.has("out")) throw emt::Error(emt::ErrorKind::kInvalidArgument, "give --out or --in-place, not both");
        if (!o.in_place) {
          cli.require("out");
          o.output = cli.get<std::string>("out");
        }
        if (o.slices.empty() && !o.detect_defects) {
          throw emt::Error(emt::ErrorKind::kInvalidArgument, "give --slices and/or --detect-defects");
        }
        o.tile = cli.get<int>("tile");
        o.overlap = cli.get<int>("overlap");
        o.search_radius = cli.get<int>("search-radius");
        o.detect_fraction = cli.get<double>("detect-fraction");
        if (auto spec_path = cli.get_optional<std::string>("spec")) {
          const auto spec = emt::triplets::load_spec(*spec_path);
          o.filters = spec.filters;
          o.uint16 = spec.uint16;
        }
        o.reference = emt::ssan::parse_reference_mode(cli.get<std::string>("reference"));
        o.quiet = cli.common().quiet;
        o.device = cli.get<std::string>("device");
        (void)emt::ssan::resolve_device(o.device);  // a usage error now, not after reading the data
        const auto report = emt::ssan::interpolate_volume(o, [&](const std::string& w) { cli.warn(w); });
        if (cli.common().json) {
          std::cout << report.dump() << std::endl;
        } else {
          cli.info(std::to_string(report["replaced"].size()) + " slice(s) replaced -> " + report["output"].get<std::string>() +
                   " (report: " + report["report"].get<std::string>() + ")");
        }
        return 0;
      });
}
