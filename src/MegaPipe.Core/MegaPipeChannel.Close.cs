// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Closing: close (in its three modes), abort and unregister; the cancellations that precede
// them, the shutdown of a graceful close, the abortive linger, and the descriptor close that
// ends a handle, with their completions.
public sealed unsafe partial class MegaPipeChannel
{
    // user_data of requests whose completions carry nothing we need.
    private const ulong CancelUserData = ulong.MaxValue - 1;

    // The SO_LINGER value of an abortive close. The kernel reads it when it takes the submission,
    // after Abort has returned, so it lives in native memory for the life of the process.
    private static readonly linger* s_lingerZero = AllocateLingerZero();

    /// <summary>
    /// Unregisters a handle (mp_unregister): its in-flight commands are cancelled first, and no
    /// event for it is delivered afterwards. A descriptor the channel opened (an accepted or
    /// connected socket) is closed, since nothing else could reach it; a caller's is left open.
    /// </summary>
    public void Unregister(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        BeginClose(state, HandleStatus.Unregistering);
    }

    /// <summary>
    /// Closes a handle: cancels its in-flight commands, then closes the descriptor (for a
    /// lightweight socket, its slot in the registered file table). A final
    /// <see cref="ChannelCommand.Close"/> event follows; no other event of the handle comes after
    /// this call, so write completions still pending are lost: wait for them first to close
    /// gracefully. This is <see cref="CloseMode.Immediate"/>.
    /// </summary>
    public void Close(MegaPipeHandle handle) => Close(handle, CloseMode.Immediate);

    /// <summary>
    /// Closes a connected socket abortively, as <see cref="Close(MegaPipeHandle)"/> does but with
    /// SO_LINGER set to zero first: the kernel resets the connection (RST) and drops unsent data
    /// instead of finishing it with FIN, so the peer can tell an abort from an orderly end. This is
    /// <see cref="CloseMode.Abort"/>.
    /// </summary>
    public void Abort(MegaPipeHandle handle) => Close(handle, CloseMode.Abort);

    /// <summary>
    /// Closes a handle as <see cref="Close(MegaPipeHandle)"/> does, ending a connected socket the
    /// way <paramref name="mode"/> says: with FIN after a shutdown of the send side
    /// (<see cref="CloseMode.Graceful"/>), as close(2) does (<see cref="CloseMode.Immediate"/>), or
    /// with a reset (<see cref="CloseMode.Abort"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a <see cref="CloseMode"/>.</exception>
    public void Close(MegaPipeHandle handle, CloseMode mode)
    {
        if ((uint)mode > (uint)CloseMode.Abort)
        {
            ThrowHelper.ThrowArgumentOutOfRange(nameof(mode), mode, "not a close mode");
        }
        HandleState state = Resolve(handle);
        _commands++;
        bool connected = state.Kind == HandleKind.Socket && state.Fd >= 0;
        if (mode == CloseMode.Abort && connected)
        {
            SetLingerZero(state);
        }
        BeginClose(state, HandleStatus.Closing, gracefulEnd: mode == CloseMode.Graceful && connected);
    }

    // Cancels what is in flight, then closes once nothing is left in the kernel; a graceful close
    // (gracefulEnd) first makes sure the peer gets FIN, not RST. close(2) resets a TCP connection
    // whose received data is still unread (the peer's next request, already in the socket), so:
    //  - io_uring: the close is hard-linked behind a receive of whatever is still unread
    //    (MSG_DONTWAIT: nothing waits), then the close finds the socket drained and ends it with
    //    FIN. Both run inline at submission. Not shutdown(2): io_uring runs every shutdown on an
    //    io-wq worker thread, a wake-up and two context switches per connection (12% of the CPU of
    //    a server under Connection: close went to those workers). Data landing in the instant
    //    between the two, or more than DrainSize unread, still gets the RST close(2) gives.
    //  - epoll: shutdown(SHUT_WR) first, a plain non-blocking system call there. It goes after
    //    the cancellation, so a cancellation by descriptor cannot take it too, and the close waits for it.
    private void BeginClose(HandleState state, HandleStatus status, bool gracefulEnd = false)
    {
        state.Status = status;
        state.Accept.Wanted = false;
        state.Receive.Wanted = false;
        if (state.InFlight > 0 && state.Fd >= 0)
        {
            SubmitCancelAll(state);
        }
        if (gracefulEnd && Engine == ChannelEngine.IoUring)
        {
            state.DrainBeforeClose = true;
        }
        else if (gracefulEnd)
        {
            Operation op = AllocateOperation(OperationKind.ShutdownBeforeClose, state);
            Sqe.PrepareShutdown(NextSqe(), state.Fd, state.IsDirect, SHUT_WR, op.UserData);
        }
        TryFinishClose(state);
        SubmitIfNotBatching();
    }

