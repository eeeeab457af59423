#include "emt/phantom/phantom.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <tbb/parallel_for.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/common/error.hpp"
#include "emt/common/random.hpp"
#include "emt/emio/volume_writer.hpp"

namespace emt::phantom {
namespace {

constexpr double kPi = 3.14159265358979323846;

/// Every random quantity is a pure function of (seed, purpose, indices), so
/// slices render independently.
std::uint64_t mix(std::uint64_t x) { return splitmix64(x); }
std::uint64_t hash(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0, std::uint64_t c = 0, std::uint64_t d = 0) {
  return mix(mix(mix(mix(mix(seed) ^ a) ^ b) ^ c) ^ d);
}
/// Uniform in [0, 1).
double unit(std::uint64_t h) { return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0); }

enum Purpose : std::uint64_t { kSeedPos = 1, kSeedMotion, kCellTone, kOrganelle, kVesicle, kNoise, kDrift, kDefect, kTexture, kTone };

/// Smooth 3-D value noise in [0, 1] (trilinear over a hashed lattice).
double value_noise(std::uint64_t seed, double y, double x, double z) {
  const double fy = std::floor(y), fx = std::floor(x), fz = std::floor(z);
  const auto iy = static_cast<std::int64_t>(fy), ix = static_cast<std::int64_t>(fx), iz = static_cast<std::int64_t>(fz);
  auto smooth = [](double t) { return t * t * (3 - 2 * t); };
  const double ty = smooth(y - fy), tx = smooth(x - fx), tz = smooth(z - fz);
  double acc = 0;
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        const double w = (dz ? tz : 1 - tz) * (dy ? ty : 1 - ty) * (dx ? tx : 1 - tx);
        acc += w * unit(hash(seed, kTexture, static_cast<std::uint64_t>(iy + dy), static_cast<std::uint64_t>(ix + dx),
                             static_cast<std::uint64_t>(iz + dz)));
      }
  return acc;
}

}  // namespace


const char* to_string(DefectKind kind) noexcept {
  switch (kind) {
    case DefectKind::kFold: return "fold";
    case DefectKind::kPadding: return "padding";
    case DefectKind::kBlur: return "blur";
    case DefectKind::kMissing: return "missing";
    case DefectKind::kStain: return "stain";
    case DefectKind::kContrastFlip: return "flip";
    case DefectKind::kSaturated: return "saturated";
  }
  return "unknown";
}

DefectKind parse_defect_kind(const std::string& name) {
  for (DefectKind k : kAllDefectKinds) {
    if (name == to_string(k)) return k;
  }
  throw Error(ErrorKind::kInvalidArgument,
              "unknown defect kind '" + name + "' (expected fold, padding, blur, missing, stain, flip or saturated)");
}

