namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>The Kestrel transport a test server runs on.</summary>
public enum TestTransport
{
    /// <summary>builder.WebHost.UseMegaPipe(o => o.ChannelCount = 2).</summary>
    MegaPipe,

    /// <summary>Plain Kestrel: its built-in Sockets transport.</summary>
    Sockets,

    /// <summary>UseMegaPipe with the epoll fallback engine forced (MegaPipeTransportOptions.Engine = Epoll).</summary>
    MegaPipeEpoll,
}

public static class TestTransportExtensions
{
    /// <summary>True for the MegaPipe transport on either engine.</summary>
    public static bool IsMegaPipe(this TestTransport transport) => transport is TestTransport.MegaPipe or TestTransport.MegaPipeEpoll;
}
