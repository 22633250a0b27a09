// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Loads libssl and libcrypto from TlsLibrary.DirectoryVariable when it is set. The resolver has to be in place
// before the first OpenSSL P/Invoke binds (a binding is never redone), and static initializers of the TLS types
// already make such calls, so it is installed when the assembly loads. Without the variable nothing is installed
// and the runtime's default lookup applies to every import of the assembly.
internal static class OpenSslResolver
{
    public static string? Directory { get; private set; }

    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255:The 'ModuleInitializer' attribute should not be used in libraries",
        Justification = "A DllImport resolver must be installed before any P/Invoke of the assembly binds; it does nothing unless the variable is set.")]
    internal static void Install()
    {
        string? directory = Environment.GetEnvironmentVariable(TlsLibrary.DirectoryVariable);
        if (string.IsNullOrEmpty(directory))
        {
            return;
        }
        Directory = directory;
        NativeLibrary.SetDllImportResolver(typeof(OpenSslResolver).Assembly, Resolve);
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName is not (Interop.LibSsl or Interop.LibCrypto))
        {
            return 0; // kernel and libc imports: the default lookup
        }
        // Only the configured copy: a failure here must not fall through to the system's library.
        return NativeLibrary.Load(Path.Combine(Directory!, libraryName));
    }
}
