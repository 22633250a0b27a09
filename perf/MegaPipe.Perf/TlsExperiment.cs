using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using static MegaPipe.Perf.Markdown;

namespace MegaPipe.Perf;

// HTTPS (issue 10): the same RSA-2048 certificate, TLS 1.3, on Kestrel's UseHttps over the Sockets transport, UseHttps
// over MegaPipe (SslStream above the transport), UseMegaPipeHttps (TLS on the channel thread) and nginx with ssl. The
// server on one pinned CPU (one channel, one nginx worker), the load generator on the other, variants interleaved round
// by round: keep-alive /plaintext and Connection: close (a full handshake per request) under wrk; full and resumed
// handshakes under `openssl s_time -new / -reuse`; the 6.3 KiB file through samples/StaticServer; HTTP/2 over TLS
// under h2load. Then the latency of keep-alive requests on the channel during a handshake storm (RSA and ECDSA), and
// the memory of an idle TLS connection.
//   dotnet run -c Release --project perf/MegaPipe.Perf -- tls [--rounds 3] [--seconds 5] [--variants a,b]
public sealed partial class TlsExperiment : IExperiment
{
    // The paper's mean file size, one file (the static experiments' mix averages this).
    private const int StaticFileBytes = 6451;
    private const int IdleConnections = 2000;

    private sealed record Variant(string Name, string Description, string Transport, string Tls);

    // Tickets: session tickets on (resumption possible); off makes every wrk reconnection a full handshake (wrk keeps
    // its session across reconnections and resumes whatever the server lets it).
    private sealed record Scenario(string Name, string Description, Tool Tool, string Path, int Connections, string Extra, bool Tickets = true);

    private enum Tool
    {
        Wrk,
        STimeNew,
        STimeReuse,
        H2Load,
    }

    private static readonly Variant[] s_variants =
    [
        new("sockets-usehttps", "Kestrel's UseHttps (SslStream) on the Sockets transport", "sockets", "sslstream"),
        new("megapipe-usehttps", "Kestrel's UseHttps (SslStream) on the MegaPipe transport", "megapipe", "sslstream"),
        new("megapipe-channel", "UseMegaPipeHttps: TLS terminated on the channel thread", "megapipe", "channel"),
        new("nginx", "nginx 1.22 with ssl (one worker)", "", ""),
    ];

    public string Name => "tls";

    public string Summary => "HTTPS: UseHttps on Sockets and MegaPipe, UseMegaPipeHttps (TLS on the channel) and nginx ssl; keep-alive, Connection: close, s_time full and resumed handshakes, 6.3 KiB static file, HTTP/2 (h2load); handshake storm latency; idle TLS connection memory";

    // A warm-up long enough for tier-1 code of the handshake and connection paths: with 2 s a fresh server's full
    // handshakes still measured 777 µs (JIT on the server's one CPU), 482-495 µs from 6 s on.
    public PerfSettings Configure(PerfSettings settings) => settings.WithDefaults(3, 5, 6);

    private static Variant[] Variants(PerfSettings s) => s_variants.Where(v => s.Wants(v.Name) && (v.Name != "nginx" || File.Exists(NginxServer.Executable))).ToArray();

    private static Scenario[] Scenarios() =>
    [
        new("keepalive", "keep-alive /plaintext, 128 connections (wrk)", Tool.Wrk, "/plaintext", 128, ""),
        new("close", "Connection: close /plaintext, 64 connections, session tickets off: a full handshake per request (wrk)", Tool.Wrk, "/plaintext", 64, "-H \"Connection: close\"", Tickets: false),
        new("close-resumed", "Connection: close /plaintext, 64 connections, session tickets on: wrk resumes each reconnection (TLS 1.3 tickets)", Tool.Wrk, "/plaintext", 64, "-H \"Connection: close\""),
        new("full", "full handshakes, one connection at a time, one request each (openssl s_time -new)", Tool.STimeNew, "/plaintext", 1, ""),
        new("resumed", "resumed handshakes, one connection at a time, one request each (openssl s_time -reuse)", Tool.STimeReuse, "/plaintext", 1, ""),
        new("static", $"a {StaticFileBytes}-byte file through samples/StaticServer (nginx: the same file), keep-alive, 64 connections (wrk)", Tool.Wrk, "/f.html", 64, ""),
        new("h2", "HTTP/2 over TLS: /plaintext, 16 connections x 16 streams (h2load, one thread)", Tool.H2Load, "/plaintext", 16, "-m 16"),
    ];

