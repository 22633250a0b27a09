using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.StaticServer;

// nginx's open_file_cache, plus contents: request path -> CachedResource. Entries are validated by
// the request that uses them (CachedFile.IsCurrent) and dropped when the file changed; a
// FileSystemWatcher on the root also drops them on renames, deletions and creations, which a stat
// of the old path may not reveal (a file renamed over another with the same size and mtime, a
// precompressed sibling that appeared).
internal sealed class OpenFileCache : IDisposable
{
    private readonly ConcurrentDictionary<string, CachedResource> _entries = new(StringComparer.Ordinal);
    private readonly ContentTypes _types;
    private readonly FileSystemWatcher? _watcher;
    private readonly Lock _evictionLock = new();
    // Bytes of file contents held.
    private long _contentBytes;

    public OpenFileCache(StaticServerOptions options, StaticServerStats stats, ILogger logger)
    {
        Options = options;
        Stats = stats;
        Resolver = new PathResolver(options.Root);
        _types = new ContentTypes(options);
        if (options.Watch)
        {
            try
            {
                _watcher = new FileSystemWatcher(Resolver.RealRoot)
                {
                    IncludeSubdirectories = true,
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
                };
                _watcher.Changed += (_, e) => InvalidateRealPath(e.FullPath);
                _watcher.Created += (_, _) => Clear();
                _watcher.Deleted += (_, _) => Clear();
                _watcher.Renamed += (_, _) => Clear();
                _watcher.Error += (_, _) => Clear();
                _watcher.EnableRaisingEvents = true;
            }
            catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
            {
                // inotify limits, say: every request still checks its file, only renames-over go unnoticed longer.
                logger.LogWarning(e, "Watching {Root} failed; the cache relies on per-request checks only.", Resolver.RealRoot);
                _watcher?.Dispose();
                _watcher = null;
            }
        }
    }

    public StaticServerOptions Options { get; }
    public StaticServerStats Stats { get; }
    public PathResolver Resolver { get; }
    public int Count => _entries.Count;

    public bool TryGet(string requestPath, out CachedResource resource) => _entries.TryGetValue(requestPath, out resource!);

    // Builds and caches the entry of a resolved file; typePath names the Content-Type (nginx uses the
    // URI's extension). A file modified within the last moments is opened for this request only.
    public CachedResource? Add(string requestPath, in ResolvedPath resolved, string typePath)
    {
        CachedFile? identity = CachedFile.Open(this, resolved, encoding: null);
        if (identity is null)
        {
            return null;
        }
        CachedFile? brotli = null;
        CachedFile? gzip = null;
        if (Options.Precompressed)
        {
            brotli = OpenSibling(resolved.RealPath, ".br", "br");
            gzip = OpenSibling(resolved.RealPath, ".gz", "gzip");
        }
        var resource = new CachedResource(identity, brotli, gzip, _types.For(typePath), resolved.SymlinkFree);
        if (resource.IsRacy)
        {
            // Not cached: the caller serves it once and disposes it (see CachedFile.Racy).
            return resource;
        }
        CachedResource? replaced = null;
        _entries.AddOrUpdate(requestPath, resource, (_, old) =>
        {
            replaced = old;
            return resource;
        });
        replaced?.Dispose();
        if (_entries.Count > Options.OpenFileCacheMax)
        {
            Evict();
        }
        return resource;
    }

    private CachedFile? OpenSibling(string realPath, string suffix, string encoding)
    {
        ResolvedPath sibling = Resolver.Resolve(Resolver.ToRequestPath(realPath) + suffix);
        return sibling.Kind == ResolvedKind.File ? CachedFile.Open(this, sibling, encoding) : null;
    }

    public StringValues ContentTypeFor(string path) => _types.For(path);

    // Drops an entry found stale (only if it is still the one cached under that path).
    public void Invalidate(string requestPath, CachedResource resource)
    {
        if (_entries.TryRemove(KeyValuePair.Create(requestPath, resource)))
        {
            Stats.Invalidation();
            resource.Dispose();
        }
    }

    private void InvalidateRealPath(string realPath)
    {
        foreach ((string path, CachedResource resource) in _entries)
        {
            if (resource.Uses(realPath))
            {
                Invalidate(path, resource);
            }
        }
    }

    public void Clear()
    {
        foreach ((string path, CachedResource resource) in _entries)
        {
            Invalidate(path, resource);
        }
    }

    // Over the bound: drop the least recently used tenth.
    private void Evict()
    {
        if (!_evictionLock.TryEnter())
        {
            return; // another request is evicting
        }
        try
        {
            int excess = _entries.Count - Options.OpenFileCacheMax;
            if (excess <= 0)
            {
                return;
            }
            int drop = Math.Max(excess, Options.OpenFileCacheMax / 10);
            foreach ((string path, CachedResource resource) in _entries.OrderBy(e => e.Value.LastAccess).Take(drop).ToArray())
            {
                if (_entries.TryRemove(KeyValuePair.Create(path, resource)))
                {
                    resource.Dispose();
                }
            }
        }
        finally
        {
            _evictionLock.Exit();
        }
    }

    public bool TryReserveContent(long bytes)
    {
        if (Interlocked.Add(ref _contentBytes, bytes) <= Options.ContentCacheSize)
        {
            return true;
        }
        Interlocked.Add(ref _contentBytes, -bytes);
        return false;
    }

    public void ReleaseContent(long bytes) => Interlocked.Add(ref _contentBytes, -bytes);

    // After open: the descriptor must name the path we resolved (or at least a file inside the root),
    // which catches a directory swapped for a link between resolution and open.
    public bool IsOpenedInsideRoot(SafeFileHandle handle, string realPath)
    {
        string? opened;
        try
        {
            opened = new FileInfo("/proc/self/fd/" + handle.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture)).LinkTarget;
        }
        catch (IOException)
        {
            return false;
        }
        if (opened is null)
        {
            return !Directory.Exists("/proc/self/fd"); // no procfs: resolution is all we have
        }
        return opened == realPath || Resolver.IsInside(opened);
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        Clear();
    }
}
