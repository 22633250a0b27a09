// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Internal;

// Process descriptors held by the sockets of all channels, against RLIMIT_NOFILE less a reserve.
// A process at its descriptor limit fails in places that have nothing to do with connections:
// the runtime cannot even start a thread (Thread.StartCore throws OutOfMemoryException under
// EMFILE, and the process dies). So channels stop accepting sockets that take a process
// descriptor while fewer than the reserve would be left; lightweight sockets (io_uring direct
// descriptors) take none and are bounded by the registered file table instead.
internal static class DescriptorBudget
{
    private static readonly Lazy<long> s_limit = new(ComputeLimit);
    private static long s_held;

    // Sockets of channels that hold a process descriptor now.
    public static long Held => Interlocked.Read(ref s_held);

    // How many such sockets the process may hold: RLIMIT_NOFILE, less the descriptors the process
    // had open when a channel first armed accepts that take process descriptors (its own
    // listeners, rings and eventfds included), less a reserve of max(64, limit / 8).
    public static long Limit => s_limit.Value;

    public static bool Exhausted(int pending) => Held + pending >= Limit;

    public static void Acquire() => Interlocked.Increment(ref s_held);

    public static void Release() => Interlocked.Decrement(ref s_held);

    private static unsafe long ComputeLimit()
    {
        Interop.rlimit limit;
        if (Interop.getrlimit(Interop.RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur > int.MaxValue)
        {
            return int.MaxValue;
        }
        long current = (long)limit.rlim_cur;
        long open;
        try
        {
            open = Directory.GetFiles("/proc/self/fd").Length;
        }
        catch (IOException)
        {
            open = 0;
        }
        catch (UnauthorizedAccessException)
        {
            open = 0;
        }
        return Math.Max(1, current - open - Math.Max(64, current / 8));
    }
}