Phantom::Phantom(PhantomOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  if (o.depth < 1 || o.height < 16 || o.width < 16) throw Error(ErrorKind::kInvalidArgument, "phantom size too small (need at least 1 x 16 x 16)");
  // Negated comparisons: NaN fails every one of them and is refused too.
  if (!(o.cell_size >= 8 && std::isfinite(o.cell_size))) throw Error(ErrorKind::kInvalidArgument, "cell size must be a number >= 8 px");
  if (!(o.defect_rate >= 0 && o.defect_rate <= 1)) throw Error(ErrorKind::kInvalidArgument, "defect rate must be in [0, 1]");
  if (!(o.max_drift >= 0 && std::isfinite(o.max_drift))) throw Error(ErrorKind::kInvalidArgument, "max drift must be a number >= 0");
  if (!(o.noise_sigma >= 0 && std::isfinite(o.noise_sigma))) throw Error(ErrorKind::kInvalidArgument, "noise must be a number >= 0");

  // Drift: independent uniform sub-pixel translations.
  truth_.drift.resize(static_cast<std::size_t>(o.depth));
  for (std::int64_t z = 0; z < o.depth; ++z) {
    const double dy = (2 * unit(hash(o.seed, kDrift, static_cast<std::uint64_t>(z), 0)) - 1) * o.max_drift;
    const double dx = (2 * unit(hash(o.seed, kDrift, static_cast<std::uint64_t>(z), 1)) - 1) * o.max_drift;
    truth_.drift[static_cast<std::size_t>(z)] = {dx, dy};
  }

  // Organelles: mitochondria on a coarse grid, vesicles on a fine one.
  const double margin = 2 * o.cell_size;
  const double coarse = 2.2 * o.cell_size, fine = 0.6 * o.cell_size;
  std::uint64_t id = 0;
  for (double y = -margin; y < static_cast<double>(o.height) + margin; y += coarse) {
    for (double x = -margin; x < static_cast<double>(o.width) + margin; x += coarse, ++id) {
      if (unit(hash(o.seed, kOrganelle, id, 0)) > 0.55) continue;
      Organelle m;
      m.cy = y + coarse * unit(hash(o.seed, kOrganelle, id, 1));
      m.cx = x + coarse * unit(hash(o.seed, kOrganelle, id, 2));
      m.vy = (unit(hash(o.seed, kOrganelle, id, 3)) - 0.5) * 3.0;
      m.vx = (unit(hash(o.seed, kOrganelle, id, 4)) - 0.5) * 3.0;
      m.a = o.cell_size * (0.25 + 0.2 * unit(hash(o.seed, kOrganelle, id, 5)));
      m.b = m.a * (0.35 + 0.2 * unit(hash(o.seed, kOrganelle, id, 6)));
      m.angle = 180.0 * unit(hash(o.seed, kOrganelle, id, 7));
      m.spin = (unit(hash(o.seed, kOrganelle, id, 8)) - 0.5) * 4.0;
      m.zc = -10 + (static_cast<double>(o.depth) + 20) * unit(hash(o.seed, kOrganelle, id, 9));
      m.half_life = 8 + 25 * unit(hash(o.seed, kOrganelle, id, 10));
      m.tone = 85 + 25 * unit(hash(o.seed, kOrganelle, id, 11));
      organelles_.push_back(m);
    }
  }
  for (double y = -margin; y < static_cast<double>(o.height) + margin; y += fine) {
    for (double x = -margin; x < static_cast<double>(o.width) + margin; x += fine, ++id) {
      if (unit(hash(o.seed, kVesicle, id, 0)) > 0.35) continue;
      Organelle v;
      v.vesicle = true;
      v.cy = y + fine * unit(hash(o.seed, kVesicle, id, 1));
      v.cx = x + fine * unit(hash(o.seed, kVesicle, id, 2));
      v.vy = v.vx = 0;
      v.a = v.b = 2.5 + 2.5 * unit(hash(o.seed, kVesicle, id, 3));
      v.angle = v.spin = 0;
      v.zc = -3 + (static_cast<double>(o.depth) + 6) * unit(hash(o.seed, kVesicle, id, 4));
      v.half_life = 1.5 + 2.0 * unit(hash(o.seed, kVesicle, id, 5));
      v.tone = 60 + 30 * unit(hash(o.seed, kVesicle, id, 6));
      organelles_.push_back(v);
    }
  }

  // Defects: explicit list, or each slice with probability defect_rate.
  std::vector<std::pair<std::int64_t, DefectKind>> chosen = o.defects;
  if (chosen.empty()) {
    for (std::int64_t z = 0; z < o.depth; ++z) {
      if (unit(hash(o.seed, kDefect, static_cast<std::uint64_t>(z), 0)) < o.defect_rate) {
        const auto k = static_cast<std::size_t>(unit(hash(o.seed, kDefect, static_cast<std::uint64_t>(z), 1)) * std::size(kAllDefectKinds));
        chosen.emplace_back(z, kAllDefectKinds[k]);
      }
    }
  }
  const cv::Rect full(0, 0, static_cast<int>(o.width), static_cast<int>(o.height));
  for (const auto& [z, kind] : chosen) {
    if (z < 0 || z >= o.depth) throw Error(ErrorKind::kInvalidArgument, fmt::format("defect slice {} outside the volume (depth {})", z, o.depth));
    auto r = [&](std::uint64_t k) { return unit(hash(o.seed, kDefect, static_cast<std::uint64_t>(z), 100 + k)); };
    Defect d;
    d.z = z;
    d.kind = kind;
    d.box = full;
    const double W = static_cast<double>(o.width), H = static_cast<double>(o.height);
    switch (kind) {
      case DefectKind::kFold: {
        // A dark band across the slice at a random angle through a random point.
        const double theta = kPi * r(0);
        const cv::Point2d c(W * (0.2 + 0.6 * r(1)), H * (0.2 + 0.6 * r(2)));
        const cv::Point2d dir(std::cos(theta), std::sin(theta));
        const double len = W + H;
        d.p0 = c - dir * len;
        d.p1 = c + dir * len;
        d.width = 10 + 20 * r(3);
        const cv::Mat mask = defect_mask(d, full.size());
        d.box = cv::boundingRect(mask);
        break;
      }
      case DefectKind::kPadding: {
        // Black region from one edge, 10-30% deep (like an unaligned padded section).
        const int edge = static_cast<int>(r(0) * 4) % 4;
        const double frac = 0.1 + 0.2 * r(1);
        const int dh = static_cast<int>(H * frac), dw = static_cast<int>(W * frac);
        if (edge == 0) d.box = cv::Rect(0, 0, full.width, dh);
        if (edge == 1) d.box = cv::Rect(0, full.height - dh, full.width, dh);
        if (edge == 2) d.box = cv::Rect(0, 0, dw, full.height);
        if (edge == 3) d.box = cv::Rect(full.width - dw, 0, dw, full.height);
        break;
      }
      case DefectKind::kStain: {
        d.center = cv::Point2d(W * (0.15 + 0.7 * r(0)), H * (0.15 + 0.7 * r(1)));
        d.radius = std::min(W, H) * (0.05 + 0.07 * r(2));
        d.box = cv::Rect(cv::Point(static_cast<int>(d.center.x - d.radius), static_cast<int>(d.center.y - d.radius)),
                         cv::Point(static_cast<int>(d.center.x + d.radius) + 1, static_cast<int>(d.center.y + d.radius) + 1)) & full;
        break;
      }
      case DefectKind::kBlur:
      case DefectKind::kMissing:
      case DefectKind::kContrastFlip:
      case DefectKind::kSaturated: break;
    }
    truth_.defects.push_back(d);
  }
  std::sort(truth_.defects.begin(), truth_.defects.end(), [](const Defect& a, const Defect& b) { return a.z < b.z; });
}

