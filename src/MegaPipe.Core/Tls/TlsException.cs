// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tls;

/// <summary>
/// A failure to set up TLS: a context that OpenSSL refused (for example a private key that does not
/// match its certificate) or a native call that failed. The message carries OpenSSL's reason.
/// </summary>
public sealed class TlsException : Exception
{
    /// <summary>Creates an exception with <paramref name="message"/>.</summary>
    public TlsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with <paramref name="message"/> caused by <paramref name="innerException"/>.</summary>
    public TlsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
