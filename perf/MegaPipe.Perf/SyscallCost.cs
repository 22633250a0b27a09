using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MegaPipe.Perf;

// What one system call costs on this machine and kernel: the entry and exit that batching saves,
// measured with getppid (a real system call that does almost nothing; glibc does not cache it).
// The reports use it to explain, from measurement, why removing system calls gains more or less
// here than on the paper's 2012 kernel.
public static partial class SyscallCost
{
    public static double NanosecondsPerCall()
    {
        // The best of many short batches: on a shared machine a long batch is likely to include
        // time when this thread was not running at all.
        const int calls = 50_000;
        double best = double.MaxValue;
        for (int attempt = 0; attempt < 40; attempt++)
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < calls; i++)
            {
                getppid();
            }
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalNanoseconds / calls);
        }
        return best;
    }

    [LibraryImport("libc", SetLastError = false)]
    private static partial int getppid();
}
