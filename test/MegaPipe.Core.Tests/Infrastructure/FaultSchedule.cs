namespace MegaPipe.Core.Tests.Infrastructure;

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
