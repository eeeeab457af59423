// The shard-directory module: typed manifest, rejected.csv, split files, the
// reader cache and the one tile size, plus the library's input checks.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/triplets/build.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/inspect.hpp"
#include "emt/triplets/shard_directory.hpp"
#include "emt/triplets/split.hpp"
#include "test_support.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<TripletSample> make_samples(int n, int t, const std::string& source = "a") {
  std::vector<TripletSample> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    for (auto& m : out[static_cast<std::size_t>(i)].slices) m = cv::Mat(t, t, CV_8UC1, cv::Scalar(10 * i + 1));
    out[static_cast<std::size_t>(i)].source = source;
    out[static_cast<std::size_t>(i)].z = 5 + i;
  }
  return out;
}

Manifest sample_manifest() {
  Manifest m;
  m.emtriplet_version = "0.1.0";
  m.spec = "[output]\ntile_size = 16\n";
  m.spec_sha256 = std::string(64, 'a');
  m.command = "triplet-build --config s.ini";
  m.tile_size = 16;
  m.stride = 12;
  ManifestSource s;
  s.id = "a";
  s.path = "v.h5";
  s.kind = "hdf5";
  s.dataset = "volumes/raw";
  s.shape = {9, 40, 40};
  s.step = 2;
  s.triplet_middles = 5;
  s.bad_slices = {3};
  s.resolution_nm = std::array<double, 3>{40, 4, 4};
  s.histogram_reference_slices = {0, 4, 8};
  m.sources.push_back(s);
  m.candidates = 7;
  m.rejected = std::map<std::string, std::int64_t>{{"blur", 2}, {"padding", 1}};
  PreprocessingRecord r;
  r.source_id = "a";
  r.tile_size = 16;
  m.preprocessing = std::vector<PreprocessingRecord>{r};
  return m;
}

/// A one-shard directory of `n` t x t triplets whose manifest says `manifest_tile`.
void write_directory(const fs::path& dir, int n, int t, int manifest_tile) {
  fs::create_directories(dir);
  ShardAttributes attr;
  attr.tile_size = t;
  write_shard((dir / shard_file_name(0)).string(), make_samples(n, t), attr);
  Manifest m = sample_manifest();
  m.tile_size = manifest_tile;
  m.shards = {{shard_file_name(0), n, sha256_file(dir / shard_file_name(0))}};
  m.accepted = n;
  write_manifest(dir, m);
  write_rejected_file(dir / kRejectedFile, {{"a", 5, 0, 12, "blur", 2.5, 2}});
}

template <class F>
void expect_error(F&& f, ErrorKind kind, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error (expected one containing '" << fragment << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ShardDirectory, ManifestRoundTripsThroughJson) {
  Manifest m = sample_manifest();
  m.shards = {{"shard-00000.h5", 4, std::string(64, 'f')}};
  m.accepted = 4;
  const json j = to_json(m);
  EXPECT_EQ(j.at("totals").at("rejected").get<int>(), 3);  // derived from the reasons
  EXPECT_EQ(j.at("provenance").at("command"), "triplet-build --config s.ini");
  EXPECT_FALSE(j.contains("partition"));
  const Manifest back = manifest_from_json(j, "m.json");
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(to_json(manifest_from_json(json::parse(j.dump(2)), "m.json")).dump(2), j.dump(2));  // as read back from the file
  EXPECT_EQ(back.sources.at(0).dataset.value(), "volumes/raw");
  EXPECT_EQ(back.source("a")->step, 2);
  EXPECT_EQ(back.source("b"), nullptr);
  ASSERT_TRUE(back.preprocessing.has_value());
  EXPECT_EQ(back.preprocessing->at(0).tile_size, 16);
}

TEST(ShardDirectory, DamagedManifestsAreOneErrorNamingTheFile) {
  const json good = to_json(sample_manifest());
  auto broken = [&](auto edit) {
    json j = good;
    edit(j);
    return j;
  };
  // No tile size: an error, not a silent 512.
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j.erase("tile_size"); }), "d/manifest.json"); }, ErrorKind::kDataLoss,
               "tile_size");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["tile_size"] = 1.5; }), "d/manifest.json"); }, ErrorKind::kDataLoss,
               "d/manifest.json");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["shards"] = json{{"a", 1}}; }), "m"); }, ErrorKind::kDataLoss, "'shards'");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["shards"] = json::array({json{{"file", "../x"}, {"count", 1}, {"sha256", ""}}}); }), "m"); },
               ErrorKind::kDataLoss, "not a file name");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["sources"][0]["step"] = 0; }), "m"); }, ErrorKind::kDataLoss, "step");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["sources"][0]["shape"] = "big"; }), "m"); }, ErrorKind::kDataLoss,
               "shape");
  expect_error([&] { (void)manifest_from_json(broken([](json& j) { j["totals"]["accepted"] = -1; }), "m"); }, ErrorKind::kDataLoss, "accepted");
}

