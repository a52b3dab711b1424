#include "cloud/sim_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "cloud/svg_plot.h"
#include "cloud/xml_writer.h"

namespace nimbus::cloud::sim {
namespace {

// The policy savings are measured against: the first dedicated (the world before
// virtualisation), else the first spread (the cloud's default).
std::optional<size_t> baseline_index(const SimResult& r) {
  for (Policy want : {Policy::kDedicated, Policy::kSpread}) {
    for (size_t i = 0; i < r.policies.size(); ++i) {
      if (r.policies[i].policy == want) return i;
    }
  }
  return std::nullopt;
}

// Energy saved against the baseline, in percent; none without a baseline with energy.
std::optional<double> saving_percent(const SimResult& r, size_t i) {
  const auto b = baseline_index(r);
  if (!b) return std::nullopt;
  const double base = r.policies[*b].energy_kwh;
  if (!(base > 0)) return std::nullopt;
  return (base - r.policies[i].energy_kwh) / base * 100;
}

std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const double hours = s / 3600;
  if (hours < 24) return fmt::format("{:.1f} h", hours);
  const auto days = static_cast<uint64_t>(hours / 24);
  return fmt::format("{} d {:.1f} h", days, hours - days * 24.0);
}

// A table whose first column is left-aligned and the others right-aligned.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c == 0) {
        line += fmt::format("{:<{}}", row[c], width[c]);
      } else {
        line += fmt::format("  {:>{}}", row[c], width[c]);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Status write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::error(fmt::format("cannot write {}", path.string()));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) return Status::error(fmt::format("cannot write {}", path.string()));
  return {};
}

std::string timeseries_csv(const SimResult& r) {
  std::string out =
      "policy,time_s,hosts_on,lower_bound,cpu_allocated,cpu_used,memory_allocated,power_w,"
      "instances,refused,migrations\n";
  for (const PolicyResult& p : r.policies) {
    const std::string name = csv_field(policy_name(p.policy));
    for (const Sample& s : p.samples) {
      // "{}" is the shortest text that reads back as the same double, locale-free.
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", name, s.time_s, s.hosts_on,
                         s.lower_bound, s.cpu_allocated, s.cpu_used, s.memory_allocated, s.power_w,
                         s.instances, s.refused, s.migrations);
    }
  }
  return out;
}

std::string summary_csv(const SimResult& r) {
  std::string out =
      "policy,launches,refused,terminations,migrations,migrated_mib,energy_kwh,peak_hosts_on,"
      "mean_hosts_on,mean_lower_bound,mean_cpu_used,wall_s,energy_saving_pct\n";
  for (size_t i = 0; i < r.policies.size(); ++i) {
    const PolicyResult& p = r.policies[i];
    const auto saving = saving_percent(r, i);
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(policy_name(p.policy)),
                       p.launches, p.refused, p.terminations, p.migrations, p.migrated_mib,
                       p.energy_kwh, p.peak_hosts_on, p.mean_hosts_on, p.mean_lower_bound,
                       p.mean_cpu_used, p.wall_s, saving ? fmt::format("{}", *saving) : "");
  }
  return out;
}

std::string placements_csv(const SimResult& r) {
  std::string out = "policy,time_s,instance,host,reason\n";
  for (const PolicyResult& p : r.policies) {
    const std::string name = csv_field(policy_name(p.policy));
    for (const Placed& pl : p.placements) {
      out += fmt::format("{},{},{},{},{}\n", name, pl.time_s, csv_field(pl.instance),
                         csv_field(pl.host), csv_field(pl.reason));
    }
  }
  return out;
}

// Time in hours, or in days for runs longer than three days.
void set_time_axis(const SimResult& r, PlotOptions& o) {
  double end = r.duration_s;
  for (const PolicyResult& p : r.policies) {
    if (!p.samples.empty()) end = std::max(end, p.samples.back().time_s);
  }
  o.x_label = "simulated time";
  if (end > 3 * 86400) {
    o.x_divisor = 86400;
    o.x_unit = "days";
  } else {
    o.x_divisor = 3600;
    o.x_unit = "hours";
  }
}

