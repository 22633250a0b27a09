// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// The asynchronous commands (mp_accept, mp_read, mp_write, ...). Each one fills submission
// entries; with batching they reach the kernel together in the next dispatch's system call.
public sealed unsafe partial class MegaPipeChannel
{
    // user_data of requests whose completions carry nothing we need.
    private const ulong CancelUserData = ulong.MaxValue - 1;

    // The SO_LINGER value of an abortive close. The kernel reads it when it takes the submission,
    // after Abort has returned, so it lives in native memory for the life of the process.
    private static readonly linger* s_lingerZero = AllocateLingerZero();

    // Slot i holds the operation with Index i.
    private Operation?[] _operations = new Operation?[256];
    private int[] _freeOperations = new int[256];
    private int _freeOperationCount;
    private int _operationHighWater;

    /// <summary>
    /// Keeps accepts armed on a listener (mp_accept). Each accepted connection produces one
    /// <see cref="ChannelCommand.Accept"/> event whose <see cref="CompletionEvent.Accepted"/> handle is
    /// already registered in this channel (with no cookie until <see cref="SetCookie"/>). Accepting
    /// continues until the listener is closed or <see cref="StopAccept"/>; calling it again is harmless.
    /// When descriptors run out (EMFILE, ENFILE when the registered file table is full, ENOBUFS,
    /// ENOMEM) the first failure is reported and accepting pauses, so new connections wait in the
    /// listen backlog, until a handle of this channel closes or <see cref="AcceptRetryDelay"/> passes.
    /// </summary>
    public void Accept(MegaPipeHandle listener)
    {
        HandleState state = Resolve(listener);
        if (state.Kind != HandleKind.Listener)
        {
            ThrowHelper.ThrowInvalidOperation("Accept needs a listener handle.");
        }
        _commands++;
        state.AcceptWanted = true;
        if (!state.AcceptBackoff)
        {
            ArmAccepts(state);
        }
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Stops accepting on a listener (for a connection limit): the armed accepts are cancelled and
    /// new connections wait in the listen backlog until <see cref="Accept"/> is called again. A
    /// connection the kernel accepted before the cancellation still arrives as an event.
    /// </summary>
    public void StopAccept(MegaPipeHandle listener)
    {
        HandleState state = Resolve(listener);
        if (state.Kind != HandleKind.Listener)
        {
            ThrowHelper.ThrowInvalidOperation("StopAccept needs a listener handle.");
        }
        _commands++;
        state.AcceptWanted = false;
        if (state.AcceptsArmed > 0)
        {
            CancelAccepts(state);
        }
        SubmitIfNotBatching();
    }

    private void CancelAccepts(HandleState listener)
    {
        // Their ECANCELED completions are expected, not errors (one may still complete with a connection).
        listener.AcceptsCancelling = listener.AcceptsArmed;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->fd = listener.Fd;
        sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
        sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
        sqe->user_data = CancelUserData;
    }

    /// <summary>How long accepting stays paused after descriptors ran out, unless a handle of this channel closes first.</summary>
    public static TimeSpan AcceptRetryDelay { get; } = TimeSpan.FromMilliseconds(100);

    private void ArmAccepts(HandleState listener)
    {
        if (SocketsHoldProcessDescriptors && listener.AcceptsArmed < Options.AcceptDepth
            && DescriptorBudget.Exhausted(Options.AcceptDepth - listener.AcceptsArmed))
        {
            // Keep the process's reserve of descriptors: pause as if accept had failed with EMFILE
            // (reported once until an accept succeeds again).
            if (!listener.AcceptFailureReported)
            {
                listener.AcceptFailureReported = true;
                _synthetic.Enqueue(new CompletionEvent(ChannelCommand.Accept, HandleOf(listener), listener.Cookie, -(int)Errno.EMFILE));
            }
            BackOffAccepts(listener);
            return;
        }
        while (listener.AcceptsArmed < Options.AcceptDepth)
        {
            Operation op = AllocateOperation(OperationKind.Accept, listener);
            op.Command = ChannelCommand.Accept;
            *op.SockaddrLength = SocketAddressConverter.MaxSize;
            io_uring_sqe* sqe = NextSqe();
            sqe->opcode = IORING_OP_ACCEPT;
            sqe->fd = listener.Fd;
            sqe->addr = (ulong)op.Sockaddr;
            sqe->off = (ulong)op.SockaddrLength;
            if (Options.LightweightSockets)
            {
                // A direct descriptor has no close-on-exec flag to set (the kernel refuses SOCK_CLOEXEC here).
                sqe->file_index = IORING_FILE_INDEX_ALLOC;
            }
            else
            {
                sqe->accept_flags = SOCK_CLOEXEC;
            }
            sqe->user_data = op.UserData;
            listener.AcceptsArmed++;
        }
    }

    /// <summary>
    /// Opens a stream socket and connects it to <paramref name="remote"/>. The handle is usable for
    /// commands once the <see cref="ChannelCommand.Connect"/> event reports success.
    /// </summary>
    public MegaPipeHandle Connect(EndPoint remote, object? cookie = null)
    {
        ArgumentNullException.ThrowIfNull(remote);
        CheckOwner();
        HandleState state = AllocateHandle(HandleKind.Socket, -1, isDirect: false, ownsDescriptor: true);
        state.Cookie = cookie;
        state.PeerAddress ??= new byte[SocketAddressConverter.MaxSize];
        state.PeerAddressLength = SocketAddressConverter.Write(remote, state.PeerAddress);
        Operation op = AllocateOperation(OperationKind.ConnectSocket, state);
        op.Command = ChannelCommand.Connect;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_SOCKET;
        sqe->fd = SocketAddressConverter.FamilyOf(remote);
        sqe->len = 0;
        if (Options.LightweightSockets)
        {
            sqe->off = SOCK_STREAM;
            sqe->file_index = IORING_FILE_INDEX_ALLOC;
        }
        else
        {
            sqe->off = (ulong)(SOCK_STREAM | SOCK_CLOEXEC);
        }
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
        return HandleOf(state);
    }

    // Second half of Connect: the socket exists, now connect it.
    private void SubmitConnect(Operation op)
    {
        HandleState state = op.Handle!;
        op.Kind = OperationKind.Command;
        new ReadOnlySpan<byte>(state.PeerAddress, 0, state.PeerAddressLength).CopyTo(new Span<byte>(op.Sockaddr, SocketAddressConverter.MaxSize));
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_CONNECT;
        SetTarget(sqe, state);
        sqe->addr = (ulong)op.Sockaddr;
        sqe->off = (ulong)state.PeerAddressLength;
        sqe->user_data = op.UserData;
    }

    /// <summary>
    /// Reads into <paramref name="buffer"/> (mp_read): a <see cref="ChannelCommand.Read"/> event
    /// reports the bytes read, 0 at end of stream. The buffer is pinned until then.
    /// </summary>
    public void Read(MegaPipeHandle handle, Memory<byte> buffer)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Read;
        op.Pin(buffer);
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = state.Kind == HandleKind.Socket ? IORING_OP_RECV : IORING_OP_READ;
        SetTarget(sqe, state);
        sqe->addr = (ulong)op.PinnedPointer(0);
        sqe->len = (uint)buffer.Length;
        // -1: the current position, for pipes and other streams.
        sqe->off = state.Kind == HandleKind.Socket ? 0 : ulong.MaxValue;
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>Reads a file at <paramref name="offset"/>; a <see cref="ChannelCommand.ReadFile"/> event reports the bytes read.</summary>
    public void ReadFile(MegaPipeHandle handle, Memory<byte> buffer, long offset)
    {
        HandleState state = Resolve(handle);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.ReadFile;
        op.Pin(buffer);
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_READ;
        SetTarget(sqe, state);
        sqe->addr = (ulong)op.PinnedPointer(0);
        sqe->len = (uint)buffer.Length;
        sqe->off = (ulong)offset;
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Starts a continuous receive into channel-owned buffers: each arrival is a
    /// <see cref="ChannelCommand.Receive"/> event whose data <see cref="GetReceivedData"/> returns until
    /// the next dispatch. No buffer is held while nothing arrives. A result of 0 is end of stream.
    /// The receive is re-armed when the kernel ends it (including when buffers ran out) until
    /// <see cref="StopReceive"/>, end of stream or an error.
    /// </summary>
    public void Receive(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        if (state.Kind != HandleKind.Socket)
        {
            ThrowHelper.ThrowInvalidOperation("Receive needs a socket handle.");
        }
        _commands++;
        state.ReceiveWanted = true;
        if (state.ReceiveOperation is null && !state.ReceiveStarved)
        {
            ArmReceive(state);
        }
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Stops a continuous receive (for backpressure). Data the kernel had already placed still
    /// arrives as events; nothing is dropped.
    /// </summary>
    public void StopReceive(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        state.ReceiveWanted = false;
        state.ReceiveStarved = false;
        state.ReceiveCheckRearm = false;
        if (state.ReceiveOperation is { } op)
        {
            SubmitCancel(op);
            _commands++;
            SubmitIfNotBatching();
        }
    }

    private void ArmReceive(HandleState state)
    {
        Operation op = AllocateOperation(OperationKind.MultishotReceive, state);
        op.Command = ChannelCommand.Receive;
        state.ReceiveOperation = op;
        state.ReceiveStarved = false;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_RECV;
        SetTarget(sqe, state);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = _buffers.GroupId;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->user_data = op.UserData;
        // A new arm can miss a reset as a re-arm after data can (see ScheduleReceiveCheck); the
        // re-arm a check makes is not checked again, so an idle connection costs one check.
        if (state.ReceiveCheckRearm)
        {
            state.ReceiveCheckRearm = false;
        }
        else if (_wakeupChecks)
        {
            ScheduleReceiveCheck(state);
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/> (mp_write). Short writes are continued internally; the
    /// <see cref="ChannelCommand.Write"/> event reports the total, or the error that stopped it.
    /// Keep one write in flight per stream: two could be reordered by the kernel.
    /// </summary>
    public void Write(MegaPipeHandle handle, ReadOnlyMemory<byte> data)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Write;
        op.PayloadMemory = data;
        op.Total = data.Length;
        op.Pin(data);
        PrepareWrite(op);
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>Gathered write of every segment of <paramref name="data"/> (sendmsg/writev), completed like <see cref="Write(MegaPipeHandle, ReadOnlyMemory{byte})"/>.</summary>
    public void Write(MegaPipeHandle handle, in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment)
        {
            Write(handle, data.First);
            return;
        }
        HandleState state = Resolve(handle);
        if (data.Length > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(data), "A single write is limited to 2 GiB.");
        }
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Write;
        op.Payload = data;
        op.Total = (int)data.Length;
        foreach (ReadOnlyMemory<byte> segment in data)
        {
            op.Pin(segment);
        }
        PrepareWrite(op);
        _commands++;
        SubmitIfNotBatching();
    }

    // (Re)submits the unwritten remainder of a write.
    private void PrepareWrite(Operation op)
    {
        HandleState state = op.Handle!;
        bool socket = state.Kind == HandleKind.Socket;
        io_uring_sqe* sqe = NextSqe();
        SetTarget(sqe, state);
        sqe->user_data = op.UserData;
        if (op.Payload.IsEmpty)
        {
            sqe->opcode = socket ? IORING_OP_SEND : IORING_OP_WRITE;
            sqe->addr = (ulong)((byte*)op.PinnedPointer(0) + op.Done);
            sqe->len = (uint)(op.Total - op.Done);
            if (socket)
            {
                sqe->msg_flags = (uint)MSG_NOSIGNAL;
            }
            else
            {
                sqe->off = ulong.MaxValue;
            }
            return;
        }

        // Gathered: describe the segments past the bytes already written.
        iovec* iov = op.Iovecs;
        int count = 0;
        int skip = op.Done;
        int segment = 0;
        foreach (ReadOnlyMemory<byte> memory in op.Payload)
        {
            int length = memory.Length;
            if (skip >= length)
            {
                skip -= length;
                segment++;
                continue;
            }
            iov[count].iov_base = (byte*)op.PinnedPointer(segment) + skip;
            iov[count].iov_len = (nuint)(length - skip);
            skip = 0;
            segment++;
            if (++count == Operation.MaxIovecs)
            {
                break;
            }
        }
        if (socket)
        {
            msghdr* msg = op.Msghdr;
            *msg = default;
            msg->msg_iov = iov;
            msg->msg_iovlen = (nuint)count;
            sqe->opcode = IORING_OP_SENDMSG;
            sqe->addr = (ulong)msg;
            sqe->len = 1;
            sqe->msg_flags = (uint)MSG_NOSIGNAL;
        }
        else
        {
            sqe->opcode = IORING_OP_WRITEV;
            sqe->addr = (ulong)iov;
            sqe->len = (uint)count;
            sqe->off = ulong.MaxValue;
        }
    }

    /// <summary>Shuts down one or both directions of a socket; a <see cref="ChannelCommand.Shutdown"/> event follows.</summary>
    public void Shutdown(MegaPipeHandle handle, SocketShutdown how)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.Shutdown;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_SHUTDOWN;
        SetTarget(sqe, state);
        sqe->len = how switch { SocketShutdown.Receive => (uint)SHUT_RD, SocketShutdown.Send => (uint)SHUT_WR, _ => (uint)SHUT_RDWR };
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    // Half-closes a socket's send side (FIN) ahead of a graceful close, with no event. The close
    // waits for it (it counts as in flight): the kernel runs a shutdown on a worker thread, and a
    // direct-descriptor slot closed before it ran could already hold the next connection.
    internal void ShutdownSendQuietly(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        Operation op = AllocateOperation(OperationKind.ShutdownBeforeClose, state);
        state.ShutdownPending = true;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_SHUTDOWN;
        SetTarget(sqe, state);
        sqe->len = (uint)SHUT_WR;
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    /// <summary>
    /// Gives a lightweight socket a regular file descriptor (IORING_OP_FIXED_FD_INSTALL), for code
    /// that needs one. The <see cref="ChannelCommand.InstallDescriptor"/> event's result is the new
    /// descriptor, which the caller owns and closes; the handle stays usable.
    /// </summary>
    public void InstallDescriptor(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        if (!state.IsDirect)
        {
            ThrowHelper.ThrowInvalidOperation("The handle already has a regular descriptor; use TryGetDescriptor.");
        }
        Operation op = AllocateOperation(OperationKind.Command, state);
        op.Command = ChannelCommand.InstallDescriptor;
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_FIXED_FD_INSTALL;
        SetTarget(sqe, state);
        sqe->install_fd_flags = 0; // O_CLOEXEC is set unless IORING_FIXED_FD_NO_CLOEXEC is given
        sqe->user_data = op.UserData;
        _commands++;
        SubmitIfNotBatching();
    }

    // Cancels one request by its user_data; only a failure would complete (and be ignored).
    private void SubmitCancel(Operation op)
    {
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->addr = op.UserData;
        sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = CancelUserData;
    }

    private void SubmitCancelAll(HandleState state)
    {
        // (A shutdown before close is left to finish: it is quick, and the close waits for it.)
        if (state.InFlight - (state.ShutdownPending ? 1 : 0) == 1 && state.ReceiveOperation is { } receive)
        {
            // Only the continuous receive is in flight, as when a connection closes after its last
            // send: cancel it by user_data, one lookup in the kernel's cancel hash. A cancel by
            // descriptor walks every bucket of that hash, twice with ALL (io_poll_cancel and
            // io_async_cancel were 3-5% of the CPU of a static server under 2.3 requests per connection).
            SubmitCancel(receive);
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        SetTarget(sqe, state);
        // The target of a cancel is a key, not the file to operate on.
        sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
        sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL | (state.IsDirect ? IORING_ASYNC_CANCEL_FD_FIXED : 0);
        sqe->user_data = CancelUserData;
    }

    // SO_LINGER {on, 0 s}, so that the close that follows resets the connection. A lightweight
    // socket has no descriptor for setsockopt(2): the ring sets it (uring_cmd, Linux 6.7). That
    // runs inline at submission, before the close, which waits for the cancellations; if it
    // fails the close is orderly, and its CQE is dropped like a cancel's.
    private void SetLingerZero(HandleState state)
    {
        if (!state.IsDirect)
        {
            linger value = new() { l_onoff = 1, l_linger = 0 };
            setsockopt(state.Fd, SOL_SOCKET, SO_LINGER, &value, (uint)sizeof(linger));
            _otherSystemCalls++;
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_URING_CMD;
        SetTarget(sqe, state);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
        sqe->level = SOL_SOCKET;
        sqe->optname = SO_LINGER;
        sqe->optlen = (uint)sizeof(linger);
        sqe->optval = (ulong)s_lingerZero;
        sqe->user_data = CancelUserData;
    }

    private void SubmitCloseDescriptor(HandleState state)
    {
        state.CloseSubmitted = true;
        Operation op = AllocateOperation(OperationKind.CloseDescriptor, state);
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_CLOSE;
        if (state.IsDirect)
        {
            Volatile.Write(ref _registeredFilesInUse, _registeredFilesInUse - 1);
            sqe->fd = 0;
            sqe->file_index = (uint)state.Fd + 1;
        }
        else
        {
            sqe->fd = state.Fd;
        }
        sqe->user_data = op.UserData;
    }

    // Closes a descriptor that belongs to no handle (a connection accepted while its listener closed).
    private void CloseOrphan(int fd, bool isDirect)
    {
        if (!isDirect)
        {
            close(fd);
            _otherSystemCalls++;
            return;
        }
        io_uring_sqe* sqe = NextSqe();
        sqe->opcode = IORING_OP_CLOSE;
        sqe->file_index = (uint)fd + 1;
        sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = CancelUserData;
    }

    private static linger* AllocateLingerZero()
    {
        var value = (linger*)NativeMemory.AllocZeroed((nuint)sizeof(linger));
        value->l_onoff = 1;
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetTarget(io_uring_sqe* sqe, HandleState state)
    {
        sqe->fd = state.Fd;
        if (state.IsDirect)
        {
            sqe->flags |= IOSQE_FIXED_FILE;
        }
    }

    // The next free SQE; when the SQ is full, what is queued goes to the kernel first.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private io_uring_sqe* NextSqe()
    {
        io_uring_sqe* sqe = _ring.TryGetSqe();
        return sqe != null ? sqe : NextSqeAfterSubmit();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private io_uring_sqe* NextSqeAfterSubmit()
    {
        while (true)
        {
            int result = _ring.Enter(0, getEvents: false, -1);
            if (result < 0 && result != -(int)Errno.EINTR && result != -(int)Errno.EAGAIN && result != -(int)Errno.EBUSY)
            {
                FailFast("io_uring_enter (submit)", result);
            }
            io_uring_sqe* sqe = _ring.TryGetSqe();
            if (sqe != null)
            {
                return sqe;
            }
            // The kernel is short of memory to take more entries: run completions to make progress.
            _ring.Enter(0, getEvents: true, -1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SubmitIfNotBatching()
    {
        if (!Options.Batching)
        {
            SubmitUnbatched();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SubmitUnbatched()
    {
        if (_ring.PendingSubmissions == 0)
        {
            return;
        }
        int result = _ring.Enter(0, getEvents: false, -1);
        if (result < 0 && result != -(int)Errno.EINTR && result != -(int)Errno.EAGAIN && result != -(int)Errno.EBUSY)
        {
            FailFast("io_uring_enter (submit)", result);
        }
    }

    private static void FailFast(string operation, int result)
        => Environment.FailFast($"MegaPipe channel: {operation} failed with {(Errno)(-result)} ({Interop.StrError((Errno)(-result))}); the ring can no longer be driven.");

    private Operation AllocateOperation(OperationKind kind, HandleState? state)
    {
        Operation op;
        if (_freeOperationCount > 0)
        {
            op = _operations[_freeOperations[--_freeOperationCount]]!;
        }
        else
        {
            if (_operationHighWater == _operations.Length)
            {
                Array.Resize(ref _operations, _operations.Length * 2);
                Array.Resize(ref _freeOperations, _operations.Length);
            }
            op = new Operation(_operationHighWater);
            _operations[_operationHighWater++] = op;
        }
        op.Kind = kind;
        op.Handle = state;
        if (state is not null)
        {
            state.InFlight++;
        }
        return op;
    }

    private void FreeOperation(Operation op)
    {
        if (op.Handle is { } state)
        {
            state.InFlight--;
        }
        op.Reset();
        _freeOperations[_freeOperationCount++] = op.Index;
    }
}
