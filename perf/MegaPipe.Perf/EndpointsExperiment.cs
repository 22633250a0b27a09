using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// One set of channels per process, measured: samples/WebApp bound to two endpoints, with its load
// on both endpoints at once (a wrk on each) or the same load on one endpoint (both wrks on it),
// for the shared channel set and for a build where every listener starts its own channels (a
// checkout of an earlier commit, --baseline-repo). Server on one pinned CPU with ChannelCount 1:
// the shared set runs one channel thread; the per-listener build runs one per endpoint, which
// compete for the core and split the batches.
//   git worktree add /tmp/per-listener <commit before the channel set>
//   dotnet run -c Release --project perf/MegaPipe.Perf -- endpoints --baseline-repo /tmp/per-listener
public sealed class EndpointsExperiment : IExperiment
{
    private const int ConnectionsPerWrk = 128;

    private sealed record Variant(string Name, string Build, int LoadedEndpoints, bool Inline);

    public string Name => "endpoints";

    public string Summary => "one channel set per process: two endpoints loaded at once vs one, shared channels vs per-listener channels (--baseline-repo)";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 6, 2);

    private static Variant[] Variants(PerfSettings s)
    {
        var builds = new List<string> { "shared" };
        if (s.BaselineRepo is not null)
        {
            builds.Add("per-listener");
        }
        return (from inline in new[] { false, true }
                from build in builds
                from endpoints in new[] { 1, 2 }
                let name = $"{build}-{endpoints}ep{(inline ? "-inline" : "")}"
                where s.Wants(name)
                select new Variant(name, build, endpoints, inline)).ToArray();
    }

    public int Steps(PerfSettings settings) => settings.Rounds * Variants(settings).Length;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        var executables = new Dictionary<string, string> { ["shared"] = PingPongExperiment.BuildSample(settings, "WebApp") };
        if (settings.BaselineRepo is { } baseline)
        {
            executables["per-listener"] = PingPongExperiment.BuildSample(baseline, "WebApp");
        }
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = $"server on CPU {settings.ServerCpu} with ChannelCount 1, two wrk (1 thread, {ConnectionsPerWrk} connections each) on CPU {settings.ClientCpu}";
        result.Facts["baseline"] = settings.BaselineRepo is { } repo ? $"{repo} at {PingPongExperiment.GitHead(repo)}" : "none";
        result.Facts["shared"] = PingPongExperiment.GitHead(settings.RepoRoot);
        Variant[] variants = Variants(settings);
        result.Facts["variants"] = string.Join(',', variants.Select(v => v.Name));
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (Variant v in MicroExperiment.Rotate(variants, round))
            {
                Measurement m = RunOne(settings, executables[v.Build], v, round);
                result.Measurements.Add(m);
                progress.Step(FormattableString.Invariant($"endpoints round {round} {v.Name,-24} {m.Throughput,10:F0} req/s  {m.SyscallsPerOp,6:F3} syscalls/req  {m.ServerCpuUsPerOp,6:F2} µs CPU/req  {m.Extra!["channelThreads"]} channel threads  server {m.ServerBusy:P0} busy  other {m.OtherCpus:F2} CPUs  errors {m.Errors}"));
            }
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    private static Measurement RunOne(PerfSettings settings, string exe, Variant v, int round)
    {
        int port1 = ProcessRunner.FreePort();
        int port2 = ProcessRunner.FreePort();
        string inline = v.Inline ? " --MegaPipe:UnsafeInlineScheduling true" : "";
        using Process server = ProcessRunner.Start(exe, $"--transport megapipe --MegaPipe:ChannelCount 1{inline} --urls \"http://127.0.0.1:{port1};http://127.0.0.1:{port2}\"", settings.ServerCpu, environment: ProcessRunner.DotNetEnvironment);
        try
        {
            ServerProbe.WaitForPort(port1);
            ServerProbe.WaitForPort(port2);
            int[] targets = v.LoadedEndpoints == 2 ? [port1, port2] : [port1, port1];
            string cpu = settings.ClientCpu.ToString(CultureInfo.InvariantCulture);
            string Wrk(int port, double seconds) => FormattableString.Invariant($"wrk -t1 -c{ConnectionsPerWrk} -d{Math.Max(1, Math.Ceiling(seconds))}s http://127.0.0.1:{port}/plaintext");
            // Warm up (tiering, pools) on the same endpoints, then measure.
            Task.WaitAll(targets.Select(p => Task.Run(() => ProcessRunner.RunTimed(cpu, Wrk(p, settings.Warmup), TimeSpan.FromSeconds(settings.Warmup + 30)))).ToArray());
            double measured = Math.Max(1, Math.Ceiling(settings.Seconds));
            double perfSeconds = Math.Max(0.5, measured - 1);
            int threads = CountChannelThreads(server.Id);
            double cpuBefore = ServerProbe.CpuSeconds(server.Id);
            SystemCpu system0 = SystemCpu.Read();
            var watch = Stopwatch.StartNew();
            Task<long?> syscalls = ProcessRunner.CountSystemCallsAsync(server.Id, perfSeconds);
            var runs = targets.Select(p => Task.Run(() => ProcessRunner.RunTimed(cpu, Wrk(p, measured), TimeSpan.FromSeconds(measured + 60)))).ToArray();
            Task.WaitAll(runs);
            double window = watch.Elapsed.TotalSeconds;
            double serverCpu = ServerProbe.CpuSeconds(server.Id) - cpuBefore;
            double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds;
            double rps = runs.Sum(r => ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(r.Result.Output)));
            long requests = runs.Sum(r => (long)ServerProbe.ParseDouble(ServerProbe.TotalRequests().Match(r.Result.Output)));
            long errors = runs.Sum(r => Errors(r.Result.Output));
            double wrkCpu = runs.Sum(r => r.Result.CpuSeconds);
            double wrkWall = runs.Max(r => r.Result.WallSeconds);
            return new Measurement
            {
                Round = round,
                Variant = v.Name,
                Throughput = rps,
                SyscallsPerOp = syscalls.Result is long calls ? calls / (rps * perfSeconds) : double.NaN,
                ServerCpuUsPerOp = serverCpu * 1e6 / Math.Max(1, requests),
                ServerBusy = serverCpu / window,
                ClientBusy = wrkCpu / wrkWall,
                OtherCpus = Math.Max(0, systemCpu - serverCpu - wrkCpu) / window,
                Errors = errors,
                ServerCpus = 1,
                ClientCpus = 1,
                Extra = new Dictionary<string, double> { ["channelThreads"] = threads },
            };
        }
        finally
        {
            ProcessRunner.Stop(server);
        }
    }

    private static long Errors(string wrk)
    {
        Match errors = ServerProbe.SocketErrors().Match(wrk);
        long count = errors.Success ? Enumerable.Range(1, 4).Sum(i => long.Parse(errors.Groups[i].Value, CultureInfo.InvariantCulture)) : 0;
        Match non2xx = ServerProbe.Non2xx().Match(wrk);
        return count + (non2xx.Success ? long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture) : 0);
    }

    // Channel threads of the server: their names start "MegaPipe ch" (Linux keeps 15 characters of a thread name).
    private static int CountChannelThreads(int pid)
    {
        int count = 0;
        foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith("MegaPipe ch", StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
            }
        }
        return count;
    }



    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] variants = MicroReport.VariantNames(r);
        double T(string v) => r.Median(v, 0, m => m.Throughput);
        double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp);
        double Threads(string v) => r.Median(v, 0, m => m.Extra?.GetValueOrDefault("channelThreads") ?? double.NaN);
        var md = new Markdown();
        md.Heading(1, "One channel set per process: two endpoints under load");
        md.Paragraph("samples/WebApp bound to two endpoints (`--urls \"http://127.0.0.1:A;http://127.0.0.1:B\"`), `--MegaPipe:ChannelCount 1`, GET /plaintext keep-alive. " +
            $"*N*ep = the load on N endpoints: two wrk processes ({ConnectionsPerWrk} connections each) on A and B at once, or both on A (the same total load on one endpoint). " +
            "shared = this build: every endpoint registers its accept queue in the one channel set; per-listener = the baseline build, where each endpoint starts its own channel threads. -inline = `UnsafeInlineScheduling`.");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. Shared build {r.Facts.GetValueOrDefault("shared", "?")}; baseline {r.Facts.GetValueOrDefault("baseline", "none")}.");
        md.Table(["variant", "channel threads", "requests/s", "server CPU µs / request", "CPU ratio to shared (same load, mode)", "system calls / request", "server CPU busy", "wrk CPU busy", "errors"],
            variants.Select(v =>
            {
                string peer = v.Replace("per-listener", "shared", StringComparison.Ordinal);
                return (IReadOnlyList<string>)
                [
                    v, N(Threads(v), "F0"), N(T(v)), N(C(v), "F2"), Ratio(C(v) / C(peer)),
                    N(r.Median(v, 0, m => m.SyscallsPerOp), "F3"), Percent(r.Median(v, 0, m => m.ServerBusy)), Percent(r.Median(v, 0, m => m.ClientBusy)),
                    r.Measurements.Where(m => m.Variant == v).Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
                ];
            }));
        md.Heading(2, "Reading it");
        md.Bullet("wrk with one thread per process caps the request rate on keep-alive, so compare server CPU per request and system calls per request, not requests/s.");
        md.Bullet($"Other processes on this shared machine used {N(Stats.Median(r.Measurements.Select(m => m.OtherCpus)), "F2")} CPUs during the median run ({N(Stats.Max(r.Measurements.Select(m => m.OtherCpus)), "F2")} at most).");
        md.Line();
        File.WriteAllText(settings.ResultPath("endpoints.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp);
        yield return $"endpoints: two endpoints under load, shared channel set {N(C("shared-2ep"), "F2")} µs CPU per request (one endpoint {N(C("shared-1ep"), "F2")})" +
            (MicroReport.VariantNames(r).Contains("per-listener-2ep") ? $", per-listener channels {N(C("per-listener-2ep"), "F2")} µs ({N(C("per-listener-1ep"), "F2")})" : "");
    }
}