std::vector<Defect> Phantom::defects_at(std::int64_t z) const {
  std::vector<Defect> out;
  for (const Defect& d : truth_.defects) if (d.z == z) out.push_back(d);
  return out;
}

cv::Mat defect_mask(const Defect& d, cv::Size size) {
  cv::Mat mask(size, CV_8UC1, cv::Scalar(0));
  switch (d.kind) {
    case DefectKind::kFold: {
      const int thickness = std::max(1, static_cast<int>(std::lround(d.width)));
      cv::line(mask, cv::Point(static_cast<int>(d.p0.x), static_cast<int>(d.p0.y)),
               cv::Point(static_cast<int>(d.p1.x), static_cast<int>(d.p1.y)), cv::Scalar(255), thickness, cv::LINE_8);
      break;
    }
    case DefectKind::kStain:
      cv::circle(mask, cv::Point(static_cast<int>(d.center.x), static_cast<int>(d.center.y)),
                 static_cast<int>(d.radius), cv::Scalar(255), cv::FILLED);
      break;
    case DefectKind::kPadding:
    case DefectKind::kBlur:
    case DefectKind::kMissing:
    case DefectKind::kContrastFlip:
    case DefectKind::kSaturated: mask(d.box & cv::Rect(0, 0, size.width, size.height)).setTo(255); break;
  }
  return mask;
}

