// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// mp_dispatch: one system call submits every queued command and waits for completions, which are
// reaped and routed by their operation's kind to the feature that issued them (OnAccept,
// OnReceive, OnWrite, ...), which turns them into events for the caller.
public sealed unsafe partial class MegaPipeChannel
{
    // Events produced outside CQE processing (a close finished without a kernel request, say),
    // delivered before the next CQEs.
    private readonly Queue<CompletionEvent> _synthetic = new();

    // The one-slot buffer TryDispatch dispatches into (owner thread only), so it allocates nothing.
    private readonly CompletionEvent[] _single = new CompletionEvent[1];

    // The clock at the start of the current dispatch turn, or when its completions were collected.
    private long _turnTimestamp = Stopwatch.GetTimestamp();

    // Tests only: rewrites chosen submissions and skips chosen reaps (see IFaultHook); null otherwise.
    private IFaultHook? _faults;

    // Tests only: faults injected into this channel's submissions and dispatches. Set it on the
    // owner thread before the commands it should affect.
    internal IFaultHook? FaultHook
    {
        get => _faults;
        set
        {
            _faults = value;
            _ring.FaultHook = value;
        }
    }

    /// <summary>
    /// Dispatches completion events (mp_dispatch) into <paramref name="events"/>. Submits all
    /// commands issued since the last call and waits up to <paramref name="timeout"/> for at least
    /// one event, in one system call. Work posted by other threads runs here first. Returns the
    /// number of events; 0 when the timeout passed (or posted work ran and nothing completed).
    /// Data of <see cref="ChannelCommand.Receive"/> events stays valid until the next call.
    /// </summary>
    /// <param name="events">Where to put events.</param>
    /// <param name="timeout"><see cref="TimeSpan.Zero"/> to poll, <see cref="Timeout.InfiniteTimeSpan"/> to wait without limit.</param>
    public int Dispatch(Span<CompletionEvent> events, TimeSpan timeout)
    {
        CheckOwner();
        if (events.IsEmpty)
        {
            throw new ArgumentException("At least one event slot is needed.", nameof(events));
        }
        long timeoutNs = timeout == Timeout.InfiniteTimeSpan ? -1 : Math.Max(0, timeout.Ticks * 100);
        long deadline = timeoutNs > 0 ? Stopwatch.GetTimestamp() + (long)(timeoutNs / 1e9 * Stopwatch.Frequency) : 0;

        while (true)
        {
            _turnTimestamp = Stopwatch.GetTimestamp();
            ReturnLentBuffers();
            bool ranWork = RunPostedWork();
            // Resumes accepting paused for lack of descriptors and re-arms quiet receives when
            // their time has come, and otherwise waits no longer than the next of those.
            long waitNs = ApplyReceiveChecks(ApplyAcceptRetry(ranWork ? 0 : timeoutNs));
            int count = DrainSynthetic(events);
            if (count == 0 && _ring.CqReady() == 0)
            {
                // After posted work, submit its commands and collect what is ready without
                // blocking: the caller hears that work ran (a loop waiting without a timeout
                // is stopped this way).
                WaitForCompletions(waitNs);
            }
            else if (_ring.PendingSubmissions != 0 || _ring.NeedsEnter)
            {
                EnterChecked(0, -1);
            }
            if (count == 0 && _faults is { } faults && _ring.CqReady() != 0 && faults.ShouldSkipReap())
            {
                // Fault injection: leave the completions in the CQ this time and enter once more,
                // so they pile up past it and the engine has to hold the rest (its overflow path).
                EnterChecked(0, -1);
                faults.OnReapSkipped(_ring.CqOverflowPending);
                return 0;
            }
            // The completions below are stamped with the time they were collected (one clock read per turn).
            _turnTimestamp = Stopwatch.GetTimestamp();
            count += Reap(events.Slice(count));
            count += DrainSynthetic(events.Slice(count));
            _events += count;
            if (count > 0 || timeoutNs == 0 || ranWork)
            {
                return count;
            }
            if (timeoutNs > 0)
            {
                long remaining = deadline - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    return 0;
                }
                timeoutNs = (long)(remaining * 1e9 / Stopwatch.Frequency);
            }
            // Woken by posted work or by internal completions only: go round again.
            if (!_posted.IsEmpty)
            {
                continue;
            }
        }
    }

    /// <summary>Dispatches a single event; false when the timeout passed (or posted work ran) without one.</summary>
    public bool TryDispatch(out CompletionEvent completion, TimeSpan timeout)
    {
        Span<CompletionEvent> one = _single;
        int count = Dispatch(one, timeout);
        completion = count == 1 ? one[0] : default;
        one[0] = default; // drop the cookie reference
        return count == 1;
    }

    private void WaitForCompletions(long timeoutNs)
    {
        // Tell posters we are about to sleep, then look once more: a Post that raced with this
        // either is seen here or sees _sleeping and writes the eventfd.
        Volatile.Write(ref _sleeping, 1);
        // Full fence: the store above must be visible before we test the queue (pairs with Post).
        RingBarrier.FullFence();
        bool wait = _posted.IsEmpty && timeoutNs != 0;
        EnterChecked(wait ? 1u : 0u, timeoutNs);
        Volatile.Write(ref _sleeping, 0);
    }

    private void EnterChecked(uint waitFor, long timeoutNs)
    {
        int result = _ring.Enter(waitFor, getEvents: true, timeoutNs);
        // ETIME: the wait ended at its timeout, with nothing or less than waitFor completed.
        if (result != -(int)Errno.ETIME && Ring.IsFatalEnterResult(result))
        {
            FailFast(_ring.EngineName == "io_uring" ? "io_uring_enter" : "epoll_wait", result);
        }
    }

    private int DrainSynthetic(Span<CompletionEvent> events)
    {
        int count = 0;
        while (count < events.Length && _synthetic.TryDequeue(out CompletionEvent completion))
        {
            events[count++] = completion;
        }
        return count;
    }

    // Consumes CQEs while there is room for the events they may produce.
    private int Reap(Span<CompletionEvent> events)
    {
        int count = 0;
        while (true)
        {
            uint ready = _ring.CqReady();
            uint consumed = 0;
            while (consumed < ready && count < events.Length && _synthetic.Count == 0)
            {
                io_uring_cqe* cqe = _ring.PeekCqe(consumed);
                consumed++;
                ProcessCompletion(cqe->user_data, cqe->res, cqe->flags, events, ref count);
            }
            _ring.CqAdvance(consumed);
            _completions += consumed;
            // Completions the CQ had no room for are held by the kernel (IORING_FEAT_NODROP);
            // entering flushes them into the ring.
            if (count < events.Length && _synthetic.Count == 0 && consumed == ready && _ring.CqOverflowPending)
            {
                EnterChecked(0, -1);
                continue;
            }
            return count;
        }
    }

    private void ProcessCompletion(ulong userData, int result, uint flags, Span<CompletionEvent> events, ref int count)
    {
        if (userData == WakeUserData)
        {
            OnWakeRead();
            return;
        }
        if (userData == CancelUserData)
        {
            return;
        }
        Operation op = _operations[(int)(uint)userData];
        Debug.Assert(op.Generation == (uint)(userData >> 32), "a completion arrived for a recycled operation");
        HandleState state = op.Handle!;
        switch (op.Kind)
        {
            case OperationKind.MultishotReceive:
                OnReceive(op, state, result, flags, events, ref count);
                return;
            case OperationKind.Accept:
                OnAccept(op, state, result, events, ref count);
                return;
            case OperationKind.Write:
                OnWrite(op, state, result, events, ref count);
                return;
            case OperationKind.ConnectSocket:
                OnConnectSocket(op, state, result, events, ref count);
                return;
            case OperationKind.CloseDescriptor:
            case OperationKind.ShutdownBeforeClose:
                OnCloseStep(op, state);
                return;
            default:
                OnCommand(op, state, result, events, ref count);
                return;
        }
    }
}
