using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime;

// Opt-in diagnostics for soak runs (perf/soak): GET /_diag answers loopback clients with one flat
// JSON object of process figures and the transport's and Kestrel's instruments.
//   dotnet run -c Release --project samples/WebApp -- --diagnostics
//   (or the configuration key WebApp:Diagnostics=true)
// GET /_diag?gc=true first runs a full, compacting collection, so figures compare without garbage.
// The request's own connection is open while it is answered: idle reads 1 connection, not 0.
internal sealed class Diagnostics : IDisposable
{
    // Meters read: the transport's (observable instruments, read on demand), Kestrel's and hosting's
    // (counters and up-down counters summed from their measurements; histograms counted by outcome).
    private static readonly HashSet<string> s_meters = ["MegaPipe.Transport", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.Hosting"];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, double> _sums = new();
    private readonly Lock _snapshotLock = new();
    // Observable measurements of the collection in progress (under _snapshotLock).
    private Dictionary<string, double> _observed = new();

    public Diagnostics()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (s_meters.Contains(instrument.Meter.Name))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => OnMeasurement(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => OnMeasurement(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => OnMeasurement(i, v, tags));
        _listener.Start();
    }

    // Takes the --diagnostics switch out of the arguments (the configuration reader wants a value after it).
    public static bool IsEnabled(ref string[] args)
    {
        bool enabled = args.Contains("--diagnostics");
        args = args.Where(a => a != "--diagnostics").ToArray();
        return enabled;
    }

    public void Map(WebApplication app)
    {
        app.MapGet("/_diag", (HttpContext context) =>
        {
            if (context.Connection.RemoteIpAddress is { } remote && !System.Net.IPAddress.IsLoopback(remote))
            {
                return Results.NotFound();
            }
            if (string.Equals(context.Request.Query["gc"], "true", StringComparison.OrdinalIgnoreCase))
            {
                GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            }
            return Results.Json(Snapshot(), WebAppJsonContext.Default.SortedDictionaryStringObject);
        });
    }

    public SortedDictionary<string, object> Snapshot()
    {
        var result = new SortedDictionary<string, object>(StringComparer.Ordinal);
        ReadProcStatus(result);
        result["pid"] = Environment.ProcessId;
        result["process.open_fds"] = Directory.GetFileSystemEntries("/proc/self/fd").Length;
        result["gc.heap_bytes"] = GC.GetTotalMemory(forceFullCollection: false);
        result["gc.committed_bytes"] = GC.GetGCMemoryInfo().TotalCommittedBytes;
        result["gc.collections.gen0"] = GC.CollectionCount(0);
        result["gc.collections.gen2"] = GC.CollectionCount(2);
        result["threadpool.threads"] = ThreadPool.ThreadCount;
        lock (_snapshotLock)
        {
            _observed = new Dictionary<string, double>();
            _listener.RecordObservableInstruments();
            foreach ((string name, double value) in _observed)
            {
                result[name] = value;
            }
        }
        foreach ((string name, double value) in _sums)
        {
            result[name] = value;
        }
        return result;
    }

    private void OnMeasurement<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        where T : struct, IConvertible
    {
        double v = value.ToDouble(CultureInfo.InvariantCulture);
        if (instrument.IsObservable)
        {
            // Called from RecordObservableInstruments, under _snapshotLock: sum over tag sets.
            _observed[instrument.Name] = _observed.GetValueOrDefault(instrument.Name) + v;
            return;
        }
        string key = instrument.Name;
        if (instrument is Histogram<double>)
        {
            // Count measurements by outcome: requests by status code, connections by error type.
            string? outcome = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key is "http.response.status_code" or "error.type")
                {
                    outcome = outcome is null ? $"{tag.Key}={tag.Value}" : $"{outcome},{tag.Key}={tag.Value}";
                }
            }
            key = $"{instrument.Name}.count{{{outcome}}}";
            v = 1;
        }
        _sums.AddOrUpdate(key, v, (_, sum) => sum + v);
    }

    private static void ReadProcStatus(SortedDictionary<string, object> result)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            string[] parts = line.Split([':', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long value))
            {
                continue;
            }
            switch (parts[0])
            {
                case "VmRSS":
                    result["process.rss_bytes"] = value * 1024;
                    break;
                case "VmHWM":
                    result["process.peak_rss_bytes"] = value * 1024;
                    break;
                case "Threads":
                    result["process.threads"] = value;
                    break;
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
