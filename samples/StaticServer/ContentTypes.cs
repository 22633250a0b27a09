using System.Collections.Frozen;
using Microsoft.Extensions.Primitives;

namespace MegaPipe.StaticServer;

// Content-Type by extension: nginx's mime.types for the common cases, plus the configured types.
internal sealed class ContentTypes
{
    private static readonly Dictionary<string, string> s_defaults = new(StringComparer.OrdinalIgnoreCase)
    {
        ["html"] = "text/html", ["htm"] = "text/html", ["shtml"] = "text/html",
        ["css"] = "text/css", ["xml"] = "text/xml", ["txt"] = "text/plain", ["md"] = "text/markdown",
        ["csv"] = "text/csv", ["mml"] = "text/mathml", ["jad"] = "text/vnd.sun.j2me.app-descriptor",
        ["wml"] = "text/vnd.wap.wml", ["htc"] = "text/x-component",
        ["js"] = "application/javascript", ["mjs"] = "application/javascript",
        ["json"] = "application/json", ["map"] = "application/json", ["wasm"] = "application/wasm",
        ["atom"] = "application/atom+xml", ["rss"] = "application/rss+xml",
        ["xhtml"] = "application/xhtml+xml", ["pdf"] = "application/pdf", ["rtf"] = "application/rtf",
        ["zip"] = "application/zip", ["gz"] = "application/gzip", ["br"] = "application/octet-stream",
        ["tar"] = "application/x-tar", ["7z"] = "application/x-7z-compressed", ["rar"] = "application/x-rar-compressed",
        ["jar"] = "application/java-archive", ["war"] = "application/java-archive", ["ear"] = "application/java-archive",
        ["doc"] = "application/msword", ["xls"] = "application/vnd.ms-excel", ["ppt"] = "application/vnd.ms-powerpoint",
        ["docx"] = "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ["xlsx"] = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ["pptx"] = "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ["odt"] = "application/vnd.oasis.opendocument.text", ["ods"] = "application/vnd.oasis.opendocument.spreadsheet",
        ["odp"] = "application/vnd.oasis.opendocument.presentation", ["odg"] = "application/vnd.oasis.opendocument.graphics",
        ["eot"] = "application/vnd.ms-fontobject", ["ps"] = "application/postscript", ["eps"] = "application/postscript",
        ["ai"] = "application/postscript", ["m3u8"] = "application/vnd.apple.mpegurl", ["kml"] = "application/vnd.google-earth.kml+xml",
        ["kmz"] = "application/vnd.google-earth.kmz", ["swf"] = "application/x-shockwave-flash",
        ["der"] = "application/x-x509-ca-cert", ["pem"] = "application/x-x509-ca-cert", ["crt"] = "application/x-x509-ca-cert",
        ["bin"] = "application/octet-stream", ["exe"] = "application/octet-stream", ["dll"] = "application/octet-stream",
        ["deb"] = "application/octet-stream", ["dmg"] = "application/octet-stream", ["iso"] = "application/octet-stream",
        ["img"] = "application/octet-stream", ["msi"] = "application/octet-stream",
        ["gif"] = "image/gif", ["jpeg"] = "image/jpeg", ["jpg"] = "image/jpeg", ["png"] = "image/png",
        ["svg"] = "image/svg+xml", ["svgz"] = "image/svg+xml", ["tif"] = "image/tiff", ["tiff"] = "image/tiff",
        ["webp"] = "image/webp", ["avif"] = "image/avif", ["ico"] = "image/x-icon", ["bmp"] = "image/x-ms-bmp",
        ["wbmp"] = "image/vnd.wap.wbmp", ["jng"] = "image/x-jng",
        ["woff"] = "font/woff", ["woff2"] = "font/woff2", ["ttf"] = "font/ttf", ["otf"] = "font/otf",
        ["mid"] = "audio/midi", ["midi"] = "audio/midi", ["kar"] = "audio/midi", ["mp3"] = "audio/mpeg",
        ["ogg"] = "audio/ogg", ["m4a"] = "audio/x-m4a", ["ra"] = "audio/x-realaudio", ["wav"] = "audio/wav",
        ["3gpp"] = "video/3gpp", ["3gp"] = "video/3gpp", ["ts"] = "video/mp2t", ["mp4"] = "video/mp4",
        ["mpeg"] = "video/mpeg", ["mpg"] = "video/mpeg", ["mov"] = "video/quicktime", ["webm"] = "video/webm",
        ["flv"] = "video/x-flv", ["m4v"] = "video/x-m4v", ["mng"] = "video/x-mng", ["asx"] = "video/x-ms-asf",
        ["asf"] = "video/x-ms-asf", ["wmv"] = "video/x-ms-wmv", ["avi"] = "video/x-msvideo",
    };

    private readonly FrozenDictionary<string, StringValues> _types;
    private readonly FrozenDictionary<string, StringValues>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public ContentTypes(StaticServerOptions options)
    {
        var all = new Dictionary<string, StringValues>(StringComparer.OrdinalIgnoreCase);
        foreach ((string ext, string type) in s_defaults)
        {
            all[ext] = type;
        }
        foreach ((string ext, string type) in options.Types)
        {
            all[ext.TrimStart('.')] = type;
        }
        _types = all.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        _lookup = _types.GetAlternateLookup<ReadOnlySpan<char>>();
        Default = options.DefaultType;
    }

    public StringValues Default { get; }

    public StringValues For(ReadOnlySpan<char> path)
    {
        int slash = path.LastIndexOf('/');
        ReadOnlySpan<char> name = path[(slash + 1)..];
        int dot = name.LastIndexOf('.');
        return dot >= 0 && _lookup.TryGetValue(name[(dot + 1)..], out StringValues type) ? type : Default;
    }
}
