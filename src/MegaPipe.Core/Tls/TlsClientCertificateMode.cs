// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tls;

/// <summary>
/// Whether the server asks the client for a certificate. Mirrors Kestrel's
/// <c>ClientCertificateMode</c> (the transport maps one onto the other; Core does not reference ASP.NET Core).
/// </summary>
public enum TlsClientCertificateMode
{
    /// <summary>No certificate is requested.</summary>
    NoCertificate,

    /// <summary>A certificate is requested; a client may send none. One that is sent must pass validation.</summary>
    AllowCertificate,

    /// <summary>A certificate is required; a client that sends none fails the handshake.</summary>
    RequireCertificate,
}
