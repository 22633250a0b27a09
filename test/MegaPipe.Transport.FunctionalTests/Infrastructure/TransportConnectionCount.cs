using System.Diagnostics.Metrics;
using MegaPipe.Transport.Internal;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// The MegaPipe transport's own count of open connections (the "megapipe.connections" instrument:
/// connections accepted on a channel whose Close has not completed), read through a MeterListener.
/// Tests run one server at a time, so the process-wide count is the test server's.
/// </summary>
internal static class TransportConnectionCount
{
    /// <summary>The open connections of the running MegaPipe channels, or null when no MegaPipe channel runs (another transport).</summary>
    public static long? Read()
    {
        long connections = 0;
        long channels = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == MegaPipeMetrics.MeterName && instrument.Name is "megapipe.connections" or "megapipe.channels")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "megapipe.connections")
            {
                connections += value;
            }
            else
            {
                channels += value;
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return channels > 0 ? connections : null;
    }

    /// <summary>
    /// Waits until the transport holds no connection. The count is an observable instrument (no
    /// event to wait on), so it is sampled every few milliseconds until it reaches 0 or the timeout.
    /// Returns false when no MegaPipe channel runs.
    /// </summary>
    public static async Task<bool> WaitForZeroAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestTimeouts.Default);
        long? live;
        while ((live = Read()) is > 0)
        {
            try
            {
                await Task.Delay(10, cancel.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"The MegaPipe transport still holds {Read()} connection(s).");
            }
        }
        return live is not null;
    }
}
