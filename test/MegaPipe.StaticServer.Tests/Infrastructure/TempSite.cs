using System.Text;

namespace MegaPipe.StaticServer.Tests.Infrastructure;

/// <summary>
/// A real temporary directory laid out as <c>base/root</c> (what the server serves) next to
/// <c>base/outside</c> (which it must never read), deleted on dispose.
/// </summary>
public sealed class TempSite : IDisposable
{
    /// <summary>A marker no response may ever contain.</summary>
    public const string Secret = "TOP-SECRET-OUTSIDE-THE-ROOT";

    public TempSite()
    {
        Base = Directory.CreateTempSubdirectory("megapipe-static-").FullName;
        Root = Path.Combine(Base, "root");
        Outside = Path.Combine(Base, "outside");
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Outside);
        File.WriteAllText(Path.Combine(Outside, "secret.txt"), Secret);
        Directory.CreateDirectory(Path.Combine(Outside, "dir"));
        File.WriteAllText(Path.Combine(Outside, "dir", "secret.txt"), Secret);
        // Also at the paths a traversal would reach from the root.
        File.WriteAllText(Path.Combine(Base, "secret.txt"), Secret);
    }

    public string Base { get; }
    public string Root { get; }
    public string Outside { get; }

    public string PathOf(string relative) => Path.Combine(Root, relative.TrimStart('/'));

    public string Write(string relative, string content, DateTime? lastWriteUtc = null) => Write(relative, Encoding.UTF8.GetBytes(content), lastWriteUtc);

    public string Write(string relative, byte[] content, DateTime? lastWriteUtc = null)
    {
        string path = PathOf(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
        // Old by default, as deployed files are: the cache keeps their bytes.
        File.SetLastWriteTimeUtc(path, lastWriteUtc ?? DateTime.UtcNow.AddHours(-1));
        return path;
    }

    public void Symlink(string relative, string target)
    {
        string path = PathOf(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.CreateSymbolicLink(path, target);
    }

    public static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Base, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
