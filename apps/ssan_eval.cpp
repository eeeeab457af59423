// ssan-eval: PSNR / SSIM / IE / sharpness of SSAN and classical baselines.
#include <iostream>

#include <torch/torch.h>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/text.hpp"
#include "emt/ssan/distributed.hpp"
#include "emt/ssan/evaluate.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "ssan-eval", "evaluates SSAN and the linear / flow / blur baselines on triplets (PSNR, SSIM, IE, sharpness ratio)",
      "ssan-eval --checkpoint RUN/best.pt --data DIR [--split test] [--out DIR] [--json] | --baselines-only --data DIR", argc, argv,
      [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("checkpoint", po::value<std::string>(), "SSAN checkpoint (RUN/best.pt or RUN/last.pt) or state dict (MODEL.pth + MODEL.json, ssan-export or Python)")
            ("baselines-only", po::bool_switch(), "evaluate only linear, flow and blur (no checkpoint needed)")
            ("data", po::value<std::string>(), "triplet-build output directory")
            ("split", po::value<std::string>(), "split to evaluate (DIR/splits/NAME.txt); default: every triplet")
            ("out,o", po::value<std::string>(), "write eval.md (table), eval.json, eval_samples.csv and montage.png here")
            ("montage-rows", po::value<int>()->default_value(6), "samples shown in OUT/montage.png, evenly spaced (0 = no montage)")
            ("blur-sigma", po::value<std::string>()->default_value("best"),
             "sigma of the 'blur' reference row (linear mean, smoothed); 'best': the sigma with the best mean PSNR on the evaluated triplets")
            ("max-samples", po::value<std::int64_t>()->default_value(0), "evaluate at most this many triplets, evenly spaced (0 = all)")
            ("reference", po::value<std::string>()->default_value("checkpoint"),
             "checkpoint: triplets built to another reference than the model's training data are matched to the model's for SSAN "
             "(its prediction mapped back); volume: the triplets as built")
            ("force", po::bool_switch(), "--out may be an existing non-empty directory (only the eval files are replaced)")
            ("device", po::value<std::string>()->default_value("auto"), "cpu, cuda, cuda:N or auto (CUDA when this LibTorch has it and a GPU is visible)");
        if (!cli.parse()) return 0;
        torch::set_num_threads(cli.common().threads);
        cli.require("data");
        emt::ssan::EvalOptions o;
        if (!cli.get<bool>("baselines-only")) {
          if (!cli.has("checkpoint")) throw emt::Error(emt::ErrorKind::kInvalidArgument, "give --checkpoint or --baselines-only");
          o.checkpoint = cli.get<std::string>("checkpoint");
        }
        o.data_dir = cli.get<std::string>("data");
        o.split = cli.get_optional<std::string>("split").value_or("");
        o.out_dir = cli.get_optional<std::string>("out").value_or("");
        const std::string sigma = cli.get<std::string>("blur-sigma");
        if (sigma != "best") {
          o.blur_sigma = emt::parse_double(sigma, "--blur-sigma");
          if (!(o.blur_sigma >= 0)) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--blur-sigma must be >= 0 or 'best'");
        }
        o.max_samples = cli.get<std::int64_t>("max-samples");
        if (o.max_samples < 0) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--max-samples must be >= 0");
        o.force = cli.get<bool>("force");
        o.reference = emt::ssan::parse_reference_mode(cli.get<std::string>("reference"));
        o.device = cli.get<std::string>("device");
        (void)emt::ssan::resolve_device(o.device);  // a usage error now, not after reading the data
        o.montage_rows = cli.get<int>("montage-rows");
        if (o.montage_rows < 0) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--montage-rows must be >= 0");
        const auto result = emt::ssan::evaluate(o);
        if (cli.common().json) {
          std::cout << result.dump() << std::endl;
        } else {
          std::cout << emt::ssan::format_eval_table(result);
        }
        return 0;
      });
}
