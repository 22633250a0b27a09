using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace MegaPipe.StaticServer;

/// <summary>
/// What the server serves and how, named after the nginx directives they stand for. Bound from the
/// command line or configuration: <c>--root ./site --index "index.html index.htm" --autoindex on
/// --default_type application/octet-stream --cache_control "public, max-age=60"
/// --access_log /var/log/static.log --precompressed on --open_file_cache_max 1000</c>.
/// </summary>
public sealed class StaticServerOptions
{
    /// <summary>nginx <c>root</c>: the directory served. Relative paths are relative to the current directory.</summary>
    /// <remarks>Defaults to the current directory.</remarks>
    public string Root { get; set; } = ".";

    /// <summary>nginx <c>index</c>: the files tried, in order, for a request that names a directory.</summary>
    /// <remarks>Defaults to index.html.</remarks>
    public IList<string> Index { get; set; } = ["index.html"];

    /// <summary>nginx <c>autoindex</c>: list a directory that has no index file (otherwise 403).</summary>
    /// <remarks>Defaults to off.</remarks>
    public bool AutoIndex { get; set; }

    /// <summary>nginx <c>default_type</c>: the Content-Type of files whose extension is not known.</summary>
    /// <remarks>Defaults to application/octet-stream.</remarks>
    public string DefaultType { get; set; } = "application/octet-stream";

    /// <summary>Extra or overriding Content-Types by extension (with or without the dot), as nginx <c>types</c>.</summary>
    public IDictionary<string, string> Types { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The Cache-Control header of file responses (nginx <c>add_header Cache-Control</c> / <c>expires</c>), or null for none.</summary>
    /// <remarks>Defaults to none.</remarks>
    public string? CacheControl { get; set; }

    /// <summary>nginx <c>access_log</c> in the combined format: a file path, "stdout", or null / "off".</summary>
    /// <remarks>Defaults to off.</remarks>
    public string? AccessLog { get; set; }

    /// <summary>nginx <c>gzip_static</c> + <c>brotli_static</c>: serve file.br / file.gz to clients that accept them, with Vary: Accept-Encoding.</summary>
    /// <remarks>Defaults to on.</remarks>
    public bool Precompressed { get; set; } = true;

    /// <summary>nginx <c>open_file_cache max</c>: paths whose open file, metadata and precomputed headers are kept.</summary>
    /// <remarks>Defaults to 1000.</remarks>
    public int OpenFileCacheMax { get; set; } = 1000;

    /// <summary>Files up to this size are kept in memory once read (the content cache); larger ones stream from the open file.</summary>
    /// <remarks>Defaults to 256 KiB.</remarks>
    public long MaxCachedFileSize { get; set; } = 256 * 1024;

    /// <summary>The memory the content cache may hold in total.</summary>
    /// <remarks>Defaults to 64 MiB.</remarks>
    public long ContentCacheSize { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// The size of each read when a file streams: one channel read, then one send, per chunk. On a
    /// 1 MiB file over loopback, 256 KiB chunks cost about 2/3 of the CPU per request of 128 KiB ones.
    /// </summary>
    /// <remarks>Defaults to 256 KiB.</remarks>
    public int ReadChunkSize { get; set; } = 256 * 1024;

    /// <summary>Watch the root with inotify so renames, deletions and new precompressed siblings drop cache entries at once (changes in place are caught by the per-request check anyway).</summary>
    /// <remarks>Defaults to on.</remarks>
    public bool Watch { get; set; } = true;

    /// <summary>Reads the options from configuration keys named as nginx directives (root, index, autoindex, ...).</summary>
    public static StaticServerOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var o = new StaticServerOptions();
        if (configuration["root"] is { } root)
        {
            o.Root = root;
        }
        if (configuration["index"] is { } index)
        {
            o.Index = index.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        o.AutoIndex = Flag(configuration, "autoindex", o.AutoIndex);
        o.DefaultType = configuration["default_type"] ?? o.DefaultType;
        foreach (IConfigurationSection type in configuration.GetSection("types").GetChildren())
        {
            if (type.Value is { } value)
            {
                o.Types[type.Key] = value;
            }
        }
        o.CacheControl = configuration["cache_control"] ?? o.CacheControl;
        if (configuration["access_log"] is { } log)
        {
            o.AccessLog = log.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : log;
        }
        o.Precompressed = Flag(configuration, "precompressed", o.Precompressed);
        o.Watch = Flag(configuration, "watch", o.Watch);
        if (configuration["open_file_cache_max"] is { } max)
        {
            o.OpenFileCacheMax = int.Parse(max, CultureInfo.InvariantCulture);
        }
        o.MaxCachedFileSize = Size(configuration, "max_cached_file_size", o.MaxCachedFileSize);
        o.ContentCacheSize = Size(configuration, "content_cache_size", o.ContentCacheSize);
        o.ReadChunkSize = (int)Size(configuration, "read_chunk_size", o.ReadChunkSize);
        return o;
    }

    internal void Validate()
    {
        if (Index.Any(name => name.Contains('/', StringComparison.Ordinal) || name is "." or ".."))
        {
            throw new ArgumentException("index names must be plain file names.");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(OpenFileCacheMax);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxCachedFileSize);
        ArgumentOutOfRangeException.ThrowIfNegative(ContentCacheSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(ReadChunkSize, 4096);
    }

    private static bool Flag(IConfiguration configuration, string key, bool fallback) => configuration[key]?.ToLowerInvariant() switch
    {
        null => fallback,
        "on" or "true" or "1" or "yes" => true,
        "off" or "false" or "0" or "no" => false,
        string other => throw new ArgumentException($"--{key} takes on or off, not '{other}'."),
    };

    // nginx sizes: 4096, 64k, 1m, 1g.
    private static long Size(IConfiguration configuration, string key, long fallback)
    {
        string? text = configuration[key];
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }
        long unit = char.ToLowerInvariant(text[^1]) switch { 'k' => 1024, 'm' => 1024 * 1024, 'g' => 1024 * 1024 * 1024, _ => 1 };
        ReadOnlySpan<char> number = unit == 1 ? text : text.AsSpan(0, text.Length - 1);
        return long.Parse(number, NumberStyles.None, CultureInfo.InvariantCulture) * unit;
    }
}
