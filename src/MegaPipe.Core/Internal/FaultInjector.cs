// Licensed under the MIT License. See LICENSE in the repository root.

using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// The submissions a fault rule looks at.
internal enum FaultTarget : byte
{
    // The continuous receive (a multishot IORING_OP_RECV), each time it is armed.
    Receive,
    // Socket writes (IORING_OP_SEND, IORING_OP_SENDMSG): first submissions and continuations alike.
    Send,
}

// When a rule fires among the submissions (or dispatches) it sees: every Nth, or at random with
// a probability drawn from the injector's seeded generator. Both are deterministic for a given
// sequence of submissions.
internal readonly record struct FaultSchedule(int Every, double Probability)
{
    public static FaultSchedule EveryNth(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return new FaultSchedule(n, 0);
    }

    public static FaultSchedule Random(double probability)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(probability);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(probability, 1);
        return new FaultSchedule(0, probability);
    }

    // count: how many candidates this schedule has seen, this one included.
    public bool Fires(long count, Random random) => Every > 0 ? count % Every == 0 : random.NextDouble() < Probability;
}

// One kind of fault: a short write (Error is None) or a failure with Error, on Target, by Schedule.
internal sealed class FaultRule
{
    private long _matched;
    private long _injected;

    public FaultRule(FaultTarget target, Errno error, FaultSchedule schedule)
    {
        Target = target;
        Error = error;
        Schedule = schedule;
    }

    public FaultTarget Target { get; }

    // Errno.None: a short write.
    public Errno Error { get; }

    public FaultSchedule Schedule { get; }

    // Submissions of the target seen, and faults injected into them.
    public long Matched => Volatile.Read(ref _matched);
    public long Injected => Volatile.Read(ref _injected);

    internal long CountMatch() => Interlocked.Increment(ref _matched);

    internal void CountInjection() => Interlocked.Increment(ref _injected);

    public override string ToString() => $"{(Error == Errno.None ? "short write" : Error.ToString())} on {Target}: {Injected} of {Matched}";
}

// Fault injection for tests (MegaPipeChannel.FaultInjector): rewrites chosen SQEs just before the
// engine takes them, so the faults come back through the real engine as ordinary completions.
//  - A short write lowers the length of a send (or the iovec total of a sendmsg): the kernel sends
//    fewer bytes and reports that, as a socket with little buffer room would.
//  - A failure turns the SQE into IORING_OP_NOP with IORING_NOP_INJECT_RESULT and len = -errno,
//    keeping user_data: the command completes with that error having done nothing (a failed
//    receive consumed no data, a failed send sent none).
//  - Skipped reaping makes chosen dispatches leave the CQ unread (see MegaPipeChannel.Dispatch),
//    so that with a small CQ completions pile up past it and the engine has to hold them
//    (io_uring's IORING_FEAT_NODROP overflow list, EpollRing's overflow queue).
// Owner thread only, like the ring; the counters may be read from any thread.
internal sealed unsafe class FaultInjector : ISubmissionInterceptor
{
    private readonly Random _random;
    private readonly List<FaultRule> _rules = new();
    private FaultSchedule? _skipReaping;
    private long _dispatches;
    private long _reapsSkipped;
    private long _overflowsSeen;

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

    private FaultRule Add(FaultRule rule)
    {
        _rules.Add(rule);
        return rule;
    }

    // Asked once per dispatch turn that has completions to reap.
    internal bool ShouldSkipReap() => _skipReaping is { } schedule && schedule.Fires(++_dispatches, _random);

    internal void OnReapSkipped(bool overflowPending)
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