cv::Mat Phantom::render_float(std::int64_t z) const {
  const auto& o = options_;
  if (z < 0 || z >= o.depth) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} outside the phantom", z));
  const int H = static_cast<int>(o.height), W = static_cast<int>(o.width);
  const cv::Point2d drift = truth_.drift[static_cast<std::size_t>(z)];
  const double zf = static_cast<double>(z);
  const double S = o.cell_size;
  const double membrane_w = std::max(1.5, S / 40.0);
  cv::Mat img(H, W, CV_32FC1);

  // 1. Cells and membranes, evaluated in world coordinates (pixel - drift):
  //    exact sub-pixel drift with no resampling.
  auto seed_of = [&](std::int64_t gy, std::int64_t gx) {
    const auto uy = static_cast<std::uint64_t>(gy), ux = static_cast<std::uint64_t>(gx);
    const double jy = unit(hash(o.seed, kSeedPos, uy, ux, 0)) - 0.5, jx = unit(hash(o.seed, kSeedPos, uy, ux, 1)) - 0.5;
    const double p1 = 2 * kPi * unit(hash(o.seed, kSeedMotion, uy, ux, 0)), p2 = 2 * kPi * unit(hash(o.seed, kSeedMotion, uy, ux, 1));
    const double w1 = 0.04 + 0.06 * unit(hash(o.seed, kSeedMotion, uy, ux, 2)), w2 = 0.04 + 0.06 * unit(hash(o.seed, kSeedMotion, uy, ux, 3));
    // Seeds stay inside their own grid cell (|offset| < 0.45 S), so the 3x3
    // neighbourhood search below finds the nearest two.
    return cv::Point2d((static_cast<double>(gx) + 0.5 + 0.25 * jx + 0.2 * std::sin(w2 * zf + p2)) * S,
                       (static_cast<double>(gy) + 0.5 + 0.25 * jy + 0.2 * std::sin(w1 * zf + p1)) * S);
  };
  tbb::parallel_for(0, H, [&](int row) {
    // A signal cuts a (large, slow) slice short; write_phantom discards it.
    if (interrupt_requested()) return;
    float* out = img.ptr<float>(row);
    const double wy = row - drift.y;
    for (int col = 0; col < W; ++col) {
      const double wx = col - drift.x;
      const auto gy = static_cast<std::int64_t>(std::floor(wy / S)), gx = static_cast<std::int64_t>(std::floor(wx / S));
      double d1 = 1e30, d2 = 1e30;
      cv::Point2d s1, s2;
      std::int64_t c1y = 0, c1x = 0;
      for (std::int64_t ny = gy - 1; ny <= gy + 1; ++ny) {
        for (std::int64_t nx = gx - 1; nx <= gx + 1; ++nx) {
          const cv::Point2d s = seed_of(ny, nx);
          const double d = (s.x - wx) * (s.x - wx) + (s.y - wy) * (s.y - wy);
          if (d < d1) { d2 = d1; s2 = s1; d1 = d; s1 = s; c1y = ny; c1x = nx; }
          else if (d < d2) { d2 = d; s2 = s; }
        }
      }
      // Distance to the bisector between the two nearest seeds.
      const double sep = std::max(1e-6, std::hypot(s2.x - s1.x, s2.y - s1.y));
      const double dist = (d2 - d1) / (2 * sep);
      const double membrane = std::exp(-(dist * dist) / (membrane_w * membrane_w));
      const double tone = 150 + 35 * unit(hash(o.seed, kCellTone, static_cast<std::uint64_t>(c1y), static_cast<std::uint64_t>(c1x)));
      const double texture = value_noise(o.seed, wy / 9.0, wx / 9.0, zf / 3.0) - 0.5;
      out[col] = static_cast<float>(tone + 30 * texture - 105 * membrane);
    }
  });

  // 2. Organelles: anti-aliased filled ellipses at sub-pixel positions.
  constexpr int kShift = 4;  // cv drawing fixed-point bits: 1/16 px
  const double scale = 1 << kShift;
  for (const Organelle& m : organelles_) {
    const double t = (zf - m.zc) / m.half_life;
    if (std::abs(t) >= 1) continue;
    const double size = std::sqrt(1 - t * t);
    const double cy = m.cy + m.vy * (zf - m.zc) + drift.y, cx = m.cx + m.vx * (zf - m.zc) + drift.x;
    const double a = m.a * size, b = m.b * size;
    if (a < 1 || cx + a < 0 || cy + a < 0 || cx - a > W || cy - a > H) continue;
    const cv::Point centre(static_cast<int>(std::lround(cx * scale)), static_cast<int>(std::lround(cy * scale)));
    const cv::Size axes(static_cast<int>(std::lround(a * scale)), static_cast<int>(std::lround(b * scale)));
    const double angle = m.angle + m.spin * (zf - m.zc);
    if (m.vesicle) {
      cv::ellipse(img, centre, axes, 0, 0, 360, cv::Scalar(m.tone), cv::FILLED, cv::LINE_AA, kShift);
    } else {
      // Dark double membrane, lighter matrix with cristae-like stripes.
      cv::ellipse(img, centre, axes, angle, 0, 360, cv::Scalar(m.tone - 35), cv::FILLED, cv::LINE_AA, kShift);
      const cv::Size inner(std::max(1, axes.width - static_cast<int>(3 * scale)), std::max(1, axes.height - static_cast<int>(3 * scale)));
      cv::ellipse(img, centre, inner, angle, 0, 360, cv::Scalar(m.tone + 15), cv::FILLED, cv::LINE_AA, kShift);
      for (int k = -3; k <= 3; k += 2) {
        const double rad = angle * kPi / 180.0;
        const cv::Point2d along(std::cos(rad), std::sin(rad)), across(-std::sin(rad), std::cos(rad));
        const cv::Point2d c(cx + along.x * a * k / 5.0, cy + along.y * a * k / 5.0);
        const double half = b * 0.7 * std::sqrt(std::max(0.0, 1 - (k / 5.0) * (k / 5.0)));
        const cv::Point p0(static_cast<int>(std::lround((c.x - across.x * half) * scale)), static_cast<int>(std::lround((c.y - across.y * half) * scale)));
        const cv::Point p1(static_cast<int>(std::lround((c.x + across.x * half) * scale)), static_cast<int>(std::lround((c.y + across.y * half) * scale)));
        cv::line(img, p0, p1, cv::Scalar(m.tone - 25), 2, cv::LINE_AA, kShift);
      }
    }
  }

  // 3. Point-spread blur, slow brightness/contrast change, noise.
  cv::GaussianBlur(img, img, cv::Size(0, 0), 1.0);
  const double gain = 1 + 0.06 * std::sin(0.21 * zf + 2 * kPi * unit(hash(o.seed, kTone, 0)));
  const double offset = 8 * std::sin(0.13 * zf + 2 * kPi * unit(hash(o.seed, kTone, 1)));
  std::mt19937_64 rng(hash(o.seed, kNoise, static_cast<std::uint64_t>(z)));
  for (int row = 0; row < H; ++row) {
    float* p = img.ptr<float>(row);
    for (int col = 0; col < W; col += 2) {
      // Box-Muller by hand: std::normal_distribution differs between standard libraries.
      const double u1 = std::max(1e-300, unit(rng())), u2 = unit(rng());
      const double r = std::sqrt(-2 * std::log(u1));
      p[col] = static_cast<float>(128 + gain * (p[col] - 128) + offset + o.noise_sigma * r * std::cos(2 * kPi * u2));
      if (col + 1 < W) p[col + 1] = static_cast<float>(128 + gain * (p[col + 1] - 128) + offset + o.noise_sigma * r * std::sin(2 * kPi * u2));
    }
  }

  // 4. Defects.
  for (const Defect& d : defects_at(z)) {
    switch (d.kind) {
      case DefectKind::kFold: {
        cv::Mat mask = defect_mask(d, img.size()), soft;
        mask.convertTo(soft, CV_32F, 1.0 / 255);
        cv::GaussianBlur(soft, soft, cv::Size(0, 0), 2.0);
        img = img.mul(1 - 0.75 * soft);
        break;
      }
      case DefectKind::kPadding: img(d.box).setTo(0); break;
      case DefectKind::kBlur: cv::GaussianBlur(img, img, cv::Size(0, 0), 4.0); break;
      case DefectKind::kMissing: img.setTo(0); break;
      case DefectKind::kStain: {
        for (int row = d.box.y; row < d.box.y + d.box.height; ++row) {
          float* p = img.ptr<float>(row);
          for (int col = d.box.x; col < d.box.x + d.box.width; ++col) {
            const double rr = std::hypot(col - d.center.x, row - d.center.y) / d.radius;
            if (rr < 1) p[col] = static_cast<float>(p[col] * (1 - 0.65 * std::exp(-2 * rr * rr)));
          }
        }
        break;
      }
      case DefectKind::kContrastFlip: img = 255 - img; break;
      case DefectKind::kSaturated: img = (img - 128) * 5 + 128; break;
    }
  }
  return img;
}

