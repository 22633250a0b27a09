// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using MegaPipe.Tls;

namespace MegaPipe.Transport.Internal;

// The ciphertext buffers of one channel's TLS sends. A connection holds one only while its send is in flight (the
// kernel reads it until the Write completion, or until the Close event of a cancelled send), so an idle TLS
// connection holds none, as nginx releases its ssl_buffer between writes. Two sizes: one whole maximum-size record
// for small writes (handshake flights, small responses), four for large ones (a 64 KiB output pipe read in one send).
// Pinned, because the kernel reads them; channel thread only, so no locking.
internal sealed class TlsSendBuffers
{
    public const int SmallSize = TlsSession.RecommendedOutputBufferSize;
    public const int LargeSize = 4 * TlsSession.RecommendedOutputBufferSize;

    // Free buffers kept for reuse; beyond these, returned buffers are left to the GC.
    private const int MaxFreeSmall = 64;
    private const int MaxFreeLarge = 16;

    private readonly Stack<byte[]> _small = new();
    private readonly Stack<byte[]> _large = new();

    /// <summary>A buffer of <see cref="SmallSize"/>, or <see cref="LargeSize"/> when <paramref name="wanted"/> needs more.</summary>
    public byte[] Rent(long wanted)
    {
        bool large = wanted > SmallSize;
        Stack<byte[]> free = large ? _large : _small;
        return free.Count > 0 ? free.Pop() : GC.AllocateUninitializedArray<byte>(large ? LargeSize : SmallSize, pinned: true);
    }

    /// <summary>Takes a buffer back once nothing (kernel included) reads it any more.</summary>
    public void Return(byte[] buffer)
    {
        Debug.Assert(buffer.Length is SmallSize or LargeSize, "a buffer of this pool");
        if (buffer.Length == LargeSize)
        {
            if (_large.Count < MaxFreeLarge)
            {
                _large.Push(buffer);
            }
        }
        else if (_small.Count < MaxFreeSmall)
        {
            _small.Push(buffer);
        }
    }
}
