using System.Globalization;
using MegaPipe.Transport;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.StaticServer;

// One file on disk as the cache holds it (nginx's open_file_cache entry plus its contents): the
// open descriptor, the metadata it was opened with, the validators and headers computed once, and,
// for a small file, its bytes. Every request checks it against a fresh lstat of the path (length,
// mtime, still a regular file), so a file changed on disk is never served stale.
internal sealed class CachedFile : IDisposable
{
    // A file modified this recently may be modified again within the file system's timestamp
    // granularity without its mtime changing ("racily clean", as git calls it), or be renamed over
    // by a file of the same size and mtime: such an entry serves one request and is not cached.
    private static readonly TimeSpan s_racyWindow = TimeSpan.FromSeconds(2);

    private readonly OpenFileCache _cache;
    // Re-stat'ed on every request; FileInfo is not thread-safe, so it is used under its own lock.
    private readonly FileInfo _info;
    // The channel and loop turn of the last successful check made on a channel thread (under the lock).
    private int _checkedChannel = -1;
    private long _checkedTurn;
    // The open file; null for an empty file, which needs no reads (and for which opening could block on a FIFO).
    private readonly SafeFileHandle? _handle;
    private byte[]? _content;
    private Task<byte[]?>? _loading;
    // Bytes of the content budget this entry holds.
    private long _reserved;
    // Set when the entry must not be used again (disposed, or the file shrank while being read).
    private volatile bool _stale;
    // Guards _content, _reserved and _disposed against a fill finishing while the entry is dropped.
    private readonly Lock _gate = new();
    private bool _disposed;

    private CachedFile(OpenFileCache cache, string realPath, SafeFileHandle? handle, long length, DateTime lastWriteTimeUtc, string? encoding)
    {
        _cache = cache;
        _info = new FileInfo(realPath);
        _handle = handle;
        RealPath = realPath;
        Length = length;
        LastWriteTimeUtc = lastWriteTimeUtc;
        var lastWrite = new DateTimeOffset(lastWriteTimeUtc, TimeSpan.Zero);
        LastWriteSeconds = lastWrite.ToUnixTimeSeconds();
        Racy = DateTime.UtcNow - lastWriteTimeUtc < s_racyWindow;
        // nginx's ETag ("mtime-length" in hex); a precompressed sibling's is marked so two representations never share one.
        ETagText = string.Create(CultureInfo.InvariantCulture, $"\"{LastWriteSeconds:x}-{length:x}{(encoding is null ? "" : "-" + encoding)}\"");
        ETag = ETagText;
        LastModified = HeaderUtilities.FormatDate(DateTimeOffset.FromUnixTimeSeconds(LastWriteSeconds));
        ContentEncoding = encoding;
        ContentCacheable = !Racy && length > 0 && length <= cache.Options.MaxCachedFileSize;
        if (length == 0)
        {
            _content = [];
        }
    }

    public string RealPath { get; }
    public long Length { get; }
    public DateTime LastWriteTimeUtc { get; }
    public long LastWriteSeconds { get; }
    public bool Racy { get; }
    public string ETagText { get; }
    public StringValues ETag { get; }
    public StringValues LastModified { get; }
    // "br", "gzip", or null for the file itself.
    public StringValues ContentEncoding { get; }
    public bool ContentCacheable { get; }
    public bool IsStale => _stale;

    // The bytes, once read into the cache.
    public byte[]? Content => Volatile.Read(ref _content);

