using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;

namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>
/// An endpoint that writes a 64 MiB response in 64 KiB chunks, one FlushAsync per chunk, and
/// reports what a test needs to watch its backpressure: every flush that did not complete
/// synchronously (the application had to wait), the bytes whose flush completed, and how the
/// response ended. One request per instance.
/// </summary>
public sealed class StallingResponse
{
    public const int ChunkSize = 64 * 1024;
    public const int ChunkCount = 1024;
    public const long Length = (long)ChunkSize * ChunkCount;

    private static readonly Lazy<string> s_sha256 = new(() =>
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int i = 0; i < ChunkCount; i++)
        {
            hash.AppendData(Chunk(i).Span);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    });

    private readonly Channel<PendingFlush> _pendingFlushes = Channel.CreateUnbounded<PendingFlush>();
    private long _flushedBytes;
    private int _completedFlushes;

    /// <summary>The SHA-256 (hex) of the whole response body.</summary>
    public static string Sha256 => s_sha256.Value;

    /// <summary>Body bytes whose FlushAsync has completed.</summary>
    public long FlushedBytes => Volatile.Read(ref _flushedBytes);

    /// <summary>FlushAsync calls that have completed.</summary>
    public int CompletedFlushes => Volatile.Read(ref _completedFlushes);

    /// <summary>The request arrived and the response started.</summary>
    public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>RequestAborted fired.</summary>
    public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The handler returned: how the response ended.</summary>
    public TaskCompletionSource<Outcome> Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Chunk <paramref name="index"/> of the body: a slice of the shared pseudo-random payload at an index-dependent offset.</summary>
    public static ReadOnlyMemory<byte> Chunk(int index)
        => TestData.Payload(TestData.TenMegabytes).Slice((int)(index * 7919L * 1024 % (TestData.TenMegabytes - ChunkSize)), ChunkSize);

    public async Task HandleAsync(HttpContext context)
    {
        context.RequestAborted.Register(() => Aborted.TrySetResult());
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = Length;
        PipeWriter writer = context.Response.BodyWriter;
        Started.TrySetResult();
        try
        {
            for (int i = 0; i < ChunkCount; i++)
            {
                writer.Write(Chunk(i).Span);
                ValueTask<FlushResult> flush = writer.FlushAsync();
                if (!flush.IsCompleted)
                {
                    _pendingFlushes.Writer.TryWrite(new PendingFlush(i, FlushedBytes, CompletedFlushes));
                }
                FlushResult result = await flush;
                Interlocked.Add(ref _flushedBytes, ChunkSize);
                Interlocked.Increment(ref _completedFlushes);
                if (result.IsCompleted || result.IsCanceled)
                {
                    Finished.TrySetResult(new Outcome(false, i, null));
                    return;
                }
            }
            Finished.TrySetResult(new Outcome(true, ChunkCount, null));
        }
        catch (Exception e)
        {
            Finished.TrySetResult(new Outcome(false, -1, e));
        }
    }

    /// <summary>
    /// The next flush that did not complete synchronously; throws if the handler finishes first
    /// (it wrote everything without ever waiting).
    /// </summary>
    public async Task<PendingFlush> NextPendingFlushAsync(CancellationToken cancellationToken)
    {
        Task<PendingFlush> next = _pendingFlushes.Reader.ReadAsync(cancellationToken).AsTask();
        if (await Task.WhenAny(next, Finished.Task) == next || next.IsCompleted)
        {
            return await next;
        }
        Outcome outcome = await Finished.Task;
        throw new InvalidOperationException($"The response ended without a pending flush: {outcome}, {FlushedBytes} bytes flushed.");
    }

    /// <summary>A FlushAsync that returned an incomplete ValueTask: chunk <paramref name="Chunk"/>, after <paramref name="FlushedBefore"/> flushed bytes and <paramref name="CompletedBefore"/> completed flushes.</summary>
    public readonly record struct PendingFlush(int Chunk, long FlushedBefore, int CompletedBefore);

    /// <summary>How the handler ended: every chunk written, or the output closed (FlushResult.IsCompleted) at <paramref name="Chunk"/>, or an exception.</summary>
    public sealed record Outcome(bool Complete, int Chunk, Exception? Error);
}
