// An unmodified ASP.NET Core app: the only MegaPipe line is UseMegaPipe().
//   dotnet run -c Release --project samples/WebApp                       (MegaPipe, 127.0.0.1:5000)
//   dotnet run -c Release --project samples/WebApp -- --transport sockets (Kestrel's Sockets transport)
// Transport options bind from the "MegaPipe" section, e.g. --MegaPipe:UnsafeInlineScheduling true.
// Started by systemd socket activation it serves the sockets it is handed (see UseSystemd below).
// --diagnostics (or WebApp:Diagnostics=true) maps GET /_diag for soak runs: see Diagnostics.cs and perf/soak.
// --https_url https://127.0.0.1:5001 [--cert cert.pem --key key.pem] [--tls channel|sslstream] adds HTTPS, its TLS
// terminated on the channels (UseMegaPipeHttps) unless --tls sslstream: see HttpsEndpoints.cs.
bool diagnostics = Diagnostics.IsEnabled(ref args);
var builder = WebApplication.CreateBuilder(args);
diagnostics |= string.Equals(builder.Configuration["WebApp:Diagnostics"], "true", StringComparison.OrdinalIgnoreCase);
// Started before the server so that Kestrel's up-down counters are summed from their first change.
using Diagnostics? diag = diagnostics ? new Diagnostics() : null;
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("MegaPipe.Transport", LogLevel.Information);
builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);

string transport = builder.Configuration["transport"] ?? "megapipe";
if (transport.Equals("megapipe", StringComparison.OrdinalIgnoreCase))
{
    builder.WebHost.UseMegaPipe();
}
else if (!transport.Equals("sockets", StringComparison.OrdinalIgnoreCase))
{
    Console.Error.WriteLine($"unknown transport '{transport}': use megapipe or sockets");
    return 2;
}
try
{
    if (!HttpsEndpoints.Configure(builder) && builder.Configuration["urls"] is null && builder.Configuration["ASPNETCORE_URLS"] is null)
    {
        builder.WebHost.UseUrls("http://127.0.0.1:5000");
    }
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"WebApp: {e.Message}");
    return 2;
}
// Under systemd socket activation (or systemd-socket-activate) Kestrel serves the sockets it was
// handed, and MegaPipe serves them on its channels; otherwise this does nothing.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.UseSystemd());

var app = builder.Build();
app.UseStaticFiles();

byte[] hello = "Hello, World!"u8.ToArray();
app.MapGet("/plaintext", (HttpContext context) =>
{
    context.Response.ContentType = "text/plain";
    context.Response.ContentLength = hello.Length;
    return context.Response.Body.WriteAsync(hello).AsTask();
});
app.MapGet("/json", () => Results.Json(new JsonMessage("Hello, World!"), WebAppJsonContext.Default.JsonMessage));
diag?.Map(app);
app.MapGet("/", () => Results.Text($"MegaPipe.NET sample web app on the {transport} transport: try /plaintext, /json, /index.html\n"));

app.Run();
return 0;
