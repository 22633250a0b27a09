namespace MegaPipe.StaticServer;

/// <summary>What the server did, for tests and diagnostics. Thread-safe counters.</summary>
public sealed class StaticServerStats
{
    private long _channelReads;
    private long _fallbackReads;
    private long _contentCacheHits;
    private long _contentCacheFills;
    private long _invalidations;
    private long _opens;

    /// <summary>File reads issued through the connection's MegaPipe channel (<see cref="MegaPipe.Transport.IMegaPipeFileReader"/>).</summary>
    public long ChannelReads => Volatile.Read(ref _channelReads);

    /// <summary>File reads through <see cref="RandomAccess.ReadAsync(Microsoft.Win32.SafeHandles.SafeFileHandle, Memory{byte}, long, CancellationToken)"/>, on transports without a channel.</summary>
    public long FallbackReads => Volatile.Read(ref _fallbackReads);

    /// <summary>Responses whose body came from the content cache.</summary>
    public long ContentCacheHits => Volatile.Read(ref _contentCacheHits);

    /// <summary>Files read into the content cache.</summary>
    public long ContentCacheFills => Volatile.Read(ref _contentCacheFills);

    /// <summary>Cache entries dropped because the file changed on disk (or the watcher said so).</summary>
    public long Invalidations => Volatile.Read(ref _invalidations);

    /// <summary>Files opened (cache misses that found a file).</summary>
    public long Opens => Volatile.Read(ref _opens);

    internal void ChannelRead() => Interlocked.Increment(ref _channelReads);

    internal void FallbackRead() => Interlocked.Increment(ref _fallbackReads);

    internal void ContentCacheHit() => Interlocked.Increment(ref _contentCacheHits);

    internal void ContentCacheFill() => Interlocked.Increment(ref _contentCacheFills);

    internal void Invalidation() => Interlocked.Increment(ref _invalidations);

    internal void Open() => Interlocked.Increment(ref _opens);
}
