using System.Globalization;
using ScottPlot;

namespace MegaPipe.Perf;

// PNG plots (ScottPlot 5) written next to the reports.
public static class Charts
{
    public sealed record Series(string Name, double[] X, double[] Y);

    public sealed record Segment(string Name, double Value);

    public sealed record StackedBar(string Label, IReadOnlyList<Segment> Segments, bool Faded = false);

    private static readonly IPalette s_palette = new ScottPlot.Palettes.Category10();

    // Lines over a log2 x axis (message sizes, transactions per connection, channels).
    public static void Lines(string path, string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool log2X = true, bool zeroY = true, double? referenceY = null)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        var xs = new SortedSet<double>();
        for (int i = 0; i < series.Count; i++)
        {
            Series s = series[i];
            double[] x = s.X.Select(v => log2X ? Math.Log2(v) : v).ToArray();
            double[] y = s.Y.Select(v => double.IsNaN(v) ? 0 : v).ToArray();
            var scatter = plot.Add.Scatter(x, y, s_palette.GetColor(i));
            scatter.LegendText = s.Name;
            scatter.LineWidth = 2;
            scatter.MarkerSize = 7;
            foreach (double v in s.X)
            {
                xs.Add(v);
            }
        }
        if (referenceY is { } reference)
        {
            var line = plot.Add.HorizontalLine(reference);
            line.Color = Colors.Gray;
            line.LinePattern = LinePattern.Dashed;
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (double v in xs)
        {
            ticks.AddMajor(log2X ? Math.Log2(v) : v, Label(v));
        }
        plot.Axes.Bottom.TickGenerator = ticks;
        if (zeroY)
        {
            double max = series.SelectMany(s => s.Y).Where(v => !double.IsNaN(v)).DefaultIfEmpty(1).Max();
            double min = Math.Min(0, series.SelectMany(s => s.Y).Where(v => !double.IsNaN(v)).DefaultIfEmpty(0).Min());
            plot.Axes.SetLimitsY(min * 1.1, max * 1.15);
        }
        // Outside the data area: the lines cross anywhere.
        plot.ShowLegend(Edge.Right);
        plot.SavePng(path, 1000, 520);
    }

    // Stacked bars, several per group (e.g. ours and the paper's per connection length); negative
    // segments stack downwards from zero.
    public static void Stacked(string path, string title, string yLabel, IReadOnlyList<(string Group, IReadOnlyList<StackedBar> Bars)> groups)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.YLabel(yLabel);
        var names = groups.SelectMany(g => g.Bars).SelectMany(b => b.Segments).Select(s => s.Name).Distinct().ToList();
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        var bars = new List<Bar>();
        double position = 0;
        foreach ((string group, IReadOnlyList<StackedBar> groupBars) in groups)
        {
            double first = position;
            foreach (StackedBar bar in groupBars)
            {
                double up = 0, down = 0;
                foreach (Segment seg in bar.Segments)
                {
                    if (double.IsNaN(seg.Value))
                    {
                        continue;
                    }
                    Color color = s_palette.GetColor(names.IndexOf(seg.Name));
                    if (bar.Faded)
                    {
                        color = color.WithAlpha(0.4);
                    }
                    double from = seg.Value >= 0 ? up : down;
                    double to = from + seg.Value;
                    bars.Add(new Bar { Position = position, ValueBase = from, Value = to, FillColor = color, LineWidth = 0 });
                    if (seg.Value >= 0)
                    {
                        up = to;
                    }
                    else
                    {
                        down = to;
                    }
                }
                ticks.AddMinor(position);
                position += 1;
            }
            ticks.AddMajor((first + position - 1) / 2, group);
            position += 0.8;
        }
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = ticks;
        for (int i = 0; i < names.Count; i++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = names[i], FillColor = s_palette.GetColor(i) });
        }
        plot.ShowLegend(Edge.Right);
        plot.SavePng(path, 1100, 540);
    }

    // Plain bars, one per label, with the value written above.
    public static void Bars(string path, string title, string yLabel, IReadOnlyList<(string Label, double Value)> values)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.YLabel(yLabel);
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int i = 0; i < values.Count; i++)
        {
            double v = double.IsNaN(values[i].Value) ? 0 : values[i].Value;
            var bar = plot.Add.Bar(new Bar { Position = i, Value = v, FillColor = s_palette.GetColor(i), Label = v.ToString(v >= 100 ? "N0" : "F2", CultureInfo.InvariantCulture) });
            ticks.AddMajor(i, values[i].Label);
        }
        plot.Axes.Bottom.TickGenerator = ticks;
        double max = values.Select(v => v.Value).Where(v => !double.IsNaN(v)).DefaultIfEmpty(1).Max();
        plot.Axes.SetLimitsY(0, max * 1.15);
        plot.SavePng(path, 800, 480);
    }

    private static string Label(double v) => v switch
    {
        >= 1024 when v % 1024 == 0 => (v / 1024).ToString(CultureInfo.InvariantCulture) + "K",
        _ => v.ToString(CultureInfo.InvariantCulture),
    };
}
