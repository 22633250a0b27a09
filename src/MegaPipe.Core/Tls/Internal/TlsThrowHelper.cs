// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace MegaPipe.Tls.Internal;

// Throwers for the TLS engine: [DoesNotReturn] throwers with [NoInlining] creators, as in ThrowHelper.
internal static class TlsThrowHelper
{
    [DoesNotReturn]
    public static void ThrowOpenSsl(string operation, string? detail = null) => throw CreateOpenSsl(operation, detail);

    [DoesNotReturn]
    public static void ThrowArgument(string message, string parameterName) => throw CreateArgument(message, parameterName);

    [DoesNotReturn]
    public static void ThrowDisposed(string typeName) => throw new ObjectDisposedException(typeName);

    [DoesNotReturn]
    public static void ThrowInvalidOperation(string message) => throw new InvalidOperationException(message);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static TlsException CreateOpenSsl(string operation, string? detail)
    {
        string? reason = OpenSslError.Drain();
        string message = $"{operation} failed" + (detail is null ? "" : ": " + detail) + (reason is null ? "." : $" ({reason}).");
        return new TlsException(message);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ArgumentException CreateArgument(string message, string parameterName) => new(message, parameterName);
}
