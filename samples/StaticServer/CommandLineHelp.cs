namespace MegaPipe.StaticServer;

/// <summary><c>StaticServer --help</c>: the options, named after the nginx directives they stand for.</summary>
internal static class CommandLineHelp
{
    public const string Text = """
        StaticServer: an nginx-style static file server on ASP.NET Core and MegaPipe (io_uring).

        usage: StaticServer [--root DIR] [--urls URL[;URL...]] [--https_url URL --cert FILE --key FILE] [options]

          --root DIR                    nginx root: the directory served; a relative path is relative
                                        to the current directory (default: the current directory)
          --urls URLS                   where to listen (default: http://127.0.0.1:8080)
          --index "a.html b.html"       nginx index: files tried for a directory (default: index.html)
          --autoindex on|off            nginx autoindex: list a directory without an index (default: off, 403)
          --default_type TYPE           nginx default_type (default: application/octet-stream)
          --types:EXT TYPE              nginx types: the Content-Type of .EXT files (e.g. --types:md text/markdown)
          --cache_control VALUE         the Cache-Control header of file responses (default: none)
          --access_log FILE|stdout|off  nginx access_log in the combined format (default: off)
          --precompressed on|off        nginx gzip_static + brotli_static: serve file.br / file.gz (default: on)
          --open_file_cache_max N       nginx open_file_cache max: paths kept open (default: 1000)
          --max_cached_file_size SIZE   files up to SIZE are kept in memory (default: 256k)
          --content_cache_size SIZE     memory of the content cache in total (default: 64m)
          --read_chunk_size SIZE        each read of a streamed file, at least 4k (default: 256k)
          --watch on|off                drop cache entries on inotify events (default: on)
          --https_url URLS              where to listen with TLS (nginx listen ... ssl), e.g. https://0.0.0.0:8443;
                                        plain HTTP then only on --urls given
          --cert FILE                   nginx ssl_certificate: PEM certificate, then its chain
          --key FILE                    nginx ssl_certificate_key: PEM private key (RSA or EC)
          --tls channel|sslstream       TLS on the MegaPipe channels, or Kestrel's SslStream (default: channel)
          --transport megapipe|sockets  Kestrel's transport (default: megapipe)
          --MegaPipe:OPTION VALUE       a MegaPipe transport option, e.g. --MegaPipe:ChannelCount 1
                                        (the handler runs on the channel thread unless
                                        --MegaPipe:UnsafeInlineScheduling false)
          -h, --help                    print this help and exit

        SIZE is bytes or a number with k, m or g (nginx sizes). Environment: MEGAPIPE_ENGINE=io_uring|epoll
        forces the channels' engine; ASPNETCORE_URLS sets --urls.

        """;

    /// <summary>Whether the command line asks for help (<c>-h</c> or <c>--help</c>, anywhere).</summary>
    public static bool IsRequested(string[] args) => args.Any(a => a is "-h" or "--help");
}