    public int Steps(PerfSettings settings) => settings.Rounds * Scenarios().Length * Variants(settings).Length + Variants(settings).Length * 3;

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public ResultFile? Run(PerfSettings settings, Progress progress)
    {
        string webApp = PingPongExperiment.BuildSample(settings, "WebApp");
        string staticServer = PingPongExperiment.BuildSample(settings, "StaticServer");
        string dir = Directory.CreateTempSubdirectory("megapipe-tls-perf").FullName;
        // nginx's worker (www-data) reads the served file.
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        try
        {
            (string rsaCert, string rsaKey) = WriteCertificate(dir, "rsa", ecdsa: false);
            (string ecCert, string ecKey) = WriteCertificate(dir, "ecdsa", ecdsa: true);
            string tree = Path.Combine(dir, "site");
            Directory.CreateDirectory(tree);
            File.SetUnixFileMode(tree, (UnixFileMode)0b111_101_101);
            byte[] file = new byte[StaticFileBytes];
            new Random(1).NextBytes(file);
            File.WriteAllBytes(Path.Combine(tree, "f.html"), file);
            File.SetLastWriteTimeUtc(Path.Combine(tree, "f.html"), DateTime.UtcNow.AddHours(-1));
            var servers = new Servers(settings, webApp, staticServer, tree, rsaCert, rsaKey);

            Variant[] variants = Variants(settings);
            Scenario[] scenarios = Scenarios();
            ResultFile result = ResultFile.Start(Name, settings);
            result.Facts["cpuPlan"] = $"server on CPU {settings.ServerCpu} (one channel, one nginx worker), the load generator (one thread) on CPU {settings.ClientCpu}";
            result.Facts["variants"] = string.Join(',', variants.Select(v => v.Name));
            result.Facts["certificate"] = "RSA-2048, self-signed, the same PEM files for every server";
            result.Facts["loadBefore"] = MachineInfo.ReadLoadAverage();
            result.Facts["rsaSignsPerSecond"] = RsaSignsPerSecond(settings);
            foreach (Variant v in variants)
            {
                result.Facts["description." + v.Name] = v.Description;
                result.Facts["negotiated." + v.Name] = servers.Negotiated(v);
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
                        Sample s = servers.Measure(v, scenario);
                        result.Measurements.Add(new Measurement
                        {
                            Round = round,
                            Variant = v.Name,
                            Group = scenario.Name,
                            Throughput = s.Rate,
                            ServerCpuUsPerOp = s.CpuUsPerOp,
                            ServerBusy = s.ServerBusy,
                            ClientBusy = s.ClientBusy,
                            OtherCpus = s.OtherCpus,
                            Errors = s.Errors,
                            ServerCpus = 1,
                            ClientCpus = 1,
                            Extra = double.IsNaN(s.ResumedShare) ? null : new() { ["resumedShare"] = s.ResumedShare },
                        });
                        progress.Step(FormattableString.Invariant($"tls round {round} {scenario.Name,-9} {v.Name,-18} {s.Rate,10:F0} /s  {s.CpuUsPerOp,7:F1} µs CPU/op  server {s.ServerBusy:P0} client {s.ClientBusy:P0}  other {s.OtherCpus:F2} CPUs  errors {s.Errors}"));
                    }
                }
            }
            // Keep-alive latency on the server's one channel alone and during a handshake storm, RSA and ECDSA.
            foreach (Variant v in variants)
            {
                foreach ((string key, string cert, string keyFile) in new[] { ("rsa", rsaCert, rsaKey), ("ecdsa", ecCert, ecKey) })
                {
                    if (key == "ecdsa" && v.Name != "megapipe-channel" && v.Name != "nginx")
                    {
                        continue;
                    }
                    StormSample storm = servers.Storm(v, cert, keyFile);
                    result.Measurements.Add(new Measurement
                    {
                        Round = 1,
                        Variant = v.Name,
                        Group = "storm-" + key,
                        Extra = new()
                        {
                            ["aloneP50Ms"] = storm.Alone.P50,
                            ["aloneP99Ms"] = storm.Alone.P99,
                            ["aloneMaxMs"] = storm.Alone.Max,
                            ["aloneRps"] = storm.Alone.Rps,
                            ["stormP50Ms"] = storm.During.P50,
                            ["stormP99Ms"] = storm.During.P99,
                            ["stormMaxMs"] = storm.During.Max,
                            ["stormRps"] = storm.During.Rps,
                            ["handshakesPerSecond"] = storm.HandshakesPerSecond,
                        },
                    });
                    progress.Step(FormattableString.Invariant($"tls storm {key,-5} {v.Name,-18} keep-alive p99 {storm.Alone.P99:F2} -> {storm.During.P99:F2} ms (max {storm.During.Max:F1} ms) during {storm.HandshakesPerSecond:F0} handshakes/s"));
                }
            }
            foreach (Variant v in variants)
            {
                (double rss, double heap) = servers.IdleMemory(v);
                result.Measurements.Add(new Measurement { Round = 1, Variant = v.Name, Group = "idle", Extra = new() { ["rssBytes"] = rss, ["heapBytes"] = heap } });
                progress.Step(FormattableString.Invariant($"tls idle {v.Name,-18} {rss / 1024:F2} KiB RSS, {heap / 1024:F2} KiB managed heap per idle TLS connection"));
            }
            result.Facts["loadAfter"] = MachineInfo.ReadLoadAverage();
            result.Save(settings);
            Render(result, settings);
            return result;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    public void Render(ResultFile r, PerfSettings settings)
    {
        string[] variants = MicroReport.VariantNames(r);
        var md = new Markdown();
        md.Heading(1, "HTTPS: TLS on the channel (UseMegaPipeHttps) against Kestrel's UseHttps and nginx");
        md.Paragraph("The same RSA-2048 certificate and TLS 1.3 on every server; samples/WebApp (GET /plaintext) for the Kestrel variants, samples/StaticServer for the static file, nginx returning the same body and serving the same file. " +
            string.Join("; ", variants.Select(v => $"{v} = {r.Facts.GetValueOrDefault("description." + v, v)} (negotiates {r.Facts.GetValueOrDefault("negotiated." + v, "?")})")) + ". " +
            "The .NET servers run with `DOTNET_TC_CallCountingDelayMs=0` (tier-1 code within the warm-up: steady state).");
        md.Paragraph(r.Provenance());
        md.Paragraph($"CPUs: {r.Facts["cpuPlan"]}. Load average before the run {r.Facts.GetValueOrDefault("loadBefore", "?")}, after {r.Facts.GetValueOrDefault("loadAfter", "?")}. " +
            $"`openssl speed rsa2048` on the server CPU: {r.Facts.GetValueOrDefault("rsaSignsPerSecond", "?")} signs/s, so a full RSA handshake costs at least {N(1e6 / ParseOrNaN(r.Facts.GetValueOrDefault("rsaSignsPerSecond")), "F0")} µs of server CPU.");
        string[] scenarios = r.Measurements.Select(m => m.Group).Where(g => !g.StartsWith("storm", StringComparison.Ordinal) && g != "idle").Distinct().ToArray();
        foreach (string scenario in scenarios)
        {
            double T(string v) => r.Median(v, 0, m => m.Throughput, scenario);
            double C(string v) => r.Median(v, 0, m => m.ServerCpuUsPerOp, scenario);
            bool handshakes = scenario is "full" or "resumed";
            md.Heading(2, r.Facts.GetValueOrDefault("scenario." + scenario, scenario));
            md.Table(["variant", handshakes ? "connections/s" : "requests/s", "ratio to nginx", handshakes ? "server CPU µs / connection" : "server CPU µs / request", "CPU ratio to nginx", "CPU ratio to sockets-usehttps", "server busy", "client busy", "resumed", "errors"],
                variants.Where(v => r.Of(v, 0, scenario).Any()).Select(v => (IReadOnlyList<string>)
                [
                    v, N(T(v)), variants.Contains("nginx") ? Ratio(T(v) / T("nginx")) : "–", N(C(v), "F1"),
                    variants.Contains("nginx") ? Ratio(C(v) / C("nginx")) : "–",
                    variants.Contains("sockets-usehttps") ? Ratio(C(v) / C("sockets-usehttps")) : "–",
                    Percent(r.Median(v, 0, m => m.ServerBusy, scenario)), Percent(r.Median(v, 0, m => m.ClientBusy, scenario)),
                    handshakes ? Percent(r.Median(v, 0, m => m.Extra?.GetValueOrDefault("resumedShare", double.NaN) ?? double.NaN, scenario)) : "–",
                    r.Measurements.Where(m => m.Variant == v && m.Group == scenario).Sum(m => m.Errors).ToString(CultureInfo.InvariantCulture),
                ]));
        }
        if (variants.Contains("nginx") && variants.Contains("megapipe-channel"))
        {
            double C(string v, string s) => r.Median(v, 0, m => m.ServerCpuUsPerOp, s);
            double T(string v, string s) => r.Median(v, 0, m => m.Throughput, s);
            md.Heading(2, "Targets (issue 10): megapipe-channel against nginx");
            (string Name, double Value, double Limit, bool AtMost)[] targets =
            [
                ("keep-alive: server CPU per request", C("megapipe-channel", "keepalive") / C("nginx", "keepalive"), 1.1, true),
                ("Connection: close (full handshake): server CPU per request", C("megapipe-channel", "close") / C("nginx", "close"), 1.1, true),
                ("full handshakes (s_time -new): server CPU per connection", C("megapipe-channel", "full") / C("nginx", "full"), 1.1, true),
                ("resumed handshakes (s_time -reuse): server CPU per connection", C("megapipe-channel", "resumed") / C("nginx", "resumed"), 1.5, true),
                ("StaticServer, 6.3 KiB file: requests/s", T("megapipe-channel", "static") / T("nginx", "static"), 1.0, false),
            ];
            md.Table(["target", "measured", "limit", ""], targets.Select(t => (IReadOnlyList<string>)
            [
                t.Name, Ratio(t.Value), (t.AtMost ? "<= " : ">= ") + Ratio(t.Limit),
                double.IsNaN(t.Value) ? "not measured" : (t.AtMost ? t.Value <= t.Limit : t.Value >= t.Limit) ? "met" : "missed",
            ]));
        }
        Measurement[] storms = r.Measurements.Where(m => m.Group.StartsWith("storm", StringComparison.Ordinal)).ToArray();
        if (storms.Length > 0)
        {
            md.Heading(2, "Keep-alive latency during a handshake storm");
            md.Paragraph("wrk with 16 keep-alive connections and `--latency` on /plaintext, alone and then while a second wrk makes a full handshake per request on 32 connections, both on the client CPU; the server on its one CPU (one channel: a private-key operation on the channel stalls that channel's other connections for its duration).");
            md.Table(["variant", "certificate", "alone p50", "alone p99", "storm p50", "storm p99", "storm max", "keep-alive requests/s alone / storm", "handshakes/s during the storm"],
                storms.Select(m => (IReadOnlyList<string>)
                [
                    m.Variant, m.Group == "storm-rsa" ? "RSA-2048" : "ECDSA P-256",
                    N(m.Extra!["aloneP50Ms"], "F2") + " ms", N(m.Extra["aloneP99Ms"], "F2") + " ms",
                    N(m.Extra["stormP50Ms"], "F2") + " ms", N(m.Extra["stormP99Ms"], "F2") + " ms", N(m.Extra["stormMaxMs"], "F1") + " ms",
                    N(m.Extra["aloneRps"]) + " / " + N(m.Extra["stormRps"]), N(m.Extra["handshakesPerSecond"]),
                ]));
        }
        Measurement[] idle = r.Measurements.Where(m => m.Group == "idle").ToArray();
        if (idle.Length > 0)
        {
            md.Heading(2, $"Memory of an idle TLS connection ({IdleConnections:N0} keep-alive connections, one request each)");
            md.Table(["variant", "server RSS growth per connection", "live managed heap per connection"], idle.Select(m => (IReadOnlyList<string>)
            [
                m.Variant, N(m.Extra!["rssBytes"] / 1024, "F2") + " KiB", m.Variant == "nginx" ? "–" : N(m.Extra["heapBytes"] / 1024, "F2") + " KiB",
            ]));
        }
        md.Heading(2, "Reading it");
        md.Bullet($"Other processes on this shared machine used {N(Stats.Median(r.Measurements.Where(m => !double.IsNaN(m.OtherCpus)).Select(m => m.OtherCpus)), "F2")} CPUs during the median run ({N(Stats.Max(r.Measurements.Where(m => !double.IsNaN(m.OtherCpus)).Select(m => m.OtherCpus)), "F2")} at most).");
        md.Bullet("One load-generator thread is the ceiling on keep-alive (its TLS costs as much as the server's): compare server CPU per request there, not requests/s.");
        md.Line();
        File.WriteAllText(settings.ResultPath("tls.md"), md.ToString());
    }

