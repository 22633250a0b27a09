// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace MegaPipe.Internal;

// The workaround for a multishot receive that misses the end of its connection on io_uring.
//
// The race (Linux 6.18; found by the soak, reproduced in ResetRaceTests, and independently with
// liburing and none of this code): when a multishot receive is armed, its first attempt gets
// EAGAIN, and the data and a TCP reset both land before the internal poll is registered, the
// kernel posts the data with IORING_CQE_F_MORE and never reports the reset: the receive stays
// armed and no completion follows, ever. (The poll finds the socket ready at registration and
// runs one receive, which takes the data and, with nothing left queued, waits for a wake-up that
// already happened.) TCP FIN is not missed (after a FIN the kernel tells io_uring that more is
// to be read, and the next receive reports the end); an AF_UNIX end of stream is missed like a
// reset. Under a load of clients that send part of a request and reset, about 1 connection in
// 2,000-5,000 was left hanging until the application's own timeout.
//
// The policy: a receive that stays quiet for BaseDelay after it was armed, or after data that
// left it armed, is re-armed: cancelled (its ECANCELED completion re-arms it; a cancelled request
// consumed nothing, so no data is lost) and armed again, and the new request sees the socket's
// state, reset included. The check's own re-arm can lose the race the same way, so it is checked
// again, after twice the delay each time (1 s, 2 s, 4 s ... up to 32 s), and data brings the
// delay back to BaseDelay: a missed reset shows as data with F_MORE and then silence, so it is
// caught BaseDelay after that data whatever the back-off was.
//
// The cost: under steady traffic no check comes due. An idle connection is re-armed (one cancel
// and one receive submitted, one ECANCELED completion) 1, 3, 7, 15, 31 and 63 s after its last
// data and then every 32 s: about 0.03 re-arms a second (300 a second for 10,000 idle
// connections), where a check every second would cost 1. The queue holds one live entry per
// armed receive, plus short-lived stale ones (when data moves a backed-off check earlier).
//
// Only the io_uring engine runs it; the epoll engine reads readiness itself and never misses the
// end (ResetRaceTests run on both). Tests switch it off (Enabled) to show the race.
// Owner thread only.
internal sealed class QuietReceiveCheck
{
    // The delay after an arm, or after data, before a quiet receive is re-armed: 1 s.
    public static readonly long BaseDelay = Stopwatch.Frequency;

    // Checks in a row that find the receive quiet double the delay up to 2^MaxLevel * BaseDelay (32 s).
    public const int MaxLevel = 5;

    // Receives to check, by due time (Stopwatch ticks): one first-in first-out queue per delay
    // level, since an entry of level L is queued at now + (BaseDelay << L) and now only grows, so
    // each queue is in due order at the cost of O(1) per entry (a priority queue was 1.3% of a
    // server's CPU under Connection: close, one insertion and one removal per connection among
    // tens of thousands). The one exception, an entry put back at a later due time (data came
    // since), can sit behind entries due up to one delay of its level later: a check may come
    // that much late, never lost. A handle's live entry is the one whose due time is its
    // Entry.QueuedAt; others are stale and dropped when they come up.
    private readonly Queue<(HandleState State, uint Generation, long Due)>[] _queues = CreateQueues();
    // The engine can need the check (io_uring); without it Enabled stays false.
    private readonly bool _supported;
    private bool _enabled;

    public QuietReceiveCheck(bool supported)
    {
        _supported = supported;
        _enabled = supported;
    }

    // Checks are scheduled and run. On by default on io_uring, never on epoll; tests switch it
    // off to show the race the check works around.
    public bool Enabled
    {
        get => _enabled;
        set => _enabled = value && _supported;
    }

    // Entries in the queues (tests: it must stay bounded by the live handles).
    public int Pending
    {
        get
        {
            int count = 0;
            foreach (Queue<(HandleState, uint, long)> queue in _queues)
            {
                count += queue.Count;
            }
            return count;
        }
    }

    private static Queue<(HandleState, uint, long)>[] CreateQueues()
    {
        var queues = new Queue<(HandleState, uint, long)>[MaxLevel + 1];
        for (int i = 0; i < queues.Length; i++)
        {
            queues[i] = new Queue<(HandleState, uint, long)>();
        }
        return queues;
    }

    // Quiet receives re-armed (tests and diagnostics).
    public long Rearms { get; private set; }

