namespace MegaPipe.Core.Tests.Infrastructure;

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
