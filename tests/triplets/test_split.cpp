// triplet-split: ratios, no slice shared across partitions, determinism, and
// the tool's errors.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/shard.hpp"
#include "emt/triplets/split.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;

/// Samples like a build of `sources` volumes, `depth` middles each, 4 tiles per triplet.
std::vector<SampleRef> fake_samples(int sources, int depth, int step, int tiles = 4) {
  std::vector<SampleRef> out;
  int index = 0;
  for (int s = 0; s < sources; ++s) {
    for (int z = step; z < depth - step; ++z) {
      for (int t = 0; t < tiles; ++t) {
        out.push_back({"shard-" + std::to_string(index / 64) + ".h5", index % 64, "src" + std::to_string(s), z, t * 100, 0, step});
        ++index;
      }
    }
  }
  return out;
}

/// Every (source, slice) a triplet uses.
std::set<std::pair<std::string, std::int64_t>> slices_of(const std::vector<SampleRef>& part) {
  std::set<std::pair<std::string, std::int64_t>> out;
  for (const auto& s : part) {
    for (int k = -1; k <= 1; ++k) out.insert({s.source, s.z + k * s.step});
  }
  return out;
}

TEST(Split, NoSliceSharedAcrossPartitions) {
  for (int step : {1, 2, 4}) {
    const auto samples = fake_samples(2, 200, step);
    SplitOptions o;
    o.seed = 7;
    const auto r = compute_split(samples, o);
    const auto train = slices_of(r.partitions[0]), val = slices_of(r.partitions[1]), test = slices_of(r.partitions[2]);
    for (const auto& s : test) {
      EXPECT_FALSE(train.count(s)) << "step " << step << ": slice " << s.second << " of " << s.first << " in train and test";
      EXPECT_FALSE(val.count(s)) << "step " << step;
    }
    for (const auto& s : val) EXPECT_FALSE(train.count(s)) << "step " << step;
  }
}

TEST(Split, RatiosWithinOneGroupOfTarget) {
  const auto samples = fake_samples(3, 150, 1);
  SplitOptions o;
  o.seed = 3;
  const auto r = compute_split(samples, o);
  const double kept = static_cast<double>(samples.size() - static_cast<std::size_t>(r.guard_dropped));
  const double group = r.report.at("largest_group").get<double>();
  const double targets[3] = {0.6, 0.2, 0.2};
  for (int p = 0; p < 3; ++p) {
    EXPECT_NEAR(static_cast<double>(r.partitions[p].size()), targets[p] * kept, group) << kPartitionNames[p];
  }
  // Stratified: every source reaches every partition.
  for (const auto& [source, counts] : r.report.at("per_source").items()) {
    for (const char* p : kPartitionNames) EXPECT_GT(counts.at(p).get<int>(), 0) << source << " " << p;
  }
  EXPECT_LT(r.guard_dropped, static_cast<std::int64_t>(samples.size() / 5));
}

TEST(Split, DeterministicBySeedAndDifferentAcrossSeeds) {
  const auto samples = fake_samples(1, 300, 1);
  SplitOptions a, b, c;
  a.seed = b.seed = 11;
  c.seed = 12;
  const auto ra = compute_split(samples, a), rb = compute_split(samples, b), rc = compute_split(samples, c);
  for (int p = 0; p < 3; ++p) {
    ASSERT_EQ(ra.partitions[p].size(), rb.partitions[p].size());
    for (std::size_t i = 0; i < ra.partitions[p].size(); ++i) EXPECT_EQ(ra.partitions[p][i].index, rb.partitions[p][i].index);
  }
  EXPECT_NE(slices_of(ra.partitions[2]), slices_of(rc.partitions[2]));
}

TEST(Split, NoneGroupingIsExactRandomSplit) {
  const auto samples = fake_samples(1, 102, 1, 1);  // 100 samples
  SplitOptions o;
  o.grouping = Grouping::kNone;
  const auto r = compute_split(samples, o);
  EXPECT_EQ(r.partitions[0].size(), 60u);
  EXPECT_EQ(r.partitions[1].size(), 20u);
  EXPECT_EQ(r.partitions[2].size(), 20u);
  EXPECT_EQ(r.guard_dropped, 0);
}

TEST(Split, ParsesRatiosAndGrouping) {
  EXPECT_NEAR(parse_ratios("3:1:1")[0], 0.6, 1e-12);
  EXPECT_NEAR(parse_ratios("8:1:1")[2], 0.1, 1e-12);
  EXPECT_THROW((void)parse_ratios("3:1"), Error);
  EXPECT_THROW((void)parse_ratios("0:0:0"), Error);
  EXPECT_THROW((void)parse_ratios("a:1:1"), Error);
  SplitOptions o;
  parse_grouping("z-block:12", o);
  EXPECT_EQ(o.block, 12);
  parse_grouping("none", o);
  EXPECT_EQ(o.grouping, Grouping::kNone);
  EXPECT_THROW(parse_grouping("blocks", o), Error);
}

