using System.Globalization;
using System.Text.RegularExpressions;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// What a user sees who starts a server and loads it at once with wrk for ten seconds: a cold run
// started right after the server's first answer, against the same build warm, for each way of
// building the sample (JIT, ReadyToRun, native AOT, with tiering settings). The load is a series
// of 10 s wrk runs back to back from the first answer on: the first is the cold run, the last the
// warm one, and those between show how long the build takes to reach its steady state.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- coldstart [--warmup 60] [--variants jit,aot]
// Server pinned to one CPU, wrk (1 thread) to another, as in the static and web experiments. The
// servers run without the DOTNET_TC_CallCountingDelayMs=0 the other experiments set, except in the
// builds that name it: that setting is what is being measured here.
public sealed class ColdStartExperiment : IExperiment
{
    // The target of issue 13: the cold run within 10 % of the warm one.
    public const double Target = 0.9;

    internal sealed record App(string Name, string Sample, string Description, string Path, int Connections);

    internal static readonly App[] Apps =
    [
        new("static", "StaticServer", "samples/StaticServer, one 6 KiB file, keep-alive, 64 connections", "/6k.html", 64),
        new("web", "WebApp", "samples/WebApp, GET /plaintext, keep-alive, 256 connections", "/plaintext", 256),
    ];

    public string Name => "coldstart";

    public string Summary => "a cold 10 s wrk run right after the first answer vs warm: JIT, ReadyToRun and native AOT builds of StaticServer (6 KiB) and WebApp (/plaintext)";

    // One round; runs of 10 s (the user's ten-second try); 60 s of load between the cold run and
    // the warm one, which reaches the steady state of every build measured here (the report's
    // time series shows it).
    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(1, 10, 60);

    internal static SampleBuild[] Builds(PerfSettings settings) => SampleBuild.All.Where(b => settings.Wants(b.Name)).ToArray();

    private static int RunsPerBuild(PerfSettings s) => 2 + (int)Math.Ceiling(s.Warmup / s.Seconds);

