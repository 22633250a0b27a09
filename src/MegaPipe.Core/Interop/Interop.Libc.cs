// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

// libc calls that are not socket calls: memory mapping, eventfd, descriptors, CPU placement.
internal static unsafe partial class Interop
{
    internal const string Libc = "libc";

    internal const int PROT_READ = 0x1;
    internal const int PROT_WRITE = 0x2;
    internal const int MAP_SHARED = 0x01;
    internal const int MAP_POPULATE = 0x8000;
    internal static readonly nint MAP_FAILED = -1;

    internal const int EFD_CLOEXEC = 0x80000;

    internal const int RLIMIT_NOFILE = 7;

    [StructLayout(LayoutKind.Sequential)]
    internal struct rlimit
    {
        public ulong rlim_cur;
        public ulong rlim_max;
    }

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int munmap(nint addr, nuint length);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int close(int fd);

    internal const int F_DUPFD_CLOEXEC = 1030;

    // fcntl(2) is variadic; the integer argument travels in the same register either way.
    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int eventfd(uint initval, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint write(int fd, void* buf, nuint count);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint read(int fd, void* buf, nuint count);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int getrlimit(int resource, rlimit* rlim);

    [LibraryImport(Libc)]
    internal static partial int sched_getcpu();

    // Sets the CPU mask of the calling thread (pid 0).
    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int sched_setaffinity(int pid, nuint cpusetsize, ulong* mask);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int sched_getaffinity(int pid, nuint cpusetsize, ulong* mask);
}
