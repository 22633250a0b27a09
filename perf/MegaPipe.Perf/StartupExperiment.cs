using System.Globalization;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Start-up: the time from starting the process to the end of its first answer, and its resident
// memory then, for the JIT, ReadyToRun and native AOT builds of WebApp (/plaintext) and
// StaticServer (a 6 KiB file). Each start is a new process on an idle server; builds interleaved,
// round by round; medians, because one start on a shared machine can be delayed by anything.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- startup [--rounds 15]
// The server may use every CPU of the run (--cpus), as a user's server does.
public sealed class StartupExperiment : IExperiment
{
    private static readonly SampleBuild[] s_builds = [SampleBuild.Jit, SampleBuild.ReadyToRun, SampleBuild.NativeAot];

    public string Name => "startup";

    public string Summary => "time to the first answer and RSS then: JIT, ReadyToRun and native AOT builds of WebApp and StaticServer";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(15, 0, 0);

    private static SampleBuild[] Builds(PerfSettings settings) => s_builds.Where(b => settings.Wants(b.Name)).ToArray();

    public int Steps(PerfSettings settings) => settings.Rounds * ColdStartExperiment.Apps.Length * Builds(settings).Length;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        SampleBuild[] builds = Builds(settings);
        string folder = Directory.CreateTempSubdirectory("megapipe-startup-").FullName;
        string tree = StaticExperiment.CreateTree();
        string cpus = CpuSet.Format(settings.Cpus);
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = $"server on CPUs {cpus}";
        result.Facts["builds"] = string.Join(';', builds.Select(b => $"{b.Name}={b.Description}"));
        try
        {
            var executables = new Dictionary<(string App, string Build), string>();
            foreach (ColdStartExperiment.App app in ColdStartExperiment.Apps)
            {
                foreach (SampleBuild build in builds)
                {
                    Progress.Log($"startup: publishing {app.Sample} ({build.Name})");
                    executables[(app.Name, build.Name)] = build.Publish(settings, app.Sample, folder);
                }
            }
            for (int round = 1; round <= settings.Rounds; round++)
            {
                foreach (ColdStartExperiment.App app in ColdStartExperiment.Apps)
                {
                    foreach (SampleBuild build in MicroExperiment.Rotate(builds, round))
                    {
                        string exe = executables[(app.Name, build.Name)];
                        int port = ProcessRunner.FreePort();
                        string arguments = app.Sample == "StaticServer"
                            ? $"--root {tree} --urls http://127.0.0.1:{port}"
                            : $"--urls http://127.0.0.1:{port} --contentRoot {Path.GetDirectoryName(exe)}";
                        SystemCpu system0 = SystemCpu.Read();
                        double self0 = ServerProbe.CpuSeconds(Environment.ProcessId);
                        var watch = System.Diagnostics.Stopwatch.StartNew();
                        FirstResponse.Started started = FirstResponse.Start(exe, arguments, cpus, port, app.Path, new Dictionary<string, string> { ["MEGAPIPE_ENGINE"] = "io_uring" });
                        double window = watch.Elapsed.TotalSeconds;
                        double serverCpu = ServerProbe.CpuSeconds(started.Server.Id);
                        // Less this process's own CPU: the client polling for the first answer.
                        double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds - (ServerProbe.CpuSeconds(Environment.ProcessId) - self0);
                        ProcessRunner.Stop(started.Server);
                        result.Measurements.Add(new Measurement
                        {
                            Round = round,
                            Group = app.Name,
                            Variant = build.Name,
                            Throughput = started.Milliseconds,
                            OtherCpus = Math.Max(0, systemCpu - serverCpu) / Math.Max(window, 0.01),
                            ServerCpus = settings.Cpus.Length,
                            Extra = new Dictionary<string, double>
                            {
                                ["firstResponseMs"] = started.Milliseconds,
                                ["rssBytes"] = started.RssBytes,
                                ["cpuMs"] = serverCpu * 1000,
                            },
                        });
                        progress.Step(FormattableString.Invariant($"startup round {round} {app.Name,-6} {build.Name,-4} first answer {started.Milliseconds,6:F0} ms  RSS {started.RssBytes / 1048576.0,6:F1} MiB  CPU {serverCpu * 1000,5:F0} ms"));
                        // Let the stopped server's sockets and memory go before the next start.
                        Thread.Sleep(200);
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(tree, recursive: true);
            Directory.Delete(folder, recursive: true);
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] builds = SampleBuild.Order(r.Measurements.Select(m => m.Variant));
        Dictionary<string, string> descriptions = r.Facts["builds"].Split(';').Select(b => b.Split('=', 2)).ToDictionary(b => b[0], b => b[1]);
        var md = new Markdown();
        md.Heading(1, "Start-up: time to the first answer, and memory then");
        md.Paragraph("Each build is started as a new process, and a client polls it every millisecond until it has read the first complete 200 answer (WebApp: GET /plaintext; StaticServer: a 6 KiB file, whose first request also opens and caches it). The time runs from the start of the process to the end of that answer; RSS is read from /proc right after it. Medians over the rounds (each round starts every build once, interleaved).");
        md.Paragraph(r.Provenance().Replace($", {r.Seconds} s measured per run after {r.Warmup} s of warm-up", "", StringComparison.Ordinal));
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. **Shared machine:** other helpers' builds ran meanwhile; the last column gives the CPU other processes took during the starts (median), and the min–max columns how much single starts varied.");
        foreach (string b in builds)
        {
            md.Bullet($"{b}: {SampleBuild.Describe(b) ?? descriptions.GetValueOrDefault(b, b)}");
        }
        md.Line();
        foreach (ColdStartExperiment.App app in ColdStartExperiment.Apps.Where(a => r.Measurements.Any(m => m.Group == a.Name)))
        {
            var runs = r.Measurements.Where(m => m.Group == app.Name).ToList();
            double Ms(string b) => Stats.Median(runs.Where(m => m.Variant == b).Select(m => m.Extra!["firstResponseMs"]));
            double Rss(string b) => Stats.Median(runs.Where(m => m.Variant == b).Select(m => m.Extra!["rssBytes"]));
            md.Heading(2, app.Sample);
            md.Table(["build", "first answer (ms), median", "min – max (ms)", "vs jit", "RSS (MiB), median", "vs jit", "CPU time to the first answer (ms)", "starts", "other CPUs"],
                builds.Select(b =>
                {
                    var of = runs.Where(m => m.Variant == b).ToList();
                    return (IReadOnlyList<string>)
                    [
                        b, N(Ms(b)), $"{N(of.Min(m => m.Extra!["firstResponseMs"]))} – {N(of.Max(m => m.Extra!["firstResponseMs"]))}", Ratio(Ms(b) / Ms("jit")),
                        N(Rss(b) / 1048576, "F1"), Ratio(Rss(b) / Rss("jit")),
                        N(Stats.Median(of.Select(m => m.Extra!["cpuMs"]))), of.Count.ToString(CultureInfo.InvariantCulture),
                        N(Stats.Median(of.Select(m => m.OtherCpus)), "F2"),
                    ];
                }));
        }
        File.WriteAllText(settings.ResultPath("startup.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        foreach (ColdStartExperiment.App app in ColdStartExperiment.Apps.Where(a => r.Measurements.Any(m => m.Group == a.Name)))
        {
            var runs = r.Measurements.Where(m => m.Group == app.Name).ToList();
            string Of(string b) => $"{b} {N(Stats.Median(runs.Where(m => m.Variant == b).Select(m => m.Extra!["firstResponseMs"])))} ms, {N(Stats.Median(runs.Where(m => m.Variant == b).Select(m => m.Extra!["rssBytes"])) / 1048576, "F1")} MiB";
            yield return $"startup {app.Sample}: " + string.Join("; ", SampleBuild.Order(runs.Select(m => m.Variant)).Select(Of));
        }
    }
}
