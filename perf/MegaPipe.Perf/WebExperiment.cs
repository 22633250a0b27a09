using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// samples/WebApp under wrk on each transport, and nginx from Debian serving the same: keep-alive,
// pipelined, Connection: close and a 6 KiB static file, server pinned to one CPU (one channel, one
// nginx worker), wrk to the other, variants interleaved round by round. Then the memory an idle
// keep-alive connection holds: the whole app's (RSS and live managed heap per connection over
// 10,000 connections), and the transport's own, under samples/PingPong's Kestrel connection
// handler (a connection that holds nothing but what the transport and Kestrel's connection
// bookkeeping give it).
//   dotnet run -c Release --project perf/MegaPipe.Perf -- web [--rounds 3] [--seconds 8] [--baseline-repo DIR]
public sealed class WebExperiment : IExperiment
{
    private const int IdleConnections = 10_000;

    private sealed record Variant(string Name, string Arguments, bool Baseline = false);

    private sealed record Scenario(string Name, string Description, string Path, int Connections, string WrkExtra);

    public string Name => "web";

    public string Summary => "samples/WebApp under wrk: Sockets, MegaPipe (default and inline) and nginx; keep-alive, pipelined, Connection: close, static; idle connection memory";

    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 6, 3);

    private static Variant[] Variants(PerfSettings s)
    {
        var all = new List<Variant>
        {
            new("sockets", "--transport sockets"),
            new("megapipe", "--transport megapipe --MegaPipe:ChannelCount 1"),
            new("megapipe-inline", "--transport megapipe --MegaPipe:ChannelCount 1 --MegaPipe:UnsafeInlineScheduling true"),
        };
        if (s.BaselineRepo is not null)
        {
            all.Add(new("megapipe-baseline", "--transport megapipe --MegaPipe:ChannelCount 1", Baseline: true));
        }
        if (File.Exists(NginxServer.Executable))
        {
            all.Add(new("nginx", ""));
        }
        return all.Where(v => s.Wants(v.Name)).ToArray();
    }

    private static Scenario[] Scenarios(PerfSettings settings) =>
    [
        new("keepalive", "keep-alive /plaintext, 256 connections", "/plaintext", 256, ""),
        new("pipelined", "pipelined /plaintext, 16 requests per write, 256 connections", "/plaintext", 256, $"-s {Path.Combine(settings.RepoRoot, "perf", "wrk", "pipeline.lua")}"),
        new("close", "Connection: close /plaintext, 64 connections", "/plaintext", 64, "-H \"Connection: close\""),
        new("static", "static 6 KiB file (UseStaticFiles), keep-alive, 64 connections", "/6k.html", 64, ""),
    ];

    private static readonly string[] s_idleVariants = ["sockets", "megapipe"];

    public int Steps(PerfSettings settings) => settings.Rounds * Scenarios(settings).Length * Variants(settings).Length + s_idleVariants.Length * 2;

    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        string webApp = PingPongExperiment.BuildSample(settings, "WebApp");
        string pingPong = PingPongExperiment.BuildSample(settings, "PingPong");
        string? baseline = settings.BaselineRepo is { } repo ? BuildBaseline(repo) : null;
        Variant[] variants = Variants(settings);
        Scenario[] scenarios = Scenarios(settings);
        ResultFile result = ResultFile.Start(Name, settings);
        result.Facts["cpuPlan"] = $"server on CPU {settings.ServerCpu} (one channel, one nginx worker), wrk (1 thread) on CPU {settings.ClientCpu}";
        result.Facts["variants"] = string.Join(',', variants.Select(v => v.Name));
        result.Facts["build"] = GitHead(settings.RepoRoot);
        if (settings.BaselineRepo is { } baselineRepo)
        {
            result.Facts["baseline"] = $"{baselineRepo} at {GitHead(baselineRepo)}";
        }
        foreach (Scenario scenario in scenarios)
        {
            result.Facts["scenario." + scenario.Name] = scenario.Description;
        }
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (Scenario scenario in scenarios)
            {
                foreach (Variant v in MicroExperiment.Rotate(variants, round))
                {
                    WrkRun run = v.Name == "nginx"
                        ? RunNginx(settings, scenario)
                        : RunWebApp(settings, v.Baseline ? baseline! : webApp, v, scenario);
                    result.Measurements.Add(new Measurement
                    {
                        Round = round,
                        Variant = v.Name,
                        Group = scenario.Name,
                        Throughput = run.Rps,
                        SyscallsPerOp = run.SyscallsPerRequest,
                        ServerCpuUsPerOp = run.CpuUsPerRequest,
                        ServerBusy = run.ServerBusy,
                        ClientBusy = run.ClientBusy,
                        OtherCpus = run.OtherCpus,
                        Errors = run.Errors + run.Non2xx,
                        ServerCpus = 1,
                        ClientCpus = 1,
                    });
                    progress.Step(FormattableString.Invariant($"web round {round} {scenario.Name,-10} {v.Name,-18} {run.Rps,10:F0} req/s  {run.SyscallsPerRequest,6:F3} syscalls/req  {run.CpuUsPerRequest,6:F2} µs CPU/req  server {run.ServerBusy:P0} wrk {run.ClientBusy:P0}  other {run.OtherCpus:F2} CPUs  errors {run.Errors} non-2xx {run.Non2xx}"));
                }
            }
        }
        foreach (string name in s_idleVariants)
        {
            (double rss, double heap) = MeasureIdleWebApp(settings, webApp, name == "sockets" ? "--transport sockets" : "--transport megapipe --MegaPipe:ChannelCount 1");
            result.Measurements.Add(new Measurement { Round = 1, Variant = name, Group = "idle-app", Extra = new() { ["rssBytes"] = rss, ["heapBytes"] = heap } });
            progress.Step(FormattableString.Invariant($"idle WebApp {name,-10} {rss / 1024:F2} KiB RSS, {heap / 1024:F2} KiB managed heap per idle keep-alive connection"));
            (rss, heap, string? types) = MeasureIdleConnectionHandler(settings, pingPong, name == "sockets" ? "kestrel-sockets" : "kestrel-megapipe");
            result.Measurements.Add(new Measurement { Round = 1, Variant = name, Group = "idle-transport", Extra = new() { ["rssBytes"] = rss, ["heapBytes"] = heap } });
            if (types is not null)
            {
                result.Facts["idleTypes." + name] = types;
            }
            progress.Step(FormattableString.Invariant($"idle connection handler {name,-10} {rss / 1024:F2} KiB RSS, {heap / 1024:F2} KiB managed heap per idle connection"));
        }
        result.Save(settings);
        Render(result, settings);
        return result;
    }

    private static WrkRun RunWebApp(PerfSettings settings, string exe, Variant variant, Scenario scenario)
    {
        int port = ProcessRunner.FreePort();
        using Process server = ProcessRunner.Start(exe, $"{variant.Arguments} --urls http://127.0.0.1:{port} --contentRoot {ContentRoot(settings)}", settings.ServerCpu, environment: ProcessRunner.DotNetEnvironment);
        try
        {
            ServerProbe.WaitForPort(port);
            return WrkRun.Measure(settings, $"http://127.0.0.1:{port}{scenario.Path}", scenario.Connections, scenario.WrkExtra, [server.Id]);
        }
        finally
        {
            ProcessRunner.Stop(server);
        }
    }

    private static WrkRun RunNginx(PerfSettings settings, Scenario scenario)
    {
        int port = ProcessRunner.FreePort();
        string root = Path.Combine(settings.RepoRoot, "samples", "WebApp", "wwwroot");
        using var nginx = new NginxServer(settings, port, "text/html html;",
            $$"""location = /plaintext { default_type text/plain; return 200 "Hello, World!"; } location / { root {{root}}; }""");
        return WrkRun.Measure(settings, $"http://127.0.0.1:{port}{scenario.Path}", scenario.Connections, scenario.WrkExtra, nginx.WorkerPids);
    }

    // Opens IdleConnections keep-alive connections that each complete one request, then reports
    // how much the server's resident memory and live managed heap (after a full collection) grew per connection.
    private static (double Rss, double Heap) MeasureIdleWebApp(PerfSettings settings, string exe, string arguments)
    {
        int port = ProcessRunner.FreePort();
        using Process server = ProcessRunner.Start(exe, $"{arguments} --diagnostics --urls http://127.0.0.1:{port} --contentRoot {ContentRoot(settings)}", settings.ServerCpu, environment: ProcessRunner.DotNetEnvironment);
        var sockets = new List<Socket>(IdleConnections);
        try
        {
            ServerProbe.WaitForPort(port);
            ProcessRunner.Run("taskset", $"-c {settings.ClientCpu} wrk -t1 -c64 -d2s http://127.0.0.1:{port}/plaintext", TimeSpan.FromSeconds(30));
            double heapBefore = DiagnosticsHeap(port);
            long rssBefore = ServerProbe.RssBytes(server.Id);
            OpenIdle(port, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), sockets);
            double heapAfter = DiagnosticsHeap(port);
            long rssAfter = ServerProbe.RssBytes(server.Id);
            return ((rssAfter - rssBefore) / (double)IdleConnections, (heapAfter - heapBefore) / IdleConnections);
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

    // The same with samples/PingPong's Kestrel connection handler (an echo awaiting its input).
    // With dotnet-gcdump installed, also the types the idle connections hold on MegaPipe.
    private static (double Rss, double Heap, string? Types) MeasureIdleConnectionHandler(PerfSettings settings, string exe, string transport)
    {
        int port = ProcessRunner.FreePort();
        using Process server = ProcessRunner.Start(exe, $"server --port {port} --threads 1 --size 64 --transport {transport}", settings.ServerCpu, redirectInput: true, environment: ProcessRunner.DotNetEnvironment);
        var sockets = new List<Socket>(IdleConnections);
        try
        {
            ProcessRunner.WaitForLine(server, l => l.StartsWith("listening", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            // Warm the pools and code up with a first wave of connections, closed again.
            OpenIdle(port, new byte[64], sockets);
            foreach (Socket s in sockets)
            {
                s.Dispose();
            }
            sockets.Clear();
            Thread.Sleep(1000);
            double heapBefore = PingPongHeap(server);
            long rssBefore = ServerProbe.RssBytes(server.Id);
            OpenIdle(port, new byte[64], sockets);
            double heapAfter = PingPongHeap(server);
            long rssAfter = ServerProbe.RssBytes(server.Id);
            string? types = transport == "kestrel-megapipe" ? GcDumpTypes(server.Id) : null;
            return ((rssAfter - rssBefore) / (double)IdleConnections, (heapAfter - heapBefore) / IdleConnections, types);
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

    // IdleConnections connections, each sends message and reads the first answer, then stays open.
    private static void OpenIdle(int port, byte[] message, List<Socket> sockets)
    {
        for (int i = 0; i < IdleConnections; i += 500)
        {
            Task<Socket>[] batch = Enumerable.Range(0, Math.Min(500, IdleConnections - i)).Select(async _ =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(IPAddress.Loopback, port);
                await s.SendAsync(message);
                await s.ReceiveAsync(new byte[1024]);
                return s;
            }).ToArray();
            Task.WaitAll(batch);
            sockets.AddRange(batch.Select(t => t.Result));
        }
        // Let the server settle (pending completions, deferred frees).
        Thread.Sleep(2000);
    }

    private static double DiagnosticsHeap(int port)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using JsonDocument json = JsonDocument.Parse(client.GetStringAsync($"http://127.0.0.1:{port}/_diag?gc=true").GetAwaiter().GetResult());
        return json.RootElement.GetProperty("gc.heap_bytes").GetDouble();
    }

    private static double PingPongHeap(Process server)
    {
        server.StandardInput.WriteLine("heap");
        string line = ProcessRunner.WaitForLine(server, l => l.StartsWith("{\"heapBytes\"", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        using JsonDocument json = JsonDocument.Parse(line);
        return json.RootElement.GetProperty("heapBytes").GetDouble();
    }

    // The largest types on the heap by size, per idle connection ("Type 123 B; ..."), from dotnet-gcdump; null without it.
    private static string? GcDumpTypes(int pid)
    {
        string tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-gcdump");
        if (!File.Exists(tool))
        {
            return null;
        }
        string file = Path.Combine(Path.GetTempPath(), $"megapipe-idle-{pid}.gcdump");
        try
        {
            ProcessRunner.Run(tool, $"collect -p {pid} -o {file}", TimeSpan.FromMinutes(2));
            string report = ProcessRunner.Run(tool, $"report {file}", TimeSpan.FromMinutes(2));
            var rows = new List<string>();
            foreach (string line in report.Split('\n'))
            {
                // "   1,234,567   10,000  Type.Name (Bytes > 100K)" : size, count, type.
                string[] parts = line.Trim().Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 3 && long.TryParse(parts[0], NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out long bytes)
                    && long.TryParse(parts[1], NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out long count) && count >= IdleConnections / 2)
                {
                    rows.Add(FormattableString.Invariant($"{parts[2].Split(" (")[0]} {bytes / (double)IdleConnections:F0} B"));
                }
            }
            return rows.Count == 0 ? null : string.Join("; ", rows.Take(25));
        }
        catch (Exception e) when (e is TimeoutException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string BuildBaseline(string repo)
    {
        string project = Path.Combine(repo, "samples", "WebApp", "WebApp.csproj");
        string output = ProcessRunner.Run("dotnet", $"build -c Release \"{project}\" -v q -nologo", TimeSpan.FromMinutes(5));
        string exe = Path.Combine(repo, "samples", "WebApp", "bin", "Release", "net10.0", "WebApp");
        return File.Exists(exe) ? exe : throw new InvalidOperationException($"building the baseline WebApp in {repo} failed:\n{output}");
    }

    private static string GitHead(string repo)
    {
        try
        {
            return ProcessRunner.Run("git", $"-C \"{repo}\" log -1 --format=%h", TimeSpan.FromSeconds(30)).Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "?";
        }
    }

    private static string ContentRoot(PerfSettings settings) => Path.Combine(settings.RepoRoot, "samples", "WebApp");

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] variants = MicroReport.VariantNames(r);
        var md = new Markdown();
        md.Heading(1, "samples/WebApp under wrk: MegaPipe, Kestrel's Sockets transport and nginx");
        md.Paragraph("The same minimal app on every transport (GET /plaintext, and UseStaticFiles for a 6 KiB file); nginx returns the same body from its config and serves the same file. " +
            "megapipe = `UseMegaPipe()` with its defaults (application code on the thread pool), one channel; megapipe-inline = `UnsafeInlineScheduling` (application code on the channel thread); sockets = Kestrel's Sockets transport" +
            (variants.Contains("megapipe-baseline") ? $"; megapipe-baseline = the same as megapipe, built from {r.Facts.GetValueOrDefault("baseline")}" : "") + ". " +
            "The .NET servers run with `DOTNET_TC_CallCountingDelayMs=0` (tier-1 code within the warm-up: steady state).");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. Build {r.Facts.GetValueOrDefault("build", "?")}. On keep-alive one wrk thread is the ceiling: compare server CPU per request.");
        foreach (string scenario in r.Measurements.Select(m => m.Group).Where(g => !g.StartsWith("idle", StringComparison.Ordinal)).Distinct())
        {
            double T(string v) => r.Median(v, 0, m => m.Throughput, scenario);
            double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp, scenario);
            md.Heading(2, r.Facts.GetValueOrDefault("scenario." + scenario, scenario));
            md.Table(["variant", "requests/s", "ratio to sockets", "server CPU µs / request", "CPU ratio to sockets", "CPU ratio to nginx", "system calls / request", "server busy", "wrk busy", "errors + non-2xx"],
                variants.Where(v => r.Of(v, 0, scenario).Any()).Select(v => (IReadOnlyList<string>)
                [
                    v, N(T(v)), Ratio(T(v) / T("sockets")), N(C(v), "F2"), Ratio(C(v) / C("sockets")),
                    variants.Contains("nginx") ? Ratio(C(v) / C("nginx")) : "–",
                    N(r.Median(v, 0, m => m.SyscallsPerOp, scenario), "F3"),
                    Percent(r.Median(v, 0, m => m.ServerBusy, scenario)), Percent(r.Median(v, 0, m => m.ClientBusy, scenario)),
                    r.Measurements.Where(m => m.Variant == v && m.Group == scenario).Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
                ]));
        }
        md.Heading(2, $"Memory of an idle keep-alive connection ({IdleConnections:N0} connections, one request or message each)");
        md.Table(["server", "variant", "RSS growth per connection", "live managed heap per connection"],
            r.Measurements.Where(m => m.Group.StartsWith("idle", StringComparison.Ordinal)).Select(m => (IReadOnlyList<string>)
            [
                m.Group == "idle-app" ? "samples/WebApp (HTTP/1.1 keep-alive)" : "Kestrel connection handler (samples/PingPong)",
                m.Variant,
                N(m.Extra!["rssBytes"] / 1024, "F2") + " KiB",
                N(m.Extra!["heapBytes"] / 1024, "F2") + " KiB",
            ]));
        md.Paragraph("The connection-handler server holds what the transport gives a connection plus Kestrel's connection bookkeeping; the difference between the two servers is what Kestrel's HTTP/1.1 connection holds while it waits for the next request.");
        if (r.Facts.TryGetValue("idleTypes.megapipe", out string? types))
        {
            md.Paragraph("What an idle connection handler's connection holds on MegaPipe, by type (dotnet-gcdump, per connection): " + types + ".");
        }
        md.Heading(2, "Reading it");
        md.Bullet($"Other processes on this shared machine used {N(Stats.Median(r.Measurements.Where(m => !double.IsNaN(m.OtherCpus)).Select(m => m.OtherCpus)), "F2")} CPUs during the median run ({N(Stats.Max(r.Measurements.Where(m => !double.IsNaN(m.OtherCpus)).Select(m => m.OtherCpus)), "F2")} at most).");
        md.Line();
        File.WriteAllText(settings.ResultPath("web.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        double C(string v, string s) => r.Median(v, 0, m => m.ServerCpuUsPerOp, s);
        double T(string v, string s) => r.Median(v, 0, m => m.Throughput, s);
        yield return $"web: server CPU per request, megapipe / sockets: keep-alive {Ratio(C("megapipe", "keepalive") / C("sockets", "keepalive"))}, Connection: close {Ratio(C("megapipe", "close") / C("sockets", "close"))}; pipelined requests/s {Ratio(T("megapipe", "pipelined") / T("sockets", "pipelined"))}";
    }
}
