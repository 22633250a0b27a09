// The MegaPipe talk's ping-pong server, on MegaPipe.Core, plus the same server on
// System.Net.Sockets and as Kestrel connection middleware, and a load-generating client, for
// side-by-side measurement.
//
//   server: PingPong server [--port 5001] [--threads N] [--cpus 1,2] [--size 64]
//           [--transport megapipe|sockets|kestrel-megapipe|kestrel-sockets] [--inline]
//           [--no-batching] [--no-partitioning] [--no-lightweight]
//   client: PingPong client [--port 5001] [--threads N] [--cpus 0,1] [--connections C] [--size 64]
//           [--warmup 0] [--duration 10] [--transactions T (per connection, 0 = keep alive)]
//   client --control: reads "run <client options>" lines on stdin, answers each with one line of
//           JSON; "quit" exits. One client process then serves a whole experiment.
//
// --size is the message size for the client and the receive buffer for the server (which echoes
// whatever it reads, so a server with a large buffer serves any message size). The server answers
// control lines on stdin: "mark" starts a measurement window, "stats" prints one line of JSON with
// the window's counters (allocations, CPU, MegaPipe channel counters), "heap" prints the live
// managed heap after a full collection, "quit" exits.
using PingPong;

var options = PingPongOptions.Parse(args);
switch (options.Mode)
{
    case "server":
        IPingPongServer server = options.Transport switch
        {
            "sockets" => new SocketsServer(options),
            "megapipe" => new MegaPipeServer(options),
            _ => new KestrelServer(options),
        };
        server.Start();
        Console.WriteLine($"listening on {server.LocalEndPoint} ({options.Transport}, {options.Threads} threads)");
        ServerControl.Run(server);
        break;
    case "client" when options.Control:
        string? line;
        while ((line = Console.ReadLine()) is not null && line.Trim() != "quit")
        {
            if (!line.StartsWith("run", StringComparison.Ordinal))
            {
                continue;
            }
            var run = PingPongOptions.Parse(["client", .. line[3..].Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
            ClientResult r = new MegaPipeClient(run).Run(() => Console.WriteLine("measuring"));
            Console.WriteLine(r.ToJson());
        }
        break;
    case "client":
        ClientResult result = new MegaPipeClient(options).Run(() => Console.WriteLine("measuring"));
        Console.WriteLine(result.ToJson());
        break;
    default:
        Console.Error.WriteLine("usage: PingPong server|client [options]  (see Program.cs)");
        return 2;
}
return 0;