    public IEnumerable<string> Headlines(ResultFile r)
    {
        double C(string v, string s) => r.Median(v, 0, m => m.ServerCpuUsPerOp, s);
        double T(string v, string s) => r.Median(v, 0, m => m.Throughput, s);
        yield return $"tls: UseMegaPipeHttps server CPU per request / nginx's: keep-alive {Ratio(C("megapipe-channel", "keepalive") / C("nginx", "keepalive"))}, Connection: close {Ratio(C("megapipe-channel", "close") / C("nginx", "close"))}, resumed {Ratio(C("megapipe-channel", "resumed") / C("nginx", "resumed"))}; StaticServer 6.3 KiB requests/s {Ratio(T("megapipe-channel", "static") / T("nginx", "static"))} nginx's ([tls.md](perf/results/tls.md))";
    }

    private static double ParseOrNaN(string? value) => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : double.NaN;

    // ResumedShare: of s_time's connections, those that resumed (a server whose tickets do not work resumes none).
    private sealed record Sample(double Rate, double CpuUsPerOp, double ServerBusy, double ClientBusy, double OtherCpus, long Errors, double ResumedShare = double.NaN);

    private sealed record Latency(double P50, double P99, double Max, double Rps);

    private sealed record StormSample(Latency Alone, Latency During, double HandshakesPerSecond);

