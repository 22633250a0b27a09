using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// Issue 3's benchmark: samples/WebApp on each transport (and nginx from Debian, where installed)
// under wrk, server and load generator pinned to different CPUs, variants interleaved.
public static partial class WebExperiment
{
    private sealed record Variant(string Name, string Arguments);

    private sealed record Scenario(string Name, string Description, string Path, int Connections, string WrkExtra);

    private sealed record Sample(string Scenario, string Variant, double Rps, double SyscallsPerRequest, double CpuUsPerRequest, long Errors, long Non2xx);

    public static int Steps(PerfSettings settings) => settings.Rounds * 4 * (File.Exists(NginxServer.Executable) ? 4 : 3) + 3;

    public static void Run(PerfSettings settings, Progress progress)
    {
        string webApp = PingPongExperiment.BuildSample(settings, "WebApp");
        string luaPipeline = Path.Combine(settings.RepoRoot, "perf", "wrk", "pipeline.lua");
        var variants = new List<Variant>
        {
            new("sockets", "--transport sockets"),
            new("megapipe", "--transport megapipe"),
            new("megapipe-inline", "--transport megapipe --MegaPipe:UnsafeInlineScheduling true"),
        };
        bool nginx = File.Exists(NginxServer.Executable);
        if (nginx)
        {
            variants.Add(new("nginx", ""));
        }
        Scenario[] scenarios =
        [
            new("keepalive", "keep-alive /plaintext, 256 connections", "/plaintext", 256, ""),
            new("pipelined", "pipelined /plaintext, 16 requests per write, 256 connections", "/plaintext", 256, $"-s {luaPipeline}"),
            new("close", "Connection: close /plaintext, 64 connections", "/plaintext", 64, "-H \"Connection: close\""),
            new("static", "static 6 KiB file, keep-alive, 64 connections", "/6k.html", 64, ""),
        ];
        var samples = new List<Sample>();
        int port = 5600;
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (Scenario scenario in scenarios)
            {
                foreach (Variant variant in variants)
                {
                    Sample s = variant.Name == "nginx"
                        ? RunNginx(settings, scenario, port++)
                        : RunWebApp(settings, webApp, variant, scenario, port++);
                    samples.Add(s);
                    progress.Step(FormattableString.Invariant($"round {round} {scenario.Name,-10} {variant.Name,-16} {s.Rps,10:F0} req/s  {s.SyscallsPerRequest,6:F3} syscalls/req  {s.CpuUsPerRequest,6:F2} us CPU/req  errors {s.Errors} non-2xx {s.Non2xx}"));
                }
            }
        }
        var idle = new List<(string Variant, double BytesPerConnection)>();
        foreach (Variant variant in variants.Where(v => v.Name != "nginx"))
        {
            double bytes = MeasureIdleMemory(settings, webApp, variant, port++, 10_000);
            idle.Add((variant.Name, bytes));
            progress.Step(FormattableString.Invariant($"idle {variant.Name,-16} {bytes / 1024:F2} KiB per idle keep-alive connection"));
        }
        WriteReport(settings, scenarios, variants, samples, idle);
    }

    private static Sample RunWebApp(PerfSettings settings, string exe, Variant variant, Scenario scenario, int port)
    {
        using Process server = ProcessRunner.Start(exe, $"{variant.Arguments} --urls http://127.0.0.1:{port} --contentRoot {ContentRoot(settings)}", settings.ServerCpu);
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

    private static Sample RunNginx(PerfSettings settings, Scenario scenario, int port)
    {
        string root = Path.Combine(settings.RepoRoot, "samples", "WebApp", "wwwroot");
        using var nginx = new NginxServer(settings, port, "text/html html;",
            $$"""location = /plaintext { default_type text/plain; return 200 "Hello, World!"; } location / { root {{root}}; }""");
        return Measure(settings, scenario, port, nginx.WorkerPids, "nginx");
    }

    private static Sample Measure(PerfSettings settings, Scenario scenario, int port, int[] pids, string variant)
    {
        string url = $"http://127.0.0.1:{port}{scenario.Path}";
        // Warm up (JIT tiering, pools), then measure.
        ProcessRunner.Run("taskset", $"-c {settings.ClientCpu} wrk -t1 -c{scenario.Connections} -d{settings.Warmup.ToString(CultureInfo.InvariantCulture)}s {scenario.WrkExtra} {url}", TimeSpan.FromSeconds(settings.Warmup + 30));
        double cpuBefore = pids.Sum(ServerProbe.CpuSeconds);
        Task<long?>[] syscalls = pids.Select(pid => ProcessRunner.CountSystemCallsAsync(pid, settings.Seconds - 1)).ToArray();
        string wrk = ProcessRunner.Run("taskset", $"-c {settings.ClientCpu} wrk -t1 -c{scenario.Connections} -d{settings.Seconds.ToString(CultureInfo.InvariantCulture)}s {scenario.WrkExtra} {url}", TimeSpan.FromSeconds(settings.Seconds + 60));
        double cpu = pids.Sum(ServerProbe.CpuSeconds) - cpuBefore;
        long? calls = syscalls.All(t => t.Result is not null) ? syscalls.Sum(t => t.Result!.Value) : null;
        double rps = ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(wrk));
        long requests = (long)ServerProbe.ParseDouble(ServerProbe.TotalRequests().Match(wrk));
        Match errors = ServerProbe.SocketErrors().Match(wrk);
        long errorCount = errors.Success ? Enumerable.Range(1, 4).Sum(i => long.Parse(errors.Groups[i].Value, CultureInfo.InvariantCulture)) : 0;
        Match non2xx = ServerProbe.Non2xx().Match(wrk);
        return new Sample(scenario.Name, variant, rps,
            calls is null ? double.NaN : calls.Value / (rps * (settings.Seconds - 1)),
            cpu * 1e6 / Math.Max(1, requests),
            errorCount,
            non2xx.Success ? long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture) : 0);
    }

    // Opens `count` keep-alive connections that each complete one request, then reports how much
    // the server's resident memory grew per connection.
    private static double MeasureIdleMemory(PerfSettings settings, string exe, Variant variant, int port, int count)
    {
        using Process server = ProcessRunner.Start(exe, $"{variant.Arguments} --urls http://127.0.0.1:{port} --contentRoot {ContentRoot(settings)}", settings.ServerCpu);
        var sockets = new List<Socket>(count);
        try
        {
            ServerProbe.WaitForPort(port);
            // Warm the server up so one-time allocations are not charged to the connections.
            ProcessRunner.Run("taskset", $"-c {settings.ClientCpu} wrk -t1 -c64 -d2s http://127.0.0.1:{port}/plaintext", TimeSpan.FromSeconds(30));
            Thread.Sleep(1000);
            long before = ServerProbe.RssBytes(server.Id);
            byte[] request = Encoding.ASCII.GetBytes("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
            var buffer = new byte[1024];
            for (int i = 0; i < count; i += 500)
            {
                var batch = Enumerable.Range(0, Math.Min(500, count - i)).Select(async _ =>
                {
                    var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await s.ConnectAsync(IPAddress.Loopback, port);
                    await s.SendAsync(request);
                    var b = new byte[256];
                    await s.ReceiveAsync(b);
                    return s;
                }).ToArray();
                Task.WaitAll(batch);
                sockets.AddRange(batch.Select(t => t.Result));
            }
            Thread.Sleep(2000);
            long after = ServerProbe.RssBytes(server.Id);
            return (after - before) / (double)count;
        }
        finally
        {
            foreach (Socket s in sockets)
            {
                s.Dispose();
            }
            ProcessRunner.Stop(server);
        }
    }

    private static void WriteReport(PerfSettings settings, Scenario[] scenarios, List<Variant> variants, List<Sample> samples, List<(string Variant, double Bytes)> idle)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# samples/WebApp under wrk: MegaPipe vs Kestrel Sockets (and nginx)");
        sb.AppendLine();
        sb.AppendLine(FormattableString.Invariant($"Server pinned to CPU {settings.ServerCpu} (so 1 channel / 1 nginx worker), wrk (1 thread) pinned to CPU {settings.ClientCpu}; {settings.Rounds} interleaved round(s) of {settings.Seconds} s per run after a {settings.Warmup} s warm-up; medians. System calls are counted with `perf stat -e raw_syscalls:sys_enter` on the server, CPU time from /proc. Produced by `dotnet run -c Release --project perf/MegaPipe.Perf -- web` on {DateTime.UtcNow:yyyy-MM-dd}."));
        sb.AppendLine();
        sb.AppendLine("megapipe = default options (application code on the thread pool); megapipe-inline = `UnsafeInlineScheduling` (application code on the channel thread).");
        sb.AppendLine();
        foreach (Scenario scenario in scenarios)
        {
            sb.AppendLine($"## {scenario.Description}");
            sb.AppendLine();
            sb.AppendLine("| variant | requests/s | ratio to sockets | system calls / request | server CPU µs / request | CPU ratio to sockets | socket errors | non-2xx |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            var mine = samples.Where(s => s.Scenario == scenario.Name).ToList();
            double baseRps = PingPongExperiment.Median(mine.Where(s => s.Variant == "sockets").Select(s => s.Rps));
            double baseCpu = PingPongExperiment.Median(mine.Where(s => s.Variant == "sockets").Select(s => s.CpuUsPerRequest));
            foreach (Variant v in variants)
            {
                var vs = mine.Where(s => s.Variant == v.Name).ToList();
                double rps = PingPongExperiment.Median(vs.Select(s => s.Rps));
                double cpu = PingPongExperiment.Median(vs.Select(s => s.CpuUsPerRequest));
                sb.AppendLine(FormattableString.Invariant($"| {v.Name} | {rps:F0} | {rps / baseRps:F2}x | {PingPongExperiment.Median(vs.Select(s => s.SyscallsPerRequest)):F3} | {cpu:F2} | {cpu / baseCpu:F2} | {vs.Sum(s => s.Errors)} | {vs.Sum(s => s.Non2xx)} |"));
            }
            sb.AppendLine();
        }
        sb.AppendLine("## Memory of an idle keep-alive connection (10,000 connections, one request each)");
        sb.AppendLine();
        sb.AppendLine("| variant | server RSS growth per connection |");
        sb.AppendLine("|---|---:|");
        foreach ((string name, double bytes) in idle)
        {
            sb.AppendLine(FormattableString.Invariant($"| {name} | {bytes / 1024:F2} KiB |"));
        }
        File.WriteAllText(settings.ResultPath("web.md"), sb.ToString());
    }

    private static string ContentRoot(PerfSettings settings) => Path.Combine(settings.RepoRoot, "samples", "WebApp");
}