TEST(ShardDirectory, RejectedCsvRoundTripsAndRefusesMalformedRows) {
  test::ScratchDir dir;
  const std::vector<RejectedTile> rows{{"a", 4, 0, 96, "defect", 0.0123456789, 0.004}, {"b", 7, 96, 0, "alignment", 16, 16}};
  write_rejected_file(dir.path() / "r.csv", rows);
  const std::string text = read_file(dir.path() / "r.csv");
  EXPECT_EQ(text, std::string(kRejectedHeader) + "a,4,0,96,defect,0.0123457,0.004\nb,7,96,0,alignment,16,16\n");
  const auto back = read_rejected_file(dir.path() / "r.csv");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].source, "a");
  EXPECT_EQ(back[1].y, 96);
  EXPECT_EQ(back[0].reason, "defect");
  // Written again, the 6-digit values give the same bytes.
  write_rejected_file(dir.path() / "r2.csv", back);
  EXPECT_EQ(read_file(dir.path() / "r2.csv"), text);
  write_file_atomic(dir.path() / "bad.csv", std::string(kRejectedHeader) + "a,4,0,96,defect,0.1,0.004\na,x,0,0,blur,1,2\n");
  expect_error([&] { (void)read_rejected_file(dir.path() / "bad.csv"); }, ErrorKind::kDataLoss, "line 3");
  expect_error([&] { (void)read_rejected_file(dir.path() / "none.csv"); }, ErrorKind::kNotFound, "none.csv");
}

TEST(ShardDirectory, SplitFilesRoundTripIntoPartitions) {
  test::ScratchDir dir;
  EXPECT_TRUE(read_partitions(dir.path().string()).empty());
  write_split_file(dir.path().string(), "train", {{"shard-00000.h5", 0}, {"shard-00001.h5", 3}});
  write_split_file(dir.path().string(), "test", {{"shard-00000.h5", 1}});
  EXPECT_EQ(read_split_file(dir.path().string(), "train").at(1), std::make_pair(std::string("shard-00001.h5"), std::int64_t{3}));
  const auto parts = read_partitions(dir.path().string());
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts.at({"shard-00000.h5", 1}), "test");
  expect_error([&] { (void)read_split_file(dir.path().string(), "val"); }, ErrorKind::kNotFound, "val.txt");
}

TEST(ShardDirectory, OpensEachShardOnceAndReadsSamplesAndRejections) {
  test::ScratchDir dir;
  write_directory(dir.path(), 3, 16, 16);
  const ShardDirectory d(dir.path().string());
  EXPECT_EQ(d.tile_size(), 16);
  const ShardReader& r = d.reader(shard_file_name(0));
  EXPECT_EQ(&d.reader(shard_file_name(0)), &r);  // cached, not reopened
  const auto samples = d.samples(/*verify_checksums=*/true);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[2].z, 7);
  EXPECT_EQ(samples[2].step, 2);  // from the manifest's source
  ASSERT_EQ(d.rejected().size(), 1u);
  EXPECT_EQ(d.rejected()[0].value, 2.5);
}

