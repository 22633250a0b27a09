// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Runtime.CompilerServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// mp_dispatch: one system call submits every queued command and waits for completions, which are
// turned into events for the caller.
public sealed unsafe partial class MegaPipeChannel
{
    // Events produced outside CQE processing (a close finished without a kernel request, say),
    // delivered before the next CQEs.
    private readonly Queue<CompletionEvent> _synthetic = new();
    // Receive buffers lent to the caller by the last dispatch; they go back to the kernel at the next.
    private ushort[] _lentBuffers = new ushort[64];
    private int _lentBufferCount;
    // Handles whose continuous receive ended for lack of buffers, to re-arm once buffers return.
    private readonly List<HandleState> _starved = new();
    // The one-slot buffer TryDispatch dispatches into (owner thread only), so it allocates nothing.
    private readonly CompletionEvent[] _single = new CompletionEvent[1];
    // Tests only: rewrites chosen submissions and skips chosen reaps (see FaultInjector).
    private FaultInjector? _faults;

    // Consecutive transient failures (EAGAIN) a write or a continuous receive is retried through
    // without progress before the error is reported: neither engine returns EAGAIN for a socket
    // (io_uring waits for readiness itself, EpollRing parks the request), but a descriptor the
    // caller made non-blocking can, and must not spin the channel forever.
    internal const int MaxTransientRetries = 64;

