using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// Experiment 5, the paper's memcached macrobenchmark ("memaslap with 90% GET, 10% SET, 64B keys,
// 1KB values"): perf/MemcachedServer (Kestrel connection middleware) on MegaPipe and on Sockets,
// and Debian's memcached as the reference, each on the server CPUs, under memcaslap (libmemcached's
// memaslap) on the client CPUs. Every server is first checked with memcaslap's data verification.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- memcached [--rounds 3] [--seconds 3]
public sealed partial class MemcachedExperiment : IExperiment
{
    private const string Memcached = "/usr/bin/memcached";
    private const int Concurrency = 64;
    private const int MemoryLimitMb = 256;

    private sealed record Variant(string Name, string Arguments);

    private static readonly Variant[] s_variants =
    [
        new("megapipe", "--transport megapipe"),
        new("megapipe-inline", "--transport megapipe --MegaPipe:UnsafeInlineScheduling true"),
        new("sockets", "--transport sockets"),
        new("memcached", ""),
    ];

    public string Name => "memcached";

    public string Summary => "5. memcached: perf/MemcachedServer on MegaPipe and Sockets vs Debian's memcached, under memcaslap (90% GET, 64 B keys, 1 KB values)";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 3, 1);

    private static Variant[] Variants(PerfSettings s) => s_variants.Where(v => s.Wants(v.Name) && (v.Name != "memcached" || File.Exists(Memcached))).ToArray();

    public int Steps(PerfSettings settings) => settings.Rounds * Variants(settings).Length;

    // memcaslap is libmemcached's memaslap (Debian's libmemcached-tools names it memcaslap).
    public static string? FindLoadGenerator() => new[] { "/usr/bin/memcaslap", "/usr/bin/memaslap", "/usr/local/bin/memaslap" }.FirstOrDefault(File.Exists);

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        string memcaslap = FindLoadGenerator() ?? throw new InvalidOperationException("the memcached experiment needs memcaslap (libmemcached's memaslap), which is not installed: apt-get install libmemcached-tools (and memcached for the reference server)");
        if (!File.Exists(Memcached))
        {
            Progress.Warn($"{Memcached} is not installed (apt-get install memcached): measuring without the reference server");
        }
        string server = BuildServer(settings);
        int serverCpus = Math.Max(1, settings.Cpus.Length / 2);
        CpuPlan plan = CpuPlan.For(settings.Cpus, serverCpus);
        string config = Path.Combine(Path.GetTempPath(), $"megapipe-memcaslap-{Environment.ProcessId}.cfg");
        // memaslap's configuration: 64-byte keys, 1 KB values, 10 % set (cmd 0) and 90 % get (cmd 1).
        File.WriteAllText(config, "key\n64 64 1\nvalue\n1024 1024 1\ncmd\n0 0.1\n1 0.9\n");
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = plan.Describe();
        result.Facts["serverCpus"] = plan.Server.Length.ToString(CultureInfo.InvariantCulture);
        result.Facts["memcaslap"] = memcaslap;
        result.Facts["memcachedVersion"] = File.Exists(Memcached) ? ProcessRunner.Run(Memcached, "-V", TimeSpan.FromSeconds(10)).Trim() : "not installed";
        result.Facts["variants"] = string.Join(',', Variants(settings).Select(v => v.Name));
        result.Facts["syscallNs"] = SyscallCost.NanosecondsPerCall().ToString("F1", CultureInfo.InvariantCulture);
        try
        {
            var variants = Variants(settings);
            for (int round = 1; round <= settings.Rounds; round++)
            {
                foreach (Variant v in MicroExperiment.Rotate(variants, round))
                {
                    Measurement m = RunOne(settings, plan, server, memcaslap, config, v, round, result);
                    result.Measurements.Add(m);
                    progress.Step(FormattableString.Invariant($"memcached round {round} {v.Name,-16} {m.Throughput,10:F0} ops/s  {m.SyscallsPerOp,6:F3} syscalls/op  {m.ServerCpuUsPerOp,6:F2} µs CPU/op  server {m.ServerBusy:P0} memcaslap {m.ClientBusy:P0} busy  other {m.OtherCpus:F2} CPUs{(m.Errors > 0 ? $"  ERRORS {m.Errors}" : "")}"));
                }
            }
        }
        finally
        {
            File.Delete(config);
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    private static string BuildServer(PerfSettings settings)
    {
        string project = Path.Combine(settings.RepoRoot, "perf", "MemcachedServer", "MemcachedServer.csproj");
        string output = ProcessRunner.Run("dotnet", $"build -c Release \"{project}\" -v q -nologo", TimeSpan.FromMinutes(5));
        string exe = Path.Combine(settings.RepoRoot, "perf", "MemcachedServer", "bin", "Release", "net10.0", "MemcachedServer");
        return File.Exists(exe) ? exe : throw new InvalidOperationException($"building perf/MemcachedServer failed:\n{output}");
    }

    private Measurement RunOne(PerfSettings settings, CpuPlan plan, string exe, string memcaslap, string config, Variant v, int round, ResultFile result)
    {
        int port = ProcessRunner.FreePort();
        int k = plan.Server.Length;
        Process server = v.Name == "memcached"
            // -t: worker threads, as many as the server's CPUs; -u: memcached refuses root without it.
            ? ProcessRunner.Start(Memcached, FormattableString.Invariant($"-p {port} -l 127.0.0.1 -U 0 -t {k} -m {MemoryLimitMb} -c 4096 -u {Environment.UserName}"), plan.ServerList)
            : ProcessRunner.Start(exe, FormattableString.Invariant($"{v.Arguments} --port {port} --memory-limit-mb {MemoryLimitMb} --MegaPipe:ChannelCount {k}"), plan.ServerList, environment: ProcessRunner.DotNetEnvironment);
        try
        {
            ServerProbe.WaitForPort(port);
            string threads = plan.Client.Length.ToString(CultureInfo.InvariantCulture);
            string load(double seconds, string extra) => FormattableString.Invariant(
                $"{memcaslap} -s 127.0.0.1:{port} -T {threads} -c {Concurrency} -w 1k -t {Math.Max(1, (int)Math.Ceiling(seconds))}s -F {config} {extra}");
            // The warm-up verifies every answer: a server that answers wrongly is not measured.
            (string verify, _, _) = ProcessRunner.RunTimed(plan.ClientList, load(settings.Warmup, "-v 1.0"), TimeSpan.FromSeconds(settings.Warmup + 60));
            long verifyFailed = Stat(verify, VerifyFailed()), verifyMisses = Stat(verify, VerifyMisses());
            if (verifyFailed < 0 || Stat(verify, Ops()) <= 0)
            {
                throw new InvalidOperationException($"{v.Name}: memcaslap's verification run did not complete:\n{verify}");
            }
            result.Facts[$"verify:{v.Name}:{round}"] = FormattableString.Invariant($"{verifyFailed} failed, {verifyMisses} missing of {Stat(verify, CmdGet())} gets");
            (double user0, double kernel0) = ServerProbe.CpuTimes(server.Id);
            SystemCpu system0 = SystemCpu.Read();
            var watch = Stopwatch.StartNew();
            double perfSeconds = Math.Max(0.5, Math.Ceiling(settings.Seconds) - 0.7);
            Task<long?> syscalls = ProcessRunner.CountSystemCallsAsync(server.Id, perfSeconds);
            (string output, double clientCpu, double clientWall) = ProcessRunner.RunTimed(plan.ClientList, load(settings.Seconds, ""), TimeSpan.FromSeconds(settings.Seconds + 60));
            double window = watch.Elapsed.TotalSeconds;
            (double user1, double kernel1) = ServerProbe.CpuTimes(server.Id);
            double serverCpu = user1 + kernel1 - user0 - kernel0;
            double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds;
            Match ops = OpsLine().Match(output);
            if (!ops.Success)
            {
                throw new InvalidOperationException($"{v.Name}: memcaslap printed no result:\n{output}");
            }
            long operations = long.Parse(ops.Groups[2].Value, CultureInfo.InvariantCulture);
            double seconds = double.Parse(ops.Groups[1].Value, CultureInfo.InvariantCulture);
            double tps = operations / seconds;
            long? calls = syscalls.Result;
            return new Measurement
            {
                Round = round,
                Variant = v.Name,
                Throughput = tps,
                SyscallsPerOp = calls is null ? double.NaN : calls.Value / (tps * perfSeconds),
                ServerCpuUsPerOp = serverCpu * 1e6 / Math.Max(1, operations),
                ServerBusy = serverCpu / (window * k),
                ServerKernelShare = serverCpu > 0 ? (kernel1 - kernel0) / serverCpu : double.NaN,
                ClientBusy = clientCpu / (clientWall * plan.Client.Length),
                ClientCpuUsPerOp = clientCpu * 1e6 / Math.Max(1, operations),
                OtherCpus = Math.Max(0, systemCpu - serverCpu - clientCpu) / window,
                Errors = verifyFailed,
                ServerCpus = k,
                ClientCpus = plan.Client.Length,
                SharedCpus = plan.Shared,
                Extra = new Dictionary<string, double>
                {
                    ["getMisses"] = Stat(output, GetMisses()),
                    ["gets"] = Stat(output, CmdGet()),
                    ["sets"] = Stat(output, CmdSet()),
                    ["verifyMisses"] = verifyMisses,
                },
            };
        }
        finally
        {
            ProcessRunner.Stop(server);
            server.Dispose();
        }
    }

    private static long Stat(string output, Regex regex)
    {
        Match m = regex.Match(output);
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] variants = MicroReport.VariantNames(r);
        double T(string v) => r.Median(v, 0, m => m.Throughput);
        double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp);
        bool reference = variants.Contains("memcached");
        var md = new Markdown();
        md.Heading(1, "Experiment 5: memcached");
        md.Paragraph($"memcaslap ({r.Facts["memcaslap"]}, libmemcached's memaslap) with {Concurrency} concurrent connections, 90 % get and 10 % set, 64-byte keys and 1 KB values, as in the paper; a 1k-key window per connection (about {Concurrency * 1024 * 1.1 / 1024:F0} MB of objects, inside the servers' {MemoryLimitMb} MB limit). " +
            "megapipe = perf/MemcachedServer (the memcached text protocol as Kestrel connection middleware, one global lock over the store as memcached had in 2012) on `UseMegaPipe()`, handler on the thread pool; megapipe-inline = the same with `UnsafeInlineScheduling` (handler on the channel thread, as memcached's worker threads run theirs); sockets = the same server on Kestrel's Sockets transport; " +
            $"memcached = Debian's {r.Facts["memcachedVersion"]} with as many worker threads as the server has CPUs.");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. Before each measured run memcaslap verified every answer for the warm-up time (`-v 1.0`): {string.Join("; ", variants.Select(v => $"{v}: {string.Join(", ", r.Facts.Where(f => f.Key.StartsWith($"verify:{v}:", StringComparison.Ordinal)).Select(f => f.Value).Distinct())}"))}.");
        var header = new List<string> { "variant", "operations/s", "ratio to sockets" };
        if (reference)
        {
            header.Add("ratio to memcached");
        }
        header.AddRange(["system calls / operation", "server CPU µs / operation", "server CPU in the kernel", "server CPU busy", "memcaslap CPU busy", "get misses"]);
        md.Table(header, variants.Select(v =>
        {
            var row = new List<string> { v, N(T(v)), Ratio(T(v) / T("sockets")) };
            if (reference)
            {
                row.Add(Ratio(T(v) / T("memcached")));
            }
            row.AddRange([N(r.Median(v, 0, m => m.SyscallsPerOp), "F3"), N(C(v), "F2"), Percent(r.Median(v, 0, m => m.ServerKernelShare)), Percent(r.Median(v, 0, m => m.ServerBusy)), Percent(r.Median(v, 0, m => m.ClientBusy)),
                N(r.Median(v, 0, m => m.Extra?.GetValueOrDefault("getMisses") ?? double.NaN))]);
            return (IReadOnlyList<string>)row;
        }));
        Charts.Bars(settings.ResultPath("memcached-throughput.png"), "memcaslap, 90 % get, 64 B keys, 1 KB values: operations/s", "operations/s", variants.Select(v => (v, T(v))).ToList());
        Charts.Bars(settings.ResultPath("memcached-cpu.png"), "Server CPU per operation", "µs per operation", variants.Select(v => (v, C(v))).ToList());
        md.Image("operations per second", "memcached-throughput.png");
        md.Image("server CPU per operation", "memcached-cpu.png");
        md.Heading(2, "How close to saturation");
        double client = Stats.Median(r.Measurements.Select(m => m.ClientBusy));
        md.Paragraph($"memcaslap ran at a median {Percent(client)} of its CPU{(r.Measurements.Any(m => m.ClientCpus > 1) ? "s" : "")} (and spent {string.Join(", ", variants.Select(v => $"{N(r.Median(v, 0, m => m.ClientCpuUsPerOp), "F2")} µs per operation against {v}"))}). " +
            MicroReport.LoadGeneratorVerdict(client, Stats.Median(r.Measurements.Select(m => m.OtherCpus))));
        md.Heading(2, "Why these numbers differ from the paper's");
        md.Bullet("The talk reports \"15+% improvement for memcached\" with MegaPipe: memcached itself ported to MegaPipe, against memcached on BSD sockets, on 8 cores with clients on other machines. Here the MegaPipe side is a different server (C# on Kestrel's connection pipeline); Debian's memcached is the reference, and the same-server ratio megapipe / sockets is the transport's share.");
        md.Bullet($"{r.Machine.Cpus} CPUs, server and load generator on one machine over loopback ({r.Facts["cpuPlan"]}); the paper's figure scaled memcached over cores.");
        md.Bullet($"A system call costs {r.Facts.GetValueOrDefault("syscallNs", "?")} ns on this kernel ({r.Machine.Kernel}); memcached makes {N(r.Median("memcached", 0, m => m.SyscallsPerOp), "F2")} system calls per operation here.");
        md.Bullet($"Other processes on this shared machine used {N(Stats.Median(r.Measurements.Select(m => m.OtherCpus)), "F2")} CPUs during the median run ({N(Stats.Max(r.Measurements.Select(m => m.OtherCpus)), "F2")} at most).");
        md.Line();
        File.WriteAllText(settings.ResultPath("memcached.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        double T(string v) => r.Median(v, 0, m => m.Throughput);
        yield return $"memcached (memcaslap, 90 % get, 1 KB values): MemcachedServer on MegaPipe {Ratio(T("megapipe") / T("sockets"))} (inline {Ratio(T("megapipe-inline") / T("sockets"))}) of the same server on Sockets; Debian's memcached {Ratio(T("memcached") / T("sockets"))}";
    }

    [GeneratedRegex(@"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)")]
    private static partial Regex OpsLine();

    [GeneratedRegex(@"Ops: (\d+)")]
    private static partial Regex Ops();

    [GeneratedRegex(@"verify_failed: (\d+)")]
    private static partial Regex VerifyFailed();

    [GeneratedRegex(@"verify_misses: (\d+)")]
    private static partial Regex VerifyMisses();

    [GeneratedRegex(@"get_misses: (\d+)")]
    private static partial Regex GetMisses();

    [GeneratedRegex(@"cmd_get: (\d+)")]
    private static partial Regex CmdGet();

    [GeneratedRegex(@"cmd_set: (\d+)")]
    private static partial Regex CmdSet();
}
