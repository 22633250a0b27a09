// Licensed under the MIT License. See LICENSE in the repository root.

using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Handing work to the channel from other threads. A SINGLE_ISSUER ring accepts submissions only
// from its owner, so other threads queue work and, if the owner sleeps in io_uring_enter, wake
// it through an eventfd the ring always has a read armed on.
public sealed unsafe partial class MegaPipeChannel
{
    private const ulong WakeUserData = ulong.MaxValue;

    private readonly ConcurrentQueue<IChannelWorkItem> _posted = new();
    // The eventfd that wakes the owner; blocking, so the ring's read waits through poll.
    private int _wakeFd;
    // 8 bytes the armed eventfd read lands in.
    private ulong* _wakeBuffer;
    // 1 while the owner is (about to be) blocked in io_uring_enter.
    private int _sleeping;
    // 1 once a poster has written the eventfd and its read has not completed yet: one write per sleep.
    private int _wakeSignaled;
    // Eventfd writes made by posters.
    private long _wakeups;

    /// <summary>
    /// Queues <paramref name="workItem"/> to run on the channel's thread during its next dispatch,
    /// waking the channel if it is waiting. Thread-safe; allocation-free for a reused work item.
    /// </summary>
    public void Post(IChannelWorkItem workItem)
    {
        ArgumentNullException.ThrowIfNull(workItem);
        if (_disposed)
        {
            ThrowHelper.ThrowDisposed();
        }
        _posted.Enqueue(workItem);
        // ConcurrentQueue.Enqueue is a full fence, so this read cannot pass the enqueue (pairs with WaitForCompletions).
        if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _wakeSignaled, 1) == 0)
        {
            ulong one = 1;
            write(_wakeFd, &one, sizeof(ulong));
            Interlocked.Increment(ref _wakeups);
        }
    }

    // Runs the work queued so far; true when any ran.
    private bool RunPostedWork()
    {
        // Run only what was queued before we started, so a work item that posts again cannot starve I/O.
        int budget = _posted.Count;
        bool ran = false;
        while (budget-- > 0 && _posted.TryDequeue(out IChannelWorkItem? item))
        {
            item.Execute(this);
            ran = true;
        }
        return ran;
    }

    private static int CreateWakeEventFd()
    {
        int fd = eventfd(0, EFD_CLOEXEC);
        if (fd < 0)
        {
            ThrowHelper.ThrowLastErrno("eventfd");
        }
        return fd;
    }

    private void ArmWakeRead() => ArmWakeRead(_ring);

    private void ArmWakeRead(Ring ring)
    {
        if (_wakeBuffer == null)
        {
            _wakeBuffer = (ulong*)NativeMemory.AllocZeroed(sizeof(ulong));
        }
        // At start-up the ring is empty, so an SQE is always free.
        io_uring_sqe* sqe = ring == _ring ? NextSqe() : ring.TryGetSqe();
        // An eventfd has no position: the offset is ignored.
        Sqe.PrepareRead(sqe, _wakeFd, fixedFile: false, _wakeBuffer, sizeof(ulong), 0, WakeUserData);
    }

    private void OnWakeRead()
    {
        Volatile.Write(ref _wakeSignaled, 0);
        if (!_disposed)
        {
            ArmWakeRead();
        }
    }

    private void NativeMemoryFree()
    {
        NativeMemory.Free(_wakeBuffer);
        _wakeBuffer = null;
        NativeMemory.Free(_drainBuffer);
        _drainBuffer = null;
    }
}
