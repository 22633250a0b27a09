using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Experiment 3, the paper's Table 3: the improvement over the baseline from partitioning (+P),
// then batching (+B), then lightweight sockets (+L), by transactions per connection, measured by
// switching MegaPipe.Core's three options (ListenerOptions.Partitioned, ChannelOptions.Batching,
// ChannelOptions.LightweightSockets) in the same ping-pong server. The paper's own table is read
// from the talk's text in shared/seed and printed beside ours.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- breakdown [--channels 2] [--points 1,128]
public sealed class BreakdownExperiment : MicroExperiment
{
    private static readonly string[] s_rows = ["+P", "P +B", "PB +L", "Total"];
    private static readonly string[] s_segments = ["+P", "+B", "+L"];

    public override string Name => "breakdown";

    public override string Summary => "3. contribution breakdown (Table 3): baseline, +P, +PB, +PBL by transactions per connection";

    protected override IReadOnlyList<PingPongBench.Variant> AllVariants { get; } =
    [
        new("baseline", "--transport megapipe --no-partitioning --no-batching --no-lightweight"),
        new("P", "--transport megapipe --no-batching --no-lightweight"),
        new("PB", "--transport megapipe --no-lightweight"),
        new("PBL", "--transport megapipe"),
        new("sockets", "--transport sockets"),
    ];

    protected override int[] DefaultPoints => [1, 2, 4, 8, 16, 32, 64, 128];

    protected override (int Size, int Transactions) Load(int point) => (64, point);

    // Partitioning only exists with several channels: half the CPUs when that still leaves the
    // client as many (a 4-core machine and up), otherwise every CPU, shared with the client.
    protected override int ServerCpuCount(PerfSettings settings)
        => settings.Channels ?? (settings.Cpus.Length / 2 >= 2 ? settings.Cpus.Length / 2 : settings.Cpus.Length);

    // The sockets reference (--variants baseline,P,PB,PBL,sockets) is left out by default to keep `all` within 20 minutes.
    protected override bool IsDefault(string variant) => variant != "sockets";

    private static string Tx(double x) => x.ToString(CultureInfo.InvariantCulture);

    // Improvement over the baseline in percent, accumulated as the paper's rows are.
    private static double[] Contributions(ResultFile r, double x)
    {
        double T(string v) => r.Median(v, x, m => m.Throughput);
        double b = T("baseline");
        return [(T("P") - b) / b * 100, (T("PB") - T("P")) / b * 100, (T("PBL") - T("PB")) / b * 100, (T("PBL") - b) / b * 100];
    }