    // Starts the servers of each variant and drives the load generators against them.
    private sealed class Servers(PerfSettings settings, string webApp, string staticServer, string tree, string certificate, string key)
    {
        private string Cpu => settings.ClientCpu.ToString(CultureInfo.InvariantCulture);


        public Sample Measure(Variant v, Scenario scenario)
        {
            using Running server = Start(v, scenario.Name == "static", certificate, key, tickets: scenario.Tickets);
            string url = $"https://127.0.0.1:{server.Port}{scenario.Path}";
            return scenario.Tool switch
            {
                Tool.Wrk => FromWrk(WrkRun.Measure(settings, url, scenario.Connections, scenario.Extra, server.Pids)),
                Tool.H2Load => H2Load(url, scenario, server.Pids),
                _ => STime(server.Port, scenario, server.Pids),
            };
        }

        public string Negotiated(Variant v)
        {
            using Running server = Start(v, staticFiles: false, certificate, key);
            string output = ProcessRunner.Run("bash", $"-c \"echo | openssl s_client -connect 127.0.0.1:{server.Port} -alpn h2,http/1.1 2>&1\"", TimeSpan.FromSeconds(30));
            Match protocol = NegotiatedProtocol().Match(output);
            Match alpn = NegotiatedAlpn().Match(output);
            return protocol.Success ? $"{protocol.Groups[1].Value} {protocol.Groups[2].Value}, ALPN {(alpn.Success ? alpn.Groups[1].Value : "none")}" : "?";
        }

