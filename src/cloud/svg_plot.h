// A small SVG line chart for reports a person looks at rather than reads (the simulation's
// plots, docs/simulation.md): round 1-2-5 ticks, gridlines, a legend, a title. No
// dependencies; the output is a standalone, well-formed SVG document whatever the input:
// text is XML-escaped, points with a non-finite x or y are skipped, and a series
// longer than kMaxPlotPoints is reduced to the min and max of each bucket so peaks survive.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace nimbus::cloud {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // pairs up to the shorter of the two
  std::string color;         // "" picks a distinct default by position
  bool dashed = false;
};

struct PlotOptions {
  std::string title, x_label, y_label;
  double width = 900, height = 420;
  bool y_from_zero = true;  // the y axis starts at 0 unless the data go below it
  // Axes show value / divisor, and the unit in parentheses after the axis label (seconds
  // shown as hours: x_divisor = 3600, x_unit = "h"). A divisor that is not finite and
  // positive counts as 1.
  double x_divisor = 1, y_divisor = 1;
  std::string x_unit, y_unit;
};

inline constexpr size_t kMaxPlotPoints = 2000;

std::string line_chart(const std::vector<PlotSeries>& series, const PlotOptions& options);

// The pieces line_chart is made of, exposed for tests.

// Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi], about `target`
// of them; the first is <= lo and the last >= hi. Empty for a non-finite range.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// The finite points of (x, y) in order; when there are more than `max_points`, the points
// are cut into max_points / 2 buckets of consecutive points and each bucket keeps its
// minimum and its maximum (in x order), so the result has at most max_points points and
// every peak and trough.
std::vector<std::pair<double, double>> downsample_min_max(const std::vector<double>& x,
                                                          const std::vector<double>& y,
                                                          size_t max_points = kMaxPlotPoints);

}  // namespace nimbus::cloud