    // A handle's part of the check, kept in its HandleState.
    internal struct Entry
    {
        // When (Stopwatch ticks) the receive is due for a check; 0 when none is due.
        public long DueAt;
        // The priority of the handle's live entry in the queue; 0 when it has none.
        public long QueuedAt;
        // Checks in a row that found the receive quiet: the next check comes BaseDelay << Level after the arm.
        public byte Level;
        // A check cancelled the receive to re-arm it: the arm that follows is that re-arm.
        public bool Rearming;
    }

    // A receive was armed at now: a new arm (Level 0) or the re-arm of a check (Level + 1).
    public void OnArmed(HandleState state, long now)
    {
        ref Entry entry = ref state.ReceiveCheck;
        if (entry.Rearming)
        {
            entry.Rearming = false;
            entry.Level = (byte)Math.Min(entry.Level + 1, MaxLevel);
        }
        else
        {
            entry.Level = 0;
        }
        Schedule(state, now + (BaseDelay << entry.Level));
    }

    // Data arrived at now; more: the receive stays armed (F_MORE), so its silence from now on is checked.
    public void OnData(HandleState state, long now, bool more)
    {
        ref Entry entry = ref state.ReceiveCheck;
        entry.Rearming = false;
        entry.Level = 0;
        if (more)
        {
            Schedule(state, now + BaseDelay);
        }
    }

    // The receive ended for a reason other than a check's cancellation, or was stopped: the next
    // arm is a new one, whatever a check had begun.
    public static void OnEnded(HandleState state) => state.ReceiveCheck.Rearming = false;

    // The next handle whose receive is due for a re-arm, taken off the queue, or null; when none
    // is due, waitNs (-1: no limit) is capped at the time until the next check. The caller
    // cancels the receive, which comes back with ECANCELED and is armed again (see OnArmed).
    public HandleState? TakeDue(long now, ref long waitNs)
    {
        while (TryPeekEarliest(out Queue<(HandleState State, uint Generation, long Due)>? queue, out (HandleState State, uint Generation, long Due) check))
        {
            long due = check.Due;
            if (_enabled && due > now)
            {
                long remainingNs = (long)((due - now) * 1e9 / Stopwatch.Frequency);
                waitNs = waitNs < 0 || waitNs > remainingNs ? remainingNs : waitNs;
                return null;
            }
            queue.Dequeue();
            HandleState state = check.State;
            ref Entry entry = ref state.ReceiveCheck;
            if (state.Generation != check.Generation || entry.QueuedAt != due)
            {
                // The handle was freed (and maybe reused, with an entry of its own), or this
                // entry was replaced by an earlier one.
                continue;
            }
            entry.QueuedAt = 0;
            if (!_enabled || state.Status != HandleStatus.Open || entry.DueAt == 0)
            {
                continue;
            }
            if (entry.DueAt > now)
            {
                // Data or a new arm came since: check at the later time.
                Enqueue(state, entry.DueAt);
                continue;
            }
            entry.DueAt = 0;
            if (state.Receive.Wanted && state.Receive.Operation is not null)
            {
                entry.Rearming = true;
                Rearms++;
                return state;
            }
        }
        return null;
    }

    // The queue whose first entry is due first, and that entry; false when all are empty.
    private bool TryPeekEarliest([NotNullWhen(true)] out Queue<(HandleState State, uint Generation, long Due)>? earliest, out (HandleState State, uint Generation, long Due) check)
    {
        earliest = null;
        check = default;
        foreach (Queue<(HandleState State, uint Generation, long Due)> queue in _queues)
        {
            if (queue.TryPeek(out (HandleState State, uint Generation, long Due) head) && (earliest is null || head.Due < check.Due))
            {
                earliest = queue;
                check = head;
            }
        }
        return earliest is not null;
    }

    private void Schedule(HandleState state, long due)
    {
        if (!_enabled)
        {
            return;
        }
        ref Entry entry = ref state.ReceiveCheck;
        entry.DueAt = due;
        // One live entry per handle: a later due time is taken up when the entry comes up; an
        // earlier one (data after a backed-off check) needs an entry of its own.
        if (entry.QueuedAt == 0 || due < entry.QueuedAt)
        {
            Enqueue(state, due);
        }
    }

    // Into the queue of the entry's level: its delay is what separates due from the time it is queued.
    private void Enqueue(HandleState state, long due)
    {
        state.ReceiveCheck.QueuedAt = due;
        _queues[state.ReceiveCheck.Level].Enqueue((state, state.Generation, due));
    }
}
