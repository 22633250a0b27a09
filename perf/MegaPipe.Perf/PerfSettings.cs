using System.Globalization;

namespace MegaPipe.Perf;

// Command-line settings. Rounds, seconds and warm-up left unset take the experiment's own defaults
// (sized so that `all` finishes in about 20 minutes on two cores); every other option overrides one
// aspect of an experiment for a targeted or a quick run.
public sealed class PerfSettings
{
    public int Rounds { get; private set; } = 3;
    public double Seconds { get; private set; } = 8;
    public double Warmup { get; private set; } = 2;
    public int ServerCpu { get; private set; } = 1;
    public int ClientCpu { get; private set; }
    public string RepoRoot { get; private set; } = FindRepoRoot();

    // The CPUs this run may use (the process's affinity mask, or --cpus).
    public int[] Cpus { get; private set; } = CpuSet.Allowed();
    // --points: the x axis of an experiment (message sizes, transactions per connection, channels).
    public int[]? Points { get; private set; }
    // --lengths: transactions per connection for the scaling experiment.
    public int[]? Lengths { get; private set; }
    // --variants: run only these variants (names as in the results tables).
    public string[]? Variants { get; private set; }
    // --connections: concurrent connections per server channel.
    public int? ConnectionsPerChannel { get; private set; }
    // --channels: the breakdown experiment's channel count.
    public int? Channels { get; private set; }
    // --out: where results go (default perf/results); smoke runs should write elsewhere.
    public string ResultsDirectory { get; private set; } = "";
    public bool UpdateReadme { get; private set; } = true;
    // --baseline-repo: a checkout of an earlier commit whose samples an experiment measures beside this build's.
    public string? BaselineRepo { get; private set; }
    public string CommandLine { get; private set; } = "";

    private int? _rounds;
    private double? _seconds;
    private double? _warmup;

    public static PerfSettings Parse(string experiment, string[] args)
    {
        var s = new PerfSettings { CommandLine = string.Join(' ', new[] { experiment }.Concat(args)) };
        static int[] Ints(string v) => v.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--rounds": s._rounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--seconds": s._seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": s._warmup = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--points": s.Points = Ints(Next()); break;
                case "--lengths": s.Lengths = Ints(Next()); break;
                case "--variants": s.Variants = Next().Split(',', StringSplitOptions.RemoveEmptyEntries); break;
                case "--connections": s.ConnectionsPerChannel = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--channels": s.Channels = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--cpus": s.Cpus = CpuSet.Parse(Next()); break;
                case "--out": s.ResultsDirectory = Path.GetFullPath(Next()); break;
                case "--no-readme": s.UpdateReadme = false; break;
                case "--baseline-repo": s.BaselineRepo = Path.GetFullPath(Next()); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (s.ResultsDirectory.Length == 0)
        {
            s.ResultsDirectory = Path.Combine(s.RepoRoot, "perf", "results");
        }
        else
        {
            // Results written elsewhere are a trial, not the README's latest results.
            s.UpdateReadme = false;
        }
        s.ServerCpu = s.Cpus[^1];
        s.ClientCpu = s.Cpus[0];
        s.Apply(3, 8, 2);
        return s;
    }

    // This experiment's defaults for what the command line left unset.
    public PerfSettings WithDefaults(int rounds, double seconds, double warmup)
    {
        var copy = (PerfSettings)MemberwiseClone();
        copy.Apply(rounds, seconds, warmup);
        return copy;
    }

    public bool Wants(string variant) => Variants is null || Variants.Contains(variant, StringComparer.OrdinalIgnoreCase);

    public string ResultPath(string file)
    {
        Directory.CreateDirectory(ResultsDirectory);
        return Path.Combine(ResultsDirectory, file);
    }

    private void Apply(int rounds, double seconds, double warmup)
    {
        Rounds = _rounds ?? rounds;
        Seconds = _seconds ?? seconds;
        Warmup = _warmup ?? warmup;
    }

    private static string FindRepoRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "MegaPipe.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }
        return dir ?? Directory.GetCurrentDirectory();
    }
}