        private static Sample FromWrk(WrkRun run) => new(run.Rps, run.CpuUsPerRequest, run.ServerBusy, run.ClientBusy, run.OtherCpus, run.Errors + run.Non2xx);

        private Sample H2Load(string url, Scenario scenario, int[] pids)
        {
            string Command(double seconds) => $"h2load -t1 -c{scenario.Connections} {scenario.Extra} -D {Math.Max(1, Math.Ceiling(seconds)).ToString(CultureInfo.InvariantCulture)} {url}";
            ProcessRunner.RunTimed(Cpu, Command(settings.Warmup), TimeSpan.FromSeconds(settings.Warmup + 60));
            return Window(pids, () =>
            {
                (string output, double cpu, double wall) = ProcessRunner.RunTimed(Cpu, Command(settings.Seconds), TimeSpan.FromSeconds(settings.Seconds + 60));
                Match done = H2LoadRequests().Match(output);
                long succeeded = done.Success ? long.Parse(done.Groups[2].Value, CultureInfo.InvariantCulture) : 0;
                long total = done.Success ? long.Parse(done.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
                return (succeeded, cpu / wall, total - succeeded);
            });
        }

        private Sample STime(int port, Scenario scenario, int[] pids)
        {
            string mode = scenario.Tool == Tool.STimeReuse ? "-reuse" : "-new";
            string Command(double seconds) => $"openssl s_time -connect 127.0.0.1:{port} {mode} -time {Math.Max(1, Math.Ceiling(seconds)).ToString(CultureInfo.InvariantCulture)} -www {scenario.Path}";
            ProcessRunner.RunTimed(Cpu, Command(settings.Warmup), TimeSpan.FromSeconds(settings.Warmup + 60));
            double resumedShare = double.NaN;
            Sample sample = Window(pids, () =>
            {
                (string output, double cpu, double wall) = ProcessRunner.RunTimed(Cpu, Command(settings.Seconds), TimeSpan.FromSeconds(settings.Seconds + 60));
                // "N connections in T real seconds": the last such line is the -new or -reuse run asked for.
                MatchCollection runs = STimeConnections().Matches(output);
                long connections = runs.Count == 0 ? 0 : long.Parse(runs[^1].Groups[1].Value, CultureInfo.InvariantCulture);
                // s_time prints 'r' for a resumed connection and '*' for a full handshake.
                long reused = ReusedMarks().Matches(output).Sum(m => m.Length);
                resumedShare = connections == 0 ? double.NaN : reused / (double)connections;
                return (connections, cpu / wall, connections == 0 ? 1 : 0);
            });
            return sample with { ResumedShare = resumedShare };
        }

        // The server's CPU time and the machine's over one measured run: (operations, client busy, errors).
        private static Sample Window(int[] pids, Func<(long Operations, double ClientBusy, long Errors)> run)
        {
            double before = pids.Sum(ServerProbe.CpuSeconds);
            SystemCpu system0 = SystemCpu.Read();
            var watch = Stopwatch.StartNew();
            (long operations, double clientBusy, long errors) = run();
            double window = watch.Elapsed.TotalSeconds;
            double server = pids.Sum(ServerProbe.CpuSeconds) - before;
            double system = SystemCpu.Read().BusySeconds - system0.BusySeconds;
            return new Sample(operations / window, server * 1e6 / Math.Max(1, operations), server / window, clientBusy,
                Math.Max(0, system - server - clientBusy) / window, errors);
        }

        // Keep-alive requests on 16 connections (wrk --latency) for the measured time, alone, then again while a
        // second wrk makes a full handshake per request on 32 connections (both load generators on the client CPU).
        public StormSample Storm(Variant v, string cert, string keyFile)
        {
            using Running server = Start(v, staticFiles: false, cert, keyFile);
            string keepAlive = $"wrk -t1 -c16 -d{Seconds} --latency https://127.0.0.1:{server.Port}/plaintext";
            ProcessRunner.RunTimed(Cpu, $"wrk -t1 -c16 -d{Math.Max(1, Math.Ceiling(settings.Warmup))}s https://127.0.0.1:{server.Port}/plaintext", TimeSpan.FromSeconds(settings.Warmup + 30));
            Latency alone = ParseLatency(ProcessRunner.RunTimed(Cpu, keepAlive, TimeSpan.FromSeconds(settings.Seconds + 60)).Output);
            string storm = $"wrk -t1 -c32 -d{Seconds} -H \"Connection: close\" https://127.0.0.1:{server.Port}/plaintext";
            Task<(string Output, double Cpu, double Wall)> stormRun = Task.Run(() => ProcessRunner.RunTimed(Cpu, storm, TimeSpan.FromSeconds(settings.Seconds + 60)));
            Latency during = ParseLatency(ProcessRunner.RunTimed(Cpu, keepAlive, TimeSpan.FromSeconds(settings.Seconds + 60)).Output);
            double handshakes = ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(stormRun.Result.Output));
            return new StormSample(alone, during, handshakes);
        }