TEST(Split, TooFewGroupsSaysHowMany) {
  const auto samples = fake_samples(1, 12, 1);
  SplitOptions o;
  o.block = 5;
  try {
    (void)compute_split(samples, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only 2"), std::string::npos) << e.what();
  }
}

// ---- through the tool, on a real build ----

class SplitTool : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("emt-split");
    phantom::PhantomOptions o;
    o.depth = 40;
    o.height = o.width = 200;
    o.cell_size = 40;
    o.max_drift = 2;
    o.defect_rate = 0;
    phantom::write_phantom(phantom::Phantom(o), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
    const auto spec = test::write_spec(*dir_, "s.ini", "[output]\ntile_size = 64\nstride = 64\nshard_size = 16\n[align]\nsearch_radius = 6\n[filters]\nmin_ncc = 0.3\n[source.ph]\npath = " + (*dir_ / "v.h5") + "\n");
    const auto r = test::run_tool("triplet-build", "--config " + spec + " --out " + (*dir_ / "b") + " --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::ScratchDir* dir_;
};
test::ScratchDir* SplitTool::dir_ = nullptr;

TEST_F(SplitTool, WritesSplitsAndRewritesIdentically) {
  const auto r = test::run_tool("triplet-split", (*dir_ / "b") + " --seed 4 --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path splits = fs::path(*dir_ / "b") / "splits";
  const auto first = test::digest_dir(splits);
  EXPECT_EQ(first.size(), 4u);
  ASSERT_EQ(test::run_tool("triplet-split", (*dir_ / "b") + " --seed 4 --quiet").exit_code, 0);
  EXPECT_EQ(first, test::digest_dir(splits));
  const auto report = nlohmann::json::parse(read_file(splits / "split.json"));
  std::int64_t lines = 0;
  for (const char* p : kPartitionNames) {
    const std::string text = read_file(splits / (std::string(p) + ".txt"));
    lines += std::count(text.begin(), text.end(), '\n');
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), report.at("counts").at(p).get<std::int64_t>());
  }
  EXPECT_GT(lines, 100);
}

TEST_F(SplitTool, MaterializedShardsEqualTheListedOnes) {
  ASSERT_EQ(test::run_tool("triplet-split", (*dir_ / "b") + " --seed 1 --materialize --quiet").exit_code, 0);
  const fs::path base(*dir_ / "b");
  for (const char* p : kPartitionNames) {
    const auto listed = read_file(base / "splits" / (std::string(p) + ".txt"));
    std::istringstream in(listed);
    const auto copied = read_shard_directory((base / p).string());
    std::size_t k = 0;
    std::string file;
    std::int64_t index;
    std::map<std::string, std::unique_ptr<ShardReader>> readers;
    while (in >> file >> index) {
      ASSERT_LT(k, copied.size());
      auto& reader = readers[file];
      if (!reader) reader = std::make_unique<ShardReader>((base / file).string());
      const ShardReader copy((base / p / copied[k].shard).string());
      const auto a = reader->read(index), b = copy.read(copied[k].index);
      for (int s = 0; s < 3; ++s) EXPECT_EQ(cv::norm(a.slices[s], b.slices[s], cv::NORM_INF), 0);
      EXPECT_EQ(a.z, b.z);
      EXPECT_EQ(a.y, b.y);
      ++k;
    }
    EXPECT_EQ(k, copied.size());
  }
}

TEST(SplitFile, ReadsEntriesAndRejectsAMalformedLineNamingTheFile) {
  test::ScratchDir d;
  fs::create_directories(d.path() / "splits");
  std::ofstream(d.path() / "splits" / "ok.txt") << "shard-00000.h5 0\n\nshard-00001.h5 12\n";
  const auto entries = read_split_file(d.path().string(), "ok");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1], (std::pair<std::string, std::int64_t>{"shard-00001.h5", 12}));
  for (const char* bad : {"shard-00001.h5 one", "shard-00001.h5", "shard-00001.h5 3 4", "shard-00001.h5 -2"}) {
    std::ofstream(d.path() / "splits" / "bad.txt") << "shard-00000.h5 0\n" << bad << "\nshard-00002.h5 1\n";
    try {
      (void)read_split_file(d.path().string(), "bad");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidData);
      EXPECT_NE(std::string(e.what()).find("bad.txt"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
}

TEST_F(SplitTool, Errors) {
  test::ScratchDir d;
  auto r = test::run_tool("triplet-split", (*dir_ / "b") + " --ratios 3:1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--ratios"), std::string::npos);
  r = test::run_tool("triplet-split", (*dir_ / "b") + " --ratios 0:0:0");
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_tool("triplet-split", d.path().string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("manifest"), std::string::npos);
  r = test::run_tool("triplet-split", (*dir_ / "b") + " --group z-block:1000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("need at least 3"), std::string::npos) << r.err;
  r = test::run_tool("triplet-split", (*dir_ / "b") + " --group none");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("warning"), std::string::npos);
  // Corruption is reported, not ignored.
  fs::copy(fs::path(*dir_ / "b"), d.path() / "copy", fs::copy_options::recursive);
  {
    std::fstream f(d.path() / "copy" / "shard-00000.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x42');
  }
  r = test::run_tool("triplet-split", (d.path() / "copy").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("SHA-256"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("shard-00000.h5"), std::string::npos);
}

}  // namespace emt::triplets
