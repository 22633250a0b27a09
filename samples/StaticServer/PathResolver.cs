namespace MegaPipe.StaticServer;

// What a request path names inside the root.
internal enum ResolvedKind
{
    // Nothing there, or something outside the root (a symlink pointing out), or a symlink loop.
    NotFound,
    File,
    Directory,
}

internal readonly record struct ResolvedPath(ResolvedKind Kind, string RealPath, bool SymlinkFree, long Length, DateTime LastWriteTimeUtc);

// Maps request paths to real paths inside the root. Every component is examined with lstat; a
// symbolic link is followed with FileSystemInfo.ResolveLinkTarget(returnFinalTarget: true), its
// target must lie inside the root, and the target is then walked again component by component
// from the root, so no link anywhere along the way can lead out. The real path returned contains
// no symbolic link at all: opening it cannot leave the root unless the tree changes meanwhile,
// which the cache checks after opening (see CachedFile.Open).
internal sealed class PathResolver
{
    // Following more links than this is a loop (the kernel's ELOOP limit).
    private const int MaxLinks = 40;

    private readonly string _rootPrefix;

    public PathResolver(string root)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"The root '{full}' is not a directory.");
        }
        // The root itself may be a link (/var/www -> /srv/www): serve what it points to.
        RealRoot = RealPathOf(full);
        _rootPrefix = RealRoot == "/" ? "/" : RealRoot + "/";
    }

    public string RealRoot { get; }

    public bool IsInside(string fullPath)
        => fullPath == RealRoot || fullPath.StartsWith(_rootPrefix, StringComparison.Ordinal);

    // The path relative to the root, with a leading '/'.
    public string ToRequestPath(string realPath) => realPath == RealRoot ? "/" : realPath[(_rootPrefix.Length - 1)..];

    // Resolves a request path already checked by RequestPathValidator (no dot segments).
    public ResolvedPath Resolve(string requestPath)
    {
        var pending = new List<string>(requestPath.Split('/', StringSplitOptions.RemoveEmptyEntries));
        string current = RealRoot;
        bool symlinkFree = true;
        int links = 0;
        int i = 0;
        FileSystemInfo? last = null;
        while (i < pending.Count)
        {
            string next = current == "/" ? "/" + pending[i] : current + "/" + pending[i];
            var info = new FileInfo(next);
            FileAttributes attributes = info.Attributes; // lstat
            if ((int)attributes == -1)
            {
                return default;
            }
            if ((attributes & FileAttributes.ReparsePoint) != 0)
            {
                symlinkFree = false;
                if (++links > MaxLinks)
                {
                    return default;
                }
                string target;
                try
                {
                    FileSystemInfo? final = info.ResolveLinkTarget(returnFinalTarget: true);
                    if (final is null)
                    {
                        return default;
                    }
                    target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(final.FullName));
                }
                catch (IOException)
                {
                    return default; // a loop, or a link that cannot be read
                }
                if (!IsInside(target))
                {
                    return default;
                }
                // Walk the target again from the root (its own components may be links), then the rest.
                var rest = new List<string>(target[RealRoot.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries));
                rest.AddRange(pending.Skip(i + 1));
                pending = rest;
                current = RealRoot;
                i = 0;
                last = null;
                continue;
            }
            bool isLast = i == pending.Count - 1;
            if ((attributes & FileAttributes.Directory) == 0 && !isLast)
            {
                return default; // a file used as a directory
            }
            current = next;
            last = info;
            i++;
        }
        if (last is null || (last.Attributes & FileAttributes.Directory) != 0)
        {
            return new ResolvedPath(ResolvedKind.Directory, current, symlinkFree, 0, default);
        }
        var file = (FileInfo)last;
        return new ResolvedPath(ResolvedKind.File, current, symlinkFree, file.Length, file.LastWriteTimeUtc);
    }

    // The root's own real path: every link along it resolved (the root is trusted, so no containment check).
    private static string RealPathOf(string path)
    {
        string current = "/";
        var pending = new List<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries));
        int links = 0;
        for (int i = 0; i < pending.Count; i++)
        {
            string next = current == "/" ? "/" + pending[i] : current + "/" + pending[i];
            var info = new DirectoryInfo(next);
            if (info.LinkTarget is not null)
            {
                if (++links > MaxLinks)
                {
                    throw new IOException($"Too many levels of symbolic links in '{path}'.");
                }
                string target = Path.GetFullPath(info.ResolveLinkTarget(returnFinalTarget: true)!.FullName);
                var rest = new List<string>(target.Split('/', StringSplitOptions.RemoveEmptyEntries));
                rest.AddRange(pending.Skip(i + 1));
                pending = rest;
                current = "/";
                i = -1;
                continue;
            }
            current = next;
        }
        return current;
    }
}
