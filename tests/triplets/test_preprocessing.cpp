// The preprocessing record (preprocessing.hpp): JSON round trip, refusals,
// and the combined reference a model's inputs are matched to.
#include <gtest/gtest.h>

#include "emt/common/error.hpp"
#include "emt/triplets/preprocessing.hpp"

namespace emt::triplets {
namespace {

PreprocessingRecord sample_record() {
  PreprocessingRecord r;
  r.source_id = "fib";
  r.step = 4;
  r.tile_size = 128;
  r.uint16.low_percentile = 1.5;
  r.align.search_radius = 24;
  r.align.smooth_sigma = 0.7;
  r.filters.min_ncc = 0.45;
  r.filters.duplicate_ncc = 0.97;
  r.filters.repeat_max_z = 7.5;
  r.filters.repeat_sample_pairs = 32;
  r.histogram_matching = true;
  for (std::size_t v = 0; v < r.reference.size(); ++v) r.reference[v] = (v % 7) / 3.0 + 1e-3 * v;
  r.reference_slices = {0, 5, 9};
  return r;
}

TEST(Preprocessing, RoundTripsThroughJsonExactly) {
  const PreprocessingRecord r = sample_record();
  // Through text, as the manifest stores it.
  const auto back = preprocessing_from_json(nlohmann::json::parse(to_json(r).dump()), "test");
  EXPECT_EQ(back.source_id, "fib");
  EXPECT_EQ(back.step, 4);
  EXPECT_EQ(back.tile_size, 128);
  EXPECT_EQ(back.uint16.low_percentile, 1.5);
  EXPECT_EQ(back.align.search_radius, 24);
  EXPECT_EQ(back.align.smooth_sigma, 0.7);
  EXPECT_EQ(back.filters.min_ncc, 0.45);
  EXPECT_EQ(back.filters.duplicate_ncc, 0.97);
  EXPECT_EQ(back.filters.repeat_max_z, 7.5);
  EXPECT_EQ(back.filters.repeat_sample_pairs, 32);
  EXPECT_TRUE(back.histogram_matching);
  EXPECT_EQ(back.reference, r.reference);  // bit for bit
  EXPECT_EQ(back.reference_slices, r.reference_slices);
}

TEST(Preprocessing, RecordWithoutMatchingHasNoReference) {
  PreprocessingRecord r = sample_record();
  r.histogram_matching = false;
  const auto j = to_json(r);
  EXPECT_FALSE(j.contains("reference_counts"));
  EXPECT_FALSE(preprocessing_from_json(j, "test").histogram_matching);
}

TEST(Preprocessing, MissingOptionKeysKeepTheirDefaults) {
  auto j = to_json(sample_record());
  j["filters"].erase("min_ncc");
  j.erase("align");
  const auto back = preprocessing_from_json(j, "test");
  EXPECT_EQ(back.filters.min_ncc, FilterOptions{}.min_ncc);
  EXPECT_EQ(back.filters.duplicate_ncc, 0.97);
  EXPECT_EQ(back.align.search_radius, AlignOptions{}.search_radius);
}

TEST(Preprocessing, RefusesBrokenRecordsNamingTheOrigin) {
  const auto good = to_json(sample_record());
  auto expect_refused = [](const nlohmann::json& j, const std::string& what) {
    try {
      (void)preprocessing_from_json(j, "data/manifest.json");
      FAIL() << what << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidData) << what;
      EXPECT_NE(std::string(e.what()).find("data/manifest.json"), std::string::npos) << e.what();
    }
  };
  auto j = good;
  j["reference_counts"].erase(j["reference_counts"].begin());
  expect_refused(j, "255 counts");
  j = good;
  j["reference_counts"][3] = -1.0;
  expect_refused(j, "a negative count");
  j = good;
  j["reference_counts"] = std::vector<double>(256, 0.0);
  expect_refused(j, "an empty reference");
  j = good;
  j.erase("source");
  expect_refused(j, "no source id");
  j = good;
  j["step"] = 0;
  expect_refused(j, "step 0");
  j = good;
  j["tile_size"] = "big";
  expect_refused(j, "a string tile size");
}

TEST(Preprocessing, CombinedReferenceAveragesUnitMassReferences) {
  PreprocessingRecord a, b, none;
  a.histogram_matching = b.histogram_matching = true;
  a.reference[10] = 4;   // all mass at 10
  b.reference[20] = 1;   // all mass at 20, a tenth of the counts
  b.reference[30] = 1;
  const Histogram c = combined_reference({a, none, b});
  EXPECT_DOUBLE_EQ(c[10], 0.5);
  EXPECT_DOUBLE_EQ(c[20], 0.25);
  EXPECT_DOUBLE_EQ(c[30], 0.25);
  double total = 0;
  for (double v : combined_reference({none})) total += v;
  EXPECT_EQ(total, 0);
}

}  // namespace
}  // namespace emt::triplets
