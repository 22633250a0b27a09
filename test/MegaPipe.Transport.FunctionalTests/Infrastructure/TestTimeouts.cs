namespace MegaPipe.Transport.FunctionalTests.Infrastructure;

// Generous bounds for a loaded 2-core machine: tests wait on events, these only stop a hang.
internal static class TestTimeouts
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
}
