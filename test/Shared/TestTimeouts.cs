// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tests.Shared;

/// <summary>
/// Generous bounds for a loaded 2-core machine: tests wait on events, and these only stop a hang.
/// </summary>
public static class TestTimeouts
{
    /// <summary>A request, a handshake, a connection's close: anything one exchange does.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

    /// <summary>Work that is slow by nature: many connections, a child process's start, an external client's run.</summary>
    public static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
}
