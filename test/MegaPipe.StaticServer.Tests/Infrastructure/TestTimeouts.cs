namespace MegaPipe.StaticServer.Tests.Infrastructure;

public static class TestTimeouts
{
    /// <summary>Generous: a slow shared machine must not fail a correct server.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);
}
