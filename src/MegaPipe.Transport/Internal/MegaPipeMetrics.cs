// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MegaPipe.Transport.Internal;

// The transport's instruments, for dotnet-counters and OpenTelemetry:
//   dotnet-counters monitor -n WebApp --counters MegaPipe.Transport
// One meter per transport factory, created through the host's IMeterFactory (so it is disposed
// with the host and can be told apart from another host's in one process). Every instrument is
// observable: it reads the channels' and listeners' counters when a listener collects, so the hot
// path pays nothing for them. Measurements are tagged with the channel (megapipe.channel, its
// index) and the engine (megapipe.engine: io_uring or epoll); per-endpoint ones also with the
// endpoint (megapipe.endpoint, as Kestrel shows it).
internal sealed class MegaPipeMetrics : IDisposable
{
    public const string MeterName = "MegaPipe.Transport";

    private readonly Meter _meter;
    private readonly MegaPipeTransportFactory _factory;
    // The previous reading of each channel's counters, for the current commands per system call.
    private readonly Dictionary<ChannelThread, Sample> _previous = new();
    private readonly object _previousLock = new();

    public MegaPipeMetrics(MegaPipeTransportFactory factory, IMeterFactory? meterFactory)
    {
        _factory = factory;
        _meter = meterFactory?.Create(new MeterOptions(MeterName)) ?? new Meter(MeterName);
        _meter.CreateObservableUpDownCounter("megapipe.channels", () => PerChannel(static _ => 1L), "{channel}", "Running MegaPipe channels.");
        _meter.CreateObservableGauge("megapipe.engine", () => PerChannel(static _ => 1L), "{channel}",
            "The engine each channel runs on (megapipe.engine tag: io_uring, or epoll where io_uring is unavailable); 1 per channel.");
        _meter.CreateObservableUpDownCounter("megapipe.connections", ObserveConnections, "{connection}", "Connections open on MegaPipe channels, by endpoint and channel.");
        _meter.CreateObservableUpDownCounter("megapipe.handles", () => PerChannel(static t => t.Handles), "{handle}", "Handles registered in the channels (connections, listeners, files).");
        _meter.CreateObservableUpDownCounter("megapipe.registered_files", () => PerChannel(static t => t.RegisteredFiles), "{slot}", "Registered-file table slots held by lightweight sockets.");
        _meter.CreateObservableUpDownCounter("megapipe.receive_buffers_available", () => PerChannel(static t => t.ReceiveBuffersAvailable), "{buffer}", "Channel-owned receive buffers not lent out.");
        _meter.CreateObservableCounter("megapipe.commands", () => PerChannel(static t => t.Counters.Commands), "{command}", "I/O commands issued to the channels.");
        _meter.CreateObservableCounter("megapipe.system_calls", () => PerChannel(static t => t.Counters.SystemCalls), "{call}", "System calls the channels made to carry commands (io_uring_enter and others).");
        _meter.CreateObservableCounter("megapipe.completions", () => PerChannel(static t => t.Counters.Completions), "{completion}", "Completions reaped from the channels.");
        _meter.CreateObservableCounter("megapipe.wakeups", () => PerChannel(static t => t.Counters.Wakeups), "{wakeup}", "Times another thread woke a sleeping channel.");
        _meter.CreateObservableGauge("megapipe.commands_per_system_call", ObserveBatching, "{command}",
            "Batching now: commands carried per system call since the previous reading (a reading at least 0.5 s after it).");
        _meter.CreateObservableCounter("megapipe.tls.handshakes", ObserveTlsHandshakes, "{handshake}",
            "TLS handshakes on the channels (UseMegaPipeHttps), by outcome (megapipe.tls.outcome: full, resumed, failed, timed_out).");
        _meter.CreateObservableCounter("megapipe.accept_pauses", ObserveAcceptPauses, "{pause}",
            "Times accepting paused, by endpoint, channel and reason (megapipe.reason: descriptors, when the descriptor budget or table ran out; max_connections, at MaxConnections).");
    }

    private static KeyValuePair<string, object?> ChannelTag(ChannelThread thread) => new("megapipe.channel", thread.Index);

    private static KeyValuePair<string, object?> EngineTag(ChannelThread thread) => new("megapipe.engine", thread.EngineName);

