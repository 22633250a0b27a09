// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;

namespace MegaPipe.Tls.Internal;

// Owns one SSL and, through it, its two memory BIOs (SSL_set_bio hands both to the SSL; SSL_free
// frees them). It also owns the GCHandle stored in the SSL's ex_data that lets OpenSSL's callbacks
// find the managed TlsSession: the GCHandle is freed right after SSL_free, when no callback can run
// any more, and never before.
// The SSL is freed only by Dispose (its owner's, after the connection's last completion): the finalizer is
// suppressed, so no GC timing can free an SSL while a call on the owner thread still uses its pointers or
// its BIOs'. A session that is never disposed leaks its SSL rather than risking a use-after-free; its weak
// GCHandle lets the managed session be collected, and a callback for it then fails the handshake cleanly.
internal sealed class SafeSslHandle : SafeHandle
{
    // Weak GCHandle to the owning TlsSession, stored in the SSL's ex_data slot.
    private GCHandle _session;

    public SafeSslHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    public static SafeSslHandle Create(SafeSslContextHandle context)
    {
        var result = new SafeSslHandle();
        result.SetHandle(Interop.SSL_new(context));
        GC.SuppressFinalize(result);
        return result;
    }

    // Binds the SSL to its managed owner. Called once, right after creation.
    public void AttachSession(object session)
    {
        _session = GCHandle.Alloc(session, GCHandleType.Weak);
        if (Interop.SSL_set_ex_data(handle, TlsExData.SessionIndex, GCHandle.ToIntPtr(_session)) != 1)
        {
            TlsThrowHelper.ThrowOpenSsl("SSL_set_ex_data");
        }
    }

    protected override bool ReleaseHandle()
    {
        Interop.SSL_free(handle);
        // After SSL_free no callback can be made for this SSL, so the GCHandle is no longer reachable from native code.
        if (_session.IsAllocated)
        {
            _session.Free();
        }
        return true;
    }
}