    // Test hook: faults injected into this channel's submissions and dispatches. Set it on the
    // owner thread before the commands it should affect.
    internal FaultInjector? FaultInjector
    {
        get => _faults;
        set
        {
            _faults = value;
            _ring.Interceptor = value;
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
            // Resumes accepting paused for lack of descriptors when its time has come, and
            // otherwise waits no longer than that.
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

    /// <summary>The data of a <see cref="ChannelCommand.Receive"/> event; valid until the next dispatch.</summary>
    public ReadOnlySpan<byte> GetReceivedData(in CompletionEvent completion)
    {
        if (completion.Command != ChannelCommand.Receive || completion.BufferId < 0)
        {
            return default;
        }
        return _buffers.GetBuffer((ushort)completion.BufferId, completion.Result);
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
        if (result < 0 && result != -(int)Errno.ETIME && result != -(int)Errno.EINTR && result != -(int)Errno.EAGAIN && result != -(int)Errno.EBUSY)
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
        Operation op = _operations[(int)(uint)userData]!;
        Debug.Assert(op.Generation == (uint)(userData >> 32), "a completion arrived for a recycled operation");
        HandleState? state = op.Handle;
        switch (op.Kind)
        {
            case OperationKind.MultishotReceive:
                OnReceive(op, state!, result, flags, events, ref count);
                return;
            case OperationKind.Accept:
                OnAccept(op, state!, result, events, ref count);
                return;
            case OperationKind.ConnectSocket:
                OnConnectSocket(op, state!, result, events, ref count);
                return;
            case OperationKind.CloseDescriptor:
                FreeOperation(op);
                TryFinishClose(state!);
                return;
            case OperationKind.ShutdownBeforeClose:
                state!.ShutdownPending = false;
                FreeOperation(op);
                TryFinishClose(state);
                return;
        }

        Debug.Assert(state is not null, "a command completed without a handle");
        if (op.Command == ChannelCommand.Write && state.Status == HandleStatus.Open)
        {
            if (result > 0)
            {
                op.Done += result;
                op.Retries = 0;
                if (op.Done < op.Total)
                {
                    // A short write: continue with the remainder, same operation, same buffers.
                    PrepareWrite(op);
                    return;
                }
                result = op.Total;
            }
            else if (result == -(int)Errno.EAGAIN && op.Retries < MaxTransientRetries)
            {
                // Nothing was written this time: submit the remainder again.
                op.Retries++;
                PrepareWrite(op);
                return;
            }
            // Any other error ends the write, reported to the caller (with what was written unknown
            // to it, the stream is broken). That includes ECANCELED: the channel cancels a write
            // only when its handle closes, and then nothing is reported at all.
        }
        ChannelCommand command = op.Command;
        FreeOperation(op);
        if (state.Status == HandleStatus.Open)
        {
            events[count++] = new CompletionEvent(command, HandleOf(state), state.Cookie, result);
        }
        else
        {
            TryFinishClose(state);
        }
    }

    private void OnReceive(Operation op, HandleState state, int result, uint flags, Span<CompletionEvent> events, ref int count)
    {
        bool more = (flags & IORING_CQE_F_MORE) != 0;
        int bufferId = -1;
        if ((flags & IORING_CQE_F_BUFFER) != 0)
        {
            bufferId = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
            _buffers.MarkTaken();
        }
        if (!more)
        {
            state.ReceiveOperation = null;
            FreeOperation(op);
            if (result != -(int)Errno.ECANCELED)
            {
                // A check's cancel that finds the receive already ended must not exempt the next arm.
                state.ReceiveCheckRearm = false;
            }
        }

        if (state.Status != HandleStatus.Open || (result <= 0 && bufferId >= 0))
        {
            // No one will read this buffer (the handle is closing, or the completion carries no
            // data): it goes straight back.
            if (bufferId >= 0)
            {
                _buffers.Return((ushort)bufferId);
                _buffers.Publish();
                bufferId = -1;
            }
            if (state.Status != HandleStatus.Open)
            {
                TryFinishClose(state);
                return;
            }
        }

        if (result > 0)
        {
            state.ReceiveRetries = 0;
            state.ReceiveCheckRearm = false;
            if (more && _wakeupChecks)
            {
                ScheduleReceiveCheck(state);
            }
            if (bufferId >= 0)
            {
                LendBuffer((ushort)bufferId);
            }
            events[count++] = new CompletionEvent(ChannelCommand.Receive, HandleOf(state), state.Cookie, result, bufferId: bufferId, more: more);
            if (!more && state.ReceiveWanted)
            {
                ArmReceive(state);
            }
            return;
        }

        if (result == -(int)Errno.ENOBUFS)
        {
            // The buffer ring ran dry (possibly before any data arrived). Buffers come back at the
            // next dispatch; re-arm then, not on a timer.
            if (state.ReceiveWanted && state.ReceiveOperation is null && !state.ReceiveStarved)
            {
                state.ReceiveStarved = true;
                _starved.Add(state);
            }
            return;
        }

        if (result == -(int)Errno.ECANCELED)
        {
            // Ended by StopReceive. A Receive issued while the cancelled request was still in
            // flight found it armed and left it; start the new one now instead of reporting an error.
            // A cancellation the channel did not ask for finds the receive still wanted too: a
            // cancelled request consumed no data, so arming again loses nothing.
            if (state.ReceiveWanted && state.ReceiveOperation is null && !state.ReceiveStarved)
            {
                ArmReceive(state);
            }
            return;
        }

        if (result == -(int)Errno.EAGAIN && state.ReceiveRetries < MaxTransientRetries)
        {
            // Nothing was there to receive and the engine did not wait: arm again (nothing was consumed).
            if (state.ReceiveWanted && state.ReceiveOperation is null && !state.ReceiveStarved)
            {
                state.ReceiveRetries++;
                ArmReceive(state);
            }
            return;
        }

        // End of stream or an error ends the receive.
        state.ReceiveWanted = false;
        events[count++] = new CompletionEvent(ChannelCommand.Receive, HandleOf(state), state.Cookie, result, more: false);
    }

    private void OnAccept(Operation op, HandleState listener, int result, Span<CompletionEvent> events, ref int count)
    {
        listener.AcceptsArmed--;
        // One of the accepts StopAccept or a back-off cancelled, whatever its result (it may have
        // completed, or failed, before the cancellation reached it).
        bool cancelledByUs = listener.AcceptsCancelling > 0;
        if (cancelledByUs)
        {
            listener.AcceptsCancelling--;
        }
        bool isDirect = Options.LightweightSockets;
        if (listener.Status != HandleStatus.Open)
        {
            if (result >= 0)
            {
                CloseOrphan(result, isDirect);
            }
            FreeOperation(op);
            TryFinishClose(listener);
            return;
        }

        if (result >= 0)
        {
            listener.AcceptFailureReported = false;
            if (_wakeupChecks)
            {
                // Accepts can miss a wake-up as receives can (see ScheduleReceiveCheck): a listener
                // quiet for a second after a connection gets its accepts re-armed once.
                ScheduleReceiveCheck(listener);
            }
            HandleState accepted = AllocateHandle(HandleKind.Socket, result, isDirect, ownsDescriptor: true);
            if (isDirect)
            {
                Volatile.Write(ref _registeredFilesInUse, _registeredFilesInUse + 1);
            }
            if (SocketsHoldProcessDescriptors)
            {
                accepted.HoldsProcessDescriptor = true;
                DescriptorBudget.Acquire();
            }
            accepted.PeerAddress ??= new byte[SocketAddressConverter.MaxSize];
            int length = (int)Math.Min(*op.SockaddrLength, (uint)SocketAddressConverter.MaxSize);
            new ReadOnlySpan<byte>(op.Sockaddr, length).CopyTo(accepted.PeerAddress);
            accepted.PeerAddressLength = length;
            accepted.LocalEndPoint = listener.ListenerEndPoint;
            FreeOperation(op);
            events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, 0, accepted: HandleOf(accepted));
        }
        else
        {
            FreeOperation(op);
            if (result == -(int)Errno.ECANCELED && cancelledByUs)
            {
                // Cancelled by StopAccept, the back-off below or an accept check: nothing to report.
                if (listener.AcceptWanted && !listener.AcceptBackoff)
                {
                    ArmAccepts(listener);
                }
                return;
            }
            if (result is -(int)Errno.EMFILE or -(int)Errno.ENFILE or -(int)Errno.ENOBUFS or -(int)Errno.ENOMEM)
            {
                // Out of descriptors (or table slots, or memory). Re-arming now would fail again
                // at once, a busy loop; pause, report the first failure only, and retry when a
                // handle closes or after a delay. Meanwhile connections wait in the backlog.
                if (!listener.AcceptBackoff)
                {
                    BackOffAccepts(listener);
                    if (!listener.AcceptFailureReported)
                    {
                        listener.AcceptFailureReported = true;
                        events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, result);
                    }
                }
                return;
            }
            if (result is -(int)Errno.EBADF or -(int)Errno.EINVAL or -(int)Errno.ENOTSOCK or -(int)Errno.EOPNOTSUPP or -(int)Errno.ECANCELED)
            {
                // The listener itself is unusable: stop accepting.
                listener.AcceptWanted = false;
            }
            events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, result);
        }
        if (listener.AcceptWanted && !listener.AcceptBackoff)
        {
            ArmAccepts(listener);
        }
    }

    // A multishot receive on io_uring can miss the peer's reset (or end of stream) that lands just
    // after a data completion, while the kernel re-arms its internal poll, or just as the receive
    // is armed: no completion follows, ever (Linux 6.18; about 1 in 2,000 connections that send
    // part of a request and reset at once, and a few in a million in the soak's mix; see
    // ResetRaceTests). A receive that stays quiet for ReceiveCheckDelay after being armed or
    // after data therefore gets re-armed once (cancel, then arm again, which loses no data): the
    // new request sees the socket's state. Under steady traffic no check ever comes due, and an
    // idle connection is checked once, not every second.
    private static readonly long ReceiveCheckDelay = Stopwatch.Frequency;
    // The clock at the start of the current dispatch turn, or when its completions were collected.
    private long _turnTimestamp = Stopwatch.GetTimestamp();
    // Receives to check, by due time. A handle has at most one entry: when its time moves on
    // (more data), the entry is put back with the new time when it comes up.
    private readonly PriorityQueue<(HandleState State, uint Generation), long> _receiveChecks = new();

    private void ScheduleReceiveCheck(HandleState state)
    {
        state.ReceiveCheckAt = _turnTimestamp + ReceiveCheckDelay;
        if (!state.ReceiveCheckQueued)
        {
            state.ReceiveCheckQueued = true;
            _receiveChecks.Enqueue((state, state.Generation), state.ReceiveCheckAt);
        }
    }

    // Runs the receive checks that are due; caps the wait (ns, -1 = none) at the next one.
    private long ApplyReceiveChecks(long waitNs)
    {
        if (_receiveChecks.Count == 0)
        {
            return waitNs;
        }
        long now = _turnTimestamp;
        while (_receiveChecks.TryPeek(out (HandleState State, uint Generation) check, out long due))
        {
            if (due > now)
            {
                long remainingNs = (long)((due - now) * 1e9 / Stopwatch.Frequency);
                return waitNs < 0 || waitNs > remainingNs ? remainingNs : waitNs;
            }
            _receiveChecks.Dequeue();
            HandleState state = check.State;
            if (state.Generation != check.Generation)
            {
                // The handle was freed (and maybe reused, with an entry of its own).
                continue;
            }
            state.ReceiveCheckQueued = false;
            if (state.Status != HandleStatus.Open || state.ReceiveCheckAt == 0)
            {
                continue;
            }
            if (state.ReceiveCheckAt > now)
            {
                // Data came since: check at the later time.
                state.ReceiveCheckQueued = true;
                _receiveChecks.Enqueue((state, state.Generation), state.ReceiveCheckAt);
                continue;
            }
            state.ReceiveCheckAt = 0;
            if (state.Kind == HandleKind.Listener)
            {
                if (state.AcceptWanted && !state.AcceptBackoff && state.AcceptsArmed > 0 && state.AcceptsCancelling == 0)
                {
                    // Their ECANCELED completions re-arm them (accepting is still wanted).
                    CancelAccepts(state);
                    AcceptChecks++;
                }
                continue;
            }
            if (state.ReceiveWanted && state.ReceiveOperation is { } receive)
            {
                // ECANCELED comes back and re-arms the receive (it is still wanted).
                state.ReceiveCheckRearm = true;
                SubmitCancel(receive);
                ReceiveChecks++;
            }
        }
        return waitNs;
    }

    // Receive checks waiting (for tests: it must stay bounded by the live handles).
    internal int PendingReceiveChecks => _receiveChecks.Count;

    // Listeners whose accepts the check above re-armed (for tests and diagnostics).
    internal long AcceptChecks { get; private set; }

    // Quiet receives re-armed by the check above (for tests and diagnostics).
    internal long ReceiveChecks { get; private set; }

    // Listeners whose accepting paused for lack of descriptors, and when to retry them (Stopwatch
    // ticks). No timer: a timer thread cannot be started when descriptors have run out, so
    // Dispatch itself waits no longer than the retry time.
    private List<HandleState> _acceptBackoff = new();
    private List<HandleState> _acceptResuming = new();
    private long _acceptRetryAt;

    private void BackOffAccepts(HandleState listener)
    {
        listener.AcceptBackoff = true;
        _acceptBackoff.Add(listener);
        if (listener.AcceptsArmed > 0)
        {
            // The other armed accepts would take connections only to drop them (a full
            // direct-descriptor table fails after accepting): cancel them.
            CancelAccepts(listener);
        }
        ScheduleAcceptRetry();
    }

    // Accepted and connected sockets take a process descriptor: without lightweight sockets, and
    // on the epoll engine, whose lightweight sockets are emulated with regular descriptors.
    private bool SocketsHoldProcessDescriptors => !Options.LightweightSockets || Engine == ChannelEngine.Epoll;

    private void ScheduleAcceptRetry()
        => _acceptRetryAt = _turnTimestamp + (long)(AcceptRetryDelay.TotalSeconds * Stopwatch.Frequency);

    // Resumes accepting when its retry time has come; otherwise caps the wait (ns, -1 = none) at it.
    private long ApplyAcceptRetry(long waitNs)
    {
        if (_acceptBackoff.Count == 0)
        {
            return waitNs;
        }
        long remaining = _acceptRetryAt - _turnTimestamp;
        if (remaining <= 0)
        {
            ResumeBackedOffAccepts();
            return waitNs;
        }
        long remainingNs = (long)(remaining * 1e9 / Stopwatch.Frequency);
        return waitNs < 0 || waitNs > remainingNs ? remainingNs : waitNs;
    }

    // Re-arms accepts paused for lack of descriptors (a handle closed, or the retry time came).
    private void ResumeBackedOffAccepts()
    {
        if (_acceptBackoff.Count == 0)
        {
            return;
        }
        // ArmAccepts may back off again (adding to the list): work on the other of two lists.
        (_acceptBackoff, _acceptResuming) = (_acceptResuming, _acceptBackoff);
        List<HandleState> listeners = _acceptResuming;
        foreach (HandleState listener in listeners)
        {
            listener.AcceptBackoff = false;
            if (listener.Status == HandleStatus.Open && listener.AcceptWanted)
            {
                ArmAccepts(listener);
            }
        }
        listeners.Clear();
    }


    private void OnConnectSocket(Operation op, HandleState state, int result, Span<CompletionEvent> events, ref int count)
    {
        if (result >= 0)
        {
            state.Fd = result;
            state.IsDirect = Options.LightweightSockets;
            if (state.IsDirect)
            {
                Volatile.Write(ref _registeredFilesInUse, _registeredFilesInUse + 1);
            }
            if (SocketsHoldProcessDescriptors)
            {
                state.HoldsProcessDescriptor = true;
                DescriptorBudget.Acquire();
            }
        }
        if (state.Status != HandleStatus.Open || result < 0)
        {
            FreeOperation(op);
            if (state.Status == HandleStatus.Open)
            {
                events[count++] = new CompletionEvent(ChannelCommand.Connect, HandleOf(state), state.Cookie, result);
            }
            else
            {
                TryFinishClose(state);
            }
            return;
        }
        SubmitConnect(op);
    }

    private void LendBuffer(ushort bufferId)
    {
        if (_lentBufferCount == _lentBuffers.Length)
        {
            Array.Resize(ref _lentBuffers, _lentBuffers.Length * 2);
        }
        _lentBuffers[_lentBufferCount++] = bufferId;
    }

    // Gives back the buffers lent by the previous dispatch and re-arms receives starved of them.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ReturnLentBuffers()
    {
        if (_lentBufferCount == 0 && _starved.Count == 0)
        {
            return;
        }
        ReturnLentBuffersSlow();
    }

    private void ReturnLentBuffersSlow()
    {
        for (int i = 0; i < _lentBufferCount; i++)
        {
            _buffers.Return(_lentBuffers[i]);
        }
        _lentBufferCount = 0;
        _buffers.Publish();
        foreach (HandleState state in _starved)
        {
            if (state.ReceiveStarved && state.Status == HandleStatus.Open && state.ReceiveWanted && state.ReceiveOperation is null)
            {
                ArmReceive(state);
            }
            state.ReceiveStarved = false;
        }
        _starved.Clear();
    }
}
