#include "cloud/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>

#include "cloud/xml_writer.h"

namespace nimbus::cloud {
namespace {

// Distinct on white and for the common colour-vision deficiencies (Tableau 10 order).
constexpr std::array<std::string_view, 10> kPalette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                       "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                       "#bcbd22", "#17becf"};

constexpr double kCharWidth = 6.6;  // an estimate for 11-12px sans-serif text
constexpr double kLegendRow = 18;

double usable_divisor(double d) { return std::isfinite(d) && d > 0 ? d : 1; }

std::string coord(double v) { return fmt::format("{:.1f}", v); }

// The tick's step decides the decimals, so 0.5, 1, 1.5 read as such and 2000 as "2000".
// Big values use k / M so labels stay short.
std::vector<std::string> tick_labels(const std::vector<double>& ticks) {
  std::vector<std::string> out;
  if (ticks.empty()) return out;
  double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  double biggest = 0;
  for (double t : ticks) biggest = std::max(biggest, std::fabs(t));
  double scale = 1;
  std::string suffix;
  if (biggest >= 1e7 && step >= 1e6) {
    scale = 1e6;
    suffix = "M";
  } else if (biggest >= 1e4 && step >= 1e3) {
    scale = 1e3;
    suffix = "k";
  }
  step /= scale;
  const int decimals =
      step > 0 ? std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9))) : 0;
  for (double t : ticks) {
    double v = t / scale;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
    out.push_back(fmt::format("{:.{}f}{}", v, std::min(decimals, 12), suffix));
  }
  return out;
}

std::string axis_label(const std::string& label, const std::string& unit) {
  if (unit.empty()) return label;
  if (label.empty()) return unit;
  return label + " (" + unit + ")";
}

// [lo, hi] made a usable, non-empty range.
void widen(double& lo, double& hi) {
  if (hi > lo) return;
  const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1;
  if (lo == 0) {
    hi = lo + pad;
  } else {
    lo -= pad;
    hi += pad;
  }
}

struct Item {
  size_t series;
  double x, y;  // position in the chart
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (lo > hi) std::swap(lo, hi);
  widen(lo, hi);
  const double range = hi - lo;
  if (!std::isfinite(range)) return {};
  target = std::clamp(target, 2, 50);
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (!(step > 0) || !std::isfinite(step)) return {};
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  // A tiny range far from zero (1e20 + 1) has no distinct ticks at double precision.
  if (!(last - first >= 0 && last - first <= 1000) || first + 1 == first) return {};
  const int n = static_cast<int>(last - first);
  // Dividing by the integer 1/mag gives the double nearest the decimal (0.3, not
  // 0.30000000000000004), so labels and comparisons see the round value.
  const double inv = mag < 1 ? std::round(1 / mag) : 1;
  std::vector<double> ticks;
  for (int i = 0; i <= n; ++i) {
    double v = (first + i) * step;
    if (mag < 1) v = std::round(v * inv) / inv;
    ticks.push_back(v);
  }
  return ticks;
}

std::vector<std::pair<double, double>> downsample_min_max(const std::vector<double>& x,
                                                          const std::vector<double>& y,
                                                          size_t max_points) {
  std::vector<std::pair<double, double>> pts;
  const size_t n = std::min(x.size(), y.size());
  pts.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i]) && std::isfinite(y[i])) pts.emplace_back(x[i], y[i]);
  }
  max_points = std::max<size_t>(max_points, 2);
  if (pts.size() <= max_points) return pts;
  const size_t buckets = max_points / 2;
  const size_t total = pts.size();
  std::vector<std::pair<double, double>> out;
  out.reserve(max_points);
  for (size_t b = 0; b < buckets; ++b) {
    const size_t begin = b * total / buckets, end = (b + 1) * total / buckets;
    if (begin >= end) continue;
    size_t lo = begin, hi = begin;
    for (size_t i = begin + 1; i < end; ++i) {
      if (pts[i].second < pts[lo].second) lo = i;
      if (pts[i].second > pts[hi].second) hi = i;
    }
    out.push_back(pts[std::min(lo, hi)]);
    if (lo != hi) out.push_back(pts[std::max(lo, hi)]);
  }
  return out;
}