cv::Mat Phantom::render(std::int64_t z, int bits) const {
  const cv::Mat f = render_float(z);
  cv::Mat out;
  if (bits == 16) {
    f.convertTo(out, CV_16U, 257.0);
  } else if (bits == 8) {
    f.convertTo(out, CV_8U);
  } else {
    throw Error(ErrorKind::kInvalidArgument, "bits must be 8 or 16");
  }
  return out;
}

nlohmann::json truth_to_json(const Phantom& phantom) {
  const auto& o = phantom.options();
  nlohmann::json j;
  j["shape"] = {o.depth, o.height, o.width};
  j["seed"] = o.seed;
  j["resolution_nm"] = o.resolution_nm;
  j["max_drift"] = o.max_drift;
  j["defect_rate"] = o.defect_rate;
  j["drift_convention"] = "slice z shows the world shifted by (dy, dx): image_z(y, x) = world_z(y - dy, x - dx)";
  auto& drift = j["drift"] = nlohmann::json::array();
  for (const auto& d : phantom.truth().drift) drift.push_back({d.y, d.x});
  auto& defects = j["defects"] = nlohmann::json::array();
  for (const Defect& d : phantom.truth().defects) {
    nlohmann::json e{{"z", d.z}, {"kind", to_string(d.kind)}, {"box", {d.box.y, d.box.x, d.box.height, d.box.width}}};
    if (d.kind == DefectKind::kFold) {
      e["line"] = {d.p0.y, d.p0.x, d.p1.y, d.p1.x};
      e["width"] = d.width;
    }
    if (d.kind == DefectKind::kStain) {
      e["center"] = {d.center.y, d.center.x};
      e["radius"] = d.radius;
    }
    defects.push_back(e);
  }
  return j;
}

