using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using MegaPipe.Transport;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace MegaPipe.StaticServer;

// The request handler: nginx's static module (root, index, autoindex, default_type), with
// open_file_cache, gzip_static / brotli_static, conditional and single-range requests. File
// contents are read through the connection's MegaPipe channel (FileReads).
internal sealed class StaticFileHandler
{
    private static readonly StringValues s_bytes = "bytes";
    private static readonly StringValues s_acceptEncoding = "Accept-Encoding";
    private static readonly StringValues s_html = "text/html";
    private static readonly StringValues s_allow = "GET, HEAD";

    private readonly StaticServerOptions _options;
    private readonly OpenFileCache _cache;
    private readonly StaticServerStats _stats;
    private readonly AccessLog? _accessLog;
    private readonly StringValues _cacheControl;

    public StaticFileHandler(StaticServerOptions options, OpenFileCache cache, StaticServerStats stats, AccessLog? accessLog)
    {
        _options = options;
        _cache = cache;
        _stats = stats;
        _accessLog = accessLog;
        _cacheControl = options.CacheControl;
    }

    public Task InvokeAsync(HttpContext context)
    {
        ValueTask<long> handled = HandleAsync(context);
        if (_accessLog is null)
        {
            return handled.IsCompletedSuccessfully ? Task.CompletedTask : handled.AsTask();
        }
        return LogAsync(context, handled);
    }

    private async Task LogAsync(HttpContext context, ValueTask<long> handled)
    {
        long bytes = 0;
        try
        {
            bytes = await handled.ConfigureAwait(false);
        }
        finally
        {
            _accessLog!.Log(context, bytes);
        }
    }

    // Serves one request; the result is the body bytes sent (for the access log).
    private async ValueTask<long> HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        bool head = HttpMethods.IsHead(request.Method);
        if (!head && !HttpMethods.IsGet(request.Method))
        {
            context.Response.Headers.Allow = s_allow;
            return await ErrorAsync(context, StatusCodes.Status405MethodNotAllowed, head).ConfigureAwait(false);
        }
        string path = request.Path.Value is { Length: > 0 } p ? p : "/";
        string rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? path;
        if (!RequestPathValidator.IsSafe(path, rawTarget))
        {
            return await ErrorAsync(context, StatusCodes.Status400BadRequest, head).ConfigureAwait(false);
        }

