// ssan-export: an SSAN checkpoint as a PyTorch state dict + JSON config for Python.
#include <iostream>

#include <torch/torch.h>

#include "emt/common/cli.hpp"
#include "emt/ssan/interop.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "ssan-export", "writes an SSAN checkpoint's weights as a PyTorch state dict (MODEL.pth) and its config (MODEL.json) for Python",
      "ssan-export --checkpoint RUN/best.pt --out model.pth [--force]", argc, argv, [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("checkpoint", po::value<std::string>(), "ssan-train checkpoint (RUN/best.pt, RUN/last.pt) or a state dict with its JSON")
            ("out,o", po::value<std::string>(), "MODEL.pth to write; MODEL.json is written beside it")
            ("data", po::value<std::string>(), "for a checkpoint older than preprocessing records: the shard directory it was trained on, "
             "whose records go into MODEL.json")
            ("force", po::bool_switch(), "replace an existing MODEL.pth / MODEL.json");
        if (!cli.parse()) return 0;
        torch::set_num_threads(cli.common().threads);
        cli.require("checkpoint");
        cli.require("out");
        emt::ssan::ExportOptions o;
        o.checkpoint = cli.get<std::string>("checkpoint");
        o.out = cli.get<std::string>("out");
        o.force = cli.get<bool>("force");
        o.data_dir = cli.get_optional<std::string>("data").value_or("");
        const auto result = emt::ssan::export_model(o);
        if (cli.common().json) {
          std::cout << result.dump() << std::endl;
        } else {
          cli.info("wrote " + result.at("pth").get<std::string>() + " (" + std::to_string(result.at("tensors").get<std::size_t>()) + " tensors) and " +
                   result.at("json").get<std::string>());
        }
        return 0;
      });
}
