using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Report sections shared by the ping-pong experiments. Every sentence with a number in it is
// computed from the measurements here; the paper's figures appear only where quoted as such.
public static class MicroReport
{
    public const string VariantsExplained =
        "megapipe = samples/PingPong's server on MegaPipe.Core (the talk's ping-pong loop); sockets = the same server on System.Net.Sockets (async/await, epoll underneath); " +
        "kestrel-megapipe / kestrel-sockets = the same echo as Kestrel connection middleware (`UseConnectionHandler`) on `UseMegaPipe()` / on Kestrel's Sockets transport, application code on the thread pool (both transports' default). " +
        "The load generator is samples/PingPong's client on MegaPipe.Core (one pinned channel per client CPU), the same for every variant.";

    public static double[] Xs(ResultFile r, string group = "") => r.Measurements.Where(m => m.Group == group).Select(m => m.X).Distinct().Order().ToArray();

    // In the experiment's own order (the runs rotate it round by round).
    public static string[] VariantNames(ResultFile r)
    {
        string[] measured = r.Measurements.Select(m => m.Variant).Distinct().ToArray();
        return r.Facts.TryGetValue("variants", out string? order)
            ? order.Split(',').Where(measured.Contains).Concat(measured.Except(order.Split(','))).ToArray()
            : measured;
    }

    // Rows: one per point; columns: each variant's median, then each pair's ratio.
    public static void MetricTable(Markdown md, ResultFile r, string xHeader, Func<double, string> xLabel, Func<Measurement, double> value, string format, IReadOnlyList<(string A, string B)> pairs, string group = "", bool ratioIsImprovement = false)
    {
        string[] variants = VariantNames(r);
        var header = new List<string> { xHeader };
        header.AddRange(variants);
        header.AddRange(pairs.Where(p => variants.Contains(p.A) && variants.Contains(p.B)).Select(p => ratioIsImprovement ? $"{p.A} over {p.B}" : $"{p.A} / {p.B}"));
        var rows = new List<string[]>();
        foreach (double x in Xs(r, group))
        {
            var row = new List<string> { xLabel(x) };
            row.AddRange(variants.Select(v => N(r.Median(v, x, value, group), format)));
            foreach ((string a, string b) in pairs.Where(p => variants.Contains(p.A) && variants.Contains(p.B)))
            {
                double ratio = r.Median(a, x, value, group) / r.Median(b, x, value, group);
                row.Add(ratioIsImprovement ? Signed((ratio - 1) * 100, "F0") + " %" : Ratio(ratio));
            }
            rows.Add(row.ToArray());
        }
        md.Table(header, rows);
    }

    public static Charts.Series[] SeriesOf(ResultFile r, Func<Measurement, double> value, string group = "", IEnumerable<string>? variants = null)
        => (variants ?? VariantNames(r)).Select(v =>
        {
            double[] xs = Xs(r, group).Where(x => r.Of(v, x, group).Any()).ToArray();
            return new Charts.Series(v, xs, xs.Select(x => r.Median(v, x, value, group)).ToArray());
        }).ToArray();

    public static Charts.Series[] ImprovementSeries(ResultFile r, IReadOnlyList<(string A, string B)> pairs, string group = "")
    {
        string[] variants = VariantNames(r);
        return pairs.Where(p => variants.Contains(p.A) && variants.Contains(p.B)).Select(p =>
        {
            double[] xs = Xs(r, group);
            return new Charts.Series($"{p.A} over {p.B}", xs, xs.Select(x => (r.Median(p.A, x, m => m.Throughput, group) / r.Median(p.B, x, m => m.Throughput, group) - 1) * 100).ToArray());
        }).ToArray();
    }

    // Who limited each variant: the server, the load generator, or neither.
    public static void Saturation(Markdown md, ResultFile r)
    {
        md.Heading(2, "How close to saturation the server and the load generator ran");
        md.Table(["variant", "server CPU busy (median)", "client CPU busy (median, min–max)", "server CPU in the kernel", "client CPU µs / transaction", "other processes (CPUs, median / max)", "errors"],
            VariantNames(r).Select(v =>
            {
                var ms = r.Measurements.Where(m => m.Variant == v).ToList();
                return (IReadOnlyList<string>)
                [
                    v,
                    Percent(Stats.Median(ms.Select(m => m.ServerBusy))),
                    $"{Percent(Stats.Median(ms.Select(m => m.ClientBusy)))} ({Percent(ms.Min(m => m.ClientBusy))}–{Percent(ms.Max(m => m.ClientBusy))})",
                    Percent(Stats.Median(ms.Select(m => m.ServerKernelShare))),
                    N(Stats.Median(ms.Select(m => m.ClientCpuUsPerOp)), "F2"),
                    $"{N(Stats.Median(ms.Select(m => m.OtherCpus)), "F2")} / {N(Stats.Max(ms.Select(m => m.OtherCpus)), "F2")}",
                    ms.Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
                ];
            }));
        bool shared = r.Measurements.Any(m => m.SharedCpus);
        md.Paragraph("Busy = CPU time over the measured window divided by (window × CPUs of that side), from /proc; the client's from its own process. " +
            (shared ? "Where server and client share CPUs (marked in the tables), the two shares add up to at most 100 % and saturation means their sum. " : "") +
            "Other processes = the machine's busy time (/proc/stat user + nice + system) minus the server's and the client's: what other users of this shared machine took during the runs.");
        foreach (string v in VariantNames(r))
        {
            var shares = r.Measurements.Where(m => m.Variant == v && m.SharedCpus).ToList();
            if (shares.Count > 0)
            {
                // On shared CPUs: together server and client can use at most all of them.
                double together = Stats.Median(shares.Select(m => m.ServerBusy + m.ClientBusy * m.ClientCpus / m.ServerCpus));
                double otherShared = Stats.Median(shares.Select(m => m.OtherCpus));
                md.Bullet(otherShared >= 0.25
                    ? $"{v} on shared CPUs: other processes took {N(otherShared, "F2")} CPUs (median): no saturation verdict."
                    : $"{v} on shared CPUs: server and client together kept them {Percent(together)} busy (median), the server's share {Percent(Stats.Median(shares.Select(m => m.ServerBusy)))}{(together >= 0.9 ? "; the CPUs were saturated, so a cheaper server also left more CPU to the client" : "")}.");
            }
            var ms = r.Measurements.Where(m => m.Variant == v && !m.SharedCpus).ToList();
            if (ms.Count == 0)
            {
                continue;
            }
            double server = Stats.Median(ms.Select(m => m.ServerBusy)), client = Stats.Median(ms.Select(m => m.ClientBusy));
            double other = Stats.Median(ms.Select(m => m.OtherCpus));
            if (other >= 0.25)
            {
                md.Bullet($"{v}: other processes took {N(other, "F2")} CPUs during these runs (median), so server and client were partly waiting for CPU time: no saturation verdict, and these figures should be measured again on a quieter machine.");
                continue;
            }
            string verdict = (server >= 0.9, client >= 0.9) switch
            {
                (true, true) => "server and client both saturated: throughput is bounded by both, so the fair comparison is the server CPU per transaction",
                (false, true) => $"client-bound: the server still had {Percent(1 - server)} of its CPU idle, so the throughput understates this server; compare the server CPU per transaction",
                (true, false) => "server-bound: the load generator had spare CPU, so the throughput measures the server",
                _ => "neither side saturated (each connection waits for its echo: the run is latency-bound at this concurrency)",
            };
            md.Bullet($"{v}: {verdict}.");
        }
        md.Line();
    }

