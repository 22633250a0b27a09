using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe.Core.Tests.Infrastructure;

// Fault injection through the channel's test hook (MegaPipeChannel.FaultHook, an IFaultHook):
// rewrites chosen SQEs just before the engine takes them, so the faults come back through the
// real engine as ordinary completions.
//  - A short write lowers the length of a send (or the iovec total of a sendmsg): the kernel sends
//    fewer bytes and reports that, as a socket with little buffer room would.
//  - A failure turns the SQE into IORING_OP_NOP with IORING_NOP_INJECT_RESULT and len = -errno,
//    keeping user_data: the command completes with that error having done nothing (a failed
//    receive consumed no data, a failed send sent none).
//  - A receive arm can run test code just before the kernel takes it (OnReceiveArm) and have its
//    first attempt skipped (IORING_RECVSEND_POLL_FIRST): the kernel goes straight to waiting for
//    readiness, as after a first attempt that found nothing (ResetRaceTests).
//  - Skipped reaping makes chosen dispatches leave the CQ unread (see MegaPipeChannel.Dispatch),
//    so that with a small CQ completions pile up past it and the engine has to hold them
//    (io_uring's IORING_FEAT_NODROP overflow list, EpollRing's overflow queue).
// Owner thread only, like the ring; the counters may be read from any thread.
internal sealed unsafe class FaultInjector : IFaultHook
{
    private readonly Random _random;
    private readonly List<FaultRule> _rules = new();
    private FaultSchedule? _skipReaping;
    private long _dispatches;
    private long _reapsSkipped;
    private long _overflowsSeen;
    private int _receiveArms;

    public FaultInjector(int seed) => _random = new Random(seed);

    public IReadOnlyList<FaultRule> Rules => _rules;

    // Dispatches that left the CQ unread, and how many of those found completions held back beyond it.
    public long ReapsSkipped => Volatile.Read(ref _reapsSkipped);
    public long OverflowsSeen => Volatile.Read(ref _overflowsSeen);

    // Faults injected by all rules.
    public long Injected => _rules.Sum(r => r.Injected);

    public FaultRule ShortWrites(FaultSchedule schedule) => Add(new FaultRule(FaultTarget.Send, Errno.None, schedule));

    public FaultRule Fail(FaultTarget target, Errno error, FaultSchedule schedule)
    {
        if (error == Errno.None)
        {
            throw new ArgumentException("A failure needs an errno; use ShortWrites for short writes.", nameof(error));
        }
        return Add(new FaultRule(target, error, schedule));
    }

    public void SkipReaping(FaultSchedule schedule) => _skipReaping = schedule;

    // Runs on the owner thread for each continuous-receive arm (1 for the first) just before the
    // kernel takes it; true skips its first attempt (IORING_RECVSEND_POLL_FIRST).
    public Func<int, bool>? OnReceiveArm { get; set; }

    // Continuous-receive arms seen.
    public int ReceiveArms => _receiveArms;

    private FaultRule Add(FaultRule rule)
    {
        _rules.Add(rule);
        return rule;
    }

    // Asked once per dispatch turn that has completions to reap.
    public bool ShouldSkipReap() => _skipReaping is { } schedule && schedule.Fires(++_dispatches, _random);

    public void OnReapSkipped(bool overflowPending)
    {
        Interlocked.Increment(ref _reapsSkipped);
        if (overflowPending)
        {
            Interlocked.Increment(ref _overflowsSeen);
        }
    }

    public void BeforeSubmit(io_uring_sqe* sqe)
    {
        FaultTarget target;
        if (sqe->opcode == IORING_OP_RECV && (sqe->ioprio & IORING_RECV_MULTISHOT) != 0)
        {
            target = FaultTarget.Receive;
            if (OnReceiveArm?.Invoke(++_receiveArms) == true)
            {
                sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
            }
        }
        else if (sqe->opcode is IORING_OP_SEND or IORING_OP_SENDMSG)
        {
            target = FaultTarget.Send;
        }
        else
        {
            return;
        }
        foreach (FaultRule rule in _rules)
        {
            if (rule.Target != target || !rule.Schedule.Fires(rule.CountMatch(), _random))
            {
                continue;
            }
            if (rule.Error == Errno.None ? Shorten(sqe) : InjectFailure(sqe, rule.Error))
            {
                rule.CountInjection();
                return;
            }
        }
    }

    private static bool InjectFailure(io_uring_sqe* sqe, Errno error)
    {
        // Everything else goes: a NOP refuses IOSQE_BUFFER_SELECT, and reads no file.
        ulong userData = sqe->user_data;
        *sqe = default;
        sqe->opcode = IORING_OP_NOP;
        sqe->nop_flags = IORING_NOP_INJECT_RESULT;
        sqe->len = unchecked((uint)-(int)error);
        sqe->user_data = userData;
        return true;
    }

    // Sends between 1 byte and all but one of what the SQE asks for; false when it asks for at most 1.
    private bool Shorten(io_uring_sqe* sqe)
    {
        if (sqe->opcode == IORING_OP_SEND)
        {
            if (sqe->len <= 1)
            {
                return false;
            }
            sqe->len = 1 + (uint)_random.NextInt64(sqe->len - 1);
            return true;
        }

        // SENDMSG: the channel owns the msghdr and iovecs (they are rebuilt for every continuation).
        msghdr* message = (msghdr*)sqe->addr;
        ulong total = 0;
        for (nuint i = 0; i < message->msg_iovlen; i++)
        {
            total += message->msg_iov[i].iov_len;
        }
        if (total <= 1)
        {
            return false;
        }
        ulong keep = 1 + (ulong)_random.NextInt64((long)total - 1);
        nuint count = 0;
        while (keep > 0)
        {
            iovec* iov = &message->msg_iov[count++];
            if (iov->iov_len >= keep)
            {
                iov->iov_len = (nuint)keep;
                break;
            }
            keep -= iov->iov_len;
        }
        message->msg_iovlen = count;
        return true;
    }
}