PhantomTruth truth_from_json(const nlohmann::json& j) {
  PhantomTruth t;
  for (const auto& d : j.at("drift")) t.drift.emplace_back(d.at(1).get<double>(), d.at(0).get<double>());
  for (const auto& e : j.at("defects")) {
    Defect d;
    d.z = e.at("z").get<std::int64_t>();
    d.kind = parse_defect_kind(e.at("kind").get<std::string>());
    const auto& b = e.at("box");
    d.box = cv::Rect(b.at(1).get<int>(), b.at(0).get<int>(), b.at(3).get<int>(), b.at(2).get<int>());
    if (e.contains("line")) {
      const auto& l = e.at("line");
      d.p0 = {l.at(1).get<double>(), l.at(0).get<double>()};
      d.p1 = {l.at(3).get<double>(), l.at(2).get<double>()};
      d.width = e.at("width").get<double>();
    }
    if (e.contains("center")) {
      d.center = {e.at("center").at(1).get<double>(), e.at("center").at(0).get<double>()};
      d.radius = e.at("radius").get<double>();
    }
    t.defects.push_back(d);
  }
  return t;
}

void write_phantom(const Phantom& phantom, const std::string& out_path, OutputFormat format, int bits,
                   const std::string& truth_path, const std::function<void()>& on_slice, bool force,
                   const emio::ChunkedWriteOptions& chunked) {
  const auto& o = phantom.options();
  const emio::VolumeShape shape{o.depth, o.height, o.width};
  std::unique_ptr<emio::VolumeWriter> writer;
  switch (format) {
    case OutputFormat::kHdf5:
      writer = emio::create_hdf5_volume(out_path, "volumes/raw", shape, bits,
                                        std::array<double, 3>{o.resolution_nm[0], o.resolution_nm[1], o.resolution_nm[2]});
      break;
    case OutputFormat::kPng: writer = emio::create_image_stack(out_path, emio::ImageFormat::kPng, shape, bits, force); break;
    case OutputFormat::kTiff: writer = emio::create_image_stack(out_path, emio::ImageFormat::kTiff, shape, bits, force); break;
    case OutputFormat::kZarr:
    case OutputFormat::kN5: {
      emio::ChunkedWriteOptions c = chunked;
      c.resolution_nm = std::array<double, 3>{o.resolution_nm[0], o.resolution_nm[1], o.resolution_nm[2]};
      writer = format == OutputFormat::kZarr ? emio::create_zarr_volume(out_path, shape, bits, c, /*ome=*/true, force)
                                             : emio::create_n5_volume(out_path, shape, bits, c, force);
      break;
    }
  }
  // Render a few slices at a time in parallel, write them in z order.
  const std::int64_t batch = 4;
  for (std::int64_t z0 = 0; z0 < o.depth; z0 += batch) {
    const std::int64_t n = std::min(batch, o.depth - z0);
    std::vector<cv::Mat> slices(static_cast<std::size_t>(n));
    tbb::parallel_for(std::int64_t{0}, n, [&](std::int64_t i) { slices[static_cast<std::size_t>(i)] = phantom.render(z0 + i, bits); });
    throw_if_interrupted(out_path);  // the batch may be cut short: never write it
    for (std::int64_t i = 0; i < n; ++i) {
      writer->write_slice(z0 + i, slices[static_cast<std::size_t>(i)]);
      if (on_slice) on_slice();
    }
  }
  // The truth waits under its temporary name until the volume is in place.
  std::unique_ptr<AtomicFile> truth;
  if (!truth_path.empty()) {
    truth = std::make_unique<AtomicFile>(truth_path);
    write_file(truth->temp_path(), truth_to_json(phantom).dump(2) + "\n");
  }
  writer->commit();
  if (truth) truth->commit();
}

}  // namespace emt::phantom