    public override void Render(ResultFile r, PerfSettings settings)
    {
        double[] xs = MicroReport.Xs(r);
        var md = new Markdown();
        md.Heading(1, "Experiment 3: contribution breakdown (the paper's Table 3)");
        md.Paragraph($"64-byte ping-pong, N transactions per connection, {r.Facts["connections"]} concurrent connections, on {r.Facts["serverCpus"]} MegaPipe channel(s). " +
            "baseline = samples/PingPong's MegaPipe.Core server with all three optimizations switched off: one listening socket shared by every channel (`ListenerOptions.Partitioned = false`), every command submitted by its own `io_uring_enter` (`ChannelOptions.Batching = false`), accepted sockets as ordinary file descriptors (`ChannelOptions.LightweightSockets = false`). " +
            "P adds partitioning (one CPU-steered SO_REUSEPORT accept queue per channel), PB adds batching, PBL adds lightweight sockets (io_uring direct descriptors): PBL is MegaPipe.Core's default. " +
            "sockets (when measured: `--variants baseline,P,PB,PBL,sockets`) = the same server on System.Net.Sockets, for reference. The load generator (MegaPipe.Core, all optimizations on) is the same for every variant.");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}.");
        if (r.Facts["serverCpus"] == "1")
        {
            md.Paragraph("With one channel there is one accept queue either way: +P measures nothing here but noise.");
        }
        md.Heading(2, "Ours: accumulated throughput improvement (%) over the baseline");
        md.Table(["", .. xs.Select(Tx)], s_rows.Select((row, i) => (IReadOnlyList<string>)[row, .. xs.Select(x => N(Contributions(r, x)[i], "F1"))]));
        PaperTable? paper = PaperTable.Load(settings.RepoRoot);
        md.Heading(2, "The paper's Table 3 (quoted, not measured here)");
        if (paper is null)
        {
            md.Paragraph("The talk's text (shared/seed/*.txt, with the \"Contribution Breakdown\" table) was not found beside the repository, so the paper's values are not shown.");
        }
        else
        {
            md.Paragraph($"Read at run time from `{paper.Source}`, the text of the MegaPipe talk (Han et al., OSDI 2012), which gives the table as: \"{paper.Caption}\" The paper measured it on its 8-core server with clients over a 10G NIC.");
            md.Table(["", .. paper.Transactions.Select(t => Tx(t))], paper.Rows.Select(row => (IReadOnlyList<string>)[row.Label, .. row.Values.Select(v => N(v, "F1"))]));
        }
        var groups = xs.Select(x =>
        {
            double[] ours = Contributions(r, x);
            var bars = new List<Charts.StackedBar> { new("ours", [new(s_segments[0], ours[0]), new(s_segments[1], ours[1]), new(s_segments[2], ours[2])]) };
            int column = paper is null ? -1 : Array.IndexOf(paper.Transactions, (int)x);
            if (column >= 0)
            {
                bars.Add(new("paper", [.. paper!.Rows.Take(3).Select((row, i) => new Charts.Segment(s_segments[i], row.Values[column]))], Faded: true));
            }
            return (Tx(x), (IReadOnlyList<Charts.StackedBar>)bars);
        }).ToList();
        Charts.Stacked(settings.ResultPath("breakdown.png"), "Improvement over baseline by transactions per connection: ours (solid), the paper's (faded)", "improvement over baseline (%)", groups);
        md.Image("contribution breakdown", "breakdown.png");
        md.Heading(2, "Throughput (transactions/s)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.Throughput, "F0", [("P", "baseline"), ("PB", "baseline"), ("PBL", "baseline"), ("PBL", "sockets")]);
        md.Heading(2, "System calls per transaction (server)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.SyscallsPerOp, "F3", []);
        md.Heading(2, "Server CPU per transaction (µs)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.ServerCpuUsPerOp, "F2", [("PBL", "baseline")]);
        MicroReport.Saturation(md, r);
        MicroReport.Differences(md, r, "baseline", "PBL");
        File.WriteAllText(settings.ResultPath("breakdown.md"), md.ToString());
    }

    public override IEnumerable<string> Headlines(ResultFile r)
    {
        double[] xs = MicroReport.Xs(r);
        yield return $"breakdown ({r.Facts["serverCpus"]} channels): total improvement of PBL over the baseline " + string.Join(", ", xs.Select(x => $"{Tx(x)} tx/conn {Signed(Contributions(r, x)[3], "F0")} %"));
    }

    // Table 3 as the talk's text gives it: a "Contribution Breakdown" heading, a row of
    // transaction counts, then the rows +P, P +B, PB +L and Total, tab-separated.
    public sealed record PaperTable(string Source, string Caption, int[] Transactions, (string Label, double[] Values)[] Rows)
    {
        public static PaperTable? Load(string repoRoot)
        {
            string[] dirs = [Path.Combine(repoRoot, "..", "shared", "seed"), Path.Combine(repoRoot, "shared", "seed")];
            foreach (string dir in dirs.Where(Directory.Exists))
            {
                foreach (string file in Directory.EnumerateFiles(dir, "*.txt").Order())
                {
                    if (Parse(file, repoRoot) is { } table)
                    {
                        return table;
                    }
                }
            }
            return null;
        }

        private static PaperTable? Parse(string file, string repoRoot)
        {
            string[] lines = File.ReadAllLines(file);
            int start = Array.FindIndex(lines, l => l.Trim() == "Contribution Breakdown");
            if (start < 0)
            {
                return null;
            }
            int[]? transactions = null;
            var rows = new List<(string, double[])>();
            string caption = "";
            foreach (string line in lines.Skip(start + 1))
            {
                string[] cells = line.Split('\t', StringSplitOptions.TrimEntries);
                if (transactions is null && cells.Length > 2 && cells.Skip(1).Where(c => c.Length > 0).All(c => int.TryParse(c, CultureInfo.InvariantCulture, out _)))
                {
                    transactions = cells.Skip(1).Where(c => c.Length > 0).Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
                }
                else if (transactions is not null && cells.Length > transactions.Length && s_rows.Contains(cells[0]))
                {
                    rows.Add((cells[0], cells.Skip(1).Take(transactions.Length).Select(c => double.Parse(c, CultureInfo.InvariantCulture)).ToArray()));
                }
                else if (line.StartsWith("Table 3", StringComparison.Ordinal))
                {
                    caption = line.Trim();
                    break;
                }
            }
            return transactions is null || rows.Count != s_rows.Length ? null : new PaperTable(Path.GetRelativePath(repoRoot, file), caption, transactions, rows.ToArray());
        }
    }
}