    // Opens a resolved file. Null when it cannot be opened or turns out to be outside the root.
    public static CachedFile? Open(OpenFileCache cache, in ResolvedPath resolved, string? encoding)
    {
        SafeFileHandle? handle = null;
        long length = resolved.Length;
        DateTime lastWrite = resolved.LastWriteTimeUtc;
        if (length > 0)
        {
            try
            {
                handle = File.OpenHandle(resolved.RealPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
            // The path held no link when it was resolved; make sure the tree did not change under us before the open.
            if (!cache.IsOpenedInsideRoot(handle, resolved.RealPath))
            {
                handle.Dispose();
                return null;
            }
            length = RandomAccess.GetLength(handle);
            lastWrite = File.GetLastWriteTimeUtc(handle);
        }
        cache.Stats.Open();
        return new CachedFile(cache, resolved.RealPath, handle, length, lastWrite, encoding);
    }

    // The per-request check: one lstat of the path. On MegaPipe, once per loop turn of the
    // connection's channel: a request read while the channel's dispatch count is n arrived before the
    // count reached n, so a check begun after it reached n is as fresh as one made for the request
    // itself (see IMegaPipeChannelFeature.DispatchCount).
    public bool IsCurrent(IMegaPipeChannelFeature? channel)
    {
        if (_stale)
        {
            return false;
        }
        int channelIndex = -1;
        long turn = 0;
        if (channel is not null)
        {
            channelIndex = channel.ChannelIndex;
            turn = channel.DispatchCount; // read before the lstat below
        }
        lock (_info)
        {
            if (channelIndex < 0 || channelIndex != _checkedChannel || turn != _checkedTurn)
            {
                if (!Check())
                {
                    return false;
                }
                _checkedChannel = channelIndex;
                _checkedTurn = turn;
            }
        }
        // A racy entry is rebuilt once it is old enough to be cached safely.
        return !Racy || DateTime.UtcNow - LastWriteTimeUtc < s_racyWindow;
    }

    // Under the lock. Exists, Length and LastWriteTimeUtc come from one lstat (FileInfo.Length also
    // asks geteuid, for the read-only attribute it checks on the way). A path swapped for a link is
    // followed here, and then differs in length or mtime; if it did not, the bytes served are still
    // the ones read from inside the root.
    private bool Check()
    {
        _info.Refresh();
        return _info.Exists && _info.Length == Length && _info.LastWriteTimeUtc == LastWriteTimeUtc;
    }

    // Reads the file into the cache (once, shared by concurrent requests) through the reads of the
    // request that gets there first. Null when the budget is spent or the file changed meanwhile.
    public Task<byte[]?> LoadContentAsync(FileReads reads)
    {
        Task<byte[]?>? loading = Volatile.Read(ref _loading);
        if (loading is not null)
        {
            return loading;
        }
        var fill = new TaskCompletionSource<byte[]?>(TaskCreationOptions.RunContinuationsAsynchronously);
        loading = Interlocked.CompareExchange(ref _loading, fill.Task, null);
        if (loading is not null)
        {
            return loading;
        }
        _ = FillAsync(reads, fill);
        return fill.Task;
    }

    private async Task FillAsync(FileReads reads, TaskCompletionSource<byte[]?> fill)
    {
        byte[]? result = null;
        try
        {
            if (_cache.TryReserveContent(Length) && TryAddRef())
            {
                bool reserved = true;
                try
                {
                    // Pinned: the kernel writes into it while the read is in flight.
                    byte[] buffer = GC.AllocateUninitializedArray<byte>((int)Length, pinned: true);
                    // A file that grows meanwhile is caught by the next request's lstat; one that shrinks, here.
                    if (await reads.ReadExactlyAsync(_handle!, buffer, 0).ConfigureAwait(false))
                    {
                        lock (_gate)
                        {
                            if (!_stale)
                            {
                                _content = buffer;
                                _reserved = Length;
                                reserved = false;
                                result = buffer;
                            }
                        }
                        _cache.Stats.ContentCacheFill();
                    }
                    else
                    {
                        _stale = true; // the file changed size while we read it
                    }
                }
                finally
                {
                    Release();
                    if (reserved)
                    {
                        _cache.ReleaseContent(Length);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            _stale = true;
        }
        fill.SetResult(result);
    }

    // Keeps the descriptor open while a request reads it, even if the entry is dropped meanwhile.
    public bool TryAddRef()
    {
        if (_handle is null)
        {
            return false;
        }
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
        }
        return added;
    }

    public SafeFileHandle Handle => _handle!;

    public void Release() => _handle!.DangerousRelease();

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            _stale = true;
            if (_reserved > 0)
            {
                _cache.ReleaseContent(_reserved);
                _reserved = 0;
            }
        }
        _handle?.Dispose();
    }
}
