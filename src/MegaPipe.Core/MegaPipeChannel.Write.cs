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
        Operation op = AllocateOperation(OperationKind.Write, state);
        op.Command = ChannelCommand.Write;
        op.Total = data.Length;
        op.Pin(data);
        SubmitWrite(op);
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
        Operation op = AllocateOperation(OperationKind.Write, state);
        op.Command = ChannelCommand.Write;
        op.Payload = data;
        op.Total = (int)data.Length;
        foreach (ReadOnlyMemory<byte> segment in data)
        {
            op.Pin(segment);
        }
        SubmitWrite(op);
        _commands++;
        SubmitIfNotBatching();
    }

    // (Re)submits the unwritten remainder of a write.
    private void SubmitWrite(Operation op)
    {
        HandleState state = op.Handle!;
        bool socket = state.Kind == HandleKind.Socket;
        if (op.Payload.IsEmpty)
        {
            byte* remainder = (byte*)op.PinnedPointer(0) + op.Done;
            if (socket)
            {
                Sqe.PrepareSend(NextSqe(), state.Fd, state.IsDirect, remainder, op.Total - op.Done, op.UserData);
            }
            else
            {
                Sqe.PrepareWrite(NextSqe(), state.Fd, state.IsDirect, remainder, op.Total - op.Done, Sqe.CurrentPosition, op.UserData);
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
            Sqe.PrepareSendMsg(NextSqe(), state.Fd, state.IsDirect, msg, op.UserData);
        }
        else
        {
            Sqe.PrepareWritev(NextSqe(), state.Fd, state.IsDirect, iov, count, Sqe.CurrentPosition, op.UserData);
        }
    }

    private void OnWrite(Operation op, HandleState state, int result, Span<CompletionEvent> events, ref int count)
    {
        if (state.Status == HandleStatus.Open)
        {
            if (result > 0)
            {
                op.Done += result;
                op.Retries = 0;
                if (op.Done < op.Total)
                {
                    // A short write: continue with the remainder, same operation, same buffers.
                    SubmitWrite(op);
                    return;
                }
                result = op.Total;
            }
            else if (result == -(int)Errno.EAGAIN && op.Retries < MaxTransientRetries)
            {
                // Nothing was written this time: submit the remainder again.
                op.Retries++;
                SubmitWrite(op);
                return;
            }
            // Any other error ends the write, reported to the caller (with what was written unknown
            // to it, the stream is broken). That includes ECANCELED: the channel cancels a write
            // only when its handle closes, and then nothing is reported at all.
        }
        OnCommand(op, state, result, events, ref count);
    }
}
