// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Transport.Internal;

// The TLS handshakes of one channel that must finish by a deadline (HttpsConnectionAdapterOptions.HandshakeTimeout),
// checked by the channel's own loop: no timer or thread per connection. Handshakes with the same timeout start in
// time order, so each timeout's list is sorted by deadline when appended to at the tail; an endpoint has one timeout,
// so a channel has a list or two. Add and Remove are O(1) (the links live in the layer); the loop asks for the next
// deadline to cap its wait and expires the due ones after each turn. Channel thread only.
internal sealed class HandshakeDeadlines
{
    private readonly List<DeadlineList> _lists = new(1);

    public int Count { get; private set; }

    public void Add(TlsConnectionLayer layer, TimeSpan timeout, long now)
    {
        Debug.Assert(layer.DeadlineList is null, "a handshake has one deadline");
        long timeoutMs = (long)Math.Ceiling(timeout.TotalMilliseconds);
        DeadlineList? list = null;
        foreach (DeadlineList candidate in _lists)
        {
            if (candidate.TimeoutMs == timeoutMs)
            {
                list = candidate;
                break;
            }
        }
        if (list is null)
        {
            list = new DeadlineList(timeoutMs);
            _lists.Add(list);
        }
        layer.Deadline = now + timeoutMs;
        layer.DeadlineList = list;
        layer.DeadlinePrevious = list.Tail;
        layer.DeadlineNext = null;
        if (list.Tail is null)
        {
            list.Head = layer;
        }
        else
        {
            list.Tail.DeadlineNext = layer;
        }
        list.Tail = layer;
        Count++;
    }

    // The handshake finished or the connection closed; nothing if it was not waiting.
    public void Remove(TlsConnectionLayer layer)
    {
        if (layer.DeadlineList is not { } list)
        {
            return;
        }
        if (layer.DeadlinePrevious is null)
        {
            list.Head = layer.DeadlineNext;
        }
        else
        {
            layer.DeadlinePrevious.DeadlineNext = layer.DeadlineNext;
        }
        if (layer.DeadlineNext is null)
        {
            list.Tail = layer.DeadlinePrevious;
        }
        else
        {
            layer.DeadlineNext.DeadlinePrevious = layer.DeadlinePrevious;
        }
        layer.DeadlineList = null;
        layer.DeadlinePrevious = null;
        layer.DeadlineNext = null;
        Count--;
    }

    /// <summary>How long the loop may wait before the next deadline (zero when one is due), or infinite when none waits.</summary>
    public TimeSpan TimeUntilNext(long now)
    {
        long next = long.MaxValue;
        foreach (DeadlineList list in _lists)
        {
            if (list.Head is { } head && head.Deadline < next)
            {
                next = head.Deadline;
            }
        }
        return next == long.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(Math.Max(0, next - now));
    }

    /// <summary>Ends every handshake whose deadline has passed (each leaves its list first).</summary>
    public void ExpireDue(long now)
    {
        foreach (DeadlineList list in _lists)
        {
            while (list.Head is { } head && head.Deadline <= now)
            {
                Remove(head);
                head.OnHandshakeAbandoned(timedOut: true);
            }
        }
    }

    /// <summary>The channel is stopping: every unfinished handshake ends now instead of at its deadline.</summary>
    public void AbandonAll()
    {
        foreach (DeadlineList list in _lists)
        {
            while (list.Head is { } head)
            {
                Remove(head);
                head.OnHandshakeAbandoned(timedOut: false);
            }
        }
    }

    // One timeout's handshakes, oldest first.
    internal sealed class DeadlineList(long timeoutMs)
    {
        public long TimeoutMs { get; } = timeoutMs;
        public TlsConnectionLayer? Head { get; set; }
        public TlsConnectionLayer? Tail { get; set; }
    }
}