        // A cached entry can turn out stale on the way (the file changed): drop it and look again.
        for (int attempt = 0; ; attempt++)
        {
            if (!_cache.TryGet(path, out CachedResource? resource) || !StillResolvesTo(path, resource))
            {
                resource = null;
                ResolvedPath resolved = _cache.Resolver.Resolve(path);
                switch (resolved.Kind)
                {
                    case ResolvedKind.NotFound:
                        return await ErrorAsync(context, StatusCodes.Status404NotFound, head).ConfigureAwait(false);
                    case ResolvedKind.File when path.EndsWith('/'):
                        return await ErrorAsync(context, StatusCodes.Status404NotFound, head).ConfigureAwait(false);
                    case ResolvedKind.File:
                        resource = _cache.Add(path, resolved, path);
                        break;
                    case ResolvedKind.Directory when !path.EndsWith('/'):
                        return await RedirectToDirectoryAsync(context, rawTarget, head).ConfigureAwait(false);
                    case ResolvedKind.Directory:
                        foreach (string index in _options.Index)
                        {
                            ResolvedPath indexFile = _cache.Resolver.Resolve(path + index);
                            if (indexFile.Kind == ResolvedKind.File)
                            {
                                resource = _cache.Add(path, indexFile with { SymlinkFree = indexFile.SymlinkFree && resolved.SymlinkFree }, path + index);
                                break;
                            }
                        }
                        if (resource is null)
                        {
                            return _options.AutoIndex
                                ? await ListAsync(context, path, resolved.RealPath, head).ConfigureAwait(false)
                                : await ErrorAsync(context, StatusCodes.Status403Forbidden, head).ConfigureAwait(false);
                        }
                        break;
                }
                if (resource is null)
                {
                    // It vanished (or moved out of reach) between resolution and open.
                    return await ErrorAsync(context, StatusCodes.Status404NotFound, head).ConfigureAwait(false);
                }
            }
            resource.LastAccess = Environment.TickCount64;
            CachedFile file = Choose(resource, request.Headers.AcceptEncoding);
            if (!file.IsCurrent(context.Features.Get<IMegaPipeChannelFeature>()) && attempt < 3)
            {
                if (resource.IsRacy)
                {
                    resource.Dispose();
                }
                _cache.Invalidate(path, resource);
                continue;
            }
            long? sent;
            try
            {
                sent = await ServeAsync(context, resource, file, head).ConfigureAwait(false);
            }
            finally
            {
                if (resource.IsRacy)
                {
                    resource.Dispose(); // served once, never cached
                }
            }
            if (sent is { } bytes)
            {
                return bytes;
            }
            // The file changed while we were about to read it; nothing was sent yet.
            _cache.Invalidate(path, resource);
            context.Response.Headers.Clear();
        }
    }

    // A path that went through a symbolic link is resolved again each time: the link may have been repointed.
    private bool StillResolvesTo(string path, CachedResource resource)
    {
        if (resource.SymlinkFree)
        {
            return true;
        }
        ResolvedPath resolved = _cache.Resolver.Resolve(path);
        if (resolved.Kind == ResolvedKind.Directory && path.EndsWith('/'))
        {
            foreach (string index in _options.Index)
            {
                ResolvedPath indexFile = _cache.Resolver.Resolve(path + index);
                if (indexFile.Kind == ResolvedKind.File)
                {
                    return indexFile.RealPath == resource.Identity.RealPath;
                }
            }
            return false;
        }
        return resolved.Kind == ResolvedKind.File && resolved.RealPath == resource.Identity.RealPath;
    }

    // gzip_static / brotli_static: the precompressed sibling the client accepts, preferring br on a tie.
    private CachedFile Choose(CachedResource resource, StringValues acceptEncoding)
    {
        if (!resource.HasVariants || acceptEncoding.Count == 0)
        {
            return resource.Identity;
        }
        AcceptEncoding.Weigh(acceptEncoding, out double br, out double gzip);
        if (resource.Brotli is { } brotli && br > 0 && (resource.Gzip is null || br >= gzip))
        {
            return brotli;
        }
        if (resource.Gzip is { } gz && gzip > 0)
        {
            return gz;
        }
        return resource.Identity;
    }

    // Null when the file turned out stale before anything was sent (the caller retries).
    private async ValueTask<long?> ServeAsync(HttpContext context, CachedResource resource, CachedFile file, bool head)
    {
        HttpResponse response = context.Response;
        IHeaderDictionary requestHeaders = context.Request.Headers;
        IHeaderDictionary headers = response.Headers;

        // Preconditions, in RFC 9110 13.2.2 order.
        StringValues ifMatch = requestHeaders.IfMatch;
        if (ifMatch.Count > 0
            ? !EntityTags.Matches(ifMatch, file.ETagText, weak: false)
            : TryParseDate(requestHeaders.IfUnmodifiedSince, out long unmodifiedSince) && file.LastWriteSeconds > unmodifiedSince)
        {
            return await ErrorAsync(context, StatusCodes.Status412PreconditionFailed, head).ConfigureAwait(false);
        }
        StringValues ifNoneMatch = requestHeaders.IfNoneMatch;
        if (ifNoneMatch.Count > 0
            ? EntityTags.Matches(ifNoneMatch, file.ETagText, weak: true)
            : TryParseDate(requestHeaders.IfModifiedSince, out long modifiedSince) && file.LastWriteSeconds <= modifiedSince)
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            SetValidators(headers, resource, file);
            return 0;
        }

        long start = 0;
        long count = file.Length;
        int status = StatusCodes.Status200OK;
        StringValues range = requestHeaders.Range;
        // Range is defined for GET only.
        if (!head && range.Count > 0 && IfRangeAllows(requestHeaders.IfRange, file))
        {
            switch (HttpRange.Parse(range, file.Length, out start, out count))
            {
                case RangeOutcome.Satisfiable:
                    status = StatusCodes.Status206PartialContent;
                    break;
                case RangeOutcome.Unsatisfiable:
                    headers.ContentRange = "bytes */" + file.Length.ToString(CultureInfo.InvariantCulture);
                    return await ErrorAsync(context, StatusCodes.Status416RangeNotSatisfiable, head).ConfigureAwait(false);
            }
        }

        // The body comes from the content cache when the file is small; it is read in (through the channel) on first use.
        byte[]? content = null;
        if (!head && count > 0)
        {
            content = file.Content;
            if (content is null && file.ContentCacheable)
            {
                content = await file.LoadContentAsync(Reads(context)).ConfigureAwait(false);
                if (file.IsStale)
                {
                    return null;
                }
            }
        }

        response.StatusCode = status;
        headers.ContentType = resource.ContentType;
        response.ContentLength = count;
        SetValidators(headers, resource, file);
        headers.AcceptRanges = s_bytes;
        if (status == StatusCodes.Status206PartialContent)
        {
            headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {start}-{start + count - 1}/{file.Length}");
        }
        if (head || count == 0)
        {
            return 0;
        }
        if (content is not null)
        {
            _stats.ContentCacheHit();
            await response.BodyWriter.WriteAsync(content.AsMemory((int)start, (int)count)).ConfigureAwait(false);
            return count;
        }
        return await StreamAsync(context, file, Reads(context), start, count).ConfigureAwait(false);
    }

    private FileReads Reads(HttpContext context) => new(context.Features.Get<IMegaPipeFileReader>(), _stats);

    // A large (or racy) file: read chunk by chunk straight into the response's output buffers.
    private async ValueTask<long?> StreamAsync(HttpContext context, CachedFile file, FileReads reads, long start, long count)
    {
        if (!file.TryAddRef())
        {
            return null; // dropped from the cache meanwhile
        }
        long sent = 0;
        try
        {
            HttpResponse response = context.Response;
            // Headers first, so GetMemory hands out the connection's own output memory.
            await response.StartAsync().ConfigureAwait(false);
            PipeWriter writer = response.BodyWriter;
            while (sent < count)
            {
                int want = (int)Math.Min(count - sent, _options.ReadChunkSize);
                Memory<byte> memory = writer.GetMemory(want)[..want];
                int n = await reads.ReadAsync(file.Handle, memory, start + sent).ConfigureAwait(false);
                if (n <= 0)
                {
                    // The file was truncated under us: the promised length cannot be sent (nginx closes too).
                    context.Abort();
                    return sent;
                }
                writer.Advance(n);
                sent += n;
                FlushResult flushed = await writer.FlushAsync().ConfigureAwait(false);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        finally
        {
            file.Release();
        }
        return sent;
    }

    private void SetValidators(IHeaderDictionary headers, CachedResource resource, CachedFile file)
    {
        headers.ETag = file.ETag;
        headers.LastModified = file.LastModified;
        if (resource.HasVariants)
        {
            headers.Vary = s_acceptEncoding;
        }
        if (!StringValues.IsNullOrEmpty(file.ContentEncoding))
        {
            headers.ContentEncoding = file.ContentEncoding;
        }
        if (!StringValues.IsNullOrEmpty(_cacheControl))
        {
            headers.CacheControl = _cacheControl;
        }
    }

    private static bool IfRangeAllows(StringValues ifRange, CachedFile file)
    {
        if (ifRange.Count == 0)
        {
            return true;
        }
        string value = ifRange.ToString().Trim();
        if (value.StartsWith('"'))
        {
            return value == file.ETagText; // strong comparison
        }
        if (value.StartsWith("W/", StringComparison.Ordinal))
        {
            return false;
        }
        return TryParseDate(value, out long seconds) && seconds == file.LastWriteSeconds;
    }

    private static bool TryParseDate(StringValues value, out long unixSeconds)
    {
        unixSeconds = 0;
        if (value.Count != 1 || !HeaderUtilities.TryParseDate(value[0], out DateTimeOffset date))
        {
            return false;
        }
        unixSeconds = date.ToUnixTimeSeconds();
        return true;
    }

    private static async ValueTask<long> RedirectToDirectoryAsync(HttpContext context, string rawTarget, bool head)
    {
        int query = rawTarget.IndexOf('?', StringComparison.Ordinal);
        string location = query < 0 ? rawTarget + "/" : string.Concat(rawTarget.AsSpan(0, query), "/", rawTarget.AsSpan(query));
        if (!location.StartsWith('/'))
        {
            // Absolute-form target: keep only its path.
            location = context.Request.Path + "/" + context.Request.QueryString;
        }
        context.Response.Headers.Location = location;
        return await ErrorAsync(context, StatusCodes.Status301MovedPermanently, head).ConfigureAwait(false);
    }

    private async ValueTask<long> ListAsync(HttpContext context, string path, string realPath, bool head)
    {
        byte[] page = DirectoryListing.Render(path, realPath, _cache.Resolver);
        HttpResponse response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/html";
        response.ContentLength = page.Length;
        if (head)
        {
            return 0;
        }
        await response.BodyWriter.WriteAsync(page).ConfigureAwait(false);
        return page.Length;
    }

    // An nginx-style error page.
    private static async ValueTask<long> ErrorAsync(HttpContext context, int status, bool head)
    {
        HttpResponse response = context.Response;
        response.StatusCode = status;
        byte[] page = ErrorPages.For(status);
        response.Headers.ContentType = s_html;
        response.ContentLength = page.Length;
        if (head)
        {
            return 0;
        }
        await response.BodyWriter.WriteAsync(page).ConfigureAwait(false);
        return page.Length;
    }

    private static class ErrorPages
    {
        private static readonly Dictionary<int, byte[]> s_pages = new[] { 301, 400, 403, 404, 405, 412, 416 }.ToDictionary(s => s, Render);

        public static byte[] For(int status) => s_pages.TryGetValue(status, out byte[]? page) ? page : Render(status);

        private static byte[] Render(int status)
        {
            string title = $"{status} {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)}";
            return Encoding.ASCII.GetBytes($"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>MegaPipe StaticServer</center>\r\n</body>\r\n</html>\r\n");
        }
    }
}
