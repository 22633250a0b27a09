using System.Globalization;
using System.Net;
using System.Text;

namespace MegaPipe.StaticServer;

// nginx's autoindex page: directories first, then files, with modification time and size. Names
// starting with a dot are not listed (as nginx), nor are links that lead out of the root.
internal static class DirectoryListing
{
    public static byte[] Render(string requestPath, string realPath, PathResolver resolver)
    {
        var directories = new List<(string Name, DateTime Modified)>();
        var files = new List<(string Name, DateTime Modified, long Size)>();
        foreach (FileSystemInfo entry in new DirectoryInfo(realPath).EnumerateFileSystemInfos())
        {
            if (entry.Name.StartsWith('.'))
            {
                continue;
            }
            FileSystemInfo target = entry;
            if (entry.LinkTarget is not null)
            {
                FileSystemInfo? final = entry.ResolveLinkTarget(returnFinalTarget: true);
                if (final is null || !final.Exists || !resolver.IsInside(Path.GetFullPath(final.FullName)))
                {
                    continue;
                }
                target = final;
            }
            if ((target.Attributes & FileAttributes.Directory) != 0)
            {
                directories.Add((entry.Name, target.LastWriteTimeUtc));
            }
            else
            {
                files.Add((entry.Name, target.LastWriteTimeUtc, ((FileInfo)new FileInfo(target.FullName)).Length));
            }
        }
        directories.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));

        string title = WebUtility.HtmlEncode(requestPath);
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<html>\n<head><title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1><hr><pre><a href=\"../\">../</a>\n");
        foreach ((string name, DateTime modified) in directories)
        {
            Line(html, name + "/", modified, "-");
        }
        foreach ((string name, DateTime modified, long size) in files)
        {
            Line(html, name, modified, size.ToString(CultureInfo.InvariantCulture));
        }
        html.Append("</pre><hr></body>\n</html>\n");
        return Encoding.UTF8.GetBytes(html.ToString());
    }

    private static void Line(StringBuilder html, string name, DateTime modified, string size)
    {
        string href = Uri.EscapeDataString(name.TrimEnd('/')) + (name.EndsWith('/') ? "/" : "");
        html.Append(CultureInfo.InvariantCulture, $"<a href=\"{href}\">{WebUtility.HtmlEncode(name)}</a>");
        html.Append(' ', Math.Max(1, 51 - name.Length));
        html.Append(modified.ToString("dd-MMM-yyyy HH:mm", CultureInfo.InvariantCulture));
        html.Append(size.PadLeft(20));
        html.Append('\n');
    }
}
