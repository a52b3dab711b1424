#include "cloud/svg_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace nimbus::cloud {
namespace {

// Well-formedness the cheap way: every tag closes in order, attributes are quoted, no
// stray '<' or '&' in text. Returns "" when fine, else what is wrong.
std::string check_xml(const std::string& s) {
  std::vector<std::string> open;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '&') {
      const size_t semi = s.find(';', i);
      if (semi == std::string::npos || semi - i > 8) return "bare & at " + std::to_string(i);
      i = semi + 1;
      continue;
    }
    if (s[i] == '>') return "stray > at " + std::to_string(i);
    if (s[i] != '<') {
      ++i;
      continue;
    }
    // Find the tag's end, skipping quoted attribute values.
    size_t j = i + 1;
    char quote = 0;
    for (; j < s.size(); ++j) {
      if (quote) {
        if (s[j] == quote) quote = 0;
        if (s[j] == '<') return "< inside an attribute at " + std::to_string(j);
      } else if (s[j] == '"' || s[j] == '\'') {
        quote = s[j];
      } else if (s[j] == '>') {
        break;
      } else if (s[j] == '<') {
        return "< inside a tag at " + std::to_string(j);
      }
    }
    if (j >= s.size()) return "unterminated tag at " + std::to_string(i);
    std::string tag = s.substr(i + 1, j - i - 1);
    i = j + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;
    const bool closing = tag[0] == '/';
    const bool self = tag.back() == '/';
    if (closing) tag = tag.substr(1);
    const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    if (closing) {
      if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
      open.pop_back();
    } else if (!self) {
      open.push_back(name);
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

// The `points` attribute of every polyline.
std::vector<std::string> polylines(const std::string& svg) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = svg.find("<polyline", at)) != std::string::npos) {
    const size_t p = svg.find("points=\"", at) + 8;
    out.push_back(svg.substr(p, svg.find('"', p) - p));
    at = p;
  }
  return out;
}

// Points of a polyline in chart coordinates.
std::vector<std::pair<double, double>> parse_points(const std::string& pts) {
  std::vector<std::pair<double, double>> out;
  size_t i = 0;
  while (i < pts.size()) {
    size_t end = pts.find(' ', i);
    if (end == std::string::npos) end = pts.size();
    const std::string p = pts.substr(i, end - i);
    const size_t comma = p.find(',');
    out.emplace_back(std::stod(p.substr(0, comma)), std::stod(p.substr(comma + 1)));
    i = end + 1;
  }
  return out;
}

bool is_round(double step) {
  const double mag = std::pow(10.0, std::floor(std::log10(step)));
  const double m = step / mag;
  return std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 5) < 1e-9 ||
         std::fabs(m - 10) < 1e-9;
}

TEST(SvgPlot, TicksAreRoundAndCoverTheRange) {
  struct Case {
    double lo, hi;
  };
  for (const Case c : {Case{0, 1}, Case{0, 97}, Case{3.2, 7.9}, Case{0, 10000}, Case{-13, 42},
                       Case{0, 0.037}, Case{1234, 1299}, Case{0, 720}, Case{5, 5}}) {
    SCOPED_TRACE(std::to_string(c.lo) + ".." + std::to_string(c.hi));
    const std::vector<double> t = nice_ticks(c.lo, c.hi, 6);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.size(), 13u);
    EXPECT_LE(t.front(), c.lo);
    EXPECT_GE(t.back(), c.hi);
    const double step = t[1] - t[0];
    EXPECT_TRUE(is_round(step)) << step;
    for (size_t i = 0; i < t.size(); ++i) {
      // Every tick is a whole multiple of the step.
      EXPECT_NEAR(t[i] / step, std::round(t[i] / step), 1e-6);
      if (i) {
        EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-9);
      }
    }
  }
  EXPECT_EQ(nice_ticks(0, 100, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  // Decimal steps come out as the decimal doubles, not 0.30000000000000004.
  const std::vector<double> d = nice_ticks(0, 1, 10);
  ASSERT_EQ(d.size(), 11u);
  EXPECT_EQ(d[3], 0.3);
  EXPECT_TRUE(nice_ticks(0, INFINITY).empty());
  EXPECT_TRUE(nice_ticks(NAN, 1).empty());
}

TEST(SvgPlot, ChartHasTitleLegendAxesAndLines) {
  PlotSeries a{"spread", {0, 3600, 7200, 10800}, {10, 12, 11, 9}, "", false};
  PlotSeries b{"lower bound", {0, 3600, 7200, 10800}, {4, 4, 5, 4}, "#333333", true};
  PlotOptions o;
  o.title = "Hosts on <over> time & more";
  o.x_label = "time";
  o.x_divisor = 3600;
  o.x_unit = "h";
  o.y_label = "hosts";
  const std::string svg = line_chart({a, b}, o);
  EXPECT_EQ(check_xml(svg), "");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("Hosts on &lt;over&gt; time &amp; more"), std::string::npos);
  EXPECT_EQ(svg.find("<over>"), std::string::npos);
  EXPECT_NE(svg.find(">spread</text>"), std::string::npos);
  EXPECT_NE(svg.find(">lower bound</text>"), std::string::npos);
  EXPECT_NE(svg.find(">time (h)</text>"), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#333333\""), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  // Tick labels in hours: 0, 0.5 .. 3 (not seconds).
  EXPECT_NE(svg.find(">3.0</text>"), std::string::npos) << svg;
  EXPECT_EQ(svg.find(">10800"), std::string::npos);
  // y from zero: a 0 tick.
  EXPECT_NE(svg.find("text-anchor=\"end\">0</text>"), std::string::npos);

  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 2u);
  const auto pa = parse_points(lines[0]);
  ASSERT_EQ(pa.size(), 4u);
  // x increases left to right; a bigger y is higher up (smaller SVG y).
  EXPECT_LT(pa[0].first, pa[1].first);
  EXPECT_LT(pa[1].second, pa[0].second);
  for (const auto& [x, y] : pa) {
    EXPECT_GE(x, 0);
    EXPECT_LE(x, o.width);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, o.height);
  }
  // The two default colours differ from each other.
  PlotSeries c = a;
  c.name = "pack";
  const std::string two = line_chart({a, c}, o);
  EXPECT_NE(two.find("stroke=\"#1f77b4\""), std::string::npos);
  EXPECT_NE(two.find("stroke=\"#d62728\""), std::string::npos);
}

