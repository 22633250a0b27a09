// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe;

internal static partial class Interop
{
    /// <summary>The errno of the last failed P/Invoke marked SetLastError.</summary>
    internal static Errno GetLastErrno() => (Errno)Marshal.GetLastPInvokeError();

    /// <summary>strerror(3) text for an errno value.</summary>
    internal static string StrError(Errno errno) => Marshal.GetPInvokeErrorMessage((int)errno);
}
