namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

/// <summary>The Kestrel transport a test server runs on.</summary>
public enum TestTransport
{
    /// <summary>builder.WebHost.UseMegaPipe(o => o.ChannelCount = 2).</summary>
    MegaPipe,

    /// <summary>Plain Kestrel: its built-in Sockets transport.</summary>
    Sockets,
}
