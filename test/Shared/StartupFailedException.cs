// Licensed under the MIT License. See LICENSE in the repository root.

namespace MegaPipe.Tests.Shared;

/// <summary>A <see cref="WebHostProcess"/> exited before it listened: its exit code and everything it printed.</summary>
public sealed class StartupFailedException(string name, int exitCode, string output)
    : Exception($"{name} exited with {exitCode} before listening:\n{output}")
{
    public int ExitCode { get; } = exitCode;

    public string Output { get; } = output;
}
