// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MegaPipe.Transport.Internal;

// The transport's instruments, for dotnet-counters and OpenTelemetry:
//   dotnet-counters monitor -n WebApp --counters MegaPipe.Transport
// Observable instruments read each live channel's counters when a listener collects, so the hot
// path pays nothing for them.
internal static class MegaPipeMetrics
{
    public const string MeterName = "MegaPipe.Transport";

    private static readonly ConcurrentDictionary<ChannelThread, byte> s_channels = new();
    private static readonly Meter s_meter = new(MeterName);

    static MegaPipeMetrics()
    {
        s_meter.CreateObservableUpDownCounter("megapipe.connections", () => Sum(static t => t.LiveConnections), "{connection}", "Connections open on MegaPipe channels.");
        s_meter.CreateObservableUpDownCounter("megapipe.handles", () => Sum(static t => t.Handles), "{handle}", "Handles registered in the channels (connections, listeners, files).");
        s_meter.CreateObservableUpDownCounter("megapipe.registered_files", () => Sum(static t => t.RegisteredFiles), "{slot}", "Registered-file table slots held by lightweight sockets.");
        s_meter.CreateObservableUpDownCounter("megapipe.receive_buffers_available", () => Sum(static t => t.ReceiveBuffersAvailable), "{buffer}", "Channel-owned receive buffers not lent out.");
        s_meter.CreateObservableUpDownCounter("megapipe.channels", () => (long)s_channels.Count, "{channel}", "Running MegaPipe channels.");
        s_meter.CreateObservableCounter("megapipe.commands", () => Sum(static t => t.Counters.Commands), "{command}", "I/O commands issued to the channels.");
        s_meter.CreateObservableCounter("megapipe.system_calls", () => Sum(static t => t.Counters.SystemCalls), "{call}", "System calls the channels made to carry commands (io_uring_enter and others).");
        s_meter.CreateObservableCounter("megapipe.completions", () => Sum(static t => t.Counters.Completions), "{completion}", "Completions reaped from the channels.");
        s_meter.CreateObservableCounter("megapipe.wakeups", () => Sum(static t => t.Counters.Wakeups), "{wakeup}", "Times another thread woke a sleeping channel.");
        s_meter.CreateObservableGauge("megapipe.commands_per_system_call", () =>
        {
            long calls = Sum(static t => t.Counters.SystemCalls);
            return calls == 0 ? 0 : (double)Sum(static t => t.Counters.Commands) / calls;
        }, "{command}", "Batching: commands carried per system call since start.");
    }

    public static void Register(ChannelThread thread) => s_channels.TryAdd(thread, 0);

    public static void Unregister(ChannelThread thread) => s_channels.TryRemove(thread, out _);

    private static long Sum(Func<ChannelThread, long> selector)
    {
        long sum = 0;
        foreach (ChannelThread thread in s_channels.Keys)
        {
            sum += selector(thread);
        }
        return sum;
    }
}
