// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Owns one reference to an EVP_PKEY (from d2i_AutoPrivateKey). SSL_CTX_use_PrivateKey takes its own
// reference, so this one is released as soon as the context holds the key.
internal sealed class SafePrivateKeyHandle : SafeHandle
{
    public SafePrivateKeyHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    public static unsafe SafePrivateKeyHandle FromPkcs8(ReadOnlySpan<byte> pkcs8)
    {
        var result = new SafePrivateKeyHandle();
        fixed (byte* start = pkcs8)
        {
            byte* cursor = start;
            result.SetHandle(Interop.d2i_AutoPrivateKey(0, &cursor, pkcs8.Length));
        }
        return result;
    }

    protected override bool ReleaseHandle()
    {
        Interop.EVP_PKEY_free(handle);
        return true;
    }
}
