// Licensed under the MIT License. See LICENSE in the repository root.

using System.Security.Cryptography.X509Certificates;

namespace MegaPipe.Tls.Internal;

// Conversions between OpenSSL's X509 and .NET's X509Certificate2, by DER.
internal static unsafe class X509Interop
{
    // Copies a borrowed (or owned: the caller still frees it) X509* into a new X509Certificate2.
    public static X509Certificate2 ToManaged(nint x509)
    {
        if (x509 == 0)
        {
            TlsThrowHelper.ThrowInvalidOperation("OpenSSL returned no certificate.");
        }
        int length = Interop.i2d_X509(x509, null);
        if (length <= 0)
        {
            TlsThrowHelper.ThrowOpenSsl("i2d_X509");
        }
        byte[] der = new byte[length];
        fixed (byte* start = der)
        {
            byte* cursor = start;
            if (Interop.i2d_X509(x509, &cursor) != length)
            {
                TlsThrowHelper.ThrowOpenSsl("i2d_X509");
            }
        }
        return X509CertificateLoader.LoadCertificate(der);
    }
}