std::string line_chart(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  const double width = std::isfinite(o.width) ? std::clamp(o.width, 240.0, 20000.0) : 900;
  const double height = std::isfinite(o.height) ? std::clamp(o.height, 180.0, 20000.0) : 420;
  const double xdiv = usable_divisor(o.x_divisor), ydiv = usable_divisor(o.y_divisor);

  // Points in display units; the data range.
  std::vector<std::vector<std::pair<double, double>>> points;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const PlotSeries& s : series) {
    auto pts = downsample_min_max(s.x, s.y);
    for (auto& [px, py] : pts) {
      px /= xdiv;
      py /= ydiv;
      if (!std::isfinite(px) || !std::isfinite(py)) continue;  // cannot after /d>0, still
      xmin = std::min(xmin, px);
      xmax = std::max(xmax, px);
      ymin = std::min(ymin, py);
      ymax = std::max(ymax, py);
    }
    points.push_back(std::move(pts));
  }
  const bool any = xmin <= xmax;
  if (!any) {
    xmin = ymin = 0;
    xmax = ymax = 1;
  }
  if (o.y_from_zero) {
    ymin = std::min(ymin, 0.0);
    ymax = std::max(ymax, 0.0);
  }
  widen(xmin, xmax);
  widen(ymin, ymax);

  std::vector<double> yticks = nice_ticks(ymin, ymax, 6);
  if (yticks.size() >= 2) ymin = yticks.front(), ymax = yticks.back();
  std::vector<double> xticks;
  for (double t : nice_ticks(xmin, xmax, 8)) {
    const double eps = (xmax - xmin) * 1e-9;
    if (t >= xmin - eps && t <= xmax + eps) xticks.push_back(t);
  }
  const std::vector<std::string> ylabels = tick_labels(yticks), xlabels = tick_labels(xticks);

  // Layout: title, legend rows, then the plot with tick labels left and below.
  size_t widest = 1;
  for (const auto& l : ylabels) widest = std::max(widest, l.size());
  const double left = 16 + widest * kCharWidth + (o.y_label.empty() && o.y_unit.empty() ? 0 : 22);
  const double right = 24;
  struct LegendEntry {
    size_t series;
    double x;
    int row;
  };
  std::vector<LegendEntry> legend;
  {
    double cx = left;
    int row = 0;
    for (size_t i = 0; i < series.size(); ++i) {
      if (series[i].name.empty()) continue;
      const double w = 30 + series[i].name.size() * kCharWidth + 18;
      if (cx > left && cx + w > width - right) cx = left, ++row;
      legend.push_back({i, cx, row});
      cx += w;
    }
  }
  const int rows = legend.empty() ? 0 : legend.back().row + 1;
  const double legend_top = o.title.empty() ? 14 : 40;
  const double top = legend_top + rows * kLegendRow + 10;
  const double bottom = 30 + (o.x_label.empty() && o.x_unit.empty() ? 0 : 18);
  const double x0 = left, x1 = std::max(left + 20, width - right);
  const double y0 = top, y1 = std::max(top + 20, height - bottom);
  auto sx = [&](double v) { return x0 + (v - xmin) / (xmax - xmin) * (x1 - x0); };
  auto sy = [&](double v) { return y1 - (v - ymin) / (ymax - ymin) * (y1 - y0); };

  std::string out;
  out.reserve(4096 + 32 * kMaxPlotPoints * series.size());
  out += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"Helvetica, Arial, sans-serif\">\n",
      coord(width), coord(height));
  out += "<title>" + xml_escape(o.title) + "</title>\n";
  out += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", coord(width),
                     coord(height));
  if (!o.title.empty()) {
    out += fmt::format(
        "<text x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\" "
        "fill=\"#222222\">{}</text>\n",
        coord(width / 2), xml_escape(o.title));
  }

  // Gridlines, then the frame over them.
  out += "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double t : yticks) {
    out += fmt::format("<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\"/>\n", coord(x0),
                       coord(x1), coord(sy(t)));
  }
  for (double t : xticks) {
    out += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", coord(sx(t)),
                       coord(y0), coord(y1));
  }
  out += "</g>\n";
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999999\"/>\n",
      coord(x0), coord(y0), coord(x1 - x0), coord(y1 - y0));

  // Tick labels and axis labels.
  out += "<g font-size=\"11\" fill=\"#444444\">\n";
  for (size_t i = 0; i < yticks.size(); ++i) {
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", coord(x0 - 6),
                       coord(sy(yticks[i]) + 4), xml_escape(ylabels[i]));
  }
  for (size_t i = 0; i < xticks.size(); ++i) {
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       coord(sx(xticks[i])), coord(y1 + 16), xml_escape(xlabels[i]));
  }
  out += "</g>\n";
  const std::string xl = axis_label(o.x_label, o.x_unit), yl = axis_label(o.y_label, o.y_unit);
  if (!xl.empty()) {
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222222\">{}"
        "</text>\n",
        coord((x0 + x1) / 2), coord(height - 8), xml_escape(xl));
  }
  if (!yl.empty()) {
    const double cy = (y0 + y1) / 2;
    out += fmt::format(
        "<text x=\"14\" y=\"{0}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\" "
        "font-size=\"12\" fill=\"#222222\">{1}</text>\n",
        coord(cy), xml_escape(yl));
  }

  // The series, in order, so the first is drawn first (and under the later ones).
  auto color_of = [&](size_t i) {
    return series[i].color.empty() ? std::string(kPalette[i % kPalette.size()]) : series[i].color;
  };
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& pts = points[i];
    const std::string color = xml_escape(color_of(i));
    if (pts.size() == 1) {
      out += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>\n",
                         coord(sx(pts[0].first)), coord(sy(pts[0].second)), color);
      continue;
    }
    if (pts.empty()) continue;
    out += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"{} "
        "points=\"",
        color, series[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (size_t k = 0; k < pts.size(); ++k) {
      if (k) out += ' ';
      out += coord(sx(pts[k].first));
      out += ',';
      out += coord(sy(pts[k].second));
    }
    out += "\"/>\n";
  }
  if (!any) {
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\" fill=\"#888888\">"
        "no data</text>\n",
        coord((x0 + x1) / 2), coord((y0 + y1) / 2));
  }

  // The legend: a short line in the series' style, then its name.
  if (!legend.empty()) {
    out += "<g font-size=\"12\" fill=\"#222222\">\n";
    for (const LegendEntry& e : legend) {
      const double ly = legend_top + e.row * kLegendRow + 9;
      out += fmt::format(
          "<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"{3}\" "
          "stroke-width=\"2.5\"{4}/>"
          "\n",
          coord(e.x), coord(e.x + 24), coord(ly), xml_escape(color_of(e.series)),
          series[e.series].dashed ? " stroke-dasharray=\"6 4\"" : "");
      out += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", coord(e.x + 30), coord(ly + 4),
                         xml_escape(series[e.series].name));
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

}  // namespace nimbus::cloud
