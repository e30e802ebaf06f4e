// Training log: one JSON object per logged step appended to a JSONL file (progress on screen is the front end's job,
// through TrainerOptions.Progress).
using System.Text.Json;

namespace InstaFlow.Training;

/// <summary>Appends {step, loss, lr, seconds} lines (and evaluation lines) to a JSONL file; a null path logs nothing.</summary>
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

    /// <summary>An evaluation line, {step, eval: {name: value, ...}, seconds}: told apart from loss lines by "eval".</summary>
    public void WriteEval(long step, IEnumerable<(string Name, double Value)> values, double seconds) =>
        _file?.WriteLine(JsonSerializer.Serialize(new { step, eval = values.ToDictionary(v => v.Name, v => v.Value), seconds }));

    public void Dispose() => _file?.Dispose();
}
