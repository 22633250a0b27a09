using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// samples/StaticServer against nginx (Debian's, one worker, sendfile, open_file_cache) serving the
// same tree from the same pinned CPU, under wrk pinned to the other: one 6 KiB file keep-alive;
// the paper's mix (files averaging 6.3 KiB, 2.3 requests per connection); a 1 MiB file.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- static [--rounds 1] [--seconds 5]
public static partial class StaticExperiment
{
    // The mix: 20 files whose sizes average 6.3 KiB (6451 bytes), from 512 B to 26 KiB.
    private static readonly int[] s_mixSizes = [512, 768, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 4608, 5120, 5632, 6144, 7168, 8192, 9216, 10240, 12288, 14336, 26880];

    // On one CPU the runtime waits 10 x 100 ms without new tier-0 code before it counts calls for
    // tier 1, and a server under load keeps jitting for a while: a 2 s warm-up then measures tier-0
    // code (about 14 instead of 9-10 µs per request on the 6 KiB file). Counting at once only
    // brings the steady state forward; it does not change the code the steady state runs.
    private static readonly Dictionary<string, string> s_jitEnvironment = new() { ["DOTNET_TC_CallCountingDelayMs"] = "0" };

    internal sealed record Variant(string Name, string Arguments);

    internal sealed record Scenario(string Name, string Description, string Path, int Connections, string WrkExtra, double Target);

    internal sealed record Sample(string Scenario, string Variant, double Rps, double SyscallsPerRequest, double CpuUsPerRequest, long Errors, long Non2xx)
    {
        // wrk's CPU time over the run divided by its CPUs, and what other processes used, in CPUs.
        public double ClientBusy { get; init; } = double.NaN;
        public double OtherCpus { get; init; } = double.NaN;
        public double ServerBusy { get; init; } = double.NaN;
    }

    internal static readonly Variant[] AllVariants =
    [
        new("megapipe", "--transport megapipe"),
        new("megapipe-threadpool", "--transport megapipe --MegaPipe:UnsafeInlineScheduling false"),
        new("sockets", "--transport sockets"),
        new("nginx", ""),
    ];

    internal static Scenario[] Scenarios(PerfSettings settings)
    {
        string mixScript = Path.Combine(settings.RepoRoot, "perf", "wrk", "static-mix.lua");
        return
        [
            new("6k", "one 6 KiB file, keep-alive, 64 connections", "/6k.html", 64, "", 1.0),
            new("mix", $"the paper's mix: {s_mixSizes.Length} files averaging {s_mixSizes.Average() / 1024:F1} KiB, 2.3 requests per connection, 64 connections", "/", 64, $"-s {mixScript}", 1.0),
            new("1m", "one 1 MiB file, keep-alive, 16 connections", "/1m.bin", 16, "", 0.8),
        ];
    }

    internal static double MixMeanBytes => s_mixSizes.Average();

    internal static int MixFiles => s_mixSizes.Length;

    public static int Steps(PerfSettings settings) => settings.Rounds * 3 * AllVariants.Count(v => settings.Wants(v.Name));

    internal static string BuildServer(PerfSettings settings)
    {
        if (!File.Exists(NginxServer.Executable))
        {
            throw new InvalidOperationException("the static experiments compare with nginx, which is not installed: apt-get install nginx-light");
        }
        if (!File.Exists("/usr/bin/wrk"))
        {
            throw new InvalidOperationException("the static experiments need wrk, which is not installed: apt-get install wrk");
        }
        return PingPongExperiment.BuildSample(settings, "StaticServer");
    }

    internal static Sample RunOne(PerfSettings settings, string exe, string tree, Variant variant, Scenario scenario)
    {
        int port = ProcessRunner.FreePort();
        return variant.Name == "nginx" ? RunNginx(settings, tree, scenario, port) : RunServer(settings, exe, tree, variant, scenario, port);
    }

    public static void Run(PerfSettings settings, Progress progress)
    {
        string server = BuildServer(settings);
        string tree = CreateTree();
        try
        {
            Variant[] variants = AllVariants.Where(v => settings.Wants(v.Name)).ToArray();
            Scenario[] scenarios = Scenarios(settings);
            var samples = new List<Sample>();
            for (int round = 1; round <= settings.Rounds; round++)
            {
                foreach (Scenario scenario in scenarios)
                {
                    foreach (Variant variant in variants)
                    {
                        Sample s = RunOne(settings, server, tree, variant, scenario);
                        samples.Add(s);
                        progress.Step(FormattableString.Invariant($"round {round} {scenario.Name,-4} {variant.Name,-20} {s.Rps,10:F0} req/s  {s.SyscallsPerRequest,6:F3} syscalls/req  {s.CpuUsPerRequest,6:F2} us CPU/req  wrk {s.ClientBusy:P0} busy  errors {s.Errors} non-2xx {s.Non2xx}"));
                    }
                }
            }
            WriteReport(settings, scenarios, variants, samples);
        }
        finally
        {
            Directory.Delete(tree, recursive: true);
        }
    }

