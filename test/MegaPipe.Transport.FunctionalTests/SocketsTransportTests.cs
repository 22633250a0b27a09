using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>Every <see cref="TransportTests"/> test on Kestrel's built-in Sockets transport: the reference behaviour.</summary>
public sealed class SocketsTransportTests(ITestOutputHelper output) : TransportTests(output)
{
    protected override TestTransport Transport => TestTransport.Sockets;
}
