// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;

namespace MegaPipe.Transport.Internal;

// The deadlines of one channel's TLS connections, checked by the channel's own loop (no timer or thread per
// connection): a handshake that must finish by HttpsConnectionAdapterOptions.HandshakeTimeout, and, once established,
// the moment an idle connection's grown memory BIOs are given back (TlsConnectionLayer.IdleTrimDelay). Entries with the
// same delay are added in time order, so each delay's list is sorted by deadline when appended to at the tail; a
// channel has a list per delay (one handshake timeout per endpoint, and the trim delay). Add and Remove are O(1) (the
// links live in the layer, which is in at most one list at a time); the loop asks for the next deadline to cap its
// wait and expires the due ones after each turn. Channel thread only.
internal sealed class TlsDeadlines
{
    private readonly List<DeadlineList> _lists = new(1);

    public int Count { get; private set; }

    public void Add(TlsConnectionLayer layer, TimeSpan timeout, long now)
    {
        Debug.Assert(layer.DeadlineList is null, "a connection has one deadline at a time");
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

    // The handshake finished, the connection closed, or the deadline moves; nothing if it was not waiting.
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

    /// <summary>Every deadline that has passed fires (each entry leaves its list first, and may add itself again).</summary>
    public void ExpireDue(long now)
    {
        foreach (DeadlineList list in _lists)
        {
            while (list.Head is { } head && head.Deadline <= now)
            {
                Remove(head);
                head.OnDeadline(stopping: false);
            }
        }
    }

    /// <summary>The channel is stopping: every unfinished handshake ends now instead of at its deadline; trims are dropped.</summary>
    public void AbandonAll()
    {
        foreach (DeadlineList list in _lists)
        {
            while (list.Head is { } head)
            {
                Remove(head);
                head.OnDeadline(stopping: true);
            }
        }
    }

    // One delay's entries, oldest first.
    internal sealed class DeadlineList(long timeoutMs)
    {
        public long TimeoutMs { get; } = timeoutMs;
        public TlsConnectionLayer? Head { get; set; }
        public TlsConnectionLayer? Tail { get; set; }
    }
}
