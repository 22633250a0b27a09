// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Runtime.InteropServices;
using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// The fallback engine, for where io_uring cannot be set up (a seccomp profile, the
// kernel.io_uring_disabled sysctl, an old kernel). It keeps the SQ and CQ in process memory, in
// the kernel's layout, and plays the kernel's part itself: each SQE the channel submits is tried
// at once with a non-blocking call; one that would block is parked on its descriptor and retried
// when epoll reports the descriptor ready, and every outcome is posted as a CQE. So the channel
// drives it exactly as it drives io_uring: the same commands, cancellation, provided buffers,
// multishot receives and direct-descriptor table, with completions emulated over readiness.
//
// What batching is left: the commands of a dispatch are taken together, each descriptor is added
// to epoll once (edge-triggered, for reading and writing) rather than re-armed per command, and
// one epoll_wait collects readiness for all of them. Each I/O is still its own system call.
//
// Emulations: lightweight sockets are regular descriptors kept in a private table (so they count
// against RLIMIT_NOFILE); descriptors the channel works on are switched to non-blocking mode;
// regular-file reads and writes run synchronously on the channel thread.
internal sealed unsafe class EpollRing : Ring
{
    private const int MaxEvents = 256;

    private int _epollFd;
    // One allocation for the four queue indices; SQEs and CQEs in two more.
    private readonly uint* _indices;
    private readonly io_uring_sqe* _sqes;
    private readonly io_uring_cqe* _cqes;
    private readonly uint _sqMask;
    private readonly uint _cqMask;
    private readonly byte* _events;

    // Completions the CQ had no room for, in order (io_uring's IORING_FEAT_NODROP behaviour).
    private readonly Queue<io_uring_cqe> _overflow = new();

    // The emulated registered-file table: slot -> descriptor, -1 when free.
    private int[] _table = [];
    private readonly Stack<int> _freeSlots = new();

    // The provided-buffer ring (one group).
    private io_uring_buf* _bufferRing;
    private uint _bufferMask;
    private ushort _bufferHead;
    private int _bufferGroup = -1;

    // Per-descriptor state, indexed by descriptor number.
    private Descriptor?[] _descriptors = new Descriptor?[256];
    // Parked commands by user_data, for cancellation by user_data.
    private readonly Dictionary<ulong, Parked> _parked = new();
    private readonly Stack<Parked> _parkedPool = new();

    public EpollRing(uint sqEntries, uint cqEntries, string reason)
    {
        sqEntries = uint.Max(2, System.Numerics.BitOperations.RoundUpToPowerOf2(sqEntries));
        cqEntries = uint.Max(sqEntries * 2, System.Numerics.BitOperations.RoundUpToPowerOf2(cqEntries));
        _epollFd = epoll_create1(EPOLL_CLOEXEC);
        if (_epollFd < 0)
        {
            ThrowHelper.ThrowLastErrno("epoll_create1");
        }
        _indices = (uint*)NativeMemory.AllocZeroed(4 * sizeof(uint));
        _sqes = (io_uring_sqe*)NativeMemory.AllocZeroed(sqEntries * (nuint)sizeof(io_uring_sqe));
        _cqes = (io_uring_cqe*)NativeMemory.AllocZeroed(cqEntries * (nuint)sizeof(io_uring_cqe));
        _events = (byte*)NativeMemory.AllocZeroed((nuint)(MaxEvents * EpollEventSize));
        _sqMask = sqEntries - 1;
        _cqMask = cqEntries - 1;
        InitializeQueues(&_indices[0], &_indices[1], sqEntries, _sqes, &_indices[2], &_indices[3], cqEntries, _cqes);
        Degradation = reason + "; running the epoll engine: completions are emulated over readiness, each I/O is its own system call, " +
            "lightweight sockets are regular descriptors (they count against RLIMIT_NOFILE), file reads run on the channel thread, " +
            "and pipes and listening sockets it works on are switched to non-blocking mode";
    }

    public override string EngineName => "epoll";

    public override bool NeedsEnter => _overflow.Count != 0;

    public override bool CqOverflowPending => _overflow.Count != 0;

