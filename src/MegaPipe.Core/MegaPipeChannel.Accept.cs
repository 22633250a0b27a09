// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Accepting (mp_accept): accepts kept armed on a listener (Accept, StopAccept), their completions
// (OnAccept), and the pause when descriptors run out (PauseAccepts, ResumePausedAccepts).
public sealed unsafe partial class MegaPipeChannel
{
    // Listeners whose accepting paused for lack of descriptors (and the other list, which
    // ResumePausedAccepts swaps in), and when to retry them (Stopwatch ticks). No timer: a timer
    // thread cannot be started when descriptors have run out, so Dispatch itself waits no
    // longer than the retry time.
    private List<HandleState> _acceptsPaused = new();
    private List<HandleState> _acceptResuming = new();
    private long _acceptRetryAt;

    /// <summary>
    /// Keeps accepts armed on a listener (mp_accept). Each accepted connection produces one
    /// <see cref="ChannelCommand.Accept"/> event whose <see cref="CompletionEvent.Accepted"/> handle is
    /// already registered in this channel (with no cookie until <see cref="SetCookie"/>). Accepting
    /// continues until the listener is closed or <see cref="StopAccept"/>; calling it again is harmless.
    /// When descriptors run out (EMFILE, ENFILE when the registered file table is full, ENOBUFS,
    /// ENOMEM) the first failure is reported and accepting pauses, so new connections wait in the
    /// listen backlog, until a handle of this channel closes or <see cref="AcceptRetryDelay"/> passes.
    /// </summary>
    public void Accept(MegaPipeHandle listener)
    {
        HandleState state = Resolve(listener);
        if (state.Kind != HandleKind.Listener)
        {
            ThrowHelper.ThrowInvalidOperation("Accept needs a listener handle.");
        }
        _commands++;
        state.Accept.Wanted = true;
        if (state.Accept.ShouldArm)
        {
            ArmAccepts(state);
        }
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Stops accepting on a listener (for a connection limit): the armed accepts are cancelled and
    /// new connections wait in the listen backlog until <see cref="Accept"/> is called again. A
    /// connection the kernel accepted before the cancellation still arrives as an event.
    /// </summary>
    public void StopAccept(MegaPipeHandle listener)
    {
        HandleState state = Resolve(listener);
        if (state.Kind != HandleKind.Listener)
        {
            ThrowHelper.ThrowInvalidOperation("StopAccept needs a listener handle.");
        }
        _commands++;
        state.Accept.Wanted = false;
        if (state.Accept.Armed > 0)
        {
            CancelAccepts(state);
        }
        SubmitIfNotBatching();
    }

    private void CancelAccepts(HandleState listener)
    {
        listener.Accept.CancelAll();
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareCancelAll(sqe, listener.Fd, fixedFile: false, CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    /// <summary>How long accepting stays paused after descriptors ran out, unless a handle of this channel closes first.</summary>
    public static TimeSpan AcceptRetryDelay { get; } = TimeSpan.FromMilliseconds(100);

    // Arms accepts up to the depth (or pauses, when the process's descriptors run short).
    private void ArmAccepts(HandleState listener)
    {
        ref AcceptState accept = ref listener.Accept;
        if (SocketsHoldProcessDescriptors && accept.Armed < Options.AcceptDepth
            && DescriptorBudget.Exhausted(Options.AcceptDepth - accept.Armed))
        {
            // Keep the process's reserve of descriptors: pause as if accept had failed with EMFILE.
            if (accept.ReportFailureOnce())
            {
                _synthetic.Enqueue(new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, -(int)Errno.EMFILE));
            }
            PauseAccepts(listener);
            return;
        }
        while (accept.Armed < Options.AcceptDepth)
        {
            Operation op = AllocateOperation(OperationKind.Accept, listener);
            op.Command = ChannelCommand.Accept;
            *op.SockaddrLength = SocketAddressConverter.MaxSize;
            Sqe.PrepareAccept(NextSqe(), listener.Fd, op.Sockaddr, op.SockaddrLength, direct: Options.LightweightSockets, op.UserData);
            accept.Armed++;
        }
    }

    private void OnAccept(Operation op, HandleState listener, int result, Span<CompletionEvent> events, ref int count)
    {
        bool cancelledByUs = listener.Accept.Complete();
        if (listener.Status != HandleStatus.Open)
        {
            if (result >= 0)
            {
                CloseOrphan(result, Options.LightweightSockets);
            }
            FreeOperation(op);
            TryFinishClose(listener);
            return;
        }
        if (result >= 0)
        {
            listener.Accept.FailureReported = false;
            HandleState accepted = RegisterAccepted(op, listener, result);
            FreeOperation(op);
            events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, 0, accepted: HandleOf(accepted));
        }
        else
        {
            FreeOperation(op);
            if (!OnAcceptFailed(listener, result, cancelledByUs, events, ref count))
            {
                return;
            }
        }
        if (listener.Accept.ShouldArm)
        {
            ArmAccepts(listener);
        }
    }

    // An accept failed; false when the failure is handled and nothing more is to be armed now.
    private bool OnAcceptFailed(HandleState listener, int result, bool cancelledByUs, Span<CompletionEvent> events, ref int count)
    {
        if (result == -(int)Errno.ECANCELED && cancelledByUs)
        {
            // Cancelled by StopAccept or a pause: nothing to report (a pause re-arms on its own).
            if (listener.Accept.ShouldArm)
            {
                ArmAccepts(listener);
            }
            return false;
        }
        if (result is -(int)Errno.EMFILE or -(int)Errno.ENFILE or -(int)Errno.ENOBUFS or -(int)Errno.ENOMEM)
        {
            // Out of descriptors (or table slots, or memory). Re-arming now would fail again at
            // once, a busy loop; pause, report the first failure only, and retry when a handle
            // closes or after a delay. Meanwhile connections wait in the backlog.
            if (!listener.Accept.Paused)
            {
                PauseAccepts(listener);
                if (listener.Accept.ReportFailureOnce())
                {
                    events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, result);
                }
            }
            return false;
        }
        if (result is -(int)Errno.EBADF or -(int)Errno.EINVAL or -(int)Errno.ENOTSOCK or -(int)Errno.EOPNOTSUPP or -(int)Errno.ECANCELED)
        {
            // The listener itself is unusable: stop accepting.
            listener.Accept.Wanted = false;
        }
        events[count++] = new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, result);
        return true;
    }

    // Registers the connection an accept returned (a direct-descriptor slot, or a descriptor) as a
    // handle of this channel, with the peer's address from the accept's sockaddr.
    private HandleState RegisterAccepted(Operation op, HandleState listener, int fd)
    {
        bool isDirect = Options.LightweightSockets;
        HandleState accepted = AllocateHandle(HandleKind.Socket, fd, isDirect, ownsDescriptor: true);
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
        return accepted;
    }

    // Closes a descriptor that belongs to no handle (a connection accepted while its listener closed).
    private void CloseOrphan(int fd, bool isDirect)
    {
        if (!isDirect)
        {
            close(fd);
            _otherSystemCalls++;
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareCloseDirect(sqe, fd, CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    private void PauseAccepts(HandleState listener)
    {
        listener.Accept.Paused = true;
        _acceptsPaused.Add(listener);
        if (listener.Accept.Armed > 0)
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
        if (_acceptsPaused.Count == 0)
        {
            return waitNs;
        }
        long remaining = _acceptRetryAt - _turnTimestamp;
        if (remaining <= 0)
        {
            ResumePausedAccepts();
            return waitNs;
        }
        long remainingNs = (long)(remaining * 1e9 / Stopwatch.Frequency);
        return waitNs < 0 || waitNs > remainingNs ? remainingNs : waitNs;
    }

    // Re-arms accepts paused for lack of descriptors (a handle closed, or the retry time came).
    private void ResumePausedAccepts()
    {
        if (_acceptsPaused.Count == 0)
        {
            return;
        }
        // ArmAccepts may pause again (adding to the list): work on the other of two lists.
        (_acceptsPaused, _acceptResuming) = (_acceptResuming, _acceptsPaused);
        List<HandleState> listeners = _acceptResuming;
        foreach (HandleState listener in listeners)
        {
            listener.Accept.Paused = false;
            if (listener.Status == HandleStatus.Open && listener.Accept.Wanted)
            {
                ArmAccepts(listener);
            }
        }
        listeners.Clear();
    }
}
