// A memcached server (text protocol: get/gets/set/add/replace/append/prepend/cas/delete/incr/decr/
// touch/flush_all/stats/version, noreply) as Kestrel connection middleware, on MegaPipe or on
// Kestrel's Sockets transport: the paper's memcached experiment with this stack.
//   dotnet run -c Release --project perf/MemcachedServer -- [--port 11211] [--host 127.0.0.1]
//       [--transport megapipe|sockets] [--memory-limit-mb 64] [--max-item-size 1048576]
//       [--MegaPipe:ChannelCount 1] [--MegaPipe:UnsafeInlineScheduling true]
// Memory is bounded as memcached's -m: beyond --memory-limit-mb the least recently used items go.
using System.Globalization;
using System.Net;
using MegaPipe.Memcached;
using Microsoft.AspNetCore.Connections;

WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
IConfiguration config = builder.Configuration;
string transport = config["transport"] ?? "megapipe";
string host = config["host"] ?? "127.0.0.1";
int port = int.Parse(config["port"] ?? "11211", CultureInfo.InvariantCulture);
long memoryLimit = long.Parse(config["memory-limit-mb"] ?? "64", CultureInfo.InvariantCulture) * 1024 * 1024;
int maxItemSize = int.Parse(config["max-item-size"] ?? MemcachedSession.DefaultMaxItemSize.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

if (transport == "megapipe")
{
    builder.WebHost.UseMegaPipe();
}
else if (transport != "sockets")
{
    Console.Error.WriteLine($"unknown transport '{transport}': use megapipe or sockets");
    return 2;
}
builder.Services.AddSingleton(new MemcachedStore(memoryLimit));
builder.Services.AddSingleton(new MemcachedServerOptions(maxItemSize));
builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Parse(host), port, l => l.UseConnectionHandler<MemcachedConnectionHandler>()));

WebApplication app = builder.Build();
await app.StartAsync();
Console.WriteLine($"listening on {host}:{port} ({transport}, memory limit {memoryLimit / (1024 * 1024)} MB)");
await app.WaitForShutdownAsync();
return 0;
