using System.Buffers;
using System.Runtime.InteropServices;

namespace PingPong;

// A buffer in native memory: pinning it for an I/O command costs nothing.
public sealed unsafe class NativeBuffer : MemoryManager<byte>
{
    private readonly byte* _pointer;
    private readonly int _length;

    public NativeBuffer(int length)
    {
        _length = length;
        _pointer = (byte*)NativeMemory.AllocZeroed((nuint)length);
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing) => NativeMemory.Free(_pointer);
}