    public override void SubmitStartup()
    {
        int result = Enter(0, getEvents: false, -1);
        if (result < 0)
        {
            ThrowHelper.ThrowErrno("epoll engine start-up", (Errno)(-result), "the first submission failed");
        }
    }

    public override int Enter(uint waitFor, bool getEvents, long timeoutNanoseconds)
    {
        PublishSqes();
        FlushOverflow();
        TakeSubmissions();
        if (!getEvents)
        {
            return 0;
        }
        long deadline = timeoutNanoseconds > 0 ? Stopwatch.GetTimestamp() + (long)(timeoutNanoseconds / 1e9 * Stopwatch.Frequency) : 0;
        while (true)
        {
            bool block = waitFor > 0 && CqCount() < waitFor && timeoutNanoseconds != 0;
            int timeoutMs = 0;
            if (block)
            {
                if (timeoutNanoseconds < 0)
                {
                    timeoutMs = -1;
                }
                else
                {
                    long remaining = deadline - Stopwatch.GetTimestamp();
                    if (remaining <= 0)
                    {
                        return -(int)Errno.ETIME;
                    }
                    // Round up: waking early would only loop.
                    timeoutMs = (int)Math.Min(int.MaxValue, (remaining * 1000 + Stopwatch.Frequency - 1) / Stopwatch.Frequency);
                }
            }
            CountSystemCall();
            int count = epoll_wait(_epollFd, _events, MaxEvents, timeoutMs);
            if (count < 0)
            {
                Errno errno = GetLastErrno();
                return -(int)errno;
            }
            for (int i = 0; i < count; i++)
            {
                byte* ev = _events + i * EpollEventSize;
                OnReady((int)*(ulong*)(ev + EpollEventDataOffset), *(uint*)ev);
            }
            FlushOverflow();
            if (!block || CqCount() >= waitFor)
            {
                return 0;
            }
        }
    }

    // ---- The kernel's part: taking SQEs and posting CQEs ----

    private uint CqCount() => _indices[3] - Volatile.Read(ref _indices[2]);

    private void TakeSubmissions()
    {
        uint head = _indices[0];
        uint tail = RingBarrier.LoadAcquire(&_indices[1]);
        while (head != tail)
        {
            io_uring_sqe sqe = _sqes[head & _sqMask];
            head++;
            // Release the slot before running the command: a completion handler may queue more.
            RingBarrier.StoreRelease(&_indices[0], head);
            CountSubmitted(1);
            Execute(in sqe);
        }
    }

    private void Post(ulong userData, int result, uint flags, bool skipSuccess = false)
    {
        if (skipSuccess && result >= 0)
        {
            return;
        }
        io_uring_cqe cqe = new() { user_data = userData, res = result, flags = flags };
        if (_overflow.Count != 0 || CqCount() >= CqEntries)
        {
            _overflow.Enqueue(cqe);
            return;
        }
        PostToRing(cqe);
    }

    private void PostToRing(in io_uring_cqe cqe)
    {
        uint tail = _indices[3];
        _cqes[tail & _cqMask] = cqe;
        RingBarrier.StoreRelease(&_indices[3], tail + 1);
    }

    private void FlushOverflow()
    {
        while (_overflow.Count != 0 && CqCount() < CqEntries)
        {
            PostToRing(_overflow.Dequeue());
        }
    }

    private static bool SkipsSuccess(in io_uring_sqe sqe) => (sqe.flags & IOSQE_CQE_SKIP_SUCCESS) != 0;

