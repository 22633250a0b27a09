// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;
using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// Fills submission entries, one kind of request per method, on the model of liburing's
// io_uring_prep_* helpers: each of the kernel's encodings is written here once, with its rule
// beside it, and the channel calls these instead of writing SQE fields itself. The entry comes
// zeroed from Ring.TryGetSqe. Both engines take the result: io_uring directly, EpollRing by
// decoding the same fields.
//
// The file of a request is given as (fd, fixedFile): a regular descriptor, or with fixedFile an
// index in the ring's fixed-file table (a direct descriptor, our lightweight socket).
internal static unsafe class Sqe
{
    // An offset of -1 (all ones) reads or writes at the file's current position, as read(2) and
    // write(2) do: the only offset a pipe or another stream accepts.
    public const ulong CurrentPosition = ulong.MaxValue;

    // A direct descriptor is named by its fixed-file index, and the kernel takes fd as one only
    // with IOSQE_FIXED_FILE.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetFile(io_uring_sqe* sqe, int fd, bool fixedFile)
    {
        sqe->fd = fd;
        if (fixedFile)
        {
            sqe->flags |= IOSQE_FIXED_FILE;
        }
    }

    // No completion when the request succeeds; a failure still posts one (IOSQE_CQE_SKIP_SUCCESS).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SkipSuccess(io_uring_sqe* sqe) => sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;

    // accept4(2) into address/addressLength (addr, and addr2 = off). With direct, the connection
    // goes into a free slot of the fixed-file table (file_index = IORING_FILE_INDEX_ALLOC) and the
    // result is that slot; a direct descriptor has no close-on-exec flag to set, and the kernel
    // refuses SOCK_CLOEXEC with one. Otherwise the result is a regular descriptor, close-on-exec.
    public static void PrepareAccept(io_uring_sqe* sqe, int listenerFd, byte* address, uint* addressLength, bool direct, ulong userData)
    {
        sqe->opcode = IORING_OP_ACCEPT;
        sqe->fd = listenerFd;
        sqe->addr = (ulong)address;
        sqe->off = (ulong)addressLength;
        if (direct)
        {
            sqe->file_index = IORING_FILE_INDEX_ALLOC;
        }
        else
        {
            sqe->accept_flags = SOCK_CLOEXEC;
        }
        sqe->user_data = userData;
    }

    // socket(2): the domain in fd, the type in off, the protocol in len. With direct, into a free
    // slot of the fixed-file table as for accept (and so without SOCK_CLOEXEC).
    public static void PrepareSocket(io_uring_sqe* sqe, int domain, int type, bool direct, ulong userData)
    {
        sqe->opcode = IORING_OP_SOCKET;
        sqe->fd = domain;
        sqe->len = 0;
        if (direct)
        {
            sqe->off = (ulong)type;
            sqe->file_index = IORING_FILE_INDEX_ALLOC;
        }
        else
        {
            sqe->off = (ulong)(type | SOCK_CLOEXEC);
        }
        sqe->user_data = userData;
    }

