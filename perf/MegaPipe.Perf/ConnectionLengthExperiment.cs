using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Experiment 2 (the talk's "Short connections are bad" and "Short connections with MegaPipe"):
// 64-byte ping-pong with 1, 2, 4, ... 128 transactions per connection; the client closes and
// connects again after the last one.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- connlen [--points 1,8,128]
public sealed class ConnectionLengthExperiment : MicroExperiment
{
    public override string Name => "connlen";

    public override string Summary => "2. connection length: 64 B ping-pong, 1..128 transactions per connection";

    protected override IReadOnlyList<PingPongBench.Variant> AllVariants { get; } =
    [
        new("megapipe", "--transport megapipe"),
        new("sockets", "--transport sockets"),
        new("kestrel-megapipe", "--transport kestrel-megapipe"),
        new("kestrel-sockets", "--transport kestrel-sockets"),
    ];

    protected override int[] DefaultPoints => [1, 2, 4, 8, 16, 32, 64, 128];

    protected override (int Size, int Transactions) Load(int point) => (64, point);

    private static string Tx(double x) => x.ToString(CultureInfo.InvariantCulture);

    public override void Render(ResultFile r, PerfSettings settings)
    {
        var pairs = MessageSizeExperiment.Pairs;
        var md = new Markdown();
        md.Heading(1, "Experiment 2: connection length");
        md.Paragraph($"64-byte ping-pong over {r.Facts["connections"]} concurrent connections; each connection carries N transactions, then the client closes it and connects again (so with N = 1 every transaction also pays a connect, an accept and two closes). {MicroReport.VariantsExplained}");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}.");
        md.Heading(2, "Throughput (transactions/s)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.Throughput, "F0", pairs);
        Charts.Lines(settings.ResultPath("connlen-throughput.png"), "Ping-pong throughput by connection length (64 B)", "transactions per connection", "transactions/s", MicroReport.SeriesOf(r, m => m.Throughput));
        md.Image("throughput by connection length", "connlen-throughput.png");
        md.Heading(2, "Throughput improvement over the Sockets equivalent");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.Throughput, "F0", pairs, ratioIsImprovement: true);
        Charts.Lines(settings.ResultPath("connlen-improvement.png"), "Throughput improvement by connection length", "transactions per connection", "improvement (%)", MicroReport.ImprovementSeries(r, pairs), referenceY: 0);
        md.Image("improvement by connection length", "connlen-improvement.png");
        md.Heading(2, "Connections per second");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.ConnectionsPerSecond, "F0", pairs);
        md.Heading(2, "System calls per transaction (server)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.SyscallsPerOp, "F3", pairs);
        md.Heading(2, "Server CPU per transaction (µs)");
        MicroReport.MetricTable(md, r, "transactions / connection", Tx, m => m.ServerCpuUsPerOp, "F2", pairs);
        MicroReport.Saturation(md, r);
        MicroReport.Differences(md, r, "sockets", "megapipe");
        File.WriteAllText(settings.ResultPath("connlen.md"), md.ToString());
    }

    public override IEnumerable<string> Headlines(ResultFile r)
    {
        // The ends and the middle of the axis; the report has every point.
        double[] xs = MicroReport.Xs(r);
        double[] shown = xs.Length <= 3 ? xs : [xs[0], xs[xs.Length / 2 - 1], xs[^1]];
        string Ratios(string a, string b) => string.Join(", ", shown.Select(x => $"{Tx(x)} tx/conn {Ratio(r.Median(a, x, m => m.Throughput) / r.Median(b, x, m => m.Throughput))}"));
        yield return $"connlen (64 B): megapipe / sockets throughput {Ratios("megapipe", "sockets")}; kestrel-megapipe / kestrel-sockets {Ratios("kestrel-megapipe", "kestrel-sockets")}";
    }
}
