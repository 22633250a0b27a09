using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using MegaPipe.Transport.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Connections;
using Xunit.Abstractions;

namespace MegaPipe.Transport.FunctionalTests;

/// <summary>
/// The hand-off of new connections to Kestrel: one dispatch turn after the accept, with the bytes
/// the client sent by then already in the input pipe; connections that send nothing (a silent
/// client, a protocol where the server speaks first) are handed off all the same.
/// </summary>
public sealed class HandOffTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task ARequestAlreadySent_IsInTheInputPipe_WhenKestrelGetsTheConnection(ChannelEngine engine)
    {
        string request = RawHttpConnection.Get("/hello");
        var firstReads = new List<string?>();
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => CommonEndpoints.Map(app),
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => async connection =>
            {
                // What Kestrel's first read of the connection would find without waiting.
                string? seen = connection.Transport.Input.TryRead(out ReadResult result) ? Encoding.ASCII.GetString(result.Buffer.ToArray()) : null;
                if (seen is not null)
                {
                    connection.Transport.Input.AdvanceTo(result.Buffer.Start);
                }
                lock (firstReads)
                {
                    firstReads.Add(seen);
                }
                await next(connection);
            })),
            options =>
            {
                options.Engine = engine;
                options.ChannelCount = 1;
                options.MaxConnections = 1;
            },
            output);

        // The limit holds accepting: the next connections wait in the backlog with their request
        // in the socket, so it is there before the channel accepts them.
        using RawHttpConnection holder = await RawHttpConnection.ConnectAsync(server.EndPoint);
        Assert.Equal(200, (await holder.RequestAsync(request)).StatusCode);
        await server.Logs.WaitForAsync(e => e.EventId.Name == "ConnectionLimitReached");
        var waiting = new List<RawHttpConnection>();
        var answers = new List<Task<RawHttpResponse>>();
        for (int i = 0; i < 3; i++)
        {
            RawHttpConnection connection = await RawHttpConnection.ConnectAsync(server.EndPoint);
            waiting.Add(connection);
            answers.Add(connection.RequestAsync(request));
        }
        holder.Dispose();
        // Each is served in turn as the one before it closes.
        for (int i = 0; i < answers.Count; i++)
        {
            Assert.Equal(CommonEndpoints.Hello, (await answers[i].WaitAsync(TestTimeouts.Default)).BodyText);
            waiting[i].Dispose();
        }
        lock (firstReads)
        {
            Assert.Equal(4, firstReads.Count);
            // The three that waited: the whole request, in the pipe before Kestrel's first read.
            Assert.All(firstReads.Skip(1), seen => Assert.Equal(request, seen));
        }
        server.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData(ChannelEngine.IoUring)]
    [InlineData(ChannelEngine.Epoll)]
    public async Task AServerFirstProtocol_AndASilentClient_StillReachKestrel(ChannelEngine engine)
    {
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using TestServer server = await TestServer.StartAsync(
            TestTransport.MegaPipe,
            app => { },
            kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Run(async connection =>
            {
                // A banner first, as SMTP or FTP servers speak: the client says nothing until it has it.
                connected.TrySetResult();
                await connection.Transport.Output.WriteAsync("220 ready\r\n"u8.ToArray());
                ReadResult result = await connection.Transport.Input.ReadAsync();
                string line = Encoding.ASCII.GetString(result.Buffer.ToArray());
                connection.Transport.Input.AdvanceTo(result.Buffer.End);
                await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes("250 " + line));
            })),
            options => options.Engine = engine,
            output);

        using RawHttpConnection client = await RawHttpConnection.ConnectAsync(server.EndPoint);
        // The silent client reached the connection handler without sending a byte.
        await connected.Task.WaitAsync(TestTimeouts.Default);
        byte[] banner = new byte[11];
        int read = 0;
        while (read < banner.Length)
        {
            read += await client.Socket.ReceiveAsync(banner.AsMemory(read));
        }
        Assert.Equal("220 ready\r\n", Encoding.ASCII.GetString(banner));
        await client.SendAsync("HELO x\r\n");
        byte[] reply = new byte[12];
        read = 0;
        while (read < reply.Length)
        {
            read += await client.Socket.ReceiveAsync(reply.AsMemory(read));
        }
        Assert.Equal("250 HELO x\r\n", Encoding.ASCII.GetString(reply));
    }
}
