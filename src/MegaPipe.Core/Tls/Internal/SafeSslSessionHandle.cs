// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Owns one reference to an SSL_SESSION (client-side resumption: SSL_get1_session); SSL_set_session takes its own.
internal sealed class SafeSslSessionHandle : SafeHandle
{
    public SafeSslSessionHandle(nint session)
        : base(0, ownsHandle: true) => SetHandle(session);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Interop.SSL_SESSION_free(handle);
        return true;
    }
}
