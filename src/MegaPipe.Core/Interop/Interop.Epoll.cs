// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

// epoll and the non-blocking I/O calls the epoll engine (EpollRing) makes in place of io_uring.
internal static unsafe partial class Interop
{
    internal const int EPOLL_CLOEXEC = 0x80000;
    internal const int EPOLL_CTL_ADD = 1;
    internal const int EPOLL_CTL_DEL = 2;

    internal const uint EPOLLIN = 0x001;
    internal const uint EPOLLOUT = 0x004;
    internal const uint EPOLLERR = 0x008;
    internal const uint EPOLLHUP = 0x010;
    internal const uint EPOLLRDHUP = 0x2000;
    internal const uint EPOLLET = 1u << 31;

    internal const int MSG_DONTWAIT = 0x40;
    internal const int O_NONBLOCK = 0x800;
    internal const int F_GETFL = 3;
    internal const int F_SETFL = 4;
    internal const int F_DUPFD = 0;
    internal const int EINPROGRESS = 115;

    // struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16 bytes),
    // so events are read at computed offsets rather than through one struct layout.
    internal static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    internal static readonly int EpollEventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int epoll_create1(int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int accept4(int fd, void* addr, uint* addrlen, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int connect(int fd, void* addr, uint addrlen);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint recv(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint send(int fd, void* buf, nuint len, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint sendmsg(int fd, msghdr* msg, int flags);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint writev(int fd, iovec* iov, int iovcnt);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint pread(int fd, void* buf, nuint count, long offset);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial nint pwrite(int fd, void* buf, nuint count, long offset);

    internal const int AT_EMPTY_PATH = 0x1000;
    internal const uint STATX_TYPE = 0x1;
    internal const int S_IFMT = 0xF000;
    internal const int S_IFREG = 0x8000;
    internal const int S_IFBLK = 0x6000;
    internal const int S_IFSOCK = 0xC000;

    // struct statx is 256 bytes on every architecture; only the file type is read.
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    internal struct statx_buffer
    {
        [FieldOffset(0x1C)] public ushort stx_mode;
    }

    [LibraryImport(Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(int dirfd, string path, int flags, uint mask, statx_buffer* buffer);
}
