// shard_summary DIR: a triplet-build output directory read through the
// installed emtriplet::triplets library: the summary triplet-inspect prints,
// the checksum verification, and every shard read back triplet by triplet.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <opencv2/core.hpp>

#include "emt/triplets/inspect.hpp"
#include "emt/triplets/shard.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: shard_summary SHARD_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    std::fputs(emt::triplets::format_summary(emt::triplets::summarize(dir)).c_str(), stdout);
    const auto problems = emt::triplets::verify_directory(dir);
    std::printf("verify: %s\n", problems.empty() ? "ok" : problems.front().c_str());
    std::int64_t triplets = 0, shards = 0;
    double middle_mean = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("shard-", 0) != 0) continue;
      const emt::triplets::ShardReader reader(e.path().string());
      ++shards;
      for (std::int64_t i = 0; i < reader.size(); ++i, ++triplets) middle_mean += cv::mean(reader.read(i).slices[1])[0];
    }
    std::printf("read back: %lld triplets from %lld shards, mean grey of the middle slices %.1f\n",
                static_cast<long long>(triplets), static_cast<long long>(shards), triplets ? middle_mean / triplets : 0.0);
    return problems.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shard_summary: error: %s\n", e.what());
    return 1;
  }
}