TEST(ShardDirectory, TileSizeDisagreementIsAnErrorNotAFallback) {
  test::ScratchDir dir;
  write_directory(dir.path(), 2, 16, 32);  // shards of 16 px, manifest says 32
  expect_error([&] { (void)read_shard_directory(dir.path().string(), false); }, ErrorKind::kInvalidData, "manifest.json says tile_size 32");
  const auto problems = verify_directory(dir.path().string());
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("tile_size 32"), std::string::npos) << problems[0];
  expect_error([&] { (void)montage(dir.path().string(), MontageOptions{}); }, ErrorKind::kInvalidData, "tile_size 32");
}

TEST(ShardDirectory, ShardAttributeDisagreeingWithItsShapeIsAnError) {
  test::ScratchDir dir;
  ShardAttributes attr;
  attr.tile_size = 16;
  const std::string path = dir / "s.h5";
  write_shard(path, make_samples(1, 16), attr);
  {
    h5::Handle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    auto guard = h5::lock();
    ASSERT_GE(H5Adelete(f.get(), "tile_size"), 0);
    h5::write_int_attribute(f.get(), "tile_size", 512);
  }
  expect_error([&] { const ShardReader r(path); }, ErrorKind::kInvalidData, "tile_size attribute 512 disagrees with /triplets' 16x16 tiles");
}

TEST(InputChecks, LibraryEntryPointsRefuseImpossibleSizes) {
  test::ScratchDir dir;
  ShardAttributes attr;
  attr.tile_size = 0;
  expect_error([&] { write_shard(dir / "s.h5", {}, attr); }, ErrorKind::kInvalidArgument, "tile size 0");
  EXPECT_FALSE(fs::exists(dir.path() / "s.h5"));

  // A tile smaller than one flat block; mismatched tiles.
  FilterOptions fo;
  fo.flat_block = 16;
  const cv::Mat small(8, 8, CV_8UC1, cv::Scalar(9));
  expect_error([&] { (void)evaluate_tile({small, small, small}, fo); }, ErrorKind::kInvalidArgument, "smaller than one 16 px flat block");
  const cv::Mat other(16, 16, CV_8UC1, cv::Scalar(9));
  expect_error([&] { (void)evaluate_tile({other, small, other}, fo); }, ErrorKind::kInvalidArgument, "one size");

  SplitOptions so;
  so.ratios = {1, -1, 1};
  expect_error([&] { (void)compute_split({}, so); }, ErrorKind::kInvalidArgument, "ratios");
  so.ratios = {0, 0, 0};
  expect_error([&] { (void)compute_split({}, so); }, ErrorKind::kInvalidArgument, "ratios");
  so.ratios = {3, 1, 1};
  so.block = -2;
  expect_error([&] { (void)compute_split({}, so); }, ErrorKind::kInvalidArgument, "z-block");

  MontageOptions mo;
  mo.max_rows = 0;
  expect_error([&] { (void)montage(dir.path().string(), mo); }, ErrorKind::kInvalidArgument, "rows");

  // run_build checks a spec made in code as parse_spec checks a file: a
  // stride of 0 (an overlap as large as the tile) or a tile smaller than a block.
  BuildSpec spec;
  SourceSpec src;
  src.id = "a";
  src.path = dir / "none.h5";
  spec.sources = {src};
  BuildOptions bo;
  bo.out_dir = dir / "out";
  spec.stride = 0;
  expect_error([&] { (void)run_build(spec, bo); }, ErrorKind::kInvalidArgument, "output.stride");
  spec.stride = 512;
  spec.tile_size = 32;
  spec.filters.flat_block = 64;
  expect_error([&] { (void)run_build(spec, bo); }, ErrorKind::kInvalidArgument, "filters.flat_block");
  spec.tile_size = -4;
  expect_error([&] { (void)run_build(spec, bo); }, ErrorKind::kInvalidArgument, "output.tile_size");
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
}

}  // namespace emt::triplets
