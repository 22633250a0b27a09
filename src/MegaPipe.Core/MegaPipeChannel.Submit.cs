// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// The submission side: operations in flight, free submission entries, and the system call
// that hands them to the kernel when batching is off.
public sealed unsafe partial class MegaPipeChannel
{
    // The requests in flight; a CQE's user_data names its slot and the generation it was issued for.
    private readonly SlotTable<Operation> _operations = new(256, static index => new Operation(index));

    // Consecutive transient failures (EAGAIN) a write or a continuous receive is retried through
    // without progress before the error is reported: neither engine returns EAGAIN for a socket
    // (io_uring waits for readiness itself, EpollRing parks the request), but a descriptor the
    // caller made non-blocking can, and must not spin the channel forever.
    internal const int MaxTransientRetries = 64;

    // The next free SQE; when the SQ is full, what is queued goes to the kernel first.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private io_uring_sqe* NextSqe()
    {
        io_uring_sqe* sqe = _ring.TryGetSqe();
        return sqe != null ? sqe : NextSqeAfterSubmit();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private io_uring_sqe* NextSqeAfterSubmit()
    {
        while (true)
        {
            SubmitChecked();
            io_uring_sqe* sqe = _ring.TryGetSqe();
            if (sqe != null)
            {
                return sqe;
            }
            // The kernel is short of memory to take more entries: run completions to make progress.
            _ring.Enter(0, getEvents: true, -1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SubmitIfNotBatching()
    {
        if (!Options.Batching)
        {
            SubmitUnbatched();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SubmitUnbatched()
    {
        if (_ring.PendingSubmissions != 0)
        {
            SubmitChecked();
        }
    }

    // Hands everything prepared to the engine without waiting; only a failure that leaves the
    // ring unusable is fatal.
    private void SubmitChecked()
    {
        int result = _ring.Enter(0, getEvents: false, -1);
        if (Ring.IsFatalEnterResult(result))
        {
            FailFast("io_uring_enter (submit)", result);
        }
    }

    private static void FailFast(string operation, int result)
        => Environment.FailFast($"MegaPipe channel: {operation} failed with {(Errno)(-result)} ({Interop.StrError((Errno)(-result))}); the ring can no longer be driven.");

    // An operation for a request on state's handle, counted in flight until FreeOperation.
    private Operation AllocateOperation(OperationKind kind, HandleState state)
    {
        Operation op = _operations.Rent();
        op.Kind = kind;
        op.Handle = state;
        state.InFlight++;
        return op;
    }

    private void FreeOperation(Operation op)
    {
        if (op.Handle is { } state)
        {
            state.InFlight--;
        }
        op.Reset();
        _operations.Return(op.Index);
    }
}
