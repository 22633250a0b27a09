// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// The process-wide ex_data slot in every SSL that holds a GCHandle to its TlsSession, and the
// lookups the callbacks use to get from an SSL* (or an X509_STORE_CTX*) back to managed code.
internal static class TlsExData
{
    // SSL_get_ex_new_index is a macro over CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, ...).
    public static readonly int SessionIndex = AllocateIndex();

    private static int AllocateIndex()
    {
        int index = Interop.CRYPTO_get_ex_new_index(Interop.Crypto.CRYPTO_EX_INDEX_SSL, 0, 0, 0, 0, 0);
        if (index < 0)
        {
            TlsThrowHelper.ThrowOpenSsl("CRYPTO_get_ex_new_index");
        }
        return index;
    }

    // Returns null when the SSL carries no session (never attached, or the session was collected).
    public static TlsSession? GetSession(nint ssl)
    {
        nint value = Interop.SSL_get_ex_data(ssl, SessionIndex);
        return value == 0 ? null : GCHandle.FromIntPtr(value).Target as TlsSession;
    }
}