    private void Execute(in io_uring_sqe sqe)
    {
        switch (sqe.opcode)
        {
            case IORING_OP_NOP:
                Post(sqe.user_data, (sqe.nop_flags & IORING_NOP_INJECT_RESULT) != 0 ? (int)sqe.len : 0, 0, SkipsSuccess(sqe));
                return;
            case IORING_OP_ASYNC_CANCEL:
                Cancel(in sqe);
                return;
            case IORING_OP_SOCKET:
                CreateSocket(in sqe);
                return;
            case IORING_OP_CLOSE:
                CloseDescriptor(in sqe);
                return;
        }

        int fd = sqe.fd;
        if ((sqe.flags & IOSQE_FIXED_FILE) != 0)
        {
            fd = (uint)fd < (uint)_table.Length ? _table[fd] : -1;
            if (fd < 0)
            {
                Post(sqe.user_data, -(int)Errno.EBADF, 0);
                return;
            }
        }

        switch (sqe.opcode)
        {
            case IORING_OP_SHUTDOWN:
                Post(sqe.user_data, SystemCallResult(shutdown(fd, (int)sqe.len)), 0, SkipsSuccess(sqe));
                return;
            case IORING_OP_URING_CMD:
                Post(sqe.user_data, sqe.cmd_op == SOCKET_URING_OP_SETSOCKOPT
                    ? SystemCallResult(setsockopt(fd, (int)sqe.level, (int)sqe.optname, (void*)sqe.optval, sqe.optlen))
                    : -(int)Errno.EOPNOTSUPP, 0, SkipsSuccess(sqe));
                return;
            case IORING_OP_FIXED_FD_INSTALL:
                int command = (sqe.install_fd_flags & IORING_FIXED_FD_NO_CLOEXEC) != 0 ? F_DUPFD : F_DUPFD_CLOEXEC;
                Post(sqe.user_data, SystemCallResult(fcntl(fd, command, 0)), 0, SkipsSuccess(sqe));
                return;
            case IORING_OP_ACCEPT:
            case IORING_OP_RECV:
            case IORING_OP_READ:
                StartIo(fd, in sqe, writer: false);
                return;
            case IORING_OP_CONNECT:
            case IORING_OP_SEND:
            case IORING_OP_SENDMSG:
            case IORING_OP_WRITE:
            case IORING_OP_WRITEV:
                StartIo(fd, in sqe, writer: true);
                return;
            default:
                Post(sqe.user_data, -(int)Errno.EINVAL, 0);
                return;
        }
    }

    // Runs an I/O command now if it can; otherwise parks it on the descriptor, behind any command
    // already waiting in the same direction (so writes, and reads, keep their order).
    private void StartIo(int fd, in io_uring_sqe sqe, bool writer)
    {
        Descriptor descriptor = GetDescriptor(fd);
        Parked parked = RentParked(in sqe, descriptor, writer);
        if (descriptor.Regular)
        {
            // A regular file is always "ready": epoll cannot wait for it, io_uring would use a worker.
            RunRegular(parked);
            ReturnParked(parked);
            return;
        }
        List<Parked> queue = writer ? descriptor.Writers : descriptor.Readers;
        if (queue.Count == 0 && TryRun(parked))
        {
            ReturnParked(parked);
            return;
        }
        queue.Add(parked);
        _parked[parked.Sqe.user_data] = parked;
        if (!descriptor.Registered)
        {
            Register(descriptor);
        }
    }

