using System.Globalization;
using System.Net;
using System.Reflection;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// Every invalid option stops the host at start-up with a message that names the option and its
/// allowed range, on either engine: none starts half-working or silently changes the engine.
/// </summary>
public sealed class OptionsValidationTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string, ChannelEngine> InvalidValues()
    {
        var data = new TheoryData<string, string, string, ChannelEngine>();
        (string Option, string Value, string Message)[] cases =
        [
            ("ReceiveBufferSize", "0", "MegaPipe:ReceiveBufferSize must be between 64 and 1048576 bytes (it is 0)."),
            ("ReceiveBufferSize", "-1", "MegaPipe:ReceiveBufferSize must be between 64 and 1048576 bytes (it is -1)."),
            ("ReceiveBufferSize", "100000000", "MegaPipe:ReceiveBufferSize must be between 64 and 1048576 bytes (it is 100000000)."),
            ("ReceiveBufferCount", "-1", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768"),
            ("ReceiveBufferCount", "0", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768"),
            ("ReceiveBufferCount", "1000", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768, the sizes an io_uring provided-buffer ring can have (it is 1000)."),
            ("ReceiveBufferCount", "65536", "MegaPipe:ReceiveBufferCount must be a power of two between 1 and 32768"),
            ("ChannelCount", "0", "MegaPipe:ChannelCount must be between 1 and 1024"),
            ("ChannelCount", "-2", "MegaPipe:ChannelCount must be between 1 and 1024"),
            ("Backlog", "0", "MegaPipe:Backlog must be between 1 and 65535"),
            ("Backlog", "-5", "MegaPipe:Backlog must be between 1 and 65535"),
            ("MaxConnections", "0", "MegaPipe:MaxConnections must be at least 1, or unset for no limit (it is 0)."),
        ];
        foreach ((string option, string value, string message) in cases)
        {
            data.Add(option, value, message, ChannelEngine.IoUring);
            data.Add(option, value, message, ChannelEngine.Epoll);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(InvalidValues))]
    public async Task InvalidOption_FailsAtStartup_NamingTheOptionAndItsRange(string option, string value, string message, ChannelEngine engine)
    {
        PropertyInfo property = typeof(MegaPipeTransportOptions).GetProperty(option)!;
        Type type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0),
            options =>
            {
                options.Engine = engine;
                property.SetValue(options, Convert.ChangeType(value, type, CultureInfo.InvariantCulture));
            },
            output));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Single(error.Failures);
    }

    [Fact]
    public async Task SeveralInvalidOptions_AreReportedTogether()
    {
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            configureMegaPipe: options =>
            {
                options.ChannelCount = 0;
                options.ReceiveBufferSize = 0;
                options.Engine = (ChannelEngine)42;
            },
            output: output));
        Assert.Equal(3, error.Failures.Count());
        Assert.Contains("MegaPipe:Engine must be Auto, IoUring or Epoll (it is 42).", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReceiveBuffersBeyondAGibibytePerChannel_AreRefused()
    {
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            configureMegaPipe: options =>
            {
                options.ReceiveBufferCount = 32768;
                options.ReceiveBufferSize = 1024 * 1024;
            },
            output: output));
        Assert.Equal("MegaPipe:ReceiveBufferCount x MegaPipe:ReceiveBufferSize must be at most 1073741824 bytes per channel (it is 34359738368).", Assert.Single(error.Failures));
    }

    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task ValidEdgeValues_Serve(ChannelEngine engine)
    {
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            configureMegaPipe: options =>
            {
                options.Engine = engine;
                options.ChannelCount = 1;
                options.ReceiveBufferCount = 1;
                options.ReceiveBufferSize = 64;
                options.Backlog = 1;
                options.MaxConnections = 1;
            },
            output: output);
        using RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
        // One 64-byte buffer at a time still carries a request and a 1 MiB upload.
        Assert.Equal(CommonEndpoints.Hello, (await connection.RequestAsync(RawHttpConnection.Get("/hello"))).BodyText);
        byte[] body = TestData.Payload(1024 * 1024).ToArray();
        await connection.SendAsync($"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n");
        await connection.SendAsync(body);
        Assert.Equal($"{body.Length} {TestData.Sha256Hex(body)}", (await connection.ReadResponseAsync()).BodyText);
        server.AssertNoErrorsLogged();
    }
}
