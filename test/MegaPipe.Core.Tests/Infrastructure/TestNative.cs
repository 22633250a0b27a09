using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Core.Tests.Infrastructure;

// libc calls the tests need to set up real pipes and thread-local seccomp filters. The rule that
// all interop lives in src/MegaPipe.Core/Interop applies to src only; tests declare their own.
#pragma warning disable CS8981 // kernel struct names
internal static unsafe partial class TestNative
{
    private const string Libc = "libc";

    public const int O_CLOEXEC = 0x80000;
    public const short POLLIN = 0x1;

    public const int PR_SET_NO_NEW_PRIVS = 38;
    public const int PR_SET_SECCOMP = 22;
    public const int SECCOMP_MODE_FILTER = 2;

    [StructLayout(LayoutKind.Sequential)]
    public struct pollfd
    {
        public int fd;
        public short events;
        public short revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct sock_filter
    {
        public ushort code;
        public byte jt;
        public byte jf;
        public uint k;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct sock_fprog
    {
        public ushort len;
        public sock_filter* filter;
    }

    [LibraryImport(Libc, SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    public static partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, SetLastError = true)]
    public static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport(Libc, SetLastError = true)]
    public static partial int poll(pollfd* fds, nuint count, int timeoutMs);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, SetLastError = true)]
    public static partial int socketpair(int domain, int type, int protocol, int* fds);

    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;
    public const short POLLRDHUP = 0x2000;

    // prctl(2) is variadic; every argument is an integer register, passed the same way either way.
    [LibraryImport(Libc, SetLastError = true)]
    public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    /// <summary>Creates a pipe; both ends are close-on-exec and blocking.</summary>
    public static (SafeFileHandle Read, SafeFileHandle Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
        {
            throw new InvalidOperationException($"pipe2 failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
    }

    /// <summary>write(2) all of <paramref name="data"/> to a blocking descriptor.</summary>
    public static void WriteAll(SafeHandle handle, ReadOnlySpan<byte> data)
    {
        int fd = (int)handle.DangerousGetHandle();
        fixed (byte* p = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = write(fd, p + done, (nuint)(data.Length - done));
                if (n < 0)
                {
                    throw new InvalidOperationException($"write failed: errno {Marshal.GetLastPInvokeError()}");
                }
                done += (int)n;
            }
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for the descriptor to be readable, then read(2)s once.
    /// Returns -1 if nothing became readable in time (so a test fails instead of hanging).
    /// </summary>
    public static int ReadWithTimeout(SafeHandle handle, Span<byte> buffer, int timeoutMs)
    {
        int fd = (int)handle.DangerousGetHandle();
        pollfd pfd = new() { fd = fd, events = POLLIN };
        int ready = poll(&pfd, 1, timeoutMs);
        if (ready < 0)
        {
            throw new InvalidOperationException($"poll failed: errno {Marshal.GetLastPInvokeError()}");
        }
        if (ready == 0)
        {
            return -1;
        }
        fixed (byte* p = buffer)
        {
            nint n = read(fd, p, (nuint)buffer.Length);
            if (n < 0)
            {
                throw new InvalidOperationException($"read failed: errno {Marshal.GetLastPInvokeError()}");
            }
            return (int)n;
        }
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for <paramref name="fd"/> to be readable, without reading.</summary>
    public static bool WaitReadable(int fd, int timeoutMs)
    {
        pollfd pfd = new() { fd = fd, events = POLLIN };
        int ready = poll(&pfd, 1, timeoutMs);
        if (ready < 0)
        {
            throw new InvalidOperationException($"poll failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return ready == 1;
    }

    /// <summary>A connected AF_UNIX stream socket pair; both ends close-on-exec and blocking.</summary>
    public static (SafeFileHandle First, SafeFileHandle Second) CreateUnixSocketPair()
    {
        int* fds = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | O_CLOEXEC, 0, fds) != 0)
        {
            throw new InvalidOperationException($"socketpair failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for any of <paramref name="events"/> on
    /// <paramref name="fd"/> (POLLERR and POLLHUP are always reported); false on timeout.
    /// </summary>
    public static bool WaitForEvents(int fd, short events, int timeoutMs)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            pollfd pfd = new() { fd = fd, events = events };
            int remaining = timeoutMs - (int)watch.ElapsedMilliseconds;
            if (remaining <= 0)
            {
                return false;
            }
            // A level already ready (POLLIN while waiting for POLLHUP, say) returns at once: wait a
            // little between looks rather than spin.
            int ready = poll(&pfd, 1, Math.Min(remaining, 10));
            if (ready < 0)
            {
                throw new InvalidOperationException($"poll failed: errno {Marshal.GetLastPInvokeError()}");
            }
            if ((pfd.revents & events) != 0)
            {
                return true;
            }
            if (ready > 0)
            {
                Thread.Sleep(1);
            }
        }
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes or throws on EOF/timeout.</summary>
    public static void ReadExactly(SafeHandle handle, Span<byte> buffer, int timeoutMs = 30_000)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = ReadWithTimeout(handle, buffer.Slice(done), timeoutMs);
            if (n <= 0)
            {
                throw new InvalidOperationException(n == 0 ? $"EOF after {done} of {buffer.Length} bytes" : $"timed out after {done} of {buffer.Length} bytes");
            }
            done += n;
        }
    }
}
