// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace MegaPipe.Internal;

// Throwers are [DoesNotReturn] and small; the exception objects are built in [NoInlining]
// creators so that callers' hot paths stay compact.
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowErrno(string operation, Errno errno, string? detail = null) => throw CreateErrno(operation, errno, detail);

    [DoesNotReturn]
    public static void ThrowLastErrno(string operation) => throw CreateErrno(operation, Interop.GetLastErrno(), null);

    [DoesNotReturn]
    public static void ThrowWrongThread() => throw CreateWrongThread();

    [DoesNotReturn]
    public static void ThrowForeignHandle() => throw CreateForeignHandle();

    [DoesNotReturn]
    public static void ThrowStaleHandle() => throw CreateStaleHandle();

    [DoesNotReturn]
    public static void ThrowDisposed() => throw new ObjectDisposedException(nameof(MegaPipeChannel));

    [DoesNotReturn]
    public static void ThrowInvalidOperation(string message) => throw new InvalidOperationException(message);

    [DoesNotReturn]
    public static void ThrowArgumentOutOfRange(string parameter, object? value, string message) => throw CreateArgumentOutOfRange(parameter, value, message);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static MegaPipeException CreateErrno(string operation, Errno errno, string? detail) => new(operation, errno, detail);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ArgumentOutOfRangeException CreateArgumentOutOfRange(string parameter, object? value, string message) => new(parameter, value, message);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static InvalidOperationException CreateWrongThread()
        => new("A channel's commands and dispatch must be called on the thread that owns it. Use MegaPipeChannel.Post to hand work over from other threads.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ArgumentException CreateForeignHandle()
        => new("The handle belongs to another channel; a handle is valid only inside the channel that registered it.", "handle");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ArgumentException CreateStaleHandle()
        => new("The handle has been unregistered or closed.", "handle");
}
