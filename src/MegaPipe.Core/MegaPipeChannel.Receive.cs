// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// The continuous receive: a multishot receive into channel-owned buffers (issued by Receive,
// ended by StopReceive), its completions, the buffers lent to the caller until the next dispatch,
// and the re-arms of the quiet-receive check (Internal/QuietReceiveCheck.cs).
public sealed unsafe partial class MegaPipeChannel
{
    // Receive buffers lent to the caller by the last dispatch; they go back to the kernel at the next.
    private ushort[] _lentBuffers = new ushort[64];
    private int _lentBufferCount;
    // Handles whose continuous receive ended for lack of buffers, to re-arm once buffers return.
    private readonly List<HandleState> _starved = new();

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
        state.Receive.Wanted = true;
        if (state.Receive.ShouldArm)
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
        state.Receive.Stop();
        QuietReceiveCheck.OnEnded(state);
        if (state.Receive.Operation is { } op)
        {
            SubmitCancel(op);
            _commands++;
            SubmitIfNotBatching();
        }
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

    private void ArmReceive(HandleState state)
    {
        Operation op = AllocateOperation(OperationKind.MultishotReceive, state);
        op.Command = ChannelCommand.Receive;
        state.Receive.Armed(op);
        Sqe.PrepareRecvMultishot(NextSqe(), state.Fd, state.IsDirect, _buffers.GroupId, op.UserData);
        _receiveCheck.OnArmed(state, _turnTimestamp);
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
            state.Receive.Operation = null;
            FreeOperation(op);
            if (result != -(int)Errno.ECANCELED)
            {
                // A check's cancellation that finds the receive already ended re-arms nothing.
                QuietReceiveCheck.OnEnded(state);
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
            state.Receive.Retries = 0;
            _receiveCheck.OnData(state, _turnTimestamp, more);
            if (bufferId >= 0)
            {
                LendBuffer((ushort)bufferId);
            }
            events[count++] = new CompletionEvent(ChannelCommand.Receive, HandleOf(state), state.Cookie, result, bufferId: bufferId, more: more);
            if (!more && state.Receive.Wanted)
            {
                ArmReceive(state);
            }
            return;
        }
        if (result == -(int)Errno.ENOBUFS)
        {
            // The buffer ring ran dry (possibly before any data arrived). Buffers come back at the
            // next dispatch; re-arm then, not on a timer.
            if (state.Receive.ShouldArm)
            {
                state.Receive.Starved = true;
                _starved.Add(state);
            }
            return;
        }
        if (result == -(int)Errno.ECANCELED)
        {
            // Ended by StopReceive or by a check. A Receive issued while the cancelled request was
            // still in flight found it armed and left it; start the new one now instead of
            // reporting an error. A cancellation the channel did not ask for finds the receive
            // still wanted too: a cancelled request consumed no data, so arming again loses nothing.
            if (state.Receive.ShouldArm)
            {
                ArmReceive(state);
            }
            return;
        }
        if (result == -(int)Errno.EAGAIN && state.Receive.Retries < MaxTransientRetries)
        {
            // Nothing was there to receive and the engine did not wait: arm again (nothing was consumed).
            if (state.Receive.ShouldArm)
            {
                state.Receive.Retries++;
                ArmReceive(state);
            }
            return;
        }
        // End of stream or an error ends the receive.
        state.Receive.Wanted = false;
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
            if (state.Receive.EndStarvation() && state.Status == HandleStatus.Open)
            {
                ArmReceive(state);
            }
        }
        _starved.Clear();
    }

    // Re-arms the quiet receives that are due (see QuietReceiveCheck); caps the wait (ns, -1 =
    // none) at the next check.
    private long ApplyReceiveChecks(long waitNs)
    {
        while (_receiveCheck.TakeDue(_turnTimestamp, ref waitNs) is { } state)
        {
            // ECANCELED comes back and re-arms the receive (it is still wanted).
            SubmitCancel(state.Receive.Operation!);
        }
        return waitNs;
    }
}
