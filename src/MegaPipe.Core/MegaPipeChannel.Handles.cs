// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using System.Runtime.InteropServices;
using MegaPipe.Internal;

namespace MegaPipe;

// The handle table: registration (mp_register), per-handle queries, and the slots of handles.
public sealed partial class MegaPipeChannel
{
    // The handle records; a MegaPipeHandle names its slot and the generation it was issued for.
    private readonly SlotTable<HandleState> _handles = new(64, static index => new HandleState(index));

    /// <summary>
    /// Registers a descriptor the caller owns (mp_register). The descriptor stays open after
    /// <see cref="Unregister"/>; with <paramref name="ownsHandle"/> it is closed with the handle.
    /// </summary>
    public MegaPipeHandle Register(SafeHandle descriptor, HandleKind kind, object? cookie = null, bool ownsHandle = false)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        CheckOwner();
        bool added = false;
        descriptor.DangerousAddRef(ref added);
        HandleState state = AllocateHandle(kind, (int)descriptor.DangerousGetHandle(), isDirect: false, ownsDescriptor: ownsHandle);
        state.External = descriptor;
        state.Cookie = cookie;
        return HandleOf(state);
    }

    /// <summary>
    /// Registers this channel's accept queue of <paramref name="listener"/>: partition
    /// <paramref name="partition"/> of a partitioned listener, or the shared socket otherwise.
    /// The channel works on its own duplicate of the socket, so the listener and the channel can
    /// be disposed in either order; the queue stops accepting once both have closed it.
    /// </summary>
    public MegaPipeHandle RegisterListener(MegaPipeListener listener, int partition, object? cookie = null)
    {
        ArgumentNullException.ThrowIfNull(listener);
        CheckOwner();
        SafeHandle socket = listener.GetSocket(partition).SafeHandle;
        int fd = Interop.fcntl((int)socket.DangerousGetHandle(), Interop.F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
        {
            ThrowHelper.ThrowLastErrno("fcntl(F_DUPFD_CLOEXEC)");
        }
        _otherSystemCalls++;
        HandleState state = AllocateHandle(HandleKind.Listener, fd, isDirect: false, ownsDescriptor: true);
        state.Cookie = cookie;
        state.ListenerEndPoint = listener.LocalEndPoint;
        return HandleOf(state);
    }

    /// <summary>Sets the cookie every later event of <paramref name="handle"/> carries (for example after an accept).</summary>
    public void SetCookie(MegaPipeHandle handle, object? cookie) => Resolve(handle).Cookie = cookie;

    /// <summary>The cookie registered with <paramref name="handle"/>.</summary>
    public object? GetCookie(MegaPipeHandle handle) => Resolve(handle).Cookie;

    /// <summary>True when <paramref name="handle"/> is open in this channel.</summary>
    public bool IsOpen(MegaPipeHandle handle)
    {
        HandleState? state = handle.ChannelId == Id ? _handles.TryGet(handle.Index) : null;
        return state is not null && state.Generation == handle.Generation && state.Status == HandleStatus.Open;
    }

    /// <summary>True when the handle is a lightweight socket (a direct descriptor with no process fd).</summary>
    public bool IsLightweight(MegaPipeHandle handle) => Resolve(handle).IsDirect;

    /// <summary>The regular descriptor of a handle that has one; false for a lightweight socket.</summary>
    public bool TryGetDescriptor(MegaPipeHandle handle, out int descriptor)
    {
        HandleState state = Resolve(handle);
        descriptor = state.IsDirect ? -1 : state.Fd;
        return !state.IsDirect && state.Fd >= 0;
    }

    /// <summary>The peer address of an accepted or connected socket.</summary>
    public EndPoint? GetRemoteEndPoint(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        return state.PeerAddress is null || state.PeerAddressLength == 0
            ? null
            : SocketAddressConverter.ToEndPoint(state.PeerAddress.AsSpan(0, state.PeerAddressLength));
    }

    /// <summary>
    /// The local address of a socket: for an accepted connection the listener's bound address
    /// (a lightweight socket has no descriptor to ask getsockname(2), so a wildcard listener
    /// reports its wildcard address), for a listener its bound address.
    /// </summary>
    public EndPoint? GetLocalEndPoint(MegaPipeHandle handle)
    {
        HandleState state = Resolve(handle);
        if (!state.IsDirect && state.Fd >= 0 && state.Kind == HandleKind.Socket)
        {
            EndPoint? actual = GetSockName(state.Fd);
            if (actual is not null)
            {
                return actual;
            }
        }
        return state.LocalEndPoint ?? state.ListenerEndPoint;
    }

    private static unsafe EndPoint? GetSockName(int fd)
    {
        byte* buffer = stackalloc byte[SocketAddressConverter.MaxSize];
        uint length = SocketAddressConverter.MaxSize;
        if (Interop.getsockname(fd, buffer, &length) != 0)
        {
            return null;
        }
        return SocketAddressConverter.ToEndPoint(new ReadOnlySpan<byte>(buffer, (int)length));
    }

    private HandleState AllocateHandle(HandleKind kind, int fd, bool isDirect, bool ownsDescriptor)
    {
        HandleState state = _handles.Rent();
        state.Status = HandleStatus.Open;
        state.Kind = kind;
        state.Fd = fd;
        state.IsDirect = isDirect;
        state.OwnsDescriptor = ownsDescriptor;
        return state;
    }

    private void FreeHandle(HandleState state)
    {
        bool freedDescriptor = state.Kind == HandleKind.Socket && state.OwnsDescriptor;
        if (state.HoldsProcessDescriptor)
        {
            DescriptorBudget.Release();
        }
        state.Reset();
        _handles.Return(state.Index);
        if (freedDescriptor && _acceptsPaused.Count != 0)
        {
            // A descriptor (or table slot) was freed: accepting paused for lack of one can resume.
            ResumePausedAccepts();
        }
    }

    private MegaPipeHandle HandleOf(HandleState state) => new(Id, state.Index, state.Generation);

    // Validates a handle: right thread, this channel, still registered and open.
    private HandleState Resolve(MegaPipeHandle handle)
    {
        CheckOwner();
        if (handle.ChannelId != Id)
        {
            ThrowHelper.ThrowForeignHandle();
        }
        HandleState? state = _handles.TryGet(handle.Index);
        if (state is null || state.Generation != handle.Generation || state.Status != HandleStatus.Open)
        {
            ThrowHelper.ThrowStaleHandle();
        }
        return state;
    }
}
