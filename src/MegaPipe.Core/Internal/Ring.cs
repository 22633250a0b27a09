// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Runtime.CompilerServices;
using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// A channel's engine: a submission queue of io_uring SQEs and a completion queue of CQEs, in the
// kernel's layout, plus the call that moves entries across them. IoUring maps the kernel's own
// rings; EpollRing keeps both queues in process memory and carries the SQEs out itself over
// epoll readiness. MegaPipeChannel fills SQEs and reads CQEs the same way for both, so handles,
// commands, cancellation and dispatch behave alike whichever engine runs.
// Not thread-safe: only the channel's owner thread touches it.
internal abstract unsafe class Ring : IDisposable
{
    // SQ: the consumer (kernel or EpollRing) advances *_sqHead, we advance *_sqTail.
    private uint* _sqHead;
    private uint* _sqTail;
    private uint _sqMask;
    private io_uring_sqe* _sqes;
    // Entries prepared locally: [_sqTailPublished, _sqTailLocal) are filled but not yet published.
    private uint _sqTailLocal;
    private uint _sqTailPublished;

    // CQ: the producer advances *_cqTail, we advance *_cqHead.
    private uint* _cqHead;
    private uint* _cqTail;
    private uint _cqMask;
    private io_uring_cqe* _cqes;
    // Our copy of the CQ head; only this thread writes the shared one.
    private uint _cqHeadLocal;

    private long _systemCalls;
    private long _sqesSubmitted;

    public uint SqEntries { get; private set; }
    public uint CqEntries { get; private set; }

    // "io_uring" or "epoll".
    public abstract string EngineName { get; }

    // What the engine runs without (refused setup flags, emulated features), in words, or null.
    public string? Degradation { get; protected set; }

    // System calls the engine made to carry commands (io_uring_enter, or epoll_wait plus each I/O call).
    public long SystemCalls => _systemCalls;

    // Entries taken from the submission queue.
    public long SqesSubmitted => _sqesSubmitted;

    // Tests only: sees every SQE just before it is handed to the engine and may rewrite it (null otherwise).
    public IFaultHook? FaultHook { get; set; }

    protected void InitializeQueues(uint* sqHead, uint* sqTail, uint sqEntries, io_uring_sqe* sqes, uint* cqHead, uint* cqTail, uint cqEntries, io_uring_cqe* cqes)
    {
        Debug.Assert(uint.IsPow2(sqEntries) && uint.IsPow2(cqEntries), "ring sizes are powers of two");
        _sqHead = sqHead;
        _sqTail = sqTail;
        _sqMask = sqEntries - 1;
        _sqes = sqes;
        SqEntries = sqEntries;
        _sqTailLocal = _sqTailPublished = RingBarrier.ReadOnce(sqTail);
        _cqHead = cqHead;
        _cqTail = cqTail;
        _cqMask = cqEntries - 1;
        _cqes = cqes;
        CqEntries = cqEntries;
        _cqHeadLocal = RingBarrier.ReadOnce(cqHead);
    }

    protected void CountSystemCall() => _systemCalls++;

    protected void CountSubmitted(uint count) => _sqesSubmitted += count;

    // ---- Submission side ----

    // SQEs filled locally and not yet handed over.
    public uint PendingSubmissions => _sqTailLocal - _sqTailPublished;

    // Returns a zeroed SQE to fill, or null when the SQ is full (the caller submits, then retries).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public io_uring_sqe* TryGetSqe()
    {
        // Acquire pairs with the consumer's release of the head once it has taken the entries below it.
        uint head = RingBarrier.LoadAcquire(_sqHead);
        if (_sqTailLocal - head >= SqEntries)
        {
            return null;
        }
        io_uring_sqe* sqe = &_sqes[_sqTailLocal & _sqMask];
        *sqe = default;
        _sqTailLocal++;
        return sqe;
    }

    // Entries published and not yet taken by the consumer: all of them are to be submitted, not
    // just the ones the last PublishSqes added (an enter that took fewer leaves the rest behind).
    protected uint SqesNotConsumed => _sqTailPublished - RingBarrier.LoadAcquire(_sqHead);

    // Makes the prepared SQEs visible to the consumer; returns how many.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected uint PublishSqes()
    {
        uint count = _sqTailLocal - _sqTailPublished;
        if (count != 0)
        {
            if (FaultHook is { } hook)
            {
                for (uint i = _sqTailPublished; i != _sqTailLocal; i++)
                {
                    hook.BeforeSubmit(&_sqes[i & _sqMask]);
                }
            }
            // Release: the SQE contents written above must be visible before the consumer sees the new tail.
            RingBarrier.StoreRelease(_sqTail, _sqTailLocal);
            _sqTailPublished = _sqTailLocal;
        }
        return count;
    }

    // Submits everything prepared and, when getEvents, collects completions, waiting for waitFor
    // of them or the timeout (negative: no limit). Returns 0 or a negative errno.
    public abstract int Enter(uint waitFor, bool getEvents, long timeoutNanoseconds);

    // True when an Enter result is an error after which the ring cannot be driven. The transient
    // ones leave it as it was, and the next Enter simply tries again: EINTR (a signal came),
    // EAGAIN (the kernel was short of memory for new requests) and EBUSY (completions must be
    // reaped before more are taken); entries not taken stay queued and go with the next Enter.
    public static bool IsFatalEnterResult(int result)
        => result < 0 && result != -(int)Errno.EINTR && result != -(int)Errno.EAGAIN && result != -(int)Errno.EBUSY;

    // The first submission, made at start-up: it must fail here, as an exception, if the engine
    // cannot be driven at all (a seccomp profile may allow io_uring_setup but deny io_uring_enter).
    public abstract void SubmitStartup();

    // The engine asks to be entered: held completions or deferred work are waiting.
    public abstract bool NeedsEnter { get; }

    // Completions are held back because the CQ was full; entering moves them into it.
    public abstract bool CqOverflowPending { get; }

    // ---- Completion side ----

    // Completions ready to read.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint CqReady()
    {
        // Acquire: the CQE contents below the tail are visible once we see the tail.
        return RingBarrier.LoadAcquire(_cqTail) - _cqHeadLocal;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public io_uring_cqe* PeekCqe(uint index)
    {
        Debug.Assert(index < CqReady(), "peeking past the CQ tail");
        return &_cqes[(_cqHeadLocal + index) & _cqMask];
    }

    // Hands the consumed CQ slots back to the producer.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void CqAdvance(uint count)
    {
        if (count != 0)
        {
            _cqHeadLocal += count;
            // Release: our reads of the CQEs are done before the producer may overwrite their slots.
            RingBarrier.StoreRelease(_cqHead, _cqHeadLocal);
        }
    }

    // ---- Registration ----

    // An empty table of the given size for direct descriptors (lightweight sockets).
    public abstract void RegisterSparseFiles(uint count);

    // A provided-buffer ring for receives that select their buffer.
    public abstract void RegisterBufferRing(void* ringAddress, uint entries, ushort groupId);

    // The channel stops using a descriptor it did not close through the ring (a caller's descriptor
    // on Unregister): an engine that keeps per-descriptor state drops it, as the number may be reused.
    public virtual void ForgetDescriptor(int fd)
    {
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    ~Ring() => Dispose(disposing: false);

    protected abstract void Dispose(bool disposing);
}
