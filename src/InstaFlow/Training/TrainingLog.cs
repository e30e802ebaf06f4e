// Training output: one JSON object per logged step appended to a JSONL file, and a one-line progress bar on stderr.
using System.Diagnostics;
using System.Text.Json;

namespace InstaFlow.Training;

public sealed class TrainingLog : IDisposable
{
    private readonly StreamWriter? _file;

    public TrainingLog(string? path)
    {
        if (path == null) return;
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        // Append: a resumed run continues the same log.
        _file = new StreamWriter(path, append: true) { AutoFlush = true };
    }

    public void Write(long step, float loss, float lr, double seconds) =>
        _file?.WriteLine(JsonSerializer.Serialize(new { step, loss, lr, seconds }));

    public void Dispose() => _file?.Dispose();
}

/// <summary>A redrawn-in-place bar on stderr, at most ten times a second; silent when stderr is not a terminal.</summary>
public sealed class ProgressBar(string label, long total, bool enabled = true)
{
    private readonly bool _on = enabled && !Console.IsErrorRedirected;
    private readonly Stopwatch _sinceDraw = Stopwatch.StartNew();
    private bool _drawn;

    public void Report(long done, string detail = "")
    {
        if (!_on || (_drawn && done < total && _sinceDraw.ElapsedMilliseconds < 100)) return;
        _sinceDraw.Restart();
        _drawn = true;
        const int Width = 30;
        int filled = total <= 0 ? Width : (int)(Width * Math.Min(done, total) / total);
        Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] {done}/{total} {detail}   ");
        if (done >= total) Console.Error.WriteLine();
    }
}
