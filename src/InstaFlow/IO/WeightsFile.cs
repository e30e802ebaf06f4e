// One view over every weights container we read (safetensors, torch zip/legacy pickles), so loaders, key mappers and
// merges work by tensor name without caring which format the user brought. Formats are told apart by content.
using InstaFlow.Tensors;

namespace InstaFlow.IO;

/// <summary>One named tensor of a weights file: its logical shape and whether it holds floating-point values.</summary>
public sealed record WeightInfo(string Name, int[] Shape, string DType, bool IsFloat);

/// <summary>A set of named tensors, read one at a time as float32.</summary>
public interface IWeightsFile : IDisposable
{
    /// <summary>The file (or a description of the view), for error messages.</summary>
    string Path { get; }
    IReadOnlyList<WeightInfo> Tensors { get; }
    bool Contains(string name);
    /// <summary>The tensor as float32 (not owned by any scope: the caller disposes it); F32 data may be a zero-copy view.</summary>
    Tensor ReadF32(string name);
    /// <summary>The tensor in its stored precision if that is F16 or BF16 (zero-copy where it can be), else as float32.</summary>
    Tensor ReadStored(string name);
}

public static class WeightsFile
{
    /// <summary>Opens a .safetensors file or a PyTorch checkpoint (.pt/.pth/.ckpt/.bin), recognized by its first bytes.</summary>
    public static IWeightsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(path)) throw new InvalidInputException($"{path} is a folder; expected a weights file (.safetensors, .ckpt, .pt, .pth or .bin)");
        if (!File.Exists(path)) throw new FileNotFoundException($"weights file not found: {path}", path);
        var head = new byte[9];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (TorchCheckpoint.LooksLikeCheckpoint(head.AsSpan(0, n))) return new TorchWeights(TorchCheckpoint.Open(path));
        // safetensors: an 8-byte little-endian header length, then a JSON object.
        if (n == 9 && head[8] == (byte)'{') return new SafeTensorsWeights(SafeTensors.Open(path));
        throw new InvalidInputException($"{path}: neither safetensors nor a PyTorch checkpoint (first bytes {Convert.ToHexString(head, 0, n)}); " +
            "supported weights files are .safetensors and torch.save files (.ckpt, .pt, .pth, .bin)");
    }

    private sealed class SafeTensorsWeights(SafeTensorsFile file) : IWeightsFile
    {
        private readonly IReadOnlyList<WeightInfo> _tensors = file.Tensors
            .Select(t => new WeightInfo(t.Name, t.Shape, SafeTensorDTypes.Name(t.DType), t.DType is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F64))
            .ToList();
        public string Path => file.Path;
        public IReadOnlyList<WeightInfo> Tensors => _tensors;
        public bool Contains(string name) => file.Contains(name);
        public Tensor ReadF32(string name) => file.ReadF32(name);
        public Tensor ReadStored(string name) => file.ReadStored(name);
        public void Dispose() => file.Dispose();
    }

    private sealed class TorchWeights : IWeightsFile
    {
        private readonly TorchCheckpoint _ckpt;
        private readonly Dictionary<string, TorchTensorRef> _refs = new(StringComparer.Ordinal);
        private readonly List<WeightInfo> _tensors = new();

        public TorchWeights(TorchCheckpoint ckpt)
        {
            _ckpt = ckpt;
            try
            {
                foreach (var (name, t) in ckpt.StateDict())
                {
                    if (!_refs.TryAdd(name, t)) continue;
                    var dt = t.Storage.DType;
                    _tensors.Add(new WeightInfo(name, t.Shape, TorchCheckpoint.DTypeName(dt), dt is TorchDType.F32 or TorchDType.F16 or TorchDType.BF16 or TorchDType.F64));
                }
            }
            catch { ckpt.Dispose(); throw; }
        }

        public string Path => _ckpt.Path;
        public IReadOnlyList<WeightInfo> Tensors => _tensors;
        public bool Contains(string name) => _refs.ContainsKey(name);
        public Tensor ReadF32(string name) => _ckpt.ReadF32(Ref(name), name);
        public Tensor ReadStored(string name) => _ckpt.ReadStored(Ref(name), name);
        private TorchTensorRef Ref(string name) => _refs.TryGetValue(name, out var r) ? r : throw new InvalidInputException($"{Path}: no tensor named '{name}'");
        public void Dispose() => _ckpt.Dispose();
    }
}

/// <summary>
/// A renamed subset of another weights file (e.g. an LDM single file's UNet under diffusers names); it does not own
/// the source. reshape may give a tensor a new shape of the same size (LDM's [C,C,1,1] attention convs as [C,C]).
/// </summary>
public sealed class RenamedWeights : IWeightsFile
{
    private readonly IWeightsFile _source;
    private readonly Dictionary<string, string> _toSource;
    private readonly List<WeightInfo> _tensors = new();

    /// <summary>names: new name -> name in source.</summary>
    public RenamedWeights(IWeightsFile source, string description, IEnumerable<(string NewName, string SourceName)> names)
    {
        _source = source;
        Path = description;
        _toSource = new Dictionary<string, string>(StringComparer.Ordinal);
        var infos = source.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var (now, from) in names)
        {
            if (!infos.TryGetValue(from, out var info)) throw new InvalidInputException($"{source.Path}: no tensor named '{from}'");
            if (!_toSource.TryAdd(now, from)) throw new InvalidInputException($"{source.Path}: '{from}' and '{_toSource[now]}' both map to '{now}'");
            _tensors.Add(info with { Name = now });
        }
    }

    public string Path { get; }
    public IReadOnlyList<WeightInfo> Tensors => _tensors;
    public bool Contains(string name) => _toSource.ContainsKey(name);
    public string SourceName(string name) => _toSource[name];

    public Tensor ReadF32(string name)
    {
        var t = _source.ReadF32(Source(name));
        t.Name = name;
        return t;
    }

    public Tensor ReadStored(string name)
    {
        var t = _source.ReadStored(Source(name));
        t.Name = name;
        return t;
    }

    private string Source(string name) => _toSource.TryGetValue(name, out var from) ? from : throw new InvalidInputException($"{Path}: no tensor named '{name}'");

    public void Dispose() { }
}