    public int Steps(PerfSettings settings) => settings.Rounds * Apps.Length * Builds(settings).Length;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        if (!File.Exists("/usr/bin/wrk"))
        {
            throw new InvalidOperationException("the coldstart experiment needs wrk, which is not installed: apt-get install wrk");
        }
        SampleBuild[] builds = Builds(settings);
        string folder = Directory.CreateTempSubdirectory("megapipe-coldstart-").FullName;
        string tree = StaticExperiment.CreateTree();
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = $"server on CPU {settings.ServerCpu}, wrk (1 thread) on CPU {settings.ClientCpu}";
        result.Facts["builds"] = string.Join(';', builds.Select(b => $"{b.Name}={b.Description}"));
        result.Facts["apps"] = string.Join(';', Apps.Select(a => $"{a.Name}={a.Description}"));
        try
        {
            // Builds that differ only in their environment share one publish.
            var published = new Dictionary<(string Sample, string Arguments), string>();
            var executables = new Dictionary<(string App, string Build), string>();
            foreach (App app in Apps)
            {
                foreach (SampleBuild build in builds)
                {
                    if (!published.TryGetValue((app.Sample, build.PublishArguments), out string? exe))
                    {
                        Progress.Log($"coldstart: publishing {app.Sample} ({build.Name})");
                        exe = published[(app.Sample, build.PublishArguments)] = build.Publish(settings, app.Sample, folder);
                    }
                    executables[(app.Name, build.Name)] = exe;
                }
            }
            for (int round = 1; round <= settings.Rounds; round++)
            {
                foreach (App app in Apps)
                {
                    foreach (SampleBuild build in MicroExperiment.Rotate(builds, round))
                    {
                        List<Measurement> runs = RunOne(settings, round, app, build, executables[(app.Name, build.Name)], tree);
                        result.Measurements.AddRange(runs);
                        Measurement cold = runs[0], warm = runs[^1];
                        progress.Step(FormattableString.Invariant($"coldstart round {round} {app.Name,-6} {build.Name,-11} first answer {cold.Extra!["firstResponseMs"],6:F0} ms  cold {cold.Throughput,8:F0} req/s  warm {warm.Throughput,8:F0} req/s  cold/warm {cold.Throughput / warm.Throughput:F2}  other {cold.OtherCpus:F2}/{warm.OtherCpus:F2} CPUs"));
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

    // Starts the server, and from its first answer on loads it with back-to-back wrk runs.
    private static List<Measurement> RunOne(PerfSettings settings, int round, App app, SampleBuild build, string exe, string tree)
    {
        int port = ProcessRunner.FreePort();
        string arguments = app.Sample == "StaticServer"
            ? $"--root {tree} --urls http://127.0.0.1:{port}"
            : $"--urls http://127.0.0.1:{port} --contentRoot {Path.GetDirectoryName(exe)}";
        var environment = new Dictionary<string, string> { ["MEGAPIPE_ENGINE"] = "io_uring" };
        foreach ((string key, string value) in build.Environment ?? new Dictionary<string, string>())
        {
            environment[key] = value;
        }
        string cpu = settings.ServerCpu.ToString(CultureInfo.InvariantCulture);
        FirstResponse.Started started = FirstResponse.Start(exe, arguments, cpu, port, app.Path, environment);
        var runs = new List<Measurement>();
        try
        {
            string wrk = FormattableString.Invariant($"wrk -t1 -c{app.Connections} -d{Math.Ceiling(settings.Seconds)}s http://127.0.0.1:{port}{app.Path}");
            int count = RunsPerBuild(settings);
            for (int i = 0; i < count; i++)
            {
                double cpuBefore = ServerProbe.CpuSeconds(started.Server.Id);
                SystemCpu system0 = SystemCpu.Read();
                var watch = System.Diagnostics.Stopwatch.StartNew();
                (string output, double wrkCpu, double wrkWall) = ProcessRunner.RunTimed(settings.ClientCpu.ToString(CultureInfo.InvariantCulture), wrk, TimeSpan.FromSeconds(settings.Seconds + 60));
                double window = watch.Elapsed.TotalSeconds;
                double serverCpu = ServerProbe.CpuSeconds(started.Server.Id) - cpuBefore;
                double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds;
                double rps = ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(output));
                long requests = (long)ServerProbe.ParseDouble(ServerProbe.TotalRequests().Match(output));
                Match errors = ServerProbe.SocketErrors().Match(output);
                Match non2xx = ServerProbe.Non2xx().Match(output);
                runs.Add(new Measurement
                {
                    Round = round,
                    Group = app.Name,
                    Variant = build.Name,
                    // Seconds of load before this run began: 0 is the cold run.
                    X = i * Math.Ceiling(settings.Seconds),
                    Throughput = rps,
                    ServerCpuUsPerOp = serverCpu * 1e6 / Math.Max(1, requests),
                    ServerBusy = serverCpu / window,
                    ClientBusy = wrkCpu / wrkWall,
                    OtherCpus = Math.Max(0, systemCpu - serverCpu - (double.IsNaN(wrkCpu) ? 0 : wrkCpu)) / window,
                    Errors = (errors.Success ? Enumerable.Range(1, 4).Sum(g => long.Parse(errors.Groups[g].Value, CultureInfo.InvariantCulture)) : 0)
                        + (non2xx.Success ? long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture) : 0),
                    ServerCpus = 1,
                    ClientCpus = 1,
                    Extra = new Dictionary<string, double>
                    {
                        ["firstResponseMs"] = started.Milliseconds,
                        ["firstResponseRssBytes"] = started.RssBytes,
                        ["rssBytes"] = ServerProbe.RssBytes(started.Server.Id),
                    },
                });
            }
        }
        finally
        {
            ProcessRunner.Stop(started.Server);
        }
        return runs;
    }

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] builds = SampleBuild.Order(r.Measurements.Select(m => m.Variant));
        Dictionary<string, string> descriptions = r.Facts["builds"].Split(';').Select(b => b.Split('=', 2)).ToDictionary(b => b[0], b => b[1]);
        var md = new Markdown();
        md.Heading(1, "Cold start: a 10-second wrk run right after the server first answers");
        md.Paragraph("A user tries a server by starting it and loading it at once for ten seconds. Each build of each sample is started, timed to its first answer, and then loaded by back-to-back wrk runs: the first run is the **cold** one, the last the **warm** one; the runs between show how long the build takes to reach its steady state. The target (issue 13): the shipped build's cold run within 10 % of its warm one.");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. Engine: io_uring. No run sets `DOTNET_TC_CallCountingDelayMs` unless its build names it (the other experiments set it to 0 so that a short warm-up reaches tier-1 code).");
        md.Paragraph("**Shared machine.** Other helpers' builds and tests ran on this 2-core machine during the run; the *other CPUs* columns give how much CPU other processes took during each cold and warm run. A run where they took a large share is not comparable with the others.");
        md.Heading(2, "Builds");
        foreach (string b in builds)
        {
            md.Bullet($"{b}: {SampleBuild.Describe(b) ?? descriptions.GetValueOrDefault(b, b)}");
        }
        md.Line();
        foreach (App app in Apps.Where(a => r.Measurements.Any(m => m.Group == a.Name)))
        {
            var runs = r.Measurements.Where(m => m.Group == app.Name).ToList();
            double lastX = runs.Max(m => m.X);
            double Cold(string b) => Stats.Median(runs.Where(m => m.Variant == b && m.X == 0).Select(m => m.Throughput));
            double Warm(string b) => Stats.Median(runs.Where(m => m.Variant == b && m.X == lastX).Select(m => m.Throughput));
            double Other(string b, double x) => Stats.Median(runs.Where(m => m.Variant == b && m.X == x).Select(m => m.OtherCpus));
            double Extra(string b, string key) => Stats.Median(runs.Where(m => m.Variant == b && m.X == 0).Select(m => m.Extra![key]));
            double CpuCold(string b) => Stats.Median(runs.Where(m => m.Variant == b && m.X == 0).Select(m => m.ServerCpuUsPerOp));
            double CpuWarm(string b) => Stats.Median(runs.Where(m => m.Variant == b && m.X == lastX).Select(m => m.ServerCpuUsPerOp));
            double bestCpu = builds.Min(CpuWarm);
            md.Heading(2, app.Description);
            md.Paragraph("Server CPU time per request: what the code costs, whatever share of the CPU the server got. On a dedicated CPU a saturated server answers 1 / (CPU per request) requests per second, so *warm / cold CPU* is the cold run's requests/s as a share of the warm run's that other processes cannot distort; requests/s themselves follow from the CPU the server got (the *other CPUs* column).");
            md.Table(["build", "first answer (ms)", "RSS at first answer", "server µs CPU / request cold", "warm", "warm / cold CPU", "within 10 %", "best warm / cold CPU", "cold req/s", "warm req/s", "cold / warm req/s", "server CPU busy cold, warm", "other CPUs cold, warm", "errors"],
                builds.Select(b => (IReadOnlyList<string>)
                [
                    b, N(Extra(b, "firstResponseMs")), $"{N(Extra(b, "firstResponseRssBytes") / (1024 * 1024), "F1")} MiB",
                    N(CpuCold(b), "F2"), N(CpuWarm(b), "F2"), Ratio(CpuWarm(b) / CpuCold(b)), CpuWarm(b) / CpuCold(b) >= Target ? "yes" : "no",
                    Ratio(bestCpu / CpuCold(b)),
                    N(Cold(b)), N(Warm(b)), Ratio(Cold(b) / Warm(b)),
                    $"{Percent(Stats.Median(runs.Where(m => m.Variant == b && m.X == 0).Select(m => m.ServerBusy)))}, {Percent(Stats.Median(runs.Where(m => m.Variant == b && m.X == lastX).Select(m => m.ServerBusy)))}",
                    $"{N(Other(b, 0), "F2")}, {N(Other(b, lastX), "F2")}",
                    runs.Where(m => m.Variant == b).Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
                ]));
            string[] meeting = builds.Where(b => CpuWarm(b) / CpuCold(b) >= Target).ToArray();
            string? best = meeting.OrderBy(CpuWarm).FirstOrDefault();
            md.Paragraph(meeting.Length == 0
                ? "No build's cold run came within 10 % of its warm run."
                : $"Within 10 %: {string.Join(", ", meeting)}; of these, {best} needs the least CPU per request warm ({N(CpuWarm(best!), "F2")} µs, {Ratio(CpuWarm(best!) / bestCpu)} the best warm build's).");
            // When each build's CPU per request first came within 10 % of its warm figure.
            string SteadyAfter(string b)
            {
                double warm = CpuWarm(b);
                double? x = runs.Where(m => m.Variant == b).OrderBy(m => m.X).FirstOrDefault(m => m.ServerCpuUsPerOp * Target <= warm)?.X;
                return x is null ? "–" : FormattableString.Invariant($"{x:F0} s");
            }
            md.Paragraph("Steady state (the first run whose CPU per request was within 10 % of the warm run's), by the seconds of load before it: " + string.Join(", ", builds.Select(b => $"{b} {SteadyAfter(b)}")) + ".");
            md.Paragraph(FormattableString.Invariant($"Server µs of CPU per request in each {r.Seconds} s run, by the seconds of load before it began:"));
            double[] times = runs.Select(m => m.X).Distinct().Order().ToArray();
            md.Table(["build", .. times.Select(x => $"{x:F0} s")],
                builds.Select(b => (IReadOnlyList<string>)[b, .. times.Select(x => N(Stats.Median(runs.Where(m => m.Variant == b && m.X == x).Select(m => m.ServerCpuUsPerOp)), "F2"))]));
            double[] xs = runs.Select(m => m.X).Distinct().Order().ToArray();
            md.Paragraph(FormattableString.Invariant($"Requests/s of each {r.Seconds} s run, by the seconds of load before it began:"));
            md.Table(["build", .. xs.Select(x => $"{x:F0} s")],
                builds.Select(b => (IReadOnlyList<string>)[b, .. xs.Select(x => N(Stats.Median(runs.Where(m => m.Variant == b && m.X == x).Select(m => m.Throughput))))]));
            string chart = $"coldstart-{app.Name}.png";
            Charts.Lines(settings.ResultPath(chart), $"{app.Sample}: server CPU per request from the first answer on", FormattableString.Invariant($"seconds of load before the {r.Seconds} s run"), "µs of CPU per request",
                builds.Select(b => new Charts.Series(b, xs, xs.Select(x => Stats.Median(runs.Where(m => m.Variant == b && m.X == x).Select(m => m.ServerCpuUsPerOp))).ToArray())).ToList(),
                log2X: false);
            md.Image($"{app.Name}: server CPU per request over time", chart);
        }
        md.Heading(2, "Why the JIT builds start slow, and what each setting changes");
        md.Bullet("Tiered compilation: a method first runs as tier-0 (unoptimized) code, or as its ReadyToRun code; after 30 calls it is queued for tier 1, but only once no new tier-0 code has been compiled for `TC_CallCountingDelayMs` (100 ms), times `TC_DelaySingleProcMultiplier` (10) when the process may use a single CPU, as the pinned servers here do. A server under load keeps meeting new methods for a while, and each restarts the wait; with `TieredPGO` (the samples' default) a hot method then runs an instrumented tier before its final code. That is the ramp in the tables above.");
        md.Bullet("ReadyToRun: precompiles the app's and MegaPipe's assemblies; the shared framework (ASP.NET Core, Kestrel) is ReadyToRun code in every build already. Hot methods are still recompiled by tiering (with `TieredPGO` through an instrumented tier first), so the cold run pays about what the JIT build's does.");
        md.Bullet("`DOTNET_TC_CallCountingDelayMs=0` starts counting at once and brings the steady state forward; the runtime reads it from the environment only (runtimeconfig.json has `TieredCompilation`, `TieredCompilation.QuickJit`, `QuickJitForLoops` and `TieredPGO`, not the delay), so a build cannot carry it: a launcher, a unit file or a container image must set it.");
        md.Bullet("`TieredCompilation=false` (runtimeconfig.json, `<TieredCompilation>false</TieredCompilation>`): every method is compiled once, optimized, with no profile: flat from the first request, but its steady state costs more CPU per request than tier-1 code with PGO (the *best warm / cold CPU* column).");
        md.Bullet("Native AOT: optimized code from the first request, no JIT and no tiering: the cold run is the warm run; its code has no dynamic PGO, so it costs somewhat more CPU per request than the JIT build's final code.");
        md.Line();
        File.WriteAllText(settings.ResultPath("coldstart.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        foreach (App app in Apps.Where(a => r.Measurements.Any(m => m.Group == a.Name)))
        {
            var runs = r.Measurements.Where(m => m.Group == app.Name).ToList();
            double lastX = runs.Max(m => m.X);
            string Pair(string b) => Ratio(Stats.Median(runs.Where(m => m.Variant == b && m.X == lastX).Select(m => m.ServerCpuUsPerOp)) / Stats.Median(runs.Where(m => m.Variant == b && m.X == 0).Select(m => m.ServerCpuUsPerOp)));
            yield return $"coldstart {app.Name}: the cold run's requests per CPU second as a share of the warm run's: " + string.Join(", ", SampleBuild.Order(runs.Select(m => m.Variant)).Select(b => $"{b} {Pair(b)}"));
        }
    }
}
