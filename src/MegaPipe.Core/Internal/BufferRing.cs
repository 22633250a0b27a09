// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static MegaPipe.Interop;

namespace MegaPipe.Internal;

// A provided-buffer ring (IORING_REGISTER_PBUF_RING): a pool of equal receive buffers the kernel
// picks from when a multishot receive has data, so an idle connection holds no buffer at all.
// We own both the ring of descriptors and the buffers; the kernel consumes descriptors from the
// head, we append returned buffers at the tail.
internal sealed unsafe class BufferRing : IDisposable
{
    // struct io_uring_buf_ring is a union of its header and the descriptors: the tail overlays
    // the resv field of descriptor 0, 14 bytes into the ring (checked in StructLayoutTests).
    public const int TailOffset = 14;

    private readonly io_uring_buf* _ring;
    private readonly byte* _buffers;
    private readonly uint _mask;
    // The shared tail, which the kernel reads; we alone write it.
    private readonly ushort* _sharedTail;
    // Our tail: descriptors below it are filled; published to _sharedTail by Publish.
    private ushort _tail;
    // Buffers handed to the kernel and not yet returned by a completion; for leak checks.
    private int _outstanding;

    public ushort GroupId { get; }
    public int BufferSize { get; }
    public int Count { get; }
    public int Available => Count - _outstanding;

    public BufferRing(Ring ring, ushort groupId, int count, int bufferSize)
    {
        Debug.Assert(BitOperations.IsPow2(count) && count <= 32768, "a buffer ring has a power-of-two size of at most 32768");
        GroupId = groupId;
        Count = count;
        BufferSize = bufferSize;
        _mask = (uint)count - 1;
        nuint ringBytes = (nuint)(count * sizeof(io_uring_buf));
        _ring = (io_uring_buf*)NativeMemory.AlignedAlloc(ringBytes, 4096);
        try
        {
            NativeMemory.Clear(_ring, ringBytes);
            _buffers = (byte*)NativeMemory.AlignedAlloc((nuint)count * (nuint)bufferSize, 4096);
            _sharedTail = Tail(_ring);
            ring.RegisterBufferRing(_ring, (uint)count, groupId);
        }
        catch
        {
            NativeMemory.AlignedFree(_buffers);
            NativeMemory.AlignedFree(_ring);
            throw;
        }
        for (int i = 0; i < count; i++)
        {
            Add((ushort)i);
        }
        _outstanding = 0;
        Publish();
    }

    // The tail of a buffer ring: descriptors below it are the consumer's to take.
    public static ushort* Tail(io_uring_buf* ring) => (ushort*)((byte*)ring + TailOffset);

    public Span<byte> GetBuffer(ushort bufferId, int length)
    {
        Debug.Assert(length <= BufferSize, "a completion reported more bytes than its buffer holds");
        return new Span<byte>(_buffers + (nuint)bufferId * (nuint)BufferSize, length);
    }

    // The kernel took a buffer (a completion named it).
    public void MarkTaken() => _outstanding++;

    // Queues a buffer to go back to the kernel at the next Publish.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Return(ushort bufferId)
    {
        _outstanding--;
        Add(bufferId);
    }

    private void Add(ushort bufferId)
    {
        io_uring_buf* entry = &_ring[_tail & _mask];
        entry->addr = (ulong)(_buffers + (nuint)bufferId * (nuint)BufferSize);
        entry->len = (uint)BufferSize;
        entry->bid = bufferId;
        _tail++;
    }

    public void Publish()
    {
        // Release: the descriptors written by Add are visible before the kernel sees the new tail.
        RingBarrier.StoreRelease(_sharedTail, _tail);
    }

    public void Dispose()
    {
        // The ring is unregistered when the io_uring closes; the channel disposes us after that.
        NativeMemory.AlignedFree(_buffers);
        NativeMemory.AlignedFree(_ring);
    }
}