    // What a graceful close drains at most before its close (one buffer per channel: what it
    // receives is thrown away, so every close of a turn may share it).
    private const int DrainSize = 64 * 1024;
    private byte* _drainBuffer;

    // Finishes a close once nothing of the handle is left in the kernel: closes the descriptor
    // (itself a request) and then frees the slot.
    private void TryFinishClose(HandleState state)
    {
        if (state.InFlight != 0 || state.Status is HandleStatus.Open or HandleStatus.Free)
        {
            return;
        }
        if (!state.CloseSubmitted && state.Fd >= 0 && state.External is null && (state.IsDirect || state.OwnsDescriptor))
        {
            SubmitCloseDescriptor(state);
            return;
        }
        ReleaseDescriptor(state, closeRegular: false);
        if (state.Status == HandleStatus.Closing)
        {
            _synthetic.Enqueue(new CompletionEvent(ChannelCommand.Close, HandleOf(state), state.Cookie, 0));
        }
        FreeHandle(state);
    }

    // Cancels one request by its user_data; only a failure would complete (and be ignored).
    private void SubmitCancel(Operation op)
    {
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareCancel(sqe, op.UserData, CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    // Cancels everything of a handle in flight.
    private void SubmitCancelAll(HandleState state)
    {
        if (state.InFlight == 1 && state.Receive.Operation is { } receive)
        {
            // Only the continuous receive is in flight, as when a connection closes after its last
            // send: cancel it by user_data, one lookup in the kernel's cancel hash. A cancel by
            // descriptor walks every bucket of that hash, twice with ALL (io_poll_cancel and
            // io_async_cancel were 3-5% of the CPU of a static server under 2.3 requests per connection).
            SubmitCancel(receive);
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareCancelAll(sqe, state.Fd, state.IsDirect, CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    // SO_LINGER {on, 0 s}, so that the close that follows resets the connection. A lightweight
    // socket has no descriptor for setsockopt(2): the ring sets it (uring_cmd, Linux 6.7). That
    // runs inline at submission, before the close, which waits for the cancellations; if it
    // fails the close is orderly, and its CQE is dropped like a cancel's.
    private void SetLingerZero(HandleState state)
    {
        if (!state.IsDirect)
        {
            linger value = new() { l_onoff = 1, l_linger = 0 };
            setsockopt(state.Fd, SOL_SOCKET, SO_LINGER, &value, (uint)sizeof(linger));
            _otherSystemCalls++;
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareSetSockOpt(sqe, state.Fd, state.IsDirect, SOL_SOCKET, SO_LINGER, s_lingerZero, sizeof(linger), CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    private void SubmitCloseDescriptor(HandleState state)
    {
        state.CloseSubmitted = true;
        Operation op = AllocateOperation(OperationKind.CloseDescriptor, state);
        io_uring_sqe* close = null;
        if (state.DrainBeforeClose)
        {
            if (_drainBuffer == null)
            {
                // Freed with the channel, after the ring: the kernel writes it until then.
                _drainBuffer = (byte*)NativeMemory.Alloc(DrainSize);
            }
            // Its result is of no interest (EAGAIN when nothing was unread): dropped like a cancel's.
            io_uring_sqe* drain = NextSqe();
            Sqe.PrepareRecvNow(drain, state.Fd, state.IsDirect, _drainBuffer, DrainSize, CancelUserData);
            Sqe.SkipSuccess(drain);
            close = _ring.TryGetSqe();
            if (close != null)
            {
                Sqe.HardLink(drain);
            }
            // (Else the SQ was full: the drain goes alone in this submission, runs at once, and the
            // close follows in the next one.)
        }
        close = close != null ? close : NextSqe();
        if (state.IsDirect)
        {
            Volatile.Write(ref _registeredFilesInUse, _registeredFilesInUse - 1);
            Sqe.PrepareCloseDirect(close, state.Fd, op.UserData);
        }
        else
        {
            Sqe.PrepareClose(close, state.Fd, op.UserData);
        }
    }

    private static linger* AllocateLingerZero()
    {
        var value = (linger*)NativeMemory.AllocZeroed((nuint)sizeof(linger));
        value->l_onoff = 1;
        return value;
    }

    // The descriptor close, or the shutdown before it, completed (its result changes nothing:
    // the handle is going either way).
    private void OnCloseStep(Operation op, HandleState state)
    {
        FreeOperation(op);
        TryFinishClose(state);
    }
}
