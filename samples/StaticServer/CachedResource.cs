using Microsoft.Extensions.Primitives;

namespace MegaPipe.StaticServer;

// What one request path serves: the file, its precompressed siblings, and the headers common to
// all of them. Cached under the request path (a directory's path maps to its index file).
internal sealed class CachedResource : IDisposable
{
    public CachedResource(CachedFile identity, CachedFile? brotli, CachedFile? gzip, StringValues contentType, bool symlinkFree)
    {
        Identity = identity;
        Brotli = brotli;
        Gzip = gzip;
        ContentType = contentType;
        SymlinkFree = symlinkFree;
        LastAccess = Environment.TickCount64;
    }

    public CachedFile Identity { get; }
    public CachedFile? Brotli { get; }
    public CachedFile? Gzip { get; }
    public StringValues ContentType { get; }

    // The response depends on Accept-Encoding.
    public bool HasVariants => Brotli is not null || Gzip is not null;

    // No symbolic link was met resolving the path; otherwise the path is resolved again on each request.
    public bool SymlinkFree { get; }

    // Environment.TickCount64 of the last request, for eviction (written racily; it is a hint).
    public long LastAccess { get; set; }

    // Some file was modified too recently to be trusted by a later stat: serve it once, do not cache it.
    public bool IsRacy => Identity.Racy || Brotli?.Racy == true || Gzip?.Racy == true;

    public bool Uses(string realPath)
        => Identity.RealPath == realPath || Brotli?.RealPath == realPath || Gzip?.RealPath == realPath;

    public void Dispose()
    {
        Identity.Dispose();
        Brotli?.Dispose();
        Gzip?.Dispose();
    }
}
