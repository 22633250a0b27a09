namespace MegaPipe.Tls.Tests.Infrastructure;

// Generous: the suite runs on a loaded 2-core machine. Waits end on events, never on these unless something is wrong.
internal static class TestTimeouts
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(60);
}
