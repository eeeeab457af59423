// ssan-train: trains SSAN directly from triplet shards.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/ssan/config.hpp"
#include "emt/ssan/run_record.hpp"
#include "emt/ssan/interop.hpp"
#include "emt/ssan/trainer.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "ssan-train", "trains the SSAN slice-interpolation network from triplet shards",
      "ssan-train --config data_specs/ssan_small.ini --data DIR [--split train] [--val-split val] --out RUN | --resume RUN", argc, argv,
      [&](emt::Cli& cli) {
        namespace po = emt::po;
        const emt::ssan::TrainOptions defaults;  // every default below is the options struct's
        cli.options().add_options()
            ("data", po::value<std::string>(), "triplet-build output directory")
            ("split", po::value<std::string>()->default_value(defaults.split), "training split (DIR/splits/NAME.txt); 'all' for every triplet")
            ("val-split", po::value<std::string>()->default_value(defaults.val_split), "validation split; 'none' to skip validation")
            ("out,o", po::value<std::string>(), "run directory (checkpoints, metrics.csv, loss.png, montages)")
            ("resume", po::value<std::string>(), "continue the run in this directory from its last.pt")
            ("batch", po::value<int>()->default_value(defaults.batch), "batch size (paper: 3)")
            ("crop", po::value<int>()->default_value(defaults.crop), "random crop side (paper: 512; smaller for CPU runs; at most the tile size)")
            ("epochs", po::value<int>()->default_value(defaults.epochs), "epochs at the base learning rate (paper: 30)")
            ("decay-epochs", po::value<int>()->default_value(defaults.decay_epochs), "further epochs at lr x 0.1 (paper: 20)")
            ("lr", po::value<double>()->default_value(defaults.lr), "Adam learning rate (paper: 1e-3)")
            ("warmup-steps", po::value<std::int64_t>()->default_value(defaults.warmup_steps), "linear learning-rate warm-up over this many steps (0 = none, as in the paper)")
            ("max-steps", po::value<std::int64_t>()->default_value(defaults.max_steps), "stop after this many steps (checkpoint written)")
            ("max-minutes", po::value<double>()->default_value(defaults.max_minutes),
             "stop after this many minutes (checkpoint written); without --epochs / --decay-epochs the whole schedule "
             "(warm-up, base rate, decay for the last 40%) is fitted into them")
            ("budget-clock", po::value<std::string>()->default_value(emt::ssan::to_string(defaults.budget_clock)),
             "what --max-minutes counts: wall, or cpu (process CPU time / threads: fair on a shared machine)")
            ("snapshot-minutes", po::value<double>()->default_value(defaults.snapshot_minutes), "copy the model to RUN/snapshots/ every this many budget minutes (0 = never)")
            ("train-alignment", po::value<std::string>()->default_value(emt::ssan::to_string(defaults.alignment)),
             "oracle (outer slices aligned to the middle, as built) or blind (as ssan-interpolate aligns them: to each other, half way)")
            ("init-from", po::value<std::string>(), "start from these weights (fine-tuning): an ssan-train checkpoint or a state dict MODEL.pth from Python or ssan-export "
             "(same architecture as --config; without --config, the checkpoint's config or MODEL.json)")
            ("seed", po::value<std::uint64_t>()->default_value(defaults.seed), "seed for initialisation, order and augmentation")
            ("val-samples", po::value<int>()->default_value(defaults.val_samples), "validation triplets per epoch (0 = all)")
            ("device", po::value<std::string>()->default_value(defaults.device),
             "cpu, cuda, cuda:N or auto (CUDA when this LibTorch has it and a GPU is visible, else CPU; each rank takes GPU LOCAL_RANK)")
            ("amp", po::value<std::string>()->default_value(defaults.amp), "mixed precision: none, or bf16 (CUDA only)")
            ("log-every", po::value<int>()->default_value(defaults.log_every),
             "steps per metrics.csv row, their mean (0 = 1 on CPU, 25 on CUDA, where each row waits for the GPU)")
            ("rendezvous", po::value<std::string>(),
             "data parallel: file:///shared/PATH or tcp://HOST:PORT where the ranks meet, when the launcher sets no MASTER_ADDR (mpirun)")
            ("dist-timeout", po::value<double>()->default_value(defaults.dist_timeout_s), "data parallel: seconds a rank may stay silent in a collective before the run stops");
        if (!cli.parse()) return 0;
        torch::set_num_threads(cli.common().threads);
        emt::ssan::TrainOptions o;
        if (cli.has("resume")) {
          o.run_dir = cli.get<std::string>("resume");
          o.resume = true;
        } else {
          cli.require("out");
          cli.require("data");
          o.run_dir = cli.get<std::string>("out");
        }
        if (cli.has("data")) o.data_dir = cli.get<std::string>("data");
        const std::string split = cli.get<std::string>("split"), val_split = cli.get<std::string>("val-split");
        o.split = split == "all" ? "" : split;
        o.val_split = val_split == "none" ? "" : val_split;
        o.batch = cli.get<int>("batch");
        o.crop = cli.get<int>("crop");
        o.epochs = cli.get<int>("epochs");
        o.decay_epochs = cli.get<int>("decay-epochs");
        o.lr = cli.get<double>("lr");
        o.warmup_steps = cli.get<std::int64_t>("warmup-steps");
        o.max_steps = cli.get<std::int64_t>("max-steps");
        o.max_minutes = cli.get<double>("max-minutes");
        o.fit_schedule = o.max_minutes > 0 && !cli.has("epochs") && !cli.has("decay-epochs");
        o.budget_clock = emt::ssan::parse_budget_clock(cli.get<std::string>("budget-clock"));
        o.snapshot_minutes = cli.get<double>("snapshot-minutes");
        o.alignment = emt::ssan::parse_train_alignment(cli.get<std::string>("train-alignment"));
        if (cli.has("init-from")) o.init_from = cli.get<std::string>("init-from");
        o.seed = cli.get<std::uint64_t>("seed");
        o.val_samples = cli.get<int>("val-samples");
        o.quiet = cli.common().quiet;
        o.device = cli.get<std::string>("device");
        o.amp = cli.get<std::string>("amp");
        o.log_every = cli.get<int>("log-every");
        if (cli.has("rendezvous")) o.rendezvous = cli.get<std::string>("rendezvous");
        o.dist_timeout_s = cli.get<double>("dist-timeout");
        if (!(o.dist_timeout_s > 0)) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--dist-timeout must be > 0");
        // A resumed run keeps the options it was started with (RUN/run.json);
        // only what is given again on the command line changes.
        nlohmann::json started;
        const std::string run_json = o.run_dir + "/run.json";
        if (o.resume) {
          started = emt::ssan::read_run_json(run_json);  // every field type-checked (fuzz/fuzz_run_json)
          o = emt::ssan::resumed_options(o, started, [&](const std::string& name) { return cli.has(name); }, run_json);
        }
        if (o.data_dir.empty()) throw emt::Error(emt::ErrorKind::kInvalidArgument, "give --data");
        // Recorded absolute in run.json, so --resume works from any directory.
        o.data_dir = std::filesystem::absolute(o.data_dir).lexically_normal().string();
        emt::ssan::SsanConfig config;
        if (!cli.common().config_path.empty()) {
          config = emt::ssan::load_config(cli.common().config_path);
          if (o.resume && started.contains("config") && started["config"].is_string() && started["config"].get<std::string>() != config.text) {
            throw emt::Error(emt::ErrorKind::kInvalidArgument,
                             "--config differs from the config this run was started with; resume without --config (the run's own is used)",
                             cli.common().config_path);
          }
        } else if (o.resume) {
          config = emt::ssan::parse_config(started.at("config").get<std::string>(), o.run_dir + "/run.json");
        } else if (cli.has("init-from")) {
          config = emt::ssan::config_of_weights(o.init_from);  // a checkpoint's own, or MODEL.json beside a state dict
        } else {
          throw emt::Error(emt::ErrorKind::kInvalidArgument, "give a model config (--config data_specs/ssan_small.ini)");
        }
        const auto summary = emt::ssan::train(config, o, [&](const std::string& w) { cli.warn(w); });
        if (cli.common().json) {
          auto j = summary.to_json();
          j["run"] = o.run_dir;
          std::cout << j.dump() << std::endl;
        } else {
          cli.info("trained " + std::to_string(summary.steps) + " steps, loss " + std::to_string(summary.first_loss) + " -> " +
                   std::to_string(summary.last_loss) + "; checkpoints in " + o.run_dir);
        }
        return 0;
      });
}
