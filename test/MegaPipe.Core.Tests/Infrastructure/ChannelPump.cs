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

    public List<CompletionEvent> Events { get; } = new();

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
                throw new TimeoutException($"Timed out waiting for {what ?? "condition"}; events so far: {string.Join(", ", Events.TakeLast(10))}");
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
            OnEvent?.Invoke(e);
        }
        return n;
    }

    public CompletionEvent WaitFor(ChannelCommand command, MegaPipeHandle? handle = null, TimeSpan? timeout = null)
    {
        int start = 0;
        CompletionEvent found = default;
        Until(() =>
        {
            for (int i = start; i < Events.Count; i++)
            {
                if (Events[i].Command == command && (handle is null || Events[i].Handle == handle.Value))
                {
                    found = Events[i];
                    Events.RemoveAt(i);
                    return true;
                }
            }
            return false;
        }, timeout, command.ToString());
        return found;
    }
}
