// Licensed under the MIT License. See LICENSE in the repository root.

using Microsoft.Win32.SafeHandles;

namespace MegaPipe.Transport;

/// <summary>
/// Reads regular files through the MegaPipe channel that owns a connection: each read is an
/// io_uring read command on that channel, batched with the channel's socket commands, instead of
/// a blocking read on the thread pool. A connection feature of the MegaPipe transport (reach it
/// with <c>HttpContext.Features.Get&lt;IMegaPipeFileReader&gt;()</c>); absent on other transports,
/// where <see cref="System.IO.RandomAccess.ReadAsync(SafeFileHandle, Memory{byte}, long, CancellationToken)"/>
/// does the same job.
/// </summary>
/// <remarks>
/// The channel registers a file once for all the reads of it that are in flight together (many
/// connections streaming one file share its registrations) and drops the registration when the
/// last of them completes. A registration holds a reference on the <see cref="SafeFileHandle"/>: the
/// descriptor stays open while a read is in flight even if the caller disposes the handle, and
/// closes when that read completes.
/// </remarks>
public interface IMegaPipeFileReader
{
    /// <summary>
    /// Reads up to <paramref name="buffer"/>.Length bytes of <paramref name="file"/> at
    /// <paramref name="offset"/>, as <see cref="System.IO.RandomAccess.ReadAsync(SafeFileHandle, Memory{byte}, long, CancellationToken)"/>:
    /// the result is the number of bytes read, 0 at or past the end of the file. The buffer must
    /// stay untouched until the returned task completes. Thread-safe. With inline scheduling the
    /// continuation runs on the channel thread (unless the read completed before it was awaited);
    /// otherwise on the thread pool. Called on the channel thread, the read is issued before this
    /// method returns and joins the channel's current batch.
    /// </summary>
    /// <exception cref="ObjectDisposedException"><paramref name="file"/> is closed, or the channel has stopped.</exception>
    /// <exception cref="IOException">The kernel reported an error; the inner <see cref="MegaPipeException"/> holds the errno.</exception>
    ValueTask<int> ReadAsync(SafeFileHandle file, Memory<byte> buffer, long offset);

    /// <summary>The read commands this channel has issued for files, since it started; readable from any thread.</summary>
    long ReadCommands { get; }

    /// <summary>The files this channel has reads in flight for (and so keeps registered); readable from any thread.</summary>
    int RegisteredFiles { get; }
}
