// An nginx-style static file server on ASP.NET Core and MegaPipe:
//   dotnet run -c Release --project samples/StaticServer -- --root ./site --urls http://0.0.0.0:8080
// Options are named after nginx directives: --index, --autoindex on, --default_type, --cache_control,
// --access_log <file|stdout>, --precompressed off, --open_file_cache_max; --transport sockets for comparison.
// --help lists them all.
using MegaPipe.StaticServer;

if (CommandLineHelp.IsRequested(args))
{
    Console.Out.Write(CommandLineHelp.Text);
    return 0;
}

try
{
    WebApplication app = StaticServerApp.Build(args);
    app.Run();
    return 0;
}
catch (Exception e) when (e is ArgumentException or DirectoryNotFoundException or FormatException)
{
    Console.Error.WriteLine($"StaticServer: {e.Message}");
    return 2;
}
