// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

// Kernel ABI of io_uring, as declared in include/uapi/linux/io_uring.h. Names follow the kernel
// so that each field can be checked against the header (see StructLayoutTests).
internal static unsafe partial class Interop
{
    internal const int SYS_io_uring_setup = 425;
    internal const int SYS_io_uring_enter = 426;
    internal const int SYS_io_uring_register = 427;

    // mmap offsets of the three shared regions.
    internal const long IORING_OFF_SQ_RING = 0;
    internal const long IORING_OFF_CQ_RING = 0x8000000;
    internal const long IORING_OFF_SQES = 0x10000000;

    // io_uring_setup() flags.
    internal const uint IORING_SETUP_CQSIZE = 1u << 3;
    internal const uint IORING_SETUP_CLAMP = 1u << 4;
    internal const uint IORING_SETUP_SUBMIT_ALL = 1u << 7;
    internal const uint IORING_SETUP_COOP_TASKRUN = 1u << 8;
    internal const uint IORING_SETUP_TASKRUN_FLAG = 1u << 9;
    internal const uint IORING_SETUP_SINGLE_ISSUER = 1u << 12;
    internal const uint IORING_SETUP_DEFER_TASKRUN = 1u << 13;

    // io_uring_params.features.
    internal const uint IORING_FEAT_SINGLE_MMAP = 1u << 0;
    internal const uint IORING_FEAT_NODROP = 1u << 1;
    internal const uint IORING_FEAT_EXT_ARG = 1u << 8;

    // Opcodes (enum io_uring_op).
    internal const byte IORING_OP_NOP = 0;
    internal const byte IORING_OP_WRITEV = 2;
    internal const byte IORING_OP_SENDMSG = 9;
    internal const byte IORING_OP_ACCEPT = 13;
    internal const byte IORING_OP_ASYNC_CANCEL = 14;
    internal const byte IORING_OP_CONNECT = 16;
    internal const byte IORING_OP_CLOSE = 19;
    internal const byte IORING_OP_READ = 22;
    internal const byte IORING_OP_WRITE = 23;
    internal const byte IORING_OP_SEND = 26;
    internal const byte IORING_OP_RECV = 27;
    internal const byte IORING_OP_SHUTDOWN = 34;
    internal const byte IORING_OP_SOCKET = 45;
    internal const byte IORING_OP_URING_CMD = 46;
    internal const byte IORING_OP_FIXED_FD_INSTALL = 54;

    // io_uring_sqe.flags.
    internal const byte IOSQE_FIXED_FILE = 1 << 0;
    internal const byte IOSQE_IO_HARDLINK = 1 << 3;
    internal const byte IOSQE_BUFFER_SELECT = 1 << 5;
    internal const byte IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

    // send/recv flags kept in sqe.ioprio. POLL_FIRST (skip the first attempt, wait for readiness)
    // is used only by the tests, to make a receive's first attempt find nothing.
    internal const ushort IORING_RECVSEND_POLL_FIRST = 1 << 0;
    internal const ushort IORING_RECV_MULTISHOT = 1 << 1;

    // sqe.cancel_flags.
    internal const uint IORING_ASYNC_CANCEL_ALL = 1u << 0;
    internal const uint IORING_ASYNC_CANCEL_FD = 1u << 1;
    internal const uint IORING_ASYNC_CANCEL_FD_FIXED = 1u << 3;

    // sqe.nop_flags (in rw_flags): complete the NOP with the result given in sqe.len (Linux 6.10).
    internal const uint IORING_NOP_INJECT_RESULT = 1u << 0;

    // sqe.install_fd_flags of IORING_OP_FIXED_FD_INSTALL.
    internal const uint IORING_FIXED_FD_NO_CLOEXEC = 1u << 0;

    // sqe.cmd_op of IORING_OP_URING_CMD on a socket (enum io_uring_socket_op, Linux 6.7).
    internal const uint SOCKET_URING_OP_SETSOCKOPT = 3;

    // sqe.file_index: let the kernel pick a free slot of the fixed-file table.
    internal const uint IORING_FILE_INDEX_ALLOC = uint.MaxValue;

    // cqe.flags.
    internal const uint IORING_CQE_F_BUFFER = 1u << 0;
    internal const uint IORING_CQE_F_MORE = 1u << 1;
    internal const int IORING_CQE_BUFFER_SHIFT = 16;

    // Shared SQ ring flags, written by the kernel.
    internal const uint IORING_SQ_CQ_OVERFLOW = 1u << 1;
    internal const uint IORING_SQ_TASKRUN = 1u << 2;

