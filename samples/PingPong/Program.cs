// The MegaPipe talk's ping-pong server, on MegaPipe.Core, plus the same server on
// System.Net.Sockets and a load-generating client, for side-by-side measurement.
//
//   server: PingPong server [--port 5001] [--threads N] [--transport megapipe|sockets] [--size 64]
//           [--no-batching] [--no-partitioning] [--no-lightweight]
//   client: PingPong client [--port 5001] [--threads N] [--connections C] [--size 64]
//           [--duration 10] [--transactions T (per connection, 0 = keep alive)]
//
// The server answers control lines on stdin: "mark" starts a measurement window, "stats" prints
// one line of JSON with the window's counters (allocations, MegaPipe channel counters), "quit" exits.
using System.Net;
using MegaPipe;
using PingPong;

var options = PingPongOptions.Parse(args);
switch (options.Mode)
{
    case "server":
        IPingPongServer server = options.Transport == "sockets" ? new SocketsServer(options) : new MegaPipeServer(options);
        server.Start();
        Console.WriteLine($"listening on {server.LocalEndPoint} ({options.Transport}, {options.Threads} threads)");
        ServerControl.Run(server);
        break;
    case "client":
        ClientResult result = new MegaPipeClient(options).Run();
        Console.WriteLine(result.ToJson());
        break;
    default:
        Console.Error.WriteLine("usage: PingPong server|client [options]  (see Program.cs)");
        return 2;
}
return 0;
