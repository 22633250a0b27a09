using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Experiment 4 (the talk's "Multi-core scalability with various connection lengths"): 64-byte
// ping-pong on 1..N server channels (N = the CPUs this run may use), for short and long
// connections. With k channels the server gets k CPUs and the client k others while the machine
// has 2k; above that they share the same k CPUs, and the report marks those points. Nothing here
// depends on the machine's size: on 16 CPUs the same code measures 1..16 channels.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- scaling [--points 1,2,4] [--lengths 1,128]
public sealed class ScalingExperiment : IExperiment
{
    private static readonly PingPongBench.Variant[] s_variants =
    [
        new("megapipe", "--transport megapipe"),
        new("sockets", "--transport sockets"),
        new("kestrel-megapipe", "--transport kestrel-megapipe"),
        new("kestrel-sockets", "--transport kestrel-sockets"),
    ];

    public string Name => "scaling";

    public string Summary => "4. multi-core scaling: 1..N channels (N = CPUs available), short and long connections";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 1.5, 0.5);

    // Every channel count up to 8, then powers of two and N itself.
    private static int[] Points(PerfSettings s) => s.Points ?? Enumerable.Range(1, s.Cpus.Length).Where(k => s.Cpus.Length <= 8 || (k & (k - 1)) == 0 || k == s.Cpus.Length).ToArray();

    private static int[] Lengths(PerfSettings s) => s.Lengths ?? [1, 128];

    // The Kestrel variants (--variants megapipe,sockets,kestrel-megapipe,kestrel-sockets) are left
    // out by default to keep `all` within 20 minutes; the paper's figure is MegaPipe against its baseline.
    private static PingPongBench.Variant[] Variants(PerfSettings s)
        => s_variants.Where(v => s.Variants is null ? !v.Name.StartsWith("kestrel", StringComparison.Ordinal) : s.Wants(v.Name)).ToArray();

    public int Steps(PerfSettings s) => s.Rounds * Points(s).Length * Variants(s).Length * (Lengths(s).Length + 1);

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        var variants = Variants(settings);
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["variants"] = string.Join(',', Variants(settings).Select(v => v.Name));
        result.Facts["syscallNs"] = SyscallCost.NanosecondsPerCall().ToString("F1", CultureInfo.InvariantCulture);
        int perChannel = settings.ConnectionsPerChannel ?? MicroExperiment.DefaultConnectionsPerChannel;
        result.Facts["connectionsPerChannel"] = perChannel.ToString(CultureInfo.InvariantCulture);
        foreach (int k in Points(settings))
        {
            result.Facts[$"cpuPlan{k}"] = CpuPlan.For(settings.Cpus, k).Describe();
        }
        result.Facts["cpuPlan"] = string.Join("; ", Points(settings).Select(k => $"{k} channel(s): {result.Facts[$"cpuPlan{k}"]}"));
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (int k in Points(settings))
            {
                CpuPlan plan = CpuPlan.For(settings.Cpus, k);
                int connections = perChannel * k;
                using var bench = new PingPongBench(settings, plan, variants, 64);
                foreach (var v in variants)
                {
                    bench.Measure(v.Name, 0, 0, 64, Lengths(settings)[0], connections, seconds: Math.Max(0.5, settings.Warmup), warmup: 0.2);
                    progress.Step($"scaling round {round} {k} channel(s) warm-up {v.Name}");
                }
                foreach (int length in Lengths(settings))
                {
                    foreach (var v in MicroExperiment.Rotate(variants, round))
                    {
                        Measurement m = bench.Measure(v.Name, round, k, 64, length, connections, group: Group(length));
                        result.Measurements.Add(m);
                        progress.Step($"scaling round {round} {k} ch {length,3} tx/conn {v.Name,-18} {PingPongBench.Describe(m)}{(plan.Shared ? "  (shared CPUs)" : "")}");
                    }
                }
            }
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    private static string Group(int length) => $"{length} tx/conn";

    public void Render(ResultFile r, PerfSettings settings)
    {
        var md = new Markdown();
        md.Heading(1, "Experiment 4: multi-core scaling");
        md.Paragraph($"64-byte ping-pong with k server channels (MegaPipe: k channels pinned one per CPU, partitioned listener; Sockets and Kestrel: the server process confined to the same k CPUs), {r.Facts["connectionsPerChannel"]} connections per channel, for short and long connections. {MicroReport.VariantsExplained}");
        md.Paragraph(r.Provenance());
        md.Paragraph("CPUs: " + r.Facts["cpuPlan"] + ".");
        var groups = r.Measurements.Select(m => m.Group).Distinct().ToArray();
        string[] variants = MicroReport.VariantNames(r);
        foreach (string group in groups)
        {
            md.Heading(2, $"{group}: throughput (transactions/s) by channels");
            double[] ks = MicroReport.Xs(r, group);
            var header = new List<string> { "channels" };
            header.AddRange(variants);
            header.AddRange(variants.Select(v => $"{v} speed-up"));
            header.AddRange(MessageSizeExperiment.Pairs.Where(p => variants.Contains(p.A) && variants.Contains(p.B)).Select(p => $"{p.A} / {p.B}"));
            md.Table(header, ks.Select(k =>
            {
                bool shared = r.Measurements.Any(m => m.X == k && m.SharedCpus);
                var row = new List<string> { k.ToString(CultureInfo.InvariantCulture) + (shared ? " (shared CPUs)" : "") };
                row.AddRange(variants.Select(v => N(r.Median(v, k, m => m.Throughput, group))));
                row.AddRange(variants.Select(v => Ratio(r.Median(v, k, m => m.Throughput, group) / r.Median(v, ks[0], m => m.Throughput, group))));
                row.AddRange(MessageSizeExperiment.Pairs.Where(p => variants.Contains(p.A) && variants.Contains(p.B)).Select(p => Ratio(r.Median(p.A, k, m => m.Throughput, group) / r.Median(p.B, k, m => m.Throughput, group))));
                return (IReadOnlyList<string>)row;
            }));
            string file = $"scaling-{group.Split(' ')[0]}tx.png";
            Charts.Lines(settings.ResultPath(file), $"Throughput by channels, {group} (64 B)", "channels (server CPUs)", "transactions/s", MicroReport.SeriesOf(r, m => m.Throughput, group), log2X: false);
            md.Image($"scaling, {group}", file);
            md.Heading(3, $"{group}: server CPU per transaction (µs)");
            MicroReport.MetricTable(md, r, "channels", k => k.ToString(CultureInfo.InvariantCulture), m => m.ServerCpuUsPerOp, "F2", MessageSizeExperiment.Pairs, group);
            md.Heading(3, $"{group}: system calls per transaction (server)");
            MicroReport.MetricTable(md, r, "channels", k => k.ToString(CultureInfo.InvariantCulture), m => m.SyscallsPerOp, "F3", [], group);
        }
        if (r.Measurements.Any(m => m.SharedCpus))
        {
            md.Paragraph($"At the points marked \"shared CPUs\" this machine ({r.Machine.Cpus} CPUs) cannot give server and client separate CPUs: both run on the same ones, so the throughput there is what server and client achieve together, and a more efficient server also leaves more CPU to the client. The paper's scaling figure had the clients on other machines; on a machine with at least twice as many CPUs as channels the same code measures that.");
        }
        MicroReport.Saturation(md, r);
        MicroReport.Differences(md, r, "sockets", "megapipe");
        File.WriteAllText(settings.ResultPath("scaling.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        foreach (string group in r.Measurements.Select(m => m.Group).Distinct())
        {
            double[] ks = MicroReport.Xs(r, group);
            yield return $"scaling, {group}: speed-up from 1 to {ks[^1]} channels megapipe {Ratio(r.Median("megapipe", ks[^1], m => m.Throughput, group) / r.Median("megapipe", ks[0], m => m.Throughput, group))}, sockets {Ratio(r.Median("sockets", ks[^1], m => m.Throughput, group) / r.Median("sockets", ks[0], m => m.Throughput, group))}{(r.Measurements.Any(m => m.X == ks[^1] && m.SharedCpus) ? " (top point on CPUs shared with the client)" : "")}";
        }
    }
}