    private void OnReady(int fd, uint events)
    {
        if ((uint)fd >= (uint)_descriptors.Length || _descriptors[fd] is not { } descriptor)
        {
            return;
        }
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0)
        {
            RunQueue(descriptor.Readers);
        }
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0)
        {
            RunQueue(descriptor.Writers);
        }
    }

    private void RunQueue(List<Parked> queue)
    {
        // With edge-triggered readiness every waiting command runs until one would block again.
        while (queue.Count != 0)
        {
            Parked parked = queue[0];
            if (!TryRun(parked))
            {
                return;
            }
            queue.RemoveAt(0);
            _parked.Remove(parked.Sqe.user_data);
            ReturnParked(parked);
        }
    }

    // Runs a command on a non-blocking descriptor; false when it would block (it stays parked).
    private bool TryRun(Parked parked)
    {
        ref io_uring_sqe sqe = ref parked.Sqe;
        int fd = parked.Descriptor.Fd;
        if (sqe.opcode == IORING_OP_RECV && (sqe.ioprio & IORING_RECV_MULTISHOT) != 0)
        {
            return RunMultishotReceive(parked);
        }
        while (true)
        {
            nint result;
            CountSystemCall();
            switch (sqe.opcode)
            {
                case IORING_OP_ACCEPT:
                    if (!parked.Descriptor.NonBlocking)
                    {
                        SetNonBlocking(fd, true);
                        parked.Descriptor.NonBlocking = true;
                    }
                    result = accept4(fd, (void*)sqe.addr, (uint*)sqe.off, SOCK_CLOEXEC);
                    if (result >= 0)
                    {
                        PostAccepted(in sqe, (int)result);
                        return true;
                    }
                    break;
                case IORING_OP_RECV:
                    result = recv(fd, (void*)sqe.addr, sqe.len, (int)sqe.msg_flags | MSG_DONTWAIT);
                    break;
                case IORING_OP_READ:
                    result = parked.Descriptor.Socket ? recv(fd, (void*)sqe.addr, sqe.len, MSG_DONTWAIT) : read(fd, (void*)sqe.addr, sqe.len);
                    break;
                case IORING_OP_SEND:
                    result = send(fd, (void*)sqe.addr, sqe.len, (int)sqe.msg_flags | MSG_DONTWAIT);
                    break;
                case IORING_OP_SENDMSG:
                    result = sendmsg(fd, (msghdr*)sqe.addr, (int)sqe.msg_flags | MSG_DONTWAIT);
                    break;
                case IORING_OP_WRITE:
                    result = parked.Descriptor.Socket ? send(fd, (void*)sqe.addr, sqe.len, MSG_DONTWAIT | MSG_NOSIGNAL) : write(fd, (void*)sqe.addr, sqe.len);
                    break;
                case IORING_OP_WRITEV:
                    result = parked.Descriptor.Socket ? SendVector(fd, (iovec*)sqe.addr, (int)sqe.len) : writev(fd, (iovec*)sqe.addr, (int)sqe.len);
                    break;
                case IORING_OP_CONNECT:
                    return RunConnect(parked);
                default:
                    Post(sqe.user_data, -(int)Errno.EINVAL, 0);
                    return true;
            }
            if (result >= 0)
            {
                Post(sqe.user_data, (int)result, 0, SkipsSuccess(sqe));
                return true;
            }
            if (CallFailed(sqe.user_data) is bool done)
            {
                return done;
            }
        }
    }

    // After a failed call: null to retry it (EINTR), false when it would block (the command stays
    // parked), true once the error is posted as the command's completion.
    private bool? CallFailed(ulong userData)
    {
        Errno errno = GetLastErrno();
        if (errno == Errno.EINTR)
        {
            return null;
        }
        if (errno == Errno.EAGAIN)
        {
            return false;
        }
        Post(userData, -(int)errno, 0);
        return true;
    }

    private static nint SendVector(int fd, iovec* iov, int count)
    {
        msghdr message = default;
        message.msg_iov = iov;
        message.msg_iovlen = (nuint)count;
        return sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    private bool RunConnect(Parked parked)
    {
        ref io_uring_sqe sqe = ref parked.Sqe;
        int fd = parked.Descriptor.Fd;
        if (!parked.Connecting)
        {
            SetNonBlocking(fd, true);
            CountSystemCall();
            if (connect(fd, (void*)sqe.addr, (uint)sqe.off) == 0)
            {
                SetNonBlocking(fd, false);
                Post(sqe.user_data, 0, 0, SkipsSuccess(sqe));
                return true;
            }
            int errno = (int)GetLastErrno();
            if (errno != EINPROGRESS)
            {
                Post(sqe.user_data, -errno, 0);
                return true;
            }
            // Writable once the handshake ends either way; SO_ERROR tells which.
            parked.Connecting = true;
            return false;
        }
        int error = 0;
        uint length = sizeof(int);
        CountSystemCall();
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
        {
            error = (int)GetLastErrno();
        }
        SetNonBlocking(fd, false);
        Post(sqe.user_data, -error, 0, SkipsSuccess(sqe));
        return true;
    }

    // A multishot receive into provided buffers: one CQE per arrival until the socket would
    // block (it stays armed), the stream ends, an error, or the buffers run out (ENOBUFS ends it).
    private bool RunMultishotReceive(Parked parked)
    {
        ref io_uring_sqe sqe = ref parked.Sqe;
        int fd = parked.Descriptor.Fd;
        while (true)
        {
            if (sqe.buf_group != _bufferGroup || RingBarrier.LoadAcquire(BufferRing.Tail(_bufferRing)) == _bufferHead)
            {
                Post(sqe.user_data, -(int)Errno.ENOBUFS, 0);
                return true;
            }
            io_uring_buf* buffer = &_bufferRing[_bufferHead & _bufferMask];
            CountSystemCall();
            nint result = recv(fd, (void*)buffer->addr, buffer->len, (int)sqe.msg_flags | MSG_DONTWAIT);
            if (result > 0)
            {
                _bufferHead++;
                Post(sqe.user_data, (int)result, IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | ((uint)buffer->bid << IORING_CQE_BUFFER_SHIFT));
                continue;
            }
            if (result == 0)
            {
                Post(sqe.user_data, 0, 0);
                return true;
            }
            if (CallFailed(sqe.user_data) is bool done)
            {
                return done;
            }
        }
    }

    private void RunRegular(Parked parked)
    {
        ref io_uring_sqe sqe = ref parked.Sqe;
        int fd = parked.Descriptor.Fd;
        bool atPosition = sqe.off == ulong.MaxValue;
        nint result;
        CountSystemCall();
        switch (sqe.opcode)
        {
            case IORING_OP_READ:
                result = atPosition ? read(fd, (void*)sqe.addr, sqe.len) : pread(fd, (void*)sqe.addr, sqe.len, (long)sqe.off);
                break;
            case IORING_OP_WRITE:
                result = atPosition ? write(fd, (void*)sqe.addr, sqe.len) : pwrite(fd, (void*)sqe.addr, sqe.len, (long)sqe.off);
                break;
            case IORING_OP_WRITEV when atPosition:
                result = writev(fd, (iovec*)sqe.addr, (int)sqe.len);
                break;
            default:
                Post(sqe.user_data, -(int)Errno.EINVAL, 0);
                return;
        }
        Post(sqe.user_data, result >= 0 ? (int)result : -(int)GetLastErrno(), 0, SkipsSuccess(sqe));
    }

    private void PostAccepted(in io_uring_sqe sqe, int fd)
    {
        GetDescriptor(fd, knownSocket: true);
        if (sqe.file_index == 0)
        {
            Post(sqe.user_data, fd, 0);
            return;
        }
        int slot = InstallInTable(fd, sqe.file_index);
        if (slot < 0)
        {
            // As io_uring does when the table is full: the connection was accepted and is dropped.
            Forget(fd);
            close(fd);
        }
        Post(sqe.user_data, slot, 0);
    }

    private void CreateSocket(in io_uring_sqe sqe)
    {
        CountSystemCall();
        int fd = socket(sqe.fd, (int)sqe.off | SOCK_CLOEXEC, (int)sqe.len);
        if (fd < 0)
        {
            Post(sqe.user_data, -(int)GetLastErrno(), 0);
            return;
        }
        GetDescriptor(fd, knownSocket: true);
        if (sqe.file_index == 0)
        {
            Post(sqe.user_data, fd, 0);
            return;
        }
        int slot = InstallInTable(fd, sqe.file_index);
        if (slot < 0)
        {
            Forget(fd);
            close(fd);
        }
        Post(sqe.user_data, slot, 0);
    }

    // Puts a descriptor in the table: at a free slot for IORING_FILE_INDEX_ALLOC, else at file_index - 1.
    // Returns the slot, or a negative errno.
    private int InstallInTable(int fd, uint fileIndex)
    {
        int slot;
        if (fileIndex == IORING_FILE_INDEX_ALLOC)
        {
            if (!_freeSlots.TryPop(out slot))
            {
                return -(int)Errno.ENFILE;
            }
        }
        else
        {
            slot = (int)fileIndex - 1;
            if ((uint)slot >= (uint)_table.Length || _table[slot] >= 0)
            {
                return -(int)Errno.EBADF;
            }
        }
        _table[slot] = fd;
        return slot;
    }

    private void CloseDescriptor(in io_uring_sqe sqe)
    {
        int fd = sqe.fd;
        if (sqe.file_index != 0)
        {
            int slot = (int)sqe.file_index - 1;
            fd = (uint)slot < (uint)_table.Length ? _table[slot] : -1;
            if (fd < 0)
            {
                Post(sqe.user_data, -(int)Errno.EBADF, 0);
                return;
            }
            _table[slot] = -1;
            _freeSlots.Push(slot);
        }
        Forget(fd);
        Post(sqe.user_data, SystemCallResult(close(fd)), 0, SkipsSuccess(sqe));
    }

    private void Cancel(in io_uring_sqe sqe)
    {
        int cancelled = 0;
        if ((sqe.cancel_flags & IORING_ASYNC_CANCEL_FD) != 0)
        {
            int fd = sqe.fd;
            if ((sqe.cancel_flags & IORING_ASYNC_CANCEL_FD_FIXED) != 0)
            {
                fd = (uint)fd < (uint)_table.Length ? _table[fd] : -1;
            }
            if ((uint)fd < (uint)_descriptors.Length && _descriptors[fd] is { } descriptor)
            {
                bool all = (sqe.cancel_flags & IORING_ASYNC_CANCEL_ALL) != 0;
                cancelled = CancelQueue(descriptor.Readers, all ? int.MaxValue : 1);
                if (all || cancelled == 0)
                {
                    cancelled += CancelQueue(descriptor.Writers, all ? int.MaxValue : 1);
                }
            }
        }
        else if (_parked.TryGetValue(sqe.addr, out Parked? parked))
        {
            List<Parked> queue = parked.Writer ? parked.Descriptor.Writers : parked.Descriptor.Readers;
            queue.Remove(parked);
            _parked.Remove(sqe.addr);
            Post(parked.Sqe.user_data, -(int)Errno.ECANCELED, 0);
            ReturnParked(parked);
            cancelled = 1;
        }
        bool single = (sqe.cancel_flags & IORING_ASYNC_CANCEL_ALL) == 0;
        Post(sqe.user_data, cancelled == 0 ? -(int)Errno.ENOENT : single ? 0 : cancelled, 0, SkipsSuccess(sqe));
    }

    private int CancelQueue(List<Parked> queue, int limit)
    {
        int count = 0;
        while (queue.Count != 0 && count < limit)
        {
            Parked parked = queue[0];
            queue.RemoveAt(0);
            _parked.Remove(parked.Sqe.user_data);
            Post(parked.Sqe.user_data, -(int)Errno.ECANCELED, 0);
            ReturnParked(parked);
            count++;
        }
        return count;
    }

    // ---- Descriptors ----

    // knownSocket: a socket this engine just created or accepted, whose type needs no statx.
    private Descriptor GetDescriptor(int fd, bool knownSocket = false)
    {
        if (fd >= _descriptors.Length)
        {
            Array.Resize(ref _descriptors, Math.Max(fd + 1, _descriptors.Length * 2));
        }
        if (_descriptors[fd] is { } known)
        {
            return known;
        }
        int type = knownSocket ? S_IFSOCK : FileType(fd);
        var descriptor = new Descriptor(fd) { Regular = type is S_IFREG or S_IFBLK, Socket = type == S_IFSOCK };
        if (!descriptor.Regular && !descriptor.Socket)
        {
            // A pipe or eventfd has no per-call MSG_DONTWAIT: reads and writes must never block
            // the channel thread, so the descriptor itself becomes non-blocking.
            SetNonBlocking(fd, true);
        }
        _descriptors[fd] = descriptor;
        return descriptor;
    }

    // Socket I/O passes MSG_DONTWAIT per call and leaves the descriptor's own mode alone, so a
    // descriptor installed with FIXED_FD_INSTALL is blocking, as io_uring's is. Only accept and
    // connect need the descriptor non-blocking.
    private void SetNonBlocking(int fd, bool value)
    {
        CountSystemCall();
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags >= 0 && ((flags & O_NONBLOCK) != 0) != value)
        {
            CountSystemCall();
            fcntl(fd, F_SETFL, value ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
        }
    }

    private int FileType(int fd)
    {
        statx_buffer buffer;
        CountSystemCall();
        if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &buffer) != 0)
        {
            return 0;
        }
        return buffer.stx_mode & S_IFMT;
    }

    private void Register(Descriptor descriptor)
    {
        byte* ev = stackalloc byte[16];
        *(uint*)ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        *(ulong*)(ev + EpollEventDataOffset) = (ulong)descriptor.Fd;
        CountSystemCall();
        if (epoll_ctl(_epollFd, EPOLL_CTL_ADD, descriptor.Fd, ev) == 0 || GetLastErrno() == Errno.EEXIST)
        {
            descriptor.Registered = true;
            return;
        }
        // Not pollable: fail everything waiting on it rather than park it forever.
        Errno errno = GetLastErrno();
        CancelQueueWith(descriptor.Readers, errno);
        CancelQueueWith(descriptor.Writers, errno);
    }

    private void CancelQueueWith(List<Parked> queue, Errno errno)
    {
        foreach (Parked parked in queue)
        {
            _parked.Remove(parked.Sqe.user_data);
            Post(parked.Sqe.user_data, -(int)errno, 0);
            ReturnParked(parked);
        }
        queue.Clear();
    }

    // Drops what we know of a descriptor before it is closed or handed back, as its number may be
    // reused: removes it from epoll (while it is still open) and cancels anything still parked.
    private void Forget(int fd)
    {
        if ((uint)fd >= (uint)_descriptors.Length || _descriptors[fd] is not { } descriptor)
        {
            return;
        }
        _descriptors[fd] = null;
        CancelQueue(descriptor.Readers, int.MaxValue);
        CancelQueue(descriptor.Writers, int.MaxValue);
        if (descriptor.Registered)
        {
            CountSystemCall();
            epoll_ctl(_epollFd, EPOLL_CTL_DEL, fd, null);
        }
    }

    public override void ForgetDescriptor(int fd) => Forget(fd);

    // ---- Registration ----

    public override void RegisterSparseFiles(uint count)
    {
        _table = new int[count];
        Array.Fill(_table, -1);
        _freeSlots.Clear();
        for (int slot = (int)count - 1; slot >= 0; slot--)
        {
            _freeSlots.Push(slot);
        }
    }

    public override void RegisterBufferRing(void* ringAddress, uint entries, ushort groupId)
    {
        _bufferRing = (io_uring_buf*)ringAddress;
        _bufferMask = entries - 1;
        _bufferHead = 0;
        _bufferGroup = groupId;
    }

    // ---- Parked commands ----

    private Parked RentParked(in io_uring_sqe sqe, Descriptor descriptor, bool writer)
    {
        Parked parked = _parkedPool.TryPop(out Parked? reused) ? reused : new Parked();
        parked.Sqe = sqe;
        parked.Descriptor = descriptor;
        parked.Writer = writer;
        parked.Connecting = false;
        return parked;
    }

    private void ReturnParked(Parked parked)
    {
        parked.Descriptor = null!;
        _parkedPool.Push(parked);
    }

    private int SystemCallResult(int result)
    {
        CountSystemCall();
        return result >= 0 ? result : -(int)GetLastErrno();
    }

    protected override void Dispose(bool disposing)
    {
        int epollFd = Interlocked.Exchange(ref _epollFd, -1);
        if (epollFd < 0)
        {
            return;
        }
        close(epollFd);
        // Closing an io_uring drops its direct descriptors; the emulated table does the same.
        for (int slot = 0; slot < _table.Length; slot++)
        {
            if (_table[slot] >= 0)
            {
                close(_table[slot]);
                _table[slot] = -1;
            }
        }
        NativeMemory.Free(_indices);
        NativeMemory.Free(_sqes);
        NativeMemory.Free(_cqes);
        NativeMemory.Free(_events);
    }

    private sealed class Descriptor(int fd)
    {
        public int Fd { get; } = fd;
        public bool Regular { get; init; }
        public bool Socket { get; init; }
        // O_NONBLOCK was set for accept.
        public bool NonBlocking { get; set; }
        public bool Registered { get; set; }
        // Commands waiting for the descriptor to become readable (accept, receive, read) or writable (connect, send, write).
        public List<Parked> Readers { get; } = new();
        public List<Parked> Writers { get; } = new();
    }

    private sealed class Parked
    {
        // A copy: the SQ slot is reused once the command is taken, as with the kernel.
        public io_uring_sqe Sqe;
        public Descriptor Descriptor = null!;
        public bool Writer;
        // A connect in progress: the next readiness reads SO_ERROR.
        public bool Connecting;
    }
}
