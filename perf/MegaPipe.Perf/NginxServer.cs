using System.Diagnostics;

namespace MegaPipe.Perf;

// Debian's nginx as the reference server: one worker pinned to the server CPU, sendfile and
// open_file_cache on, access log off. The experiments differ only in the MIME types and the
// body of the server block.
public sealed class NginxServer : IDisposable
{
    public const string Executable = "/usr/sbin/nginx";

    private readonly string _dir;
    private readonly Process _master;

    // listenParameters: after the address of the listen directive, e.g. " ssl http2".
    public NginxServer(PerfSettings settings, int port, string types, string serverBody, string listenParameters = "")
    {
        _dir = Directory.CreateTempSubdirectory("megapipe-nginx").FullName;
        File.WriteAllText(Path.Combine(_dir, "nginx.conf"), $$"""
            worker_processes 1;
            daemon off;
            pid {{_dir}}/nginx.pid;
            error_log {{_dir}}/error.log;
            events { worker_connections 20000; }
            http {
              access_log off;
              sendfile on;
              tcp_nopush on;
              open_file_cache max=1000 inactive=60s;
              keepalive_requests 10000000;
              types { {{types}} }
              client_body_temp_path {{_dir}};
              server {
                listen 127.0.0.1:{{port}}{{listenParameters}} backlog=512;
                {{serverBody}}
              }
            }
            """);
        _master = ProcessRunner.Start(Executable, $"-c {_dir}/nginx.conf -p {_dir}", settings.ServerCpu);
        ServerProbe.WaitForPort(port);
        // The worker does the work; the master only waits.
        WorkerPids = ServerProbe.ChildPids(_master.Id).ToArray();
    }

    public int[] WorkerPids { get; }

    public void Dispose()
    {
        ProcessRunner.Stop(_master);
        _master.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