    private IReadOnlyList<ChannelThread> Threads => _factory.Group?.Threads ?? [];

    private IEnumerable<Measurement<long>> PerChannel(Func<ChannelThread, long> value)
    {
        foreach (ChannelThread thread in Threads)
        {
            if (thread.IsRunning)
            {
                yield return new Measurement<long>(value(thread), ChannelTag(thread), EngineTag(thread));
            }
        }
    }

    // By endpoint and channel: each accept queue counts the connections it started until they close.
    private IEnumerable<Measurement<long>> ObserveConnections()
    {
        foreach (MegaPipeConnectionListener listener in _factory.Listeners)
        {
            var endpointTag = new KeyValuePair<string, object?>("megapipe.endpoint", listener.EndPoint.ToString() ?? "");
            foreach (ListenerBinding binding in listener.Bindings)
            {
                yield return new Measurement<long>(binding.LiveConnections, endpointTag, ChannelTag(binding.Thread), EngineTag(binding.Thread));
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveTlsHandshakes()
    {
        foreach (ChannelThread thread in Threads)
        {
            if (!thread.IsRunning)
            {
                continue;
            }
            TlsHandshakeCounters c = thread.TlsHandshakes;
            yield return new Measurement<long>(c.Full, ChannelTag(thread), EngineTag(thread), new("megapipe.tls.outcome", "full"));
            yield return new Measurement<long>(c.Resumed, ChannelTag(thread), EngineTag(thread), new("megapipe.tls.outcome", "resumed"));
            yield return new Measurement<long>(c.Failed, ChannelTag(thread), EngineTag(thread), new("megapipe.tls.outcome", "failed"));
            yield return new Measurement<long>(c.TimedOut, ChannelTag(thread), EngineTag(thread), new("megapipe.tls.outcome", "timed_out"));
        }
    }

    private IEnumerable<Measurement<long>> ObserveAcceptPauses()
    {
        foreach (MegaPipeConnectionListener listener in _factory.Listeners)
        {
            string endpoint = listener.EndPoint.ToString() ?? "";
            foreach (ListenerBinding binding in listener.Bindings)
            {
                var endpointTag = new KeyValuePair<string, object?>("megapipe.endpoint", endpoint);
                yield return new Measurement<long>(binding.DescriptorPauses, endpointTag, ChannelTag(binding.Thread), EngineTag(binding.Thread), new("megapipe.reason", "descriptors"));
                yield return new Measurement<long>(binding.ConnectionLimitPauses, endpointTag, ChannelTag(binding.Thread), EngineTag(binding.Thread), new("megapipe.reason", "max_connections"));
            }
        }
    }

    private List<Measurement<double>> ObserveBatching()
    {
        var measurements = new List<Measurement<double>>();
        long now = Stopwatch.GetTimestamp();
        lock (_previousLock)
        {
            foreach (ChannelThread thread in Threads)
            {
                if (!thread.IsRunning)
                {
                    continue;
                }
                ChannelCounters counters = thread.Counters;
                if (!_previous.TryGetValue(thread, out Sample previous))
                {
                    // The first reading has nothing to compare with: since the channel started.
                    previous = new Sample(0, 0, 0, double.NaN);
                }
                double ratio = previous.Ratio;
                if (double.IsNaN(ratio) || Stopwatch.GetElapsedTime(previous.Timestamp, now) >= TimeSpan.FromSeconds(0.5))
                {
                    long calls = counters.SystemCalls - previous.SystemCalls;
                    ratio = calls > 0 ? (double)(counters.Commands - previous.Commands) / calls : 0;
                    _previous[thread] = new Sample(now, counters.Commands, counters.SystemCalls, ratio);
                }
                measurements.Add(new Measurement<double>(ratio, ChannelTag(thread), EngineTag(thread)));
            }
            // Forget channels of a stopped set.
            foreach (ChannelThread gone in _previous.Keys.Where(t => !Threads.Contains(t)).ToArray())
            {
                _previous.Remove(gone);
            }
        }
        return measurements;
    }

    public void Dispose() => _meter.Dispose();

    private readonly record struct Sample(long Timestamp, long Commands, long SystemCalls, double Ratio);
}
