// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using MegaPipe.Internal;
using static MegaPipe.Interop;

namespace MegaPipe;

// Writing (mp_write): whole writes, gathered or not, continued internally after short writes.
public sealed unsafe partial class MegaPipeChannel
{
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
}
