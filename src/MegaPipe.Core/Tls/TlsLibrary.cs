// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;
using MegaPipe.Tls.Internal;

namespace MegaPipe.Tls;

/// <summary>
/// Whether the native TLS library this engine needs (OpenSSL 3: <c>libssl.so.3</c> and <c>libcrypto.so.3</c>) can be
/// loaded in this process, and which one it is. Check <see cref="IsAvailable"/> before creating a
/// <see cref="TlsServerContext"/> where falling back to another TLS implementation is possible (the transport falls
/// back to Kestrel's SslStream).
/// </summary>
/// <remarks>
/// The libraries are found the way the dynamic linker finds them, unless the environment variable
/// <see cref="DirectoryVariable"/> names a directory: then both are loaded from there and only from there (a missing
/// file makes TLS unavailable; the system's copy is never used in its place).
/// </remarks>
public static class TlsLibrary
{
    /// <summary>
    /// The environment variable that names a directory holding the <c>libssl.so.3</c> and <c>libcrypto.so.3</c> to use
    /// instead of the system's (read once, when MegaPipe.Core is loaded).
    /// </summary>
    public const string DirectoryVariable = "MEGAPIPE_OPENSSL_DIR";

    private static readonly Lazy<(string? Version, string? Reason)> s_probe = new(Probe);

    /// <summary>Whether OpenSSL 3 could be loaded.</summary>
    public static bool IsAvailable => s_probe.Value.Reason is null;

    /// <summary>Why OpenSSL 3 cannot be used (which library failed to load, and how), or <see langword="null"/> when it can.</summary>
    public static string? UnavailableReason => s_probe.Value.Reason;

    /// <summary>The loaded library's version text (for example <c>OpenSSL 3.0.17 1 Jul 2025</c>), or <see langword="null"/>.</summary>
    public static string? Version => s_probe.Value.Version;

    // The directory from DirectoryVariable, or null to let the dynamic linker search.
    internal static string? Directory => OpenSslResolver.Directory;

    private static (string? Version, string? Reason) Probe()
    {
        foreach (string name in (ReadOnlySpan<string>)[Interop.LibCrypto, Interop.LibSsl])
        {
            string path = Directory is null ? name : Path.Combine(Directory, name);
            if (!NativeLibrary.TryLoad(path, out nint handle))
            {
                string where = Directory is null ? "" : $" ({DirectoryVariable}={Directory})";
                return (null, $"{path} could not be loaded{where}: OpenSSL 3 is required (Debian and Ubuntu: package libssl3)");
            }
            // The runtime keeps its own reference for the P/Invokes; this one only proved the file loads.
            NativeLibrary.Free(handle);
        }
        try
        {
            ulong number = Interop.OpenSSL_version_num();
            string? text = Marshal.PtrToStringUTF8(Interop.OpenSSL_version(0));
            if (number >> 28 < 3)
            {
                return (text, $"{text ?? "the loaded libcrypto"} is older than OpenSSL 3.0");
            }
            return (text, null);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (null, $"OpenSSL could not be used: {e.Message}");
        }
    }
}
