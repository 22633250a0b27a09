using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace MegaPipe.Perf;

// The harness of the micro-benchmarks (message size, connection length, breakdown, scaling):
// every variant's samples/PingPong server runs at once, pinned to the server CPUs and idle until
// its turn, and one persistent client process (MegaPipe.Core, one pinned channel per client CPU)
// loads them one after another. Starting the servers once per round, not once per run, is what
// lets all the points fit in a short run; restarting them every round keeps the rounds independent.
public sealed class PingPongBench : IDisposable
{
    public sealed record Variant(string Name, string ServerArguments);

    private static string? s_exe;

    private readonly PerfSettings _settings;
    private readonly List<(Variant Variant, Process Process, int Port)> _servers = [];
    private readonly Process _client;
    // The client spreads its connections over this many loopback addresses, the server listening
    // on all of them: short connections would otherwise be throttled by the client's search for a
    // source port not held in TIME_WAIT (about 28,000 per address pair, each for a minute).
    private const int ClientSpread = 16;

    public PingPongBench(PerfSettings settings, CpuPlan plan, IEnumerable<Variant> variants, int bufferSize)
    {
        _settings = settings;
        Plan = plan;
        string exe = Exe(settings);
        try
        {
            foreach (Variant v in variants)
            {
                int port = ProcessRunner.FreePort();
                Process server = ProcessRunner.Start(exe,
                    FormattableString.Invariant($"server --host 0.0.0.0 --port {port} --threads {plan.Server.Length} --cpus {plan.ServerList} --size {bufferSize} {v.ServerArguments}"),
                    plan.ServerList, redirectInput: true, environment: ProcessRunner.DotNetEnvironment);
                _servers.Add((v, server, port));
                ProcessRunner.WaitForLine(server, l => l.StartsWith("listening", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            }
            _client = ProcessRunner.Start(exe, "client --control", plan.ClientList, redirectInput: true, environment: ProcessRunner.DotNetEnvironment);
        }
        catch
        {
            foreach (var s in _servers)
            {
                ProcessRunner.Stop(s.Process);
            }
            throw;
        }
    }

    public CpuPlan Plan { get; }

    public static string Exe(PerfSettings settings) => s_exe ??= PingPongExperiment.BuildSample(settings, "PingPong");

    // Loads one server for warm-up + seconds and measures the last `seconds`.
    public Measurement Measure(string variant, int round, double x, int size, int transactionsPerConnection, int connections, string group = "", double? seconds = null, double? warmup = null)
    {
        (Variant v, Process server, int port) = _servers.First(s => s.Variant.Name == variant);
        var total = Stopwatch.StartNew();
        double measure = seconds ?? _settings.Seconds;
        double warm = warmup ?? _settings.Warmup;
        _client.StandardInput.WriteLine(FormattableString.Invariant(
            $"run --port {port} --spread {ClientSpread} --threads {Plan.Client.Length} --cpus {Plan.ClientList} --connections {connections} --size {size} --transactions {transactionsPerConnection} --warmup {warm} --duration {measure}"));
        ProcessRunner.WaitForLine(_client, l => l == "measuring", TimeSpan.FromSeconds(warm + 30));
        double tMeasuring = total.Elapsed.TotalSeconds;
        server.StandardInput.WriteLine("mark");
        ProcessRunner.WaitForLine(server, l => l == "marked", TimeSpan.FromSeconds(10));
        SystemCpu system0 = SystemCpu.Read();
        (double user0, double kernel0) = ServerProbe.CpuTimes(server.Id);
        double client0 = ServerProbe.CpuSeconds(_client.Id);
        var watch = Stopwatch.StartNew();
        // perf needs a moment to attach; it counts a slightly shorter window than the client's.
        double perfSeconds = Math.Max(0.2, measure - 0.5);
        Task<long?> syscalls = ProcessRunner.CountSystemCallsAsync(server.Id, perfSeconds);
        string clientJson = ProcessRunner.WaitForLine(_client, l => l.StartsWith('{'), TimeSpan.FromSeconds(measure + 30));
        double window = watch.Elapsed.TotalSeconds;
        (double user1, double kernel1) = ServerProbe.CpuTimes(server.Id);
        double serverCpu = user1 + kernel1 - user0 - kernel0;
        double clientCpu = ServerProbe.CpuSeconds(_client.Id) - client0;
        double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds;
        server.StandardInput.WriteLine("stats");
        string serverJson = ProcessRunner.WaitForLine(server, l => l.StartsWith('{'), TimeSpan.FromSeconds(10));
        double tStats = total.Elapsed.TotalSeconds;
        long? calls = syscalls.Result;
        if (Environment.GetEnvironmentVariable("PERF_TRACE") is not null)
        {
            Progress.Log(FormattableString.Invariant($"trace: measuring at {tMeasuring:F3}, window {window:F3}, stats at {tStats:F3}, perf done at {total.Elapsed.TotalSeconds:F3}"));
        }

        using JsonDocument c = JsonDocument.Parse(clientJson);
        using JsonDocument s = JsonDocument.Parse(serverJson);
        double tps = c.RootElement.GetProperty("tps").GetDouble();
        double clientSeconds = c.RootElement.GetProperty("seconds").GetDouble();
        double transactions = Math.Max(1, tps * window);
        return new Measurement
        {
            Round = round,
            Variant = variant,
            Group = group,
            X = x,
            Throughput = tps,
            SyscallsPerOp = calls is null ? double.NaN : calls.Value / Math.Max(1, tps * perfSeconds),
            ServerCpuUsPerOp = serverCpu * 1e6 / transactions,
            ServerBusy = serverCpu / (window * Plan.Server.Length),
            ServerKernelShare = serverCpu > 0 ? (kernel1 - kernel0) / serverCpu : double.NaN,
            ClientBusy = c.RootElement.GetProperty("cpuBusy").GetDouble(),
            ClientCpuUsPerOp = c.RootElement.GetProperty("clientCpuSeconds").GetDouble() * 1e6 / Math.Max(1, c.RootElement.GetProperty("transactions").GetDouble()),
            OtherCpus = Math.Max(0, systemCpu - serverCpu - clientCpu) / window,
            ConnectionsPerSecond = c.RootElement.GetProperty("connections").GetDouble() / clientSeconds,
            AllocBytesPerOp = s.RootElement.GetProperty("allocatedBytes").GetDouble() / Math.Max(1, c.RootElement.GetProperty("transactions").GetDouble()),
            Errors = c.RootElement.GetProperty("errors").GetInt64(),
            ServerCpus = Plan.Server.Length,
            ClientCpus = Plan.Client.Length,
            SharedCpus = Plan.Shared,
        };
    }

    public static string Describe(Measurement m) => string.Create(CultureInfo.InvariantCulture,
        $"{m.Throughput,10:F0}/s  {m.SyscallsPerOp,6:F3} syscalls  {m.ServerCpuUsPerOp,6:F2} µs server CPU  server {m.ServerBusy,4:P0} client {m.ClientBusy,4:P0} busy  other {m.OtherCpus:F2} CPUs{(m.Errors > 0 ? $"  ERRORS {m.Errors}" : "")}");

    public void Dispose()
    {
        try
        {
            _client.StandardInput.WriteLine("quit");
            if (!_client.WaitForExit(15000))
            {
                ProcessRunner.Stop(_client);
            }
        }
        catch (IOException)
        {
        }
        ProcessRunner.Stop(_client);
        _client.Dispose();
        foreach (var s in _servers)
        {
            try
            {
                s.Process.StandardInput.WriteLine("quit");
            }
            catch (IOException)
            {
            }
            ProcessRunner.Stop(s.Process);
            s.Process.Dispose();
        }
    }
}
