// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Owns one reference to an X509 (from d2i_X509 or SSL_get1_peer_certificate). Functions that keep
// the certificate (SSL_CTX_use_certificate, SSL_CTX_add1_chain_cert) take their own reference.
internal sealed class SafeX509Handle : SafeHandle
{
    public SafeX509Handle()
        : base(0, ownsHandle: true)
    {
    }

    public SafeX509Handle(nint x509)
        : base(0, ownsHandle: true) => SetHandle(x509);

    public override bool IsInvalid => handle == 0;

    public static unsafe SafeX509Handle FromDer(ReadOnlySpan<byte> der)
    {
        fixed (byte* start = der)
        {
            byte* cursor = start;
            return new SafeX509Handle(Interop.d2i_X509(0, &cursor, der.Length));
        }
    }

    protected override bool ReleaseHandle()
    {
        Interop.X509_free(handle);
        return true;
    }
}