TEST(SvgPlot, EscapesNamesAndColours) {
  PlotSeries s{"a<b>&\"c\"", {0, 1}, {1, 2}, "red\" onload=\"x", false};
  const std::string svg = line_chart({s}, PlotOptions{});
  EXPECT_EQ(check_xml(svg), "");
  EXPECT_NE(svg.find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("onload=\""), std::string::npos);
}

TEST(SvgPlot, NonFinitePointsAreSkipped) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  PlotSeries s{"s", {0, 1, 2, nan, 4, 5}, {1, nan, 3, 4, inf, 6}, "", false};
  const std::string svg = line_chart({s}, PlotOptions{});
  EXPECT_EQ(check_xml(svg), "");
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(parse_points(lines[0]).size(), 3u);  // (0,1), (2,3), (5,6)
  for (const char* bad : {"nan", "inf", "NaN", "Inf"}) {
    EXPECT_EQ(lines[0].find(bad), std::string::npos) << bad;
  }
  EXPECT_EQ(svg.find("\"nan"), std::string::npos);
  EXPECT_EQ(svg.find("\"-nan"), std::string::npos);
  EXPECT_EQ(svg.find("\"inf"), std::string::npos);
  // Mismatched lengths pair up to the shorter.
  PlotSeries m{"m", {0, 1, 2}, {5}, "", false};
  EXPECT_EQ(check_xml(line_chart({m}, PlotOptions{})), "");
}

TEST(SvgPlot, DownSamplingBoundsThePointsAndKeepsPeaks) {
  std::vector<double> x, y;
  for (int i = 0; i < 100000; ++i) {
    x.push_back(i);
    y.push_back(std::sin(i * 0.001));
  }
  y[54321] = 1000;  // a spike
  y[77777] = -500;  // a trough
  const auto pts = downsample_min_max(x, y, 2000);
  EXPECT_LE(pts.size(), 2000u);
  EXPECT_GE(pts.size(), 1000u);
  bool peak = false, trough = false;
  for (size_t i = 0; i < pts.size(); ++i) {
    if (pts[i] == std::make_pair(54321.0, 1000.0)) peak = true;
    if (pts[i] == std::make_pair(77777.0, -500.0)) trough = true;
    if (i) {
      EXPECT_LT(pts[i - 1].first, pts[i].first);  // x order kept
    }
  }
  EXPECT_TRUE(peak);
  EXPECT_TRUE(trough);
  EXPECT_EQ(pts.front().first, 0);  // the first bucket starts the line

  // Short series pass through unchanged.
  EXPECT_EQ(downsample_min_max({1, 2, 3}, {4, 5, 6}).size(), 3u);

  // In the chart: one polyline of at most kMaxPlotPoints points, reaching the spike's height.
  const std::string svg = line_chart({PlotSeries{"long", x, y, "", false}}, PlotOptions{});
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 1u);
  const auto drawn = parse_points(lines[0]);
  EXPECT_LE(drawn.size(), kMaxPlotPoints);
  double top = 1e9;
  for (const auto& p : drawn) top = std::min(top, p.second);
  // The y axis ends at the tick just above 1000, so the spike is near the top of the plot.
  EXPECT_LT(top, 120);
}

TEST(SvgPlot, EmptyChartIsValidWithANote) {
  PlotOptions o;
  o.title = "nothing";
  const std::string svg = line_chart({}, o);
  EXPECT_EQ(check_xml(svg), "");
  EXPECT_NE(svg.find("no data"), std::string::npos);
  EXPECT_EQ(svg.find("<polyline"), std::string::npos);
  // A series with only non-finite points is also "no data"; one point is a dot.
  const std::string nan_only = line_chart({PlotSeries{"x", {NAN}, {1}, "", false}}, o);
  EXPECT_EQ(check_xml(nan_only), "");
  EXPECT_NE(nan_only.find("no data"), std::string::npos);
  const std::string dot = line_chart({PlotSeries{"x", {3}, {7}, "", false}}, o);
  EXPECT_EQ(check_xml(dot), "");
  EXPECT_NE(dot.find("<circle"), std::string::npos);
  // Silly sizes and divisors do not produce garbage.
  o.width = NAN;
  o.height = -5;
  o.x_divisor = 0;
  o.y_divisor = INFINITY;
  const std::string odd = line_chart({PlotSeries{"x", {0, 1}, {1, 2}, "", false}}, o);
  EXPECT_EQ(check_xml(odd), "");
  EXPECT_EQ(odd.find("nan"), std::string::npos);
}

TEST(SvgPlot, BigValuesUseShortLabels) {
  PlotSeries s{"hosts", {0, 1}, {0, 25000}, "", false};
  const std::string svg = line_chart({s}, PlotOptions{});
  EXPECT_NE(svg.find(">25k</text>"), std::string::npos) << svg;
}

}  // namespace
}  // namespace nimbus::cloud
