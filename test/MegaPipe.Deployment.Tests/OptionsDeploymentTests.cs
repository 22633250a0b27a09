namespace MegaPipe.Deployment.Tests;

/// <summary>
/// Bad settings given as a user gives them (the command line, the environment) stop samples/WebApp
/// at start-up with a message that names the setting and its range, not a NullReferenceException
/// or a silent fallback.
/// </summary>
public sealed class OptionsDeploymentTests
{
    [Theory]
    [InlineData("--MegaPipe:ReceiveBufferSize", "0", "MegaPipe:ReceiveBufferSize must be between 64 and 1048576 bytes (it is 0).")]
    [InlineData("--MegaPipe:ReceiveBufferSize", "100000000", "MegaPipe:ReceiveBufferSize must be between 64 and 1048576 bytes (it is 100000000).")]
    [InlineData("--MegaPipe:ReceiveBufferCount", "1000", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768")]
    [InlineData("--MegaPipe:ReceiveBufferCount", "-1", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768")]
    [InlineData("--MegaPipe:ChannelCount", "0", "MegaPipe:ChannelCount must be between 1 and 1024")]
    [InlineData("--MegaPipe:Backlog", "-1", "MegaPipe:Backlog must be between 1 and 65535")]
    public async Task ABadOptionOnTheCommandLine_StopsTheAppWithItsName(string option, string value, string message)
    {
        (int exitCode, string output) = await WebAppProcess.RunExpectingStartupFailureAsync("http://127.0.0.1:0", option, value);
        Assert.NotEqual(0, exitCode);
        Assert.Contains(message, output, StringComparison.Ordinal);
        Assert.DoesNotContain("NullReferenceException", output, StringComparison.Ordinal);
        Assert.DoesNotContain("epoll fallback", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABogusEngineInTheEnvironment_StopsTheAppWithTheVariablesName()
    {
        (int exitCode, string output) = await WebAppProcess.RunExpectingStartupFailureAsync("http://127.0.0.1:0",
            new Dictionary<string, string> { ["MEGAPIPE_ENGINE"] = "bogus" });
        Assert.NotEqual(0, exitCode);
        Assert.Contains("MEGAPIPE_ENGINE=bogus is not an engine: use io_uring, epoll or auto", output, StringComparison.Ordinal);
        Assert.DoesNotContain("NullReferenceException", output, StringComparison.Ordinal);
    }
}
