using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MegaPipe.Perf;

// One measured run: one variant at one point of one round. "Op" is the experiment's unit: a
// ping-pong transaction, a memcached operation, an HTTP request.
public sealed class Measurement
{
    public int Round { get; init; }
    public string Variant { get; init; } = "";
    // A second dimension where an experiment has one (the scaling experiment's connection length).
    public string Group { get; init; } = "";
    // The point on the x axis: message size, transactions per connection, channels.
    public double X { get; init; }
    public double Throughput { get; init; }
    public double SyscallsPerOp { get; init; } = double.NaN;
    public double ServerCpuUsPerOp { get; init; } = double.NaN;
    // The server's CPU time over the window divided by (window x its CPUs): 1 = saturated.
    public double ServerBusy { get; init; } = double.NaN;
    // The share of the server's CPU time spent in the kernel (system time).
    public double ServerKernelShare { get; init; } = double.NaN;
    // The same for the load generator.
    public double ClientBusy { get; init; } = double.NaN;
    public double ClientCpuUsPerOp { get; init; } = double.NaN;
    // CPU time used by every other process on the machine during the window, in CPUs: what other
    // users of a shared machine took from the run.
    public double OtherCpus { get; init; } = double.NaN;
    public double ConnectionsPerSecond { get; init; } = double.NaN;
    public double AllocBytesPerOp { get; init; } = double.NaN;
    public long Errors { get; init; }
    public int ServerCpus { get; init; }
    public int ClientCpus { get; init; }
    public bool SharedCpus { get; init; }
    public Dictionary<string, double>? Extra { get; init; }
}

// Everything a report is made from, saved as perf/results/<experiment>.json so that
// `report <experiment>` can redraw the tables and plots without measuring again.
public sealed class ResultFile
{
    public string Experiment { get; init; } = "";
    public string Command { get; init; } = "";
    public DateTime StartedUtc { get; init; }
    public double DurationSeconds { get; set; }
    public int Rounds { get; init; }
    public double Seconds { get; init; }
    public double Warmup { get; init; }
    public MachineInfo Machine { get; init; } = MachineInfo.Read();
    public string LoadAverageAfter { get; set; } = "";
    public Dictionary<string, string> Facts { get; init; } = [];
    public List<Measurement> Measurements { get; init; } = [];

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static ResultFile Start(string experiment, PerfSettings settings) => new()
    {
        Experiment = experiment,
        Command = $"dotnet run -c Release --project perf/MegaPipe.Perf -- {settings.CommandLine}",
        StartedUtc = DateTime.UtcNow,
        Rounds = settings.Rounds,
        Seconds = settings.Seconds,
        Warmup = settings.Warmup,
    };

    public void Save(PerfSettings settings)
    {
        DurationSeconds = (DateTime.UtcNow - StartedUtc).TotalSeconds;
        LoadAverageAfter = MachineInfo.ReadLoadAverage();
        File.WriteAllText(settings.ResultPath(Experiment + ".json"), JsonSerializer.Serialize(this, s_json));
    }

    public static ResultFile? Load(string path) => File.Exists(path) ? JsonSerializer.Deserialize<ResultFile>(File.ReadAllText(path), s_json) : null;

    // The lines every report starts with: how, where and when it was measured.
    public string Provenance() => string.Create(CultureInfo.InvariantCulture,
        $"Produced by `{Command}` on {StartedUtc:yyyy-MM-dd HH:mm} UTC in {DurationSeconds / 60:F1} min: {Rounds} interleaved round(s), {Seconds} s measured per run after {Warmup} s of warm-up; medians over rounds. Machine: {Machine.Cpus} CPUs ({Machine.CpuModel}), Linux {Machine.Kernel}, {Machine.Runtime}; load average {Machine.LoadAverage} before, {LoadAverageAfter} after.");

    public IEnumerable<Measurement> Of(string variant, double x, string group = "") => Measurements.Where(m => m.Variant == variant && m.X == x && m.Group == group);

    public double Median(string variant, double x, Func<Measurement, double> value, string group = "") => Stats.Median(Of(variant, x, group).Select(value));
}

public sealed class MachineInfo
{
    public int Cpus { get; init; }
    public string CpuModel { get; init; } = "";
    public string Kernel { get; init; } = "";
    public string Runtime { get; init; } = "";
    public string LoadAverage { get; init; } = "";

    public static MachineInfo Read() => new()
    {
        Cpus = Environment.ProcessorCount,
        CpuModel = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "" : "",
        Kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : RuntimeInformation.OSDescription,
        Runtime = RuntimeInformation.FrameworkDescription,
        LoadAverage = ReadLoadAverage(),
    };

    public static string ReadLoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "";
}

// The machine's CPU time from /proc/stat: busy time minus what the server and the client used is
// what other processes took during a run.
public readonly record struct SystemCpu(double BusySeconds)
{
    public static SystemCpu Read()
    {
        string first = File.ReadLines("/proc/stat").First();
        long[] f = first.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        // user nice system (idle iowait irq softirq steal ...): time in processes' own context.
        return new SystemCpu((f[0] + f[1] + f[2]) / 100.0);
    }
}

public static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    public static double Max(IEnumerable<double> values)
    {
        double[] v = values.Where(x => !double.IsNaN(x)).ToArray();
        return v.Length == 0 ? double.NaN : v.Max();
    }

    // The spread of the rounds: (max - min) / median.
    public static double Spread(IEnumerable<double> values)
    {
        double[] v = values.Where(x => !double.IsNaN(x)).ToArray();
        return v.Length < 2 ? double.NaN : (v.Max() - v.Min()) / Median(v);
    }
}
