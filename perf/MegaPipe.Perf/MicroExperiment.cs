using System.Globalization;

namespace MegaPipe.Perf;

// The shape shared by the message-size, connection-length and breakdown experiments: one CPU plan,
// a list of points (each a message size and a connection length), variants interleaved point by
// point, their order rotated from round to round so that no variant always runs first.
public abstract class MicroExperiment : IExperiment
{
    public const int DefaultConnectionsPerChannel = 64;

    public abstract string Name { get; }

    public abstract string Summary { get; }

    protected abstract IReadOnlyList<PingPongBench.Variant> AllVariants { get; }

    protected abstract int[] DefaultPoints { get; }

    // The message size and transactions per connection (0: persistent) of a point.
    protected abstract (int Size, int Transactions) Load(int point);

    protected virtual int ServerCpuCount(PerfSettings settings) => 1;

    // Three rounds of 1.5 s per run, so that `all` stays within about 20 minutes on two cores: with
    // the servers started once per round and warmed up by an unrecorded run each, half a second is
    // enough for the client's connections to reach their steady state. Longer runs: --seconds.
    public virtual PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 1.5, 0.5);

    public int Steps(PerfSettings settings) => settings.Rounds * Variants(settings).Count * (Points(settings).Length + 1);

    // Variants measured unless --variants names others (e.g. the breakdown's sockets reference).
    protected virtual bool IsDefault(string variant) => true;

    protected IReadOnlyList<PingPongBench.Variant> Variants(PerfSettings settings)
        => AllVariants.Where(v => settings.Variants is null ? IsDefault(v.Name) : settings.Wants(v.Name)).ToList();

    protected int[] Points(PerfSettings settings) => settings.Points ?? DefaultPoints;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        var variants = Variants(settings);
        int[] points = Points(settings);
        CpuPlan plan = CpuPlan.For(settings.Cpus, ServerCpuCount(settings));
        int connections = (settings.ConnectionsPerChannel ?? DefaultConnectionsPerChannel) * plan.Server.Length;
        int buffer = points.Max(p => Load(p).Size);
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = plan.Describe();
        result.Facts["serverCpus"] = plan.Server.Length.ToString(CultureInfo.InvariantCulture);
        result.Facts["sharedCpus"] = plan.Shared.ToString();
        result.Facts["connections"] = connections.ToString(CultureInfo.InvariantCulture);
        result.Facts["variants"] = string.Join(',', Variants(settings).Select(v => v.Name));
        result.Facts["syscallNs"] = SyscallCost.NanosecondsPerCall().ToString("F1", CultureInfo.InvariantCulture);
        for (int round = 1; round <= settings.Rounds; round++)
        {
            using var bench = new PingPongBench(settings, plan, variants, buffer);
            (int size0, int tx0) = Load(points[0]);
            foreach (var v in variants)
            {
                bench.Measure(v.Name, 0, 0, size0, tx0, connections, seconds: Math.Max(0.5, settings.Warmup), warmup: 0.2);
                progress.Step($"{Name} round {round} warm-up {v.Name}");
            }
            foreach (int point in points)
            {
                (int size, int tx) = Load(point);
                foreach (var v in Rotate(variants, round))
                {
                    Measurement m = bench.Measure(v.Name, round, point, size, tx, connections);
                    result.Measurements.Add(m);
                    progress.Step($"{Name} round {round} {PointLabel(point),6} {v.Name,-18} {PingPongBench.Describe(m)}");
                }
            }
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    protected virtual string PointLabel(double point) => point.ToString(CultureInfo.InvariantCulture);

    public abstract void Render(ResultFile result, PerfSettings settings);

    public abstract IEnumerable<string> Headlines(ResultFile result);

    public static IEnumerable<T> Rotate<T>(IReadOnlyList<T> items, int by) => items.Skip(by % items.Count).Concat(items.Take(by % items.Count));
}