        private string Seconds => Math.Max(1, Math.Ceiling(settings.Seconds)).ToString(CultureInfo.InvariantCulture) + "s";

        private static Latency ParseLatency(string wrk)
        {
            double Ms(Match m) => !m.Success ? double.NaN : m.Groups[2].Value switch
            {
                "us" => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / 1000,
                "ms" => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                _ => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * 1000,
            };
            return new Latency(Ms(WrkPercentile("50").Match(wrk)), Ms(WrkPercentile("99").Match(wrk)), Ms(WrkMax().Match(wrk)),
                ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(wrk)));
        }

        // IdleConnections TLS connections, each one request, then idle: the server's RSS and managed heap growth.
        public (double Rss, double Heap) IdleMemory(Variant v)
        {
            using Running server = Start(v, staticFiles: false, certificate, key, diagnostics: true);
            var connections = new List<(Socket Socket, SslStream Tls)>(IdleConnections);
            try
            {
                ProcessRunner.Run("taskset", $"-c {Cpu} wrk -t1 -c64 -d2s https://127.0.0.1:{server.Port}/plaintext", TimeSpan.FromSeconds(30));
                Thread.Sleep(1000);
                double heapBefore = server.Heap();
                long rssBefore = server.Pids.Sum(ServerProbe.RssBytes);
                for (int i = 0; i < IdleConnections; i += 100)
                {
                    Task<(Socket, SslStream)>[] batch = Enumerable.Range(0, Math.Min(100, IdleConnections - i)).Select(_ => OpenAsync(server.Port)).ToArray();
                    Task.WaitAll(batch);
                    connections.AddRange(batch.Select(t => t.Result));
                }
                Thread.Sleep(2000);
                double heapAfter = server.Heap();
                long rssAfter = server.Pids.Sum(ServerProbe.RssBytes);
                return ((rssAfter - rssBefore) / (double)IdleConnections, (heapAfter - heapBefore) / IdleConnections);
            }
            finally
            {
                foreach ((Socket socket, SslStream tls) in connections)
                {
                    tls.Dispose();
                    socket.Dispose();
                }
            }
        }

