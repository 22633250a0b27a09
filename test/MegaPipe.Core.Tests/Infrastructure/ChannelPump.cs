using System.Diagnostics;
using MegaPipe;

namespace MegaPipe.Core.Tests.Infrastructure;

// Drives a channel on the test's own thread: dispatches until a condition holds, collecting events.
public sealed class ChannelPump
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    private readonly MegaPipeChannel _channel;
    private readonly CompletionEvent[] _batch = new CompletionEvent[256];

    public ChannelPump(MegaPipeChannel channel) => _channel = channel;

    public MegaPipeChannel Channel => _channel;

    public List<CompletionEvent> Events { get; } = new();

    // Every event ever dispatched, in order (Events loses the ones WaitFor takes).
    public List<CompletionEvent> History { get; } = new();

    // Received bytes per handle (copied out of channel buffers before the next dispatch).
    public Dictionary<MegaPipeHandle, MemoryStream> Received { get; } = new();

    public Action<CompletionEvent>? OnEvent { get; set; }

    public void Until(Func<bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        var watch = Stopwatch.StartNew();
        TimeSpan limit = timeout ?? DefaultTimeout;
        while (!condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Timed out waiting for {what ?? "condition"}; events so far: {string.Join(", ", History.TakeLast(10))}");
            }
            DispatchOnce(TimeSpan.FromMilliseconds(50));
        }
    }

    public int DispatchOnce(TimeSpan timeout)
    {
        int n = _channel.Dispatch(_batch, timeout);
        for (int i = 0; i < n; i++)
        {
            CompletionEvent e = _batch[i];
            if (e.Command == ChannelCommand.Receive && e.Result > 0)
            {
                if (!Received.TryGetValue(e.Handle, out MemoryStream? stream))
                {
                    Received[e.Handle] = stream = new MemoryStream();
                }
                stream.Write(_channel.GetReceivedData(e));
            }
            Events.Add(e);
            History.Add(e);
            OnEvent?.Invoke(e);
        }
        return n;
    }

    // Dispatches without blocking until a dispatch returns nothing (everything ready is collected).
    public void Drain()
    {
        while (DispatchOnce(TimeSpan.Zero) > 0)
        {
        }
    }

    public byte[] ReceivedBytes(MegaPipeHandle handle) => Received.TryGetValue(handle, out MemoryStream? s) ? s.ToArray() : [];

    public int ReceivedCount(MegaPipeHandle handle) => Received.TryGetValue(handle, out MemoryStream? s) ? (int)s.Length : 0;

    public CompletionEvent WaitFor(ChannelCommand command, MegaPipeHandle? handle = null, TimeSpan? timeout = null)
        => WaitFor(e => e.Command == command && (handle is null || e.Handle == handle.Value), command.ToString(), timeout);

    // Waits for the first collected event that matches and takes it out of Events.
    public CompletionEvent WaitFor(Func<CompletionEvent, bool> match, string what, TimeSpan? timeout = null)
    {
        CompletionEvent found = default;
        Until(() =>
        {
            for (int i = 0; i < Events.Count; i++)
            {
                if (match(Events[i]))
                {
                    found = Events[i];
                    Events.RemoveAt(i);
                    return true;
                }
            }
            return false;
        }, timeout, what);
        return found;
    }
}
