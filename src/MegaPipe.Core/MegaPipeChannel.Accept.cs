// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Accepting (mp_accept): accepts kept armed on a listener, their completions, and the pause
// when descriptors run out.
public sealed unsafe partial class MegaPipeChannel
{
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
        state.AcceptWanted = true;
        if (!state.AcceptBackoff)
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
        state.AcceptWanted = false;
        if (state.AcceptsArmed > 0)
        {
            CancelAccepts(state);
        }
        SubmitIfNotBatching();
    }

    private void CancelAccepts(HandleState listener)
    {
        // Their ECANCELED completions are expected, not errors (one may still complete with a connection).
        listener.AcceptsCancelling = listener.AcceptsArmed;
        io_uring_sqe* sqe = NextSqe();
        Sqe.PrepareCancelAll(sqe, listener.Fd, fixedFile: false, CancelUserData);
        Sqe.SkipSuccess(sqe);
    }

    /// <summary>How long accepting stays paused after descriptors ran out, unless a handle of this channel closes first.</summary>
    public static TimeSpan AcceptRetryDelay { get; } = TimeSpan.FromMilliseconds(100);

    private void ArmAccepts(HandleState listener)
    {
        if (SocketsHoldProcessDescriptors && listener.AcceptsArmed < Options.AcceptDepth
            && DescriptorBudget.Exhausted(Options.AcceptDepth - listener.AcceptsArmed))
        {
            // Keep the process's reserve of descriptors: pause as if accept had failed with EMFILE
            // (reported once until an accept succeeds again).
            if (!listener.AcceptFailureReported)
            {
                listener.AcceptFailureReported = true;
                _synthetic.Enqueue(new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, -(int)Errno.EMFILE));
            }
            BackOffAccepts(listener);
            return;
        }
        while (listener.AcceptsArmed < Options.AcceptDepth)
        {
            Operation op = AllocateOperation(OperationKind.Accept, listener);
            op.Command = ChannelCommand.Accept;
            *op.SockaddrLength = SocketAddressConverter.MaxSize;
            Sqe.PrepareAccept(NextSqe(), listener.Fd, op.Sockaddr, op.SockaddrLength, direct: Options.LightweightSockets, op.UserData);
            listener.AcceptsArmed++;
        }
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

    // Listeners whose accepts the check above re-armed (for tests and diagnostics).
    internal long AcceptChecks { get; private set; }

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
}
