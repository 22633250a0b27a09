// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe;

/// <summary>
/// A failure reported by the kernel. Keeps the raw errno and its strerror text.
/// </summary>
public sealed class MegaPipeException : Exception
{
    /// <summary>Creates an exception for <paramref name="errno"/> raised by <paramref name="operation"/>.</summary>
    public MegaPipeException(string operation, Errno errno, string? detail = null)
        : base(FormatMessage(operation, errno, detail))
    {
        Operation = operation;
        Errno = errno;
    }

    /// <summary>The call or command that failed, for example <c>io_uring_setup</c>.</summary>
    public string Operation { get; }

    /// <summary>The errno the kernel returned.</summary>
    public Errno Errno { get; }

    private static string FormatMessage(string operation, Errno errno, string? detail)
    {
        string text = $"{operation} failed: {Interop.StrError(errno)} ({errno}, errno {(int)errno})";
        return detail is null ? text : text + ". " + detail;
    }
}
