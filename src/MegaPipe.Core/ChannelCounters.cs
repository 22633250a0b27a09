// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>
/// What a channel has done, to measure batching: commands issued, the system calls that carried
/// them to the kernel, and the completions reaped.
/// </summary>
public readonly record struct ChannelCounters(long Commands, long SystemCalls, long Submissions, long Completions, long Events, long Wakeups)
{
    /// <summary>Average commands carried per system call.</summary>
    public double CommandsPerSystemCall => SystemCalls == 0 ? 0 : (double)Commands / SystemCalls;

    /// <summary>The difference between two snapshots.</summary>
    public static ChannelCounters operator -(ChannelCounters a, ChannelCounters b)
        => new(a.Commands - b.Commands, a.SystemCalls - b.SystemCalls, a.Submissions - b.Submissions, a.Completions - b.Completions, a.Events - b.Events, a.Wakeups - b.Wakeups);

    /// <summary>The sum of two snapshots.</summary>
    public static ChannelCounters operator +(ChannelCounters a, ChannelCounters b)
        => new(a.Commands + b.Commands, a.SystemCalls + b.SystemCalls, a.Submissions + b.Submissions, a.Completions + b.Completions, a.Events + b.Events, a.Wakeups + b.Wakeups);
}
