using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace MegaPipe.Perf;

// One measured wrk run against a server: wrk (one thread, pinned to the client CPU) after a
// warm-up run, with the server's system calls counted by perf and its CPU time and the machine's
// read from /proc over the same window.
public sealed record WrkRun(double Rps, long Requests, double SyscallsPerRequest, double CpuUsPerRequest, long Errors, long Non2xx, double ServerBusy, double ClientBusy, double OtherCpus)
{
    // extra: wrk options (-s script, -H header); tail: arguments after "--" for the script.
    public static WrkRun Measure(PerfSettings settings, string url, int connections, string extra, int[] serverPids, string tail = "")
    {
        // wrk takes whole seconds.
        string Command(double seconds) => $"wrk -t1 -c{connections} -d{Math.Max(1, Math.Ceiling(seconds)).ToString(CultureInfo.InvariantCulture)}s {extra} {url}{tail}";
        double measured = Math.Max(1, Math.Ceiling(settings.Seconds));
        double perfSeconds = Math.Max(0.5, measured - 1);
        string cpu = settings.ClientCpu.ToString(CultureInfo.InvariantCulture);
        ProcessRunner.RunTimed(cpu, Command(settings.Warmup), TimeSpan.FromSeconds(settings.Warmup + 30));
        double cpuBefore = serverPids.Sum(ServerProbe.CpuSeconds);
        SystemCpu system0 = SystemCpu.Read();
        var watch = Stopwatch.StartNew();
        Task<long?>[] syscalls = serverPids.Select(pid => ProcessRunner.CountSystemCallsAsync(pid, perfSeconds)).ToArray();
        (string output, double wrkCpu, double wrkWall) = ProcessRunner.RunTimed(cpu, Command(measured), TimeSpan.FromSeconds(measured + 60));
        double window = watch.Elapsed.TotalSeconds;
        double serverCpu = serverPids.Sum(ServerProbe.CpuSeconds) - cpuBefore;
        double systemCpu = SystemCpu.Read().BusySeconds - system0.BusySeconds;
        long? calls = syscalls.All(t => t.Result is not null) ? syscalls.Sum(t => t.Result!.Value) : null;
        double rps = ServerProbe.ParseDouble(ServerProbe.RequestsPerSecond().Match(output));
        long requests = (long)ServerProbe.ParseDouble(ServerProbe.TotalRequests().Match(output));
        Match errors = ServerProbe.SocketErrors().Match(output);
        long errorCount = errors.Success ? Enumerable.Range(1, 4).Sum(i => long.Parse(errors.Groups[i].Value, CultureInfo.InvariantCulture)) : 0;
        Match non2xx = ServerProbe.Non2xx().Match(output);
        return new WrkRun(
            rps,
            requests,
            calls is null ? double.NaN : calls.Value / (rps * perfSeconds),
            serverCpu * 1e6 / Math.Max(1, requests),
            errorCount,
            non2xx.Success ? long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture) : 0,
            serverCpu / window,
            wrkCpu / wrkWall,
            Math.Max(0, systemCpu - serverCpu - (double.IsNaN(wrkCpu) ? 0 : wrkCpu)) / window);
    }
}
