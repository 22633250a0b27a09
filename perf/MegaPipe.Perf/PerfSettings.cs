using System.Globalization;

namespace MegaPipe.Perf;

public sealed class PerfSettings
{
    public int Rounds { get; private set; } = 3;
    public double Seconds { get; private set; } = 8;
    public double Warmup { get; private set; } = 2;
    public int ServerCpu { get; private set; } = 1;
    public int ClientCpu { get; private set; }
    public string RepoRoot { get; private set; } = FindRepoRoot();

    public static PerfSettings Parse(string[] args)
    {
        var s = new PerfSettings();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => args[++i];
            switch (args[i])
            {
                case "--rounds": s.Rounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--seconds": s.Seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--warmup": s.Warmup = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (Environment.ProcessorCount < 2)
        {
            s.ServerCpu = s.ClientCpu = 0;
        }
        return s;
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
