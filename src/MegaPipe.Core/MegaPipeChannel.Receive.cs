// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Runtime.CompilerServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// The continuous receive: a multishot receive into channel-owned buffers, its completions,
// the buffers lent to the caller, and the quiet-receive check.
public sealed unsafe partial class MegaPipeChannel
{
    /// <summary>
    /// Starts a continuous receive into channel-owned buffers: each arrival is a
    /// <see cref="ChannelCommand.Receive"/> event whose data <see cref="GetReceivedData"/> returns until
    /// the next dispatch. No buffer is held while nothing arrives. A result of 0 is end of stream.
    /// The receive is re-armed when the kernel ends it (including when buffers ran out) until
    /// <see cref="StopReceive"/>, end of stream or an error.
    /// </summary>
    public void Receive(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        if (state.Kind != HandleKind.Socket)
        {
            ThrowHelper.ThrowInvalidOperation("Receive needs a socket handle.");
        }
        _commands++;
        state.ReceiveWanted = true;
        if (state.ReceiveOperation is null && !state.ReceiveStarved)
        {
            ArmReceive(state);
        }
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Stops a continuous receive (for backpressure). Data the kernel had already placed still
    /// arrives as events; nothing is dropped.
    /// </summary>
    public void StopReceive(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        state.ReceiveWanted = false;
        state.ReceiveStarved = false;
        state.ReceiveCheckRearm = false;
        if (state.ReceiveOperation is { } op)
        {
            SubmitCancel(op);
            _commands++;
            SubmitIfNotBatching();
        }
    }

    private void ArmReceive(HandleState state)
    {
        Operation op = AllocateOperation(OperationKind.MultishotReceive, state);
        op.Command = ChannelCommand.Receive;
        state.ReceiveOperation = op;
        state.ReceiveStarved = false;
        Sqe.PrepareRecvMultishot(NextSqe(), state.Fd, state.IsDirect, _buffers.GroupId, op.UserData);
        // A new arm can miss a reset as a re-arm after data can (see ScheduleReceiveCheck); the
        // re-arm a check makes is not checked again, so an idle connection costs one check.
        if (state.ReceiveCheckRearm)
        {
            state.ReceiveCheckRearm = false;
        }
        else if (_wakeupChecks)
        {
            ScheduleReceiveCheck(state);
        }
    }

    // Receive buffers lent to the caller by the last dispatch; they go back to the kernel at the next.
    private ushort[] _lentBuffers = new ushort[64];

    private int _lentBufferCount;

    // Handles whose continuous receive ended for lack of buffers, to re-arm once buffers return.
    private readonly List<HandleState> _starved = new();

    /// <summary>The data of a <see cref="ChannelCommand.Receive"/> event; valid until the next dispatch.</summary>
    public ReadOnlySpan<byte> GetReceivedData(in CompletionEvent completion)
    {
        if (completion.Command != ChannelCommand.Receive || completion.BufferId < 0)
        {
            return default;
        }
        return _buffers.GetBuffer((ushort)completion.BufferId, completion.Result);
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

    // A multishot receive on io_uring can miss the peer's reset (or end of stream) that lands just
    // after a data completion, while the kernel re-arms its internal poll, or just as the receive
    // is armed: no completion follows, ever (Linux 6.18; about 1 in 2,000 connections that send
    // part of a request and reset at once, and a few in a million in the soak's mix; see
    // ResetRaceTests). A receive that stays quiet for ReceiveCheckDelay after being armed or
    // after data therefore gets re-armed once (cancel, then arm again, which loses no data): the
    // new request sees the socket's state. Under steady traffic no check ever comes due, and an
    // idle connection is checked once, not every second.
    private static readonly long ReceiveCheckDelay = Stopwatch.Frequency;

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

    // Quiet receives re-armed by the check above (for tests and diagnostics).
    internal long ReceiveChecks { get; private set; }
}