    // io_uring_enter() flags.
    internal const uint IORING_ENTER_GETEVENTS = 1u << 0;
    internal const uint IORING_ENTER_EXT_ARG = 1u << 3;
    internal const uint IORING_ENTER_REGISTERED_RING = 1u << 4;

    // io_uring_register() opcodes.
    internal const uint IORING_REGISTER_FILES2 = 13;
    internal const uint IORING_REGISTER_RING_FDS = 20;
    internal const uint IORING_REGISTER_PBUF_RING = 22;
    internal const uint IORING_RSRC_REGISTER_SPARSE = 1u << 0;

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_sqring_offsets
    {
        public uint head;
        public uint tail;
        public uint ring_mask;
        public uint ring_entries;
        public uint flags;
        public uint dropped;
        public uint array;
        public uint resv1;
        public ulong user_addr;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_cqring_offsets
    {
        public uint head;
        public uint tail;
        public uint ring_mask;
        public uint ring_entries;
        public uint overflow;
        public uint cqes;
        public uint flags;
        public uint resv1;
        public ulong user_addr;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_params
    {
        public uint sq_entries;
        public uint cq_entries;
        public uint flags;
        public uint sq_thread_cpu;
        public uint sq_thread_idle;
        public uint features;
        public uint wq_fd;
        public fixed uint resv[3];
        public io_sqring_offsets sq_off;
        public io_cqring_offsets cq_off;
    }

    // The 64-byte submission queue entry. Unions are expressed with overlapping field offsets.
    [StructLayout(LayoutKind.Explicit, Size = 64)]
    internal struct io_uring_sqe
    {
        [FieldOffset(0)] public byte opcode;
        [FieldOffset(1)] public byte flags;
        [FieldOffset(2)] public ushort ioprio;
        [FieldOffset(4)] public int fd;
        [FieldOffset(8)] public ulong off;
        [FieldOffset(8)] public ulong addr2;
        [FieldOffset(8)] public uint cmd_op;
        [FieldOffset(16)] public ulong addr;
            [FieldOffset(16)] public uint level;
        [FieldOffset(20)] public uint optname;
        [FieldOffset(24)] public uint len;
        [FieldOffset(28)] public uint rw_flags;
        [FieldOffset(28)] public uint msg_flags;
        [FieldOffset(28)] public uint accept_flags;
        [FieldOffset(28)] public uint cancel_flags;
            [FieldOffset(28)] public uint install_fd_flags;
        [FieldOffset(28)] public uint nop_flags;
        [FieldOffset(32)] public ulong user_data;
        [FieldOffset(40)] public ushort buf_index;
        [FieldOffset(40)] public ushort buf_group;
        [FieldOffset(42)] public ushort personality;
            [FieldOffset(44)] public uint file_index;
        [FieldOffset(44)] public uint optlen;
        [FieldOffset(48)] public ulong addr3;
        [FieldOffset(48)] public ulong optval;
        [FieldOffset(56)] public ulong __pad2;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_cqe
    {
        public ulong user_data;
        public int res;
        public uint flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_buf
    {
        public ulong addr;
        public uint len;
        public ushort bid;
        public ushort resv;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_buf_reg
    {
        public ulong ring_addr;
        public uint ring_entries;
        public ushort bgid;
        public ushort flags;
        public fixed ulong resv[3];
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_rsrc_register
    {
        public uint nr;
        public uint flags;
        public ulong resv2;
        public ulong data;
        public ulong tags;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_rsrc_update
    {
        public uint offset;
        public uint resv;
        public ulong data;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct io_uring_getevents_arg
    {
        public ulong sigmask;
        public uint sigmask_sz;
        public uint min_wait_usec;
        public ulong ts;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct __kernel_timespec
    {
        public long tv_sec;
        public long tv_nsec;
    }

    internal static int io_uring_setup(uint entries, io_uring_params* p)
        => (int)syscall(SYS_io_uring_setup, (nint)entries, (nint)p, 0, 0, 0, 0);

    internal static int io_uring_enter(int fd, uint toSubmit, uint minComplete, uint flags, void* arg, nuint argSize)
        => (int)syscall(SYS_io_uring_enter, fd, (nint)toSubmit, (nint)minComplete, (nint)flags, (nint)arg, (nint)argSize);

    internal static int io_uring_register(int fd, uint opcode, void* arg, uint nrArgs)
        => (int)syscall(SYS_io_uring_register, fd, (nint)opcode, (nint)arg, (nint)nrArgs, 0, 0);

    // syscall(2) is variadic; every argument here is an integer register, which the SysV ABI
    // passes identically for variadic and fixed-argument calls.
    [LibraryImport(Libc, SetLastError = true)]
    private static partial nint syscall(nint number, nint a1, nint a2, nint a3, nint a4, nint a5, nint a6);
}
