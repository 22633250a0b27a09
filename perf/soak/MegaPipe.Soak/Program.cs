// Clients for perf/soak/soak.sh (see perf/soak/README.md):
//   MegaPipe.Soak resets   --port P [--duration 60] [--connections 4] [--modes ResetIdle,...] [--large-path /soak-1m.bin] [--large-file FILE]
//   MegaPipe.Soak shutdown --port P --pid SERVER_PID [--connections 48] [--after 3] [--large-path ...] [--large-file FILE] [--small-file FILE]
// Either over HTTPS with --tls.
using MegaPipe.Soak;

if (args.Length == 0)
{
    Console.Error.WriteLine("usage: MegaPipe.Soak resets|shutdown --port P [options]; see perf/soak/README.md");
    return 2;
}
var options = new Options(args.Skip(1));
// --tls: every connection over HTTPS (the server's self-signed certificate accepted).
HttpClientConnection.Tls = options.Get("tls", "false") == "true";
return args[0] switch
{
    "resets" => await ResetClient.RunAsync(options),
    "shutdown" => await ShutdownChecker.RunAsync(options),
    _ => 2,
};
