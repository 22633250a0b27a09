// Licensed under the MIT License. See LICENSE in the repository root.

using System.Net;
using Microsoft.Extensions.Logging;

namespace MegaPipe.Transport.Internal;

// The HTTPS configuration of each endpoint set up with UseMegaPipeHttps, for the transport to find in BindAsync, which
// receives only the EndPoint. Kestrel passes the ListenOptions' own EndPoint object to the transport, so that is the
// key; ListenLocalhost(port) and ListenAnyIP(port) bind clones with new EndPoint objects (127.0.0.1 and ::1, or :: and
// 0.0.0.0, on the same port), which are matched by loopback-or-any address and the same nonzero port. One per host
// (a singleton service registered by UseMegaPipe); it disposes the endpoints' TLS contexts with the host.
internal sealed class HttpsEndpointRegistry : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<MegaPipeHttpsEndpoint> _endpoints = new();
    // OpenSSL 3 could not be loaded and that was logged (once per host).
    private int _libraryLogged;

    public void Add(MegaPipeHttpsEndpoint endpoint)
    {
        lock (_gate)
        {
            _endpoints.Add(endpoint);
        }
    }

    /// <summary>The HTTPS configuration for the endpoint Kestrel is binding, or <see langword="null"/> for plain HTTP.</summary>
    public MegaPipeHttpsEndpoint? Find(EndPoint endPoint)
    {
        lock (_gate)
        {
            // The last registration wins, as the last UseHttps does for a ListenOptions configured twice.
            for (int i = _endpoints.Count - 1; i >= 0; i--)
            {
                if (ReferenceEquals(_endpoints[i].EndPoint, endPoint))
                {
                    return _endpoints[i];
                }
            }
            if (endPoint is not IPEndPoint { Port: > 0 } bound || AddressClass(bound.Address) == Kind.Specific)
            {
                return null;
            }
            MegaPipeHttpsEndpoint? match = null;
            for (int i = _endpoints.Count - 1; i >= 0; i--)
            {
                if (_endpoints[i].ClonedAtBind && _endpoints[i].EndPoint is IPEndPoint registered && registered.Port == bound.Port && AddressClass(registered.Address) == AddressClass(bound.Address))
                {
                    match = _endpoints[i];
                    break;
                }
            }
            return match;
        }
    }

    public void LogLibraryUnavailableOnce(ILogger logger, string reason)
    {
        if (Interlocked.Exchange(ref _libraryLogged, 1) == 0)
        {
            MegaPipeTlsLog.TlsLibraryUnavailable(logger, reason);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (MegaPipeHttpsEndpoint endpoint in _endpoints)
            {
                endpoint.Dispose();
            }
            _endpoints.Clear();
        }
    }

    private enum Kind
    {
        Specific,
        Loopback,
        Any,
    }

    private static Kind AddressClass(IPAddress address)
    {
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            return Kind.Any;
        }
        return IPAddress.IsLoopback(address) && (address.Equals(IPAddress.Loopback) || address.Equals(IPAddress.IPv6Loopback)) ? Kind.Loopback : Kind.Specific;
    }
}
