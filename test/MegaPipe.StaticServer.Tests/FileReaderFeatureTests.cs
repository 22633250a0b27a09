using MegaPipe.StaticServer.Tests.Infrastructure;
using MegaPipe.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace MegaPipe.StaticServer.Tests;

/// <summary>
/// The transport's IMegaPipeFileReader, used directly by application code: reads at offsets, end of
/// file, many reads of one handle in flight together, disposed handles, on inline and thread-pool scheduling.
/// </summary>
public sealed class FileReaderFeatureTests : IDisposable
{
    private readonly TempSite _site = new();

    public void Dispose() => _site.Dispose();

    // A one-channel MegaPipe server whose only endpoint runs `test` with the request's file reader.
    private static async Task RunAsync(bool inline, Func<IMegaPipeFileReader, IMegaPipeChannelFeature, Task> test)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseMegaPipe(o =>
        {
            o.ChannelCount = 1;
            o.UnsafeInlineScheduling = inline;
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using WebApplication app = builder.Build();
        Exception? failure = null;
        app.Run(async context =>
        {
            try
            {
                await test(context.Features.Get<IMegaPipeFileReader>()!, context.Features.Get<IMegaPipeChannelFeature>()!);
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        await app.StartAsync().WaitAsync(TestTimeouts.Default);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using (var client = new HttpClient { Timeout = TestTimeouts.Default })
        {
            (await client.GetAsync(address)).Dispose();
        }
        await app.StopAsync().WaitAsync(TestTimeouts.Default);
        if (failure is not null)
        {
            throw new Xunit.Sdk.XunitException("The endpoint failed: " + failure);
        }
    }

    // With inline scheduling a read's continuation runs on the channel thread, unless the read
    // completed before its caller awaited it (then the continuation goes to the thread pool). The
    // tests that need to be on the channel thread read until they are, in their own method: a
    // helper method's Task could complete before its caller awaits it, and drop the caller back on
    // the thread pool.
    private const int HopAttempts = 10_000;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReadAsync_ReadsAtOffsets_AndReturnsZeroAtTheEnd(bool inline)
    {
        byte[] content = TempSite.RandomBytes(100_000, 9);
        string path = _site.Write("reader/data.bin", content);
        await RunAsync(inline, async (reader, channel) =>
        {
            using SafeFileHandle file = File.OpenHandle(path);
            for (int i = 0; inline && !channel.IsChannelThread && i < HopAttempts; i++)
            {
                await reader.ReadAsync(file, new byte[1], 0);
            }
            long before = reader.ReadCommands;
            var buffer = new byte[4096];

            Assert.Equal(4096, await reader.ReadAsync(file, buffer, 0));
            Assert.Equal(content[..4096], buffer);
            Assert.Equal(10, await reader.ReadAsync(file, buffer.AsMemory(0, 10), 12_345));
            Assert.Equal(content[12_345..12_355], buffer[..10]);
            Assert.Equal(1000, await reader.ReadAsync(file, buffer, 99_000));   // short read at the end
            Assert.Equal(0, await reader.ReadAsync(file, buffer, 100_000));     // at the end
            Assert.Equal(0, await reader.ReadAsync(file, buffer, 1 << 30));     // past it
            Assert.Equal(5, reader.ReadCommands - before);
            Assert.Equal(inline, channel.IsChannelThread);
            Assert.Equal(0, reader.RegisteredFiles); // nothing in flight: nothing kept registered
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ManyReadsOfOneHandle_InFlightTogether_EachGetsItsBytes(bool inline)
    {
        byte[] content = TempSite.RandomBytes(1 << 20, 10);
        string path = _site.Write("reader/many.bin", content);
        await RunAsync(inline, async (reader, _) =>
        {
            using SafeFileHandle file = File.OpenHandle(path);
            var buffers = Enumerable.Range(0, 64).Select(_ => new byte[16_384]).ToArray();
            // Issued together, before any completes: one registration slot each.
            ValueTask<int>[] reads = Enumerable.Range(0, 64).Select(i => reader.ReadAsync(file, buffers[i], i * 16_384L)).ToArray();
            for (int i = 0; i < reads.Length; i++)
            {
                Assert.Equal(16_384, await reads[i]);
                Assert.Equal(content.AsSpan(i * 16_384, 16_384).ToArray(), buffers[i]);
            }
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AHandleDisposedDuringARead_StaysOpenUntilTheReadCompletes_ThenCloses(bool inline)
    {
        byte[] content = TempSite.RandomBytes(1 << 20, 11);
        string path = _site.Write("reader/disposed.bin", content);
        await RunAsync(inline, async (reader, channel) =>
        {
            SafeFileHandle file = File.OpenHandle(path);
            var buffer = new byte[1 << 20];
            // On the channel thread, a read is issued before ReadAsync returns.
            for (int i = 0; inline && !channel.IsChannelThread && i < HopAttempts; i++)
            {
                await reader.ReadAsync(file, new byte[1], 0);
            }
            Assert.Equal(inline, channel.IsChannelThread);
            ValueTask<int> read = reader.ReadAsync(file, buffer, 0);
            file.Dispose();

            if (inline)
            {
                // Issued before the Dispose: the channel's registration still holds the descriptor.
                Assert.Equal(1 << 20, await read);
                Assert.Equal(content, buffer);
            }
            else
            {
                // Posted to the channel: it either got there before the Dispose or finds the handle closed.
                try
                {
                    Assert.Equal(1 << 20, await read);
                    Assert.Equal(content, buffer);
                }
                catch (ObjectDisposedException)
                {
                }
            }
            // The last read done, the registration went and with it the last reference.
            Assert.Equal(0, reader.RegisteredFiles);
            Assert.True(file.IsClosed);
            await Assert.ThrowsAsync<ObjectDisposedException>(async () => await reader.ReadAsync(file, new byte[1], 0));
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task DispatchCount_HasAdvancedByTheTimeALaterRequestIsRead(bool inline)
    {
        var seen = new List<long>();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseMegaPipe(o =>
        {
            o.ChannelCount = 1;
            o.UnsafeInlineScheduling = inline;
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using WebApplication app = builder.Build();
        app.Run(context =>
        {
            lock (seen)
            {
                seen.Add(context.Features.Get<IMegaPipeChannelFeature>()!.DispatchCount);
            }
            return Task.CompletedTask;
        });
        await app.StartAsync().WaitAsync(TestTimeouts.Default);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using (var client = new HttpClient { Timeout = TestTimeouts.Default })
        {
            for (int i = 0; i < 5; i++)
            {
                (await client.GetAsync(address)).Dispose();
            }
        }
        await app.StopAsync().WaitAsync(TestTimeouts.Default);

        // Each request was sent after the previous response arrived, so it was received in a later
        // turn: a check made for one request never answers for the next.
        Assert.Equal(5, seen.Count);
        for (int i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i] > seen[i - 1], string.Join(", ", seen));
        }
    }

    [Fact]
    public async Task ReadAsync_ValidatesItsArguments()
    {
        string path = _site.Write("reader/args.bin", new byte[16]);
        await RunAsync(inline: true, async (reader, _) =>
        {
            using SafeFileHandle file = File.OpenHandle(path);
            await Assert.ThrowsAsync<ArgumentNullException>(async () => await reader.ReadAsync(null!, new byte[1], 0));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await reader.ReadAsync(file, new byte[1], -1));
            Assert.Equal(0, await reader.ReadAsync(file, Memory<byte>.Empty, 0));
        });
    }
}