    // connect(2): the address in addr, its length in off.
    public static void PrepareConnect(io_uring_sqe* sqe, int fd, bool fixedFile, byte* address, int addressLength, ulong userData)
    {
        sqe->opcode = IORING_OP_CONNECT;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)address;
        sqe->off = (ulong)addressLength;
        sqe->user_data = userData;
    }

    // recv(2) of at most length bytes into buffer, once.
    public static void PrepareRecv(io_uring_sqe* sqe, int fd, bool fixedFile, void* buffer, int length, ulong userData)
    {
        sqe->opcode = IORING_OP_RECV;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)buffer;
        sqe->len = (uint)length;
        sqe->user_data = userData;
    }

    // recv(2) with MSG_DONTWAIT, which the kernel runs at once and never parks on the socket's
    // poll (REQ_F_NOWAIT): it returns what is already queued, or EAGAIN.
    public static void PrepareRecvNow(io_uring_sqe* sqe, int fd, bool fixedFile, void* buffer, int length, ulong userData)
    {
        PrepareRecv(sqe, fd, fixedFile, buffer, length, userData);
        sqe->msg_flags = (uint)MSG_DONTWAIT;
    }

    // The next entry of the submission runs after this one completes, whatever its result
    // (IOSQE_IO_HARDLINK; IOSQE_IO_LINK would cancel the next one when this one fails). The link
    // holds within one submission only: the next entry must be filled before the SQ is submitted.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void HardLink(io_uring_sqe* sqe) => sqe->flags |= IOSQE_IO_HARDLINK;

    // A continuous receive: IORING_RECV_MULTISHOT (in ioprio) keeps the request armed, one CQE
    // per arrival with IORING_CQE_F_MORE while it stays armed; IOSQE_BUFFER_SELECT has the kernel
    // pick each buffer from bufferGroup (a provided-buffer ring) and name it in the CQE's flags.
    public static void PrepareRecvMultishot(io_uring_sqe* sqe, int fd, bool fixedFile, ushort bufferGroup, ulong userData)
    {
        sqe->opcode = IORING_OP_RECV;
        SetFile(sqe, fd, fixedFile);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = bufferGroup;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->user_data = userData;
    }

    // read(2) or pread(2) of at most length bytes: at offset, or at CurrentPosition.
    public static void PrepareRead(io_uring_sqe* sqe, int fd, bool fixedFile, void* buffer, int length, ulong offset, ulong userData)
    {
        sqe->opcode = IORING_OP_READ;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)buffer;
        sqe->len = (uint)length;
        sqe->off = offset;
        sqe->user_data = userData;
    }

    // send(2) on a socket; MSG_NOSIGNAL: a peer that went away is EPIPE, not SIGPIPE.
    public static void PrepareSend(io_uring_sqe* sqe, int fd, bool fixedFile, void* buffer, int length, ulong userData)
    {
        sqe->opcode = IORING_OP_SEND;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)buffer;
        sqe->len = (uint)length;
        sqe->msg_flags = (uint)MSG_NOSIGNAL;
        sqe->user_data = userData;
    }

    // sendmsg(2) of one msghdr (len = 1), MSG_NOSIGNAL as for send.
    public static void PrepareSendMsg(io_uring_sqe* sqe, int fd, bool fixedFile, msghdr* message, ulong userData)
    {
        sqe->opcode = IORING_OP_SENDMSG;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)message;
        sqe->len = 1;
        sqe->msg_flags = (uint)MSG_NOSIGNAL;
        sqe->user_data = userData;
    }

    // write(2) or pwrite(2): at offset, or at CurrentPosition.
    public static void PrepareWrite(io_uring_sqe* sqe, int fd, bool fixedFile, void* buffer, int length, ulong offset, ulong userData)
    {
        sqe->opcode = IORING_OP_WRITE;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)buffer;
        sqe->len = (uint)length;
        sqe->off = offset;
        sqe->user_data = userData;
    }

    // writev(2) or pwritev(2) of count iovecs: at offset, or at CurrentPosition.
    public static void PrepareWritev(io_uring_sqe* sqe, int fd, bool fixedFile, iovec* vectors, int count, ulong offset, ulong userData)
    {
        sqe->opcode = IORING_OP_WRITEV;
        SetFile(sqe, fd, fixedFile);
        sqe->addr = (ulong)vectors;
        sqe->len = (uint)count;
        sqe->off = offset;
        sqe->user_data = userData;
    }

    // shutdown(2): how (SHUT_RD, SHUT_WR, SHUT_RDWR) in len. The kernel always runs it on an
    // io-wq worker thread (it may block), which costs a thread wake-up and context switch each.
    public static void PrepareShutdown(io_uring_sqe* sqe, int fd, bool fixedFile, int how, ulong userData)
    {
        sqe->opcode = IORING_OP_SHUTDOWN;
        SetFile(sqe, fd, fixedFile);
        sqe->len = (uint)how;
        sqe->user_data = userData;
    }

    // IORING_OP_FIXED_FD_INSTALL gives a direct descriptor a regular one (the result), and needs
    // IOSQE_FIXED_FILE. install_fd_flags 0: the new descriptor is close-on-exec (the kernel sets
    // O_CLOEXEC unless IORING_FIXED_FD_NO_CLOEXEC is given).
    public static void PrepareFixedFdInstall(io_uring_sqe* sqe, int fixedIndex, ulong userData)
    {
        sqe->opcode = IORING_OP_FIXED_FD_INSTALL;
        SetFile(sqe, fixedIndex, fixedFile: true);
        sqe->install_fd_flags = 0;
        sqe->user_data = userData;
    }

    // Cancels the one request whose user_data is target (addr). The lookup is one hash probe in
    // the kernel; the request completes with ECANCELED (unless it completed first).
    public static void PrepareCancel(io_uring_sqe* sqe, ulong target, ulong userData)
    {
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->addr = target;
        sqe->user_data = userData;
    }

    // Cancels every request on a file (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL). The fd
    // is a key to match, not a file to open, so a direct descriptor is marked in cancel_flags
    // (IORING_ASYNC_CANCEL_FD_FIXED) rather than with IOSQE_FIXED_FILE. This walks every bucket
    // of the kernel's cancel hash: prefer PrepareCancel when the one request is known.
    public static void PrepareCancelAll(io_uring_sqe* sqe, int fd, bool fixedFile, ulong userData)
    {
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->fd = fd;
        sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL | (fixedFile ? IORING_ASYNC_CANCEL_FD_FIXED : 0);
        sqe->user_data = userData;
    }

    // setsockopt(2) through the ring (IORING_OP_URING_CMD, SOCKET_URING_OP_SETSOCKOPT, Linux 6.7),
    // for a direct descriptor, which has no fd for the system call. The kernel reads optval when
    // it takes the entry, so it must stay valid until the next submission.
    public static void PrepareSetSockOpt(io_uring_sqe* sqe, int fd, bool fixedFile, int level, int optionName, void* optionValue, int optionLength, ulong userData)
    {
        sqe->opcode = IORING_OP_URING_CMD;
        SetFile(sqe, fd, fixedFile);
        sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
        sqe->level = (uint)level;
        sqe->optname = (uint)optionName;
        sqe->optval = (ulong)optionValue;
        sqe->optlen = (uint)optionLength;
        sqe->user_data = userData;
    }

    // close(2) of a regular descriptor.
    public static void PrepareClose(io_uring_sqe* sqe, int fd, ulong userData)
    {
        sqe->opcode = IORING_OP_CLOSE;
        sqe->fd = fd;
        sqe->user_data = userData;
    }

    // Frees a slot of the fixed-file table (close_direct). file_index is the slot + 1, since 0
    // there means "a regular descriptor, in fd"; fd must then be 0.
    public static void PrepareCloseDirect(io_uring_sqe* sqe, int fixedIndex, ulong userData)
    {
        sqe->opcode = IORING_OP_CLOSE;
        sqe->fd = 0;
        sqe->file_index = (uint)fixedIndex + 1;
        sqe->user_data = userData;
    }
}
