// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

// Socket calls and constants the engine needs beyond System.Net.Sockets.
internal static unsafe partial class Interop
{
    internal const int SOL_SOCKET = 1;
    internal const int SO_ERROR = 4;
    internal const int SO_LINGER = 13;
    internal const int SO_REUSEPORT = 15;
    internal const int SO_ATTACH_REUSEPORT_CBPF = 51;

    internal const int AF_UNIX = 1;
    internal const int AF_INET = 2;
    internal const int AF_INET6 = 10;
    internal const int SOCK_STREAM = 1;
    internal const int SOCK_CLOEXEC = 0x80000;

    internal const int SHUT_RD = 0;
    internal const int SHUT_WR = 1;
    internal const int SHUT_RDWR = 2;

    internal const int MSG_NOSIGNAL = 0x4000;

    // Classic BPF, for the reuseport CPU-steering program (linux/filter.h, linux/bpf_common.h).
    internal const ushort BPF_LD_W_ABS = 0x00 | 0x00 | 0x20;
    internal const ushort BPF_ALU_MOD_K = 0x04 | 0x90 | 0x00;
    internal const ushort BPF_RET_A = 0x06 | 0x10;
    internal const int SKF_AD_OFF = -0x1000;
    internal const int SKF_AD_CPU = 36;

    [StructLayout(LayoutKind.Sequential)]
    internal struct sock_filter
    {
        public ushort code;
        public byte jt;
        public byte jf;
        public uint k;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct sock_fprog
    {
        public ushort len;
        public sock_filter* filter;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct linger
    {
        public int l_onoff;
        public int l_linger;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct iovec
    {
        public void* iov_base;
        public nuint iov_len;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct msghdr
    {
        public void* msg_name;
        public uint msg_namelen;
        public iovec* msg_iov;
        public nuint msg_iovlen;
        public void* msg_control;
        public nuint msg_controllen;
        public int msg_flags;
    }

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int setsockopt(int fd, int level, int name, void* value, uint length);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int getsockopt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int getsockname(int fd, byte* addr, uint* length);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Libc, SetLastError = true)]
    internal static partial int shutdown(int fd, int how);
}
