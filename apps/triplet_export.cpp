// triplet-export: shards -> Vimeo-90K triplet layout or flat PNGs.
#include <iostream>

#include <nlohmann/json.hpp>

#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/triplets/inspect.hpp"

int main(int argc, char** argv) {
  return emt::run_tool(
      "triplet-export", "exports triplet shards as PNG triplets other interpolation frameworks read",
      "triplet-export DIR --format vimeo|png-flat --out OUT [--rgb]", argc, argv, [&](emt::Cli& cli) {
        namespace po = emt::po;
        cli.options().add_options()
            ("dir", po::value<std::string>(), "triplet-build output directory")
            ("format", po::value<std::string>()->default_value("vimeo"), "vimeo (sequences/%05d/%04d/im{1,2,3}.png + tri_*list.txt) or png-flat (<split>/<source>_<z>_<y>_<x>_{1,2,3}.png)")
            ("out,o", po::value<std::string>(), "output directory")
            ("rgb", po::bool_switch(), "write 3-channel PNGs (grey repeated) for frameworks that need them")
            ("force", po::bool_switch(), "write into an existing non-empty --out (only the export's own files and folders are replaced)");
        cli.positional("dir", 1);
        if (!cli.parse()) return 0;
        emt::triplets::ExportOptions o;
        const auto format = cli.get<std::string>("format");
        if (format == "vimeo") {
          o.format = emt::triplets::ExportFormat::kVimeo;
        } else if (format == "png-flat") {
          o.format = emt::triplets::ExportFormat::kPngFlat;
        } else {
          throw emt::Error(emt::ErrorKind::kInvalidArgument, "--format must be vimeo or png-flat, not '" + format + "'");
        }
        o.rgb = cli.get<bool>("rgb");
        o.force = cli.get<bool>("force");
        cli.require("dir");
        const auto dir = cli.get<std::string>("dir");
        const auto out = cli.get<std::string>("out");
        const auto n = emt::triplets::export_triplets(dir, out, o);
        if (cli.common().json) {
          std::cout << nlohmann::json{{"exported", n}, {"out", out}, {"format", format}}.dump() << std::endl;
        } else {
          cli.info(std::to_string(n) + " triplets exported to " + out);
        }
        return 0;
      });
}