    // The served tree; files are an hour old, as deployed files are (the content cache keeps them).
    internal static string CreateTree()
    {
        string root = Directory.CreateTempSubdirectory("megapipe-static-perf").FullName;
        // CreateTempSubdirectory makes it 0700; nginx's worker runs as www-data and must read it.
        if (OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        var random = new Random(1);
        void Write(string relative, int size)
        {
            string path = Path.Combine(root, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var bytes = new byte[size];
            random.NextBytes(bytes);
            File.WriteAllBytes(path, bytes);
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(-1));
        }
        Write("6k.html", 6 * 1024);
        Write("1m.bin", 1024 * 1024);
        for (int i = 0; i < s_mixSizes.Length; i++)
        {
            Write($"mix/f{i:00}.html", s_mixSizes[i]);
        }
        return root;
    }

    private static Sample RunServer(PerfSettings settings, string exe, string tree, Variant variant, Scenario scenario, int port)
    {
        using Process server = ProcessRunner.Start(exe, $"{variant.Arguments} --root {tree} --urls http://127.0.0.1:{port}", settings.ServerCpu, environment: s_jitEnvironment);
        try
        {
            ServerProbe.WaitForPort(port);
            return Measure(settings, scenario, port, [server.Id], variant.Name);
        }
        finally
        {
            ProcessRunner.Stop(server);
        }
    }

    private static Sample RunNginx(PerfSettings settings, string tree, Scenario scenario, int port)
    {
        using var nginx = new NginxServer(settings, port, "text/html html; application/octet-stream bin;", $"root {tree};");
        return Measure(settings, scenario, port, nginx.WorkerPids, "nginx");
    }

    private static Sample Measure(PerfSettings settings, Scenario scenario, int port, int[] pids, string variant)
    {
        CheckServes(port, scenario.Name == "mix" ? "/mix/f00.html" : scenario.Path, variant);
        string tail = scenario.Name == "mix" ? $" -- {s_mixSizes.Length}" : "";
        WrkRun run = WrkRun.Measure(settings, $"http://127.0.0.1:{port}{scenario.Path}", scenario.Connections, scenario.WrkExtra, pids, tail);
        return new Sample(scenario.Name, variant, run.Rps, run.SyscallsPerRequest, run.CpuUsPerRequest, run.Errors, run.Non2xx)
        {
            ClientBusy = run.ClientBusy,
            ServerBusy = run.ServerBusy,
            OtherCpus = run.OtherCpus,
        };
    }

    private static void WriteReport(PerfSettings settings, Scenario[] scenarios, Variant[] variants, List<Sample> samples)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# samples/StaticServer vs nginx under wrk");
        sb.AppendLine();
        sb.AppendLine(FormattableString.Invariant($"Both servers pinned to CPU {settings.ServerCpu} (one MegaPipe channel / one nginx worker) and serving the same tree; wrk (1 thread) pinned to CPU {settings.ClientCpu}. nginx: Debian's nginx-light, `worker_processes 1`, `sendfile on`, `tcp_nopush on`, `open_file_cache max=1000`, access log off. {settings.Rounds} interleaved round(s) of {settings.Seconds} s per run after a {settings.Warmup} s warm-up; medians. System calls counted with `perf stat -e raw_syscalls:sys_enter` on the server, CPU time from /proc. The .NET servers run with `DOTNET_TC_CallCountingDelayMs=0`, so that the warm-up reaches tier-1 code on a single CPU. Produced by `dotnet run -c Release --project perf/MegaPipe.Perf -- static` on {DateTime.UtcNow:yyyy-MM-dd}."));
        sb.AppendLine();
        sb.AppendLine("megapipe = the StaticServer's defaults (UseMegaPipe, handler inline on the channel thread, file reads on the channel); megapipe-threadpool = `--MegaPipe:UnsafeInlineScheduling false`; sockets = Kestrel's Sockets transport (file reads with RandomAccess).");
        sb.AppendLine();
        sb.AppendLine("| scenario | target | megapipe / nginx | met |");
        sb.AppendLine("|---|---:|---:|---|");
        foreach (Scenario scenario in scenarios)
        {
            double ratio = MedianRps(samples, scenario, "megapipe") / MedianRps(samples, scenario, "nginx");
            sb.AppendLine(FormattableString.Invariant($"| {scenario.Name} | ≥ {scenario.Target:F1}x | {ratio:F2}x | {(ratio >= scenario.Target ? "yes" : "no")} |"));
        }
        sb.AppendLine();
        foreach (Scenario scenario in scenarios)
        {
            sb.AppendLine($"## {scenario.Description}");
            sb.AppendLine();
            sb.AppendLine("| variant | requests/s | ratio to nginx | system calls / request | server CPU µs / request | wrk CPU busy | socket errors | non-2xx |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            double nginx = MedianRps(samples, scenario, "nginx");
            foreach (Variant v in variants)
            {
                var vs = samples.Where(s => s.Scenario == scenario.Name && s.Variant == v.Name).ToList();
                double rps = PingPongExperiment.Median(vs.Select(s => s.Rps));
                sb.AppendLine(FormattableString.Invariant($"| {v.Name} | {rps:F0} | {rps / nginx:F2}x | {PingPongExperiment.Median(vs.Select(s => s.SyscallsPerRequest)):F3} | {PingPongExperiment.Median(vs.Select(s => s.CpuUsPerRequest)):F2} | {PingPongExperiment.Median(vs.Select(s => s.ClientBusy)):P0} | {vs.Sum(s => s.Errors)} | {vs.Sum(s => s.Non2xx)} |"));
            }
            sb.AppendLine();
        }
        File.WriteAllText(settings.ResultPath("static.md"), sb.ToString());
    }

    // A run that measured error pages would be worthless: every variant must serve the file first.
    private static void CheckServes(int port, string path, string variant)
    {
        using var client = new HttpClient();
        using HttpResponseMessage response = client.GetAsync($"http://127.0.0.1:{port}{path}").GetAwaiter().GetResult();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{variant} answers {path} with {(int)response.StatusCode}, not 200");
        }
    }

    private static double MedianRps(List<Sample> samples, Scenario scenario, string variant)
        => PingPongExperiment.Median(samples.Where(s => s.Scenario == scenario.Name && s.Variant == variant).Select(s => s.Rps));
}