        private static async Task<(Socket, SslStream)> OpenAsync(int port)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, port);
            var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
            });
            await tls.WriteAsync("GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray());
            byte[] buffer = new byte[1024];
            int read = 0;
            while (read == 0 || !Encoding.ASCII.GetString(buffer, 0, read).Contains("Hello, World!", StringComparison.Ordinal))
            {
                int n = await tls.ReadAsync(buffer.AsMemory(read));
                if (n == 0)
                {
                    throw new IOException("closed before the response");
                }
                read += n;
            }
            return (socket, tls);
        }

        // A free port can be taken between the probe and the server's bind (the load generators churn through the
        // same ephemeral range): a server that does not come up is tried again on another.
        private Running Start(Variant v, bool staticFiles, string cert, string keyFile, bool diagnostics = false, bool tickets = true)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    return StartOnce(v, staticFiles, cert, keyFile, diagnostics, tickets);
                }
                catch (TimeoutException) when (attempt < 3)
                {
                    Progress.Warn($"tls: {v.Name} did not start listening; trying another port");
                }
            }
        }

        private Running StartOnce(Variant v, bool staticFiles, string cert, string keyFile, bool diagnostics, bool tickets)
        {
            int port = ProcessRunner.FreePort();
            if (v.Name == "nginx")
            {
                string ssl = $$"""
                    ssl_certificate {{cert}};
                    ssl_certificate_key {{keyFile}};
                    ssl_protocols TLSv1.2 TLSv1.3;
                    ssl_prefer_server_ciphers on;
                    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
                    ssl_ecdh_curve X25519:prime256v1:secp384r1;
                    ssl_session_tickets {{(tickets ? "on" : "off")}};
                    """;
                string body = staticFiles
                    ? $$"""{{ssl}} location / { root {{tree}}; }"""
                    : $$"""{{ssl}} location = /plaintext { default_type text/plain; return 200 "Hello, World!"; }""";
                var nginx = new NginxServer(settings, port, "text/html html;", body, listenParameters: " ssl http2");
                return new Running(port, nginx.WorkerPids, nginx, null, 0);
            }
            string transport = v.Transport == "sockets" ? "--transport sockets" : "--transport megapipe --MegaPipe:ChannelCount 1";
            string tls = $"--https_url https://127.0.0.1:{port} --cert {cert} --key {keyFile} --tls {v.Tls}{(tickets ? "" : " --ssl_session_tickets off")}";
            Process process;
            int diagnosticsPort = 0;
            if (staticFiles)
            {
                process = ProcessRunner.Start(staticServer, $"{transport} --root {tree} {tls}", settings.ServerCpu, environment: ProcessRunner.DotNetEnvironment);
            }
            else
            {
                string extra = "";
                if (diagnostics)
                {
                    diagnosticsPort = ProcessRunner.FreePort();
                    extra = $" --diagnostics --urls http://127.0.0.1:{diagnosticsPort}";
                }
                process = ProcessRunner.Start(webApp, $"{transport} {tls}{extra} --contentRoot {Path.Combine(settings.RepoRoot, "samples", "WebApp")}", settings.ServerCpu, environment: ProcessRunner.DotNetEnvironment);
            }
            try
            {
                ServerProbe.WaitForPort(port);
            }
            catch (TimeoutException e)
            {
                string stderr = ProcessRunner.Stderr(process);
                ProcessRunner.Stop(process);
                process.Dispose();
                throw new TimeoutException($"{e.Message}: {stderr}", e);
            }
            return new Running(port, [process.Id], null, process, diagnosticsPort);
        }
    }

    // A started server: nginx, or a .NET sample process.
    private sealed class Running(int port, int[] pids, NginxServer? nginx, Process? process, int diagnosticsPort) : IDisposable
    {
        public int Port { get; } = port;

        public int[] Pids { get; } = pids;

        // The live managed heap after a full collection (WebApp --diagnostics); 0 for nginx.
        public double Heap()
        {
            if (diagnosticsPort == 0)
            {
                return 0;
            }
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            using JsonDocument json = JsonDocument.Parse(client.GetStringAsync($"http://127.0.0.1:{diagnosticsPort}/_diag?gc=true").GetAwaiter().GetResult());
            return json.RootElement.GetProperty("gc.heap_bytes").GetDouble();
        }

        public void Dispose()
        {
            nginx?.Dispose();
            if (process is not null)
            {
                ProcessRunner.Stop(process);
                process.Dispose();
            }
        }
    }

    private static (string Certificate, string Key) WriteCertificate(string dir, string name, bool ecdsa)
    {
        using AsymmetricAlgorithm key = ecdsa ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        CertificateRequest request = key is RSA rsa
            ? new CertificateRequest("CN=localhost", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest("CN=localhost", (ECDsa)key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(7));
        string certificatePath = Path.Combine(dir, name + ".crt");
        string keyPath = Path.Combine(dir, name + ".key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    // `openssl speed rsa2048` on the server CPU: the floor of a full RSA handshake (one signature).
    private static string RsaSignsPerSecond(PerfSettings settings)
    {
        string output = ProcessRunner.Run("taskset", $"-c {settings.ServerCpu} openssl speed -seconds 2 rsa2048", TimeSpan.FromMinutes(2));
        Match m = RsaSpeed().Match(output);
        return m.Success ? m.Groups[1].Value : "?";
    }

    [GeneratedRegex(@"New, (TLSv[\d.]+), Cipher is (\S+)")]
    private static partial Regex NegotiatedProtocol();

    [GeneratedRegex(@"ALPN protocol: (\S+)")]
    private static partial Regex NegotiatedAlpn();

    [GeneratedRegex(@"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded")]
    private static partial Regex H2LoadRequests();

    [GeneratedRegex(@"(\d+) connections in [\d.]+ real seconds")]
    private static partial Regex STimeConnections();

    private static Regex WrkPercentile(string p) => new(@"^\s*" + p + @"%\s+([\d.]+)(us|ms|s)\b", RegexOptions.Multiline);

    [GeneratedRegex(@"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)\b")]
    private static partial Regex WrkMax();

    [GeneratedRegex(@"^r+$", RegexOptions.Multiline)]
    private static partial Regex ReusedMarks();

    [GeneratedRegex(@"rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)")]
    private static partial Regex RsaSpeed();
}
