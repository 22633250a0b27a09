// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tests.Shared;

/// <summary>
/// Waits for a condition that has no event to wait on (an observable count, a descriptor table, a
/// thread list), sampling it until it holds or a timeout fails the test with what was seen.
/// </summary>
public static class Poll
{
    /// <summary>Samples <paramref name="condition"/> every <paramref name="intervalMilliseconds"/> until it holds; fails with <paramref name="describe"/> after <paramref name="timeout"/> (defaults to <see cref="TestTimeouts.Default"/>).</summary>
    public static async Task UntilAsync(Func<bool> condition, Func<string> describe, TimeSpan? timeout = null, int intervalMilliseconds = 10)
    {
        TimeSpan limit = timeout ?? TestTimeouts.Default;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed >= limit)
            {
                Assert.Fail($"Timed out after {limit.TotalSeconds:0} s waiting for {describe()}.");
            }
            await Task.Delay(intervalMilliseconds);
        }
    }

    /// <summary>The same, with a fixed description.</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, int intervalMilliseconds = 10)
        => UntilAsync(condition, () => what, timeout, intervalMilliseconds);
}
