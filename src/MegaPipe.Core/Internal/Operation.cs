// Licensed under the MIT License. See LICENSE in the repository root.

using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MegaPipe.Internal;

// What an operation is, internally: the user command it serves, or a bookkeeping request.
internal enum OperationKind : byte
{
    // A single-shot command: one completion, one event.
    Command,
    // A write: continued after short writes, one event at the end.
    Write,
    // A multishot receive; stays in flight across many completions.
    MultishotReceive,
    // An accept kept armed on a listener.
    Accept,
    // Socket creation that precedes a connect.
    ConnectSocket,
    // Closing the descriptor of a handle being closed or unregistered.
    CloseDescriptor,
    // The shutdown(SHUT_WR) before a graceful close: no event; the close waits for it, since the
    // kernel runs a shutdown on a worker and a direct-descriptor slot closed first may be reused.
    ShutdownBeforeClose,
}

// One request in flight in the kernel. Pooled per channel: the slot index and a generation make
// up the CQE user_data, so a late completion can never be matched to a reused slot.
internal sealed unsafe class Operation
{
    // Size of the per-operation native scratch area: a sockaddr_storage, its length, a msghdr, iovecs.
    private const int SockaddrOffset = 0;
    private const int SockaddrLengthOffset = SocketAddressConverter.MaxSize;
    private const int MsghdrOffset = SockaddrLengthOffset + 8;
    private const int IovecOffset = MsghdrOffset + 64;
    public const int MaxIovecs = 64;
    private const int ScratchSize = IovecOffset + MaxIovecs * 16;

    // Pins of the caller's buffers, released when the final completion arrives.
    private MemoryHandle[] _pins = new MemoryHandle[1];
    // Native scratch memory, allocated on first use and kept for the slot's lifetime.
    private byte* _scratch;

    public Operation(int index) => Index = index;

    // Slot in the channel's operation table.
    public int Index { get; }
    // Bumped on every reuse; the upper half of user_data.
    public uint Generation;
    public OperationKind Kind;
    public ChannelCommand Command;
    // The handle this request works on.
    public HandleState? Handle;
    // Number of valid entries in _pins.
    public int PinCount;
    // For writes: the whole payload, the bytes already written and the total to write.
    public ReadOnlySequence<byte> Payload;
    public int Done;
    public int Total;
    // Consecutive transient failures (EAGAIN) retried without progress.
    public int Retries;

    public ulong UserData => ((ulong)Generation << 32) | (uint)Index;

    public byte* Sockaddr => Scratch + SockaddrOffset;
    public uint* SockaddrLength => (uint*)(Scratch + SockaddrLengthOffset);
    public Interop.msghdr* Msghdr => (Interop.msghdr*)(Scratch + MsghdrOffset);
    public Interop.iovec* Iovecs => (Interop.iovec*)(Scratch + IovecOffset);

    private byte* Scratch
    {
        get
        {
            if (_scratch == null)
            {
                _scratch = (byte*)NativeMemory.AllocZeroed(ScratchSize);
            }
            return _scratch;
        }
    }

    public void Pin(ReadOnlyMemory<byte> memory)
    {
        if (PinCount == _pins.Length)
        {
            Array.Resize(ref _pins, _pins.Length * 2);
        }
        _pins[PinCount++] = memory.Pin();
    }

    public void* PinnedPointer(int index) => _pins[index].Pointer;

    public void Reset()
    {
        for (int i = 0; i < PinCount; i++)
        {
            _pins[i].Dispose();
            _pins[i] = default;
        }
        PinCount = 0;
        Handle = null;
        Payload = default;
        Done = Total = 0;
        Retries = 0;
        Command = ChannelCommand.None;
        Generation++;
    }

    public void FreeNative()
    {
        Debug.Assert(PinCount == 0, "freeing an operation that still pins memory");
        if (_scratch != null)
        {
            NativeMemory.Free(_scratch);
            _scratch = null;
        }
    }
}
