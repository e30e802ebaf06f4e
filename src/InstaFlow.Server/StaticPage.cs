// Serves the web page (index.html, app.js, style.css) from resources embedded in this assembly, so the server
// needs no folder beside the program and no build step.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace InstaFlow.Server;

public static class StaticPage
{
    private static readonly Dictionary<string, string> ContentTypes = new()
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
    };

    public static void Map(WebApplication app)
    {
        var asm = typeof(StaticPage).Assembly;
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith("wwwroot/", StringComparison.Ordinal)))
        {
            using var s = asm.GetManifestResourceStream(name)!;
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            var bytes = ms.ToArray();
            var file = name["wwwroot/".Length..];
            var type = ContentTypes.GetValueOrDefault(Path.GetExtension(file), "application/octet-stream");
            IResult Serve(HttpContext ctx)
            {
                // Everything the page loads comes from this server; images arrive as data: URLs from the API.
                ctx.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:";
                ctx.Response.Headers.XContentTypeOptions = "nosniff";
                return Results.Bytes(bytes, type);
            }
            app.MapGet("/" + file, Serve);
            if (file == "index.html") app.MapGet("/", Serve);
        }
    }
}