    // For a load generator measured as a whole (wrk, memcaslap).
    public static string LoadGeneratorVerdict(double clientBusy, double otherCpus) =>
        otherCpus >= 0.25 ? $"Other processes took {N(otherCpus, "F2")} CPUs during the median run, so both sides were partly waiting for CPU time: no saturation verdict; measure again on a quieter machine."
        : clientBusy >= 0.9 ? "It was saturated: the throughput is bounded by the load generator as much as by the servers, and the server CPU per operation is the fair comparison."
        : "It had spare CPU, so the throughput measures the servers.";

    // Why the numbers differ from the paper's, from what was measured.
    public static void Differences(Markdown md, ResultFile r, string baseline, string megapipe)
    {
        md.Heading(2, "Why these numbers differ from the paper's");
        double ns = double.Parse(r.Facts.GetValueOrDefault("syscallNs", "NaN"), CultureInfo.InvariantCulture);
        var b = r.Measurements.Where(m => m.Variant == baseline).ToList();
        var mp = r.Measurements.Where(m => m.Variant == megapipe).ToList();
        md.Bullet($"Hardware: the talk's microbenchmarks ran on \"an 8-core Linux server (with epoll)\" with clients on other machines over a 10G NIC. Here: {r.Machine.Cpus} CPUs ({r.Machine.CpuModel}), {r.Facts.GetValueOrDefault("cpuPlan", "")}, over loopback.");
        if (b.Count > 0)
        {
            double kernel = Stats.Median(b.Select(m => m.ServerKernelShare));
            md.Bullet($"Loopback: the sending side runs the receiving side's TCP processing, so the kernel's per-message work (TCP/IP, loopback delivery, wake-ups) is charged to server and client. {Percent(kernel)} of the {baseline} server's CPU time and {Percent(Stats.Median(mp.Select(m => m.ServerKernelShare)))} of the {megapipe} server's was in the kernel (median over all points). MegaPipe removes system calls, not that work.");
            double calls = Stats.Median(b.Select(m => m.SyscallsPerOp));
            double cpu = Stats.Median(b.Select(m => m.ServerCpuUsPerOp));
            if (!double.IsNaN(ns) && !double.IsNaN(calls))
            {
                md.Bullet(string.Create(CultureInfo.InvariantCulture,
                    $"System-call cost on this kernel ({r.Machine.Kernel}): {ns:F0} ns per call (getppid in a loop, this run). At the {baseline} server's median {calls:F2} system calls per transaction that is about {calls * ns / 1000:F2} µs of its {cpu:F2} µs of CPU per transaction ({calls * ns / 1000 / cpu:P0}): roughly what batching alone can save here. {megapipe}: {Stats.Median(mp.Select(m => m.SyscallsPerOp)):F3} system calls per transaction."));
            }
            if (baseline == "sockets")
            {
                md.Bullet($"The baseline is .NET's System.Net.Sockets (async/await continuations dispatched by the runtime's epoll thread), not the paper's C event loop over epoll: it makes {N(calls, "F2")} system calls and allocates {N(Stats.Median(b.Select(m => m.AllocBytesPerOp)), "F0")} bytes per transaction (medians).");
            }
        }
        md.Bullet($"Shared machine: other processes used {N(Stats.Median(r.Measurements.Select(m => m.OtherCpus)), "F2")} CPUs during the median run and {N(Stats.Max(r.Measurements.Select(m => m.OtherCpus)), "F2")} at most; variants are interleaved and their order rotated every round so that such load spreads over all of them." + (r.Rounds < 2 ? "" : $" Per-round spread of the throughput (max − min over median): {string.Join(", ", VariantNames(r).Select(v => $"{v} {N(Stats.Median(r.Measurements.Where(m => m.Variant == v).GroupBy(m => (m.X, m.Group)).Select(g => Stats.Spread(g.Select(m => m.Throughput)))) * 100, "F0")} %"))} (median over points)."));
        md.Line();
    }
}
