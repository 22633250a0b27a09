// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using MegaPipe.Tls;

namespace MegaPipe.Transport.Internal;

// The ciphertext buffers of one channel's TLS sends. A connection holds one only while its send is in flight (the
// kernel reads it until the Write completion, or until the Close event of a cancelled send), so an idle TLS
// connection holds none, as nginx releases its ssl_buffer between writes. Three sizes, so that the many small sends
// (a response of a few hundred bytes, a ticket, an alert) take small buffers: 4 KiB; one whole maximum-size record;
// four of them (a 64 KiB output pipe read in one send). Pinned, because the kernel reads them; channel thread only,
// so no locking. Enough free buffers are kept for every connection of a busy channel to send at once: a pool that
// dropped them would make each send a pinned allocation (measured: a background GC thread took 17% of the CPU of a
// keep-alive TLS load with 128 connections and 64 kept).
internal sealed class TlsSendBuffers
{
    public const int SmallSize = 4096;
    public const int RecordSize = TlsSession.RecommendedOutputBufferSize;
    public const int LargeSize = 4 * TlsSession.RecommendedOutputBufferSize;

    // Free buffers kept per size (at most 4 + 4 + 4 MiB per channel); beyond these, returned buffers go to the GC.
    private const int MaxFreeSmall = 1024;
    private const int MaxFreeRecord = 256;
    private const int MaxFreeLarge = 64;

    private readonly Stack<byte[]> _small = new();
    private readonly Stack<byte[]> _record = new();
    private readonly Stack<byte[]> _large = new();

    /// <summary>The smallest buffer that takes <paramref name="wanted"/> bytes of records, or the largest.</summary>
    public byte[] Rent(long wanted)
    {
        (Stack<byte[]> free, int size) = wanted <= SmallSize ? (_small, SmallSize) : wanted <= RecordSize ? (_record, RecordSize) : (_large, LargeSize);
        return free.Count > 0 ? free.Pop() : GC.AllocateUninitializedArray<byte>(size, pinned: true);
    }

    /// <summary>Takes a buffer back once nothing (the kernel included) reads it any more.</summary>
    public void Return(byte[] buffer)
    {
        Debug.Assert(buffer.Length is SmallSize or RecordSize or LargeSize, "a buffer of this pool");
        (Stack<byte[]> free, int max) = buffer.Length switch
        {
            SmallSize => (_small, MaxFreeSmall),
            RecordSize => (_record, MaxFreeRecord),
            _ => (_large, MaxFreeLarge),
        };
        if (free.Count < max)
        {
            free.Push(buffer);
        }
    }
}
