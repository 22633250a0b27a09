using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MegaPipe.Perf;

// The ping-pong benchmark: the ping-pong server on MegaPipe.Core against the same server on
// System.Net.Sockets, 64-byte messages over persistent connections.
public static class PingPongExperiment
{
    private sealed record Variant(string Name, string ServerArguments);

    private sealed record Sample(string Variant, double Tps, double SyscallsPerTx, double AllocPerTx, double ServerCpuUsPerTx, double ClientCpuShare, long Errors);

    public static void Run(PerfSettings settings, Progress progress, int size = 64, int connections = 64)
    {
        string exe = BuildSample(settings, "PingPong");
        Variant[] variants =
        [
            new("sockets", "--transport sockets"),
            new("megapipe", "--transport megapipe"),
        ];
        var samples = new List<Sample>();
        int port = 5400;
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (Variant v in variants)
            {
                Sample s = RunOne(settings, exe, v, size, connections, port++);
                samples.Add(s);
                progress.Step(FormattableString.Invariant($"round {round} {v.Name,-9} {s.Tps,10:F0} tx/s  {s.SyscallsPerTx,6:F3} syscalls/tx  {s.AllocPerTx,7:F2} B/tx  {s.ServerCpuUsPerTx,6:F2} us CPU/tx  client CPU {s.ClientCpuShare:P0}  errors {s.Errors}"));
            }
        }
        WriteReport(settings, samples, size, connections);
    }

    private static Sample RunOne(PerfSettings settings, string exe, Variant v, int size, int connections, int port)
    {
        using var server = ProcessRunner.Start(exe, $"server --port {port} --threads 1 --size {size} {v.ServerArguments}", settings.ServerCpu, redirectInput: true);
        try
        {
            ProcessRunner.WaitForLine(server, l => l.StartsWith("listening", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            double total = settings.Warmup + settings.Seconds;
            using var client = ProcessRunner.Start(exe, FormattableString.Invariant($"client --port {port} --threads 1 --connections {connections} --size {size} --duration {total}"), settings.ClientCpu);
            Thread.Sleep(TimeSpan.FromSeconds(settings.Warmup));
            server.StandardInput.WriteLine("mark");
            ProcessRunner.WaitForLine(server, l => l == "marked", TimeSpan.FromSeconds(10));
            Task<long?> syscalls = ProcessRunner.CountSystemCallsAsync(server.Id, settings.Seconds - 0.5);
            string clientJson = ProcessRunner.WaitForLine(client, l => l.StartsWith('{'), TimeSpan.FromSeconds(total + 30));
            server.StandardInput.WriteLine("stats");
            string serverJson = ProcessRunner.WaitForLine(server, l => l.StartsWith('{'), TimeSpan.FromSeconds(10));
            using JsonDocument c = JsonDocument.Parse(clientJson);
            using JsonDocument s = JsonDocument.Parse(serverJson);
            double tps = c.RootElement.GetProperty("tps").GetDouble();
            double serverTx = s.RootElement.GetProperty("transactions").GetInt64();
            double windowSeconds = settings.Seconds - 0.5;
            long? calls = syscalls.Result;
            double syscallsPerTx = calls is null ? double.NaN : calls.Value / (tps * windowSeconds);
            double allocPerTx = s.RootElement.GetProperty("allocatedBytes").GetInt64() / Math.Max(1, serverTx);
            double cpuPerTx = s.RootElement.GetProperty("cpuSeconds").GetDouble() * 1e6 / Math.Max(1, serverTx);
            double clientCpu = c.RootElement.GetProperty("clientCpuSeconds").GetDouble() / c.RootElement.GetProperty("seconds").GetDouble();
            return new Sample(v.Name, tps, syscallsPerTx, allocPerTx, cpuPerTx, clientCpu, c.RootElement.GetProperty("errors").GetInt64());
        }
        finally
        {
            server.StandardInput.WriteLine("quit");
            ProcessRunner.Stop(server);
        }
    }

    private static void WriteReport(PerfSettings settings, List<Sample> samples, int size, int connections)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Ping-pong: MegaPipe.Core vs System.Net.Sockets");
        sb.AppendLine();
        sb.AppendLine(FormattableString.Invariant($"{size}-byte messages, {connections} persistent connections, server on CPU {settings.ServerCpu} (1 thread), client (MegaPipe.Core, 1 thread) on CPU {settings.ClientCpu}; {settings.Rounds} interleaved rounds of {settings.Seconds} s after {settings.Warmup} s warm-up. Produced by `dotnet run -c Release --project perf/MegaPipe.Perf -- pingpong` on {DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} CPUs."));
        sb.AppendLine();
        sb.AppendLine("| variant | transactions/s (median) | ratio to sockets | system calls / transaction | bytes allocated / transaction | server CPU µs / transaction | client CPU busy |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        double baseline = Median(samples.Where(s => s.Variant == "sockets").Select(s => s.Tps));
        foreach (string name in samples.Select(s => s.Variant).Distinct())
        {
            var mine = samples.Where(s => s.Variant == name).ToList();
            double tps = Median(mine.Select(s => s.Tps));
            sb.AppendLine(FormattableString.Invariant($"| {name} | {tps:F0} | {tps / baseline:F2}x | {Median(mine.Select(s => s.SyscallsPerTx)):F3} | {Median(mine.Select(s => s.AllocPerTx)):F2} | {Median(mine.Select(s => s.ServerCpuUsPerTx)):F2} | {Median(mine.Select(s => s.ClientCpuShare)):P0} |"));
        }
        sb.AppendLine();
        sb.AppendLine("Per round:");
        sb.AppendLine();
        sb.AppendLine("| variant | transactions/s | system calls / tx | B / tx | errors |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        foreach (Sample s in samples)
        {
            sb.AppendLine(FormattableString.Invariant($"| {s.Variant} | {s.Tps:F0} | {s.SyscallsPerTx:F3} | {s.AllocPerTx:F2} | {s.Errors} |"));
        }
        File.WriteAllText(settings.ResultPath("pingpong.md"), sb.ToString());
    }

    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }

    public static string BuildSample(PerfSettings settings, string name) => BuildSample(settings.RepoRoot, name);

    // Builds samples/<name> of the checkout at repo (this one, or --baseline-repo) and returns its executable.
    public static string BuildSample(string repo, string name)
    {
        string project = Path.Combine(repo, "samples", name, name + ".csproj");
        string output = ProcessRunner.Run("dotnet", $"build -c Release \"{project}\" -v q -nologo", TimeSpan.FromMinutes(5));
        string exe = Path.Combine(repo, "samples", name, "bin", "Release", "net10.0", name);
        if (!File.Exists(exe))
        {
            throw new InvalidOperationException($"building {name} in {repo} failed:\n{output}");
        }
        return exe;
    }

    // The commit a checkout is at, for the reports.
    public static string GitHead(string repo)
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
}