PlotSeries series_of(const PolicyResult& p, double (*value)(const Sample&)) {
  PlotSeries s;
  s.name = policy_name(p.policy);
  s.x.reserve(p.samples.size());
  s.y.reserve(p.samples.size());
  for (const Sample& smp : p.samples) {
    s.x.push_back(smp.time_s);
    s.y.push_back(value(smp));
  }
  return s;
}

std::string hosts_svg(const SimResult& r) {
  std::vector<PlotSeries> series;
  for (const PolicyResult& p : r.policies) {
    series.push_back(series_of(p, [](const Sample& s) { return double(s.hosts_on); }));
  }
  // The bound depends only on the demand; the first policy's stands for all (a policy that
  // refuses more has less demand, so its bound can only be lower).
  for (const PolicyResult& p : r.policies) {
    if (p.samples.empty()) continue;
    PlotSeries b = series_of(p, [](const Sample& s) { return s.lower_bound; });
    b.name = "lower bound";
    b.color = "#444444";
    b.dashed = true;
    series.push_back(std::move(b));
    break;
  }
  PlotOptions o;
  o.title = "Hosts switched on";
  o.y_label = "hosts on";
  set_time_axis(r, o);
  return line_chart(series, o);
}

// One line per policy of a fraction (0..1) of the hosts switched on, in percent.
std::string percent_svg(const SimResult& r, double (*fraction)(const Sample&), std::string title,
                        std::string label) {
  std::vector<PlotSeries> series;
  for (const PolicyResult& p : r.policies) {
    PlotSeries s = series_of(p, fraction);
    for (double& y : s.y) y *= 100;
    series.push_back(std::move(s));
  }
  PlotOptions o;
  o.title = std::move(title);
  o.y_label = std::move(label);
  o.y_unit = "%";
  set_time_axis(r, o);
  return line_chart(series, o);
}

std::string utilisation_svg(const SimResult& r) {
  return percent_svg(
      r, [](const Sample& s) { return s.cpu_used; }, "CPU used on the hosts switched on",
      "CPU used");
}

std::string memory_svg(const SimResult& r) {
  return percent_svg(
      r, [](const Sample& s) { return s.memory_allocated; },
      "Memory allocated on the hosts switched on", "memory allocated");
}

// Cumulative energy from the sampled power (trapezoids), so the curve's end is close to,
// not exactly, the engine's energy_kwh, which integrates every change of power.
std::string energy_svg(const SimResult& r) {
  std::vector<PlotSeries> series;
  for (const PolicyResult& p : r.policies) {
    PlotSeries s;
    s.name = policy_name(p.policy);
    double kwh = 0;
    for (size_t i = 0; i < p.samples.size(); ++i) {
      if (i) {
        const Sample &a = p.samples[i - 1], &b = p.samples[i];
        kwh += (a.power_w + b.power_w) / 2 * (b.time_s - a.time_s) / 3.6e6;
      }
      s.x.push_back(p.samples[i].time_s);
      s.y.push_back(kwh);
    }
    series.push_back(std::move(s));
  }
  PlotOptions o;
  o.title = "Energy used so far";
  o.y_label = "energy";
  o.y_unit = "kWh";
  set_time_axis(r, o);
  return line_chart(series, o);
}

