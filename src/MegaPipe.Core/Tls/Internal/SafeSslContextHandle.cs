// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Owns one reference to an SSL_CTX. Every SSL made from it (SSL_new) and every SSL switched to it
// (SSL_set_SSL_CTX) holds its own reference, so releasing this one while sessions live is safe:
// OpenSSL frees the context when the last of them goes.
internal sealed class SafeSslContextHandle : SafeHandle
{
    public SafeSslContextHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    public static SafeSslContextHandle Create(nint method)
    {
        var result = new SafeSslContextHandle();
        result.SetHandle(Interop.SSL_CTX_new(method));
        return result;
    }

    protected override bool ReleaseHandle()
    {
        Interop.SSL_CTX_free(handle);
        return true;
    }
}