std::string index_html(const SimResult& r) {
  std::string title = "Simulation";
  if (!r.datacenter.empty()) title += ": " + r.datacenter;
  if (!r.workload.empty()) title += " / " + r.workload;
  const std::string t = xml_escape(title);
  std::string files =
      "<a href=\"summary.csv\">summary.csv</a>, "
      "<a href=\"timeseries.csv\">timeseries.csv</a>";
  for (const PolicyResult& p : r.policies) {
    if (!p.placements.empty()) {
      files += ", <a href=\"placements.csv\">placements.csv</a>";
      break;
    }
  }
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>{0}</title>\n<style>body{{font-family:Helvetica,Arial,sans-serif;margin:2em;"
      "color:#222}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}"
      "img{{display:block;margin:1.5em 0;max-width:100%}}</style>\n</head>\n<body>\n"
      "<h1>{0}</h1>\n<pre>{1}</pre>\n"
      "<img src=\"hosts.svg\" alt=\"hosts switched on over time\">\n"
      "<img src=\"utilisation.svg\" alt=\"CPU used over time\">\n"
      "<img src=\"memory.svg\" alt=\"memory allocated over time\">\n"
      "<img src=\"energy.svg\" alt=\"cumulative energy over time\">\n"
      "<p>Data: {2}.</p>\n</body>\n</html>\n",
      t, xml_escape(summary_text(r)), files);
}

}  // namespace

std::string summary_text(const SimResult& r) {
  std::vector<std::vector<std::string>> rows = {{"policy", "hosts mean", "peak", "bound mean",
                                                 "hosts/bound", "CPU used", "refused", "migrations",
                                                 "GiB moved", "energy kWh", "saving"}};
  const auto base = baseline_index(r);
  for (size_t i = 0; i < r.policies.size(); ++i) {
    const PolicyResult& p = r.policies[i];
    const auto saving = saving_percent(r, i);
    std::string saving_text = "-";
    if (base && *base == i) {
      saving_text = "baseline";
    } else if (saving) {
      saving_text = fmt::format("{:.1f}%", *saving);
    }
    rows.push_back({
        policy_name(p.policy),
        fmt::format("{:.1f}", p.mean_hosts_on),
        fmt::format("{}", p.peak_hosts_on),
        fmt::format("{:.1f}", p.mean_lower_bound),
        p.mean_lower_bound > 0 ? fmt::format("{:.2f}", p.mean_hosts_on / p.mean_lower_bound) : "-",
        fmt::format("{:.1f}%", p.mean_cpu_used * 100),
        fmt::format("{}", p.refused),
        fmt::format("{}", p.migrations),
        fmt::format("{:.1f}", p.migrated_mib / 1024.0),
        fmt::format("{:.1f}", p.energy_kwh),
        saving_text,
    });
  }
  std::string out = aligned(rows);
  std::string scale;
  if (!r.datacenter.empty() || !r.workload.empty()) {
    scale = r.datacenter + (r.datacenter.empty() || r.workload.empty() ? "" : " / ") + r.workload +
            ": ";
  }
  out += fmt::format("{}{} hosts, {} events, {} simulated, {:.2f} s wall\n", scale, r.hosts,
                     r.events, duration_text(r.duration_s), r.wall_s);
  return out;
}

Status write_report(const SimResult& r, const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return Status::invalid_argument("the report directory is empty");
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    Status s = Status::error(fmt::format("cannot create {}: {}", dir, ec.message()));
    return ec == std::errc::permission_denied ? s.with_code(Code::kPermissionDenied) : s;
  }
  if (!fs::is_directory(root, ec)) {
    return Status::invalid_argument(fmt::format("{} is not a directory", dir));
  }
  std::vector<std::pair<std::string, std::string>> files = {
      {"timeseries.csv", timeseries_csv(r)},
      {"summary.csv", summary_csv(r)},
  };
  for (const PolicyResult& p : r.policies) {
    if (!p.placements.empty()) {
      files.emplace_back("placements.csv", placements_csv(r));
      break;
    }
  }
  files.emplace_back("hosts.svg", hosts_svg(r));
  files.emplace_back("utilisation.svg", utilisation_svg(r));
  files.emplace_back("memory.svg", memory_svg(r));
  files.emplace_back("energy.svg", energy_svg(r));
  files.emplace_back("index.html", index_html(r));
  for (const auto& [name, text] : files) {
    if (Status s = write_file(root / name, text); !s.ok()) return s;
  }
  return {};
}

}  // namespace nimbus::cloud::sim
