// Reader for the safetensors format: the file is memory-mapped, the JSON header is validated up front, and F32
// tensors are returned as zero-copy views of the mapping (other float dtypes are converted to new F32 tensors).
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text.Json;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.IO;

public enum SafeTensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool }

/// <summary>One tensor entry of a safetensors header; <see cref="Offset"/> is relative to the start of the file.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, int[] Shape, long Offset, long ByteLength)
{
    public long Numel => ShapeUtil.Numel(Shape);
}

public static class SafeTensorDTypes
{
    public static int Size(SafeTensorDType t) => t switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 => 2,
        _ => 1,
    };

    public static string Name(SafeTensorDType t) => t == SafeTensorDType.Bool ? "BOOL" : t.ToString();

    public static bool TryParse(string s, out SafeTensorDType t)
    {
        t = default;
        if (s == "BOOL") { t = SafeTensorDType.Bool; return true; }
        return s != "Bool" && Enum.TryParse(s, ignoreCase: false, out t) && Enum.IsDefined(t);
    }
}

public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Headers beyond this size are treated as corruption (real checkpoints have headers well under 1 MB).</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private NativeBuffer? _mapping;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>The entries in file order (by data offset).</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }
    public IEnumerable<string> Names => Tensors.Select(t => t.Name);

    private SafeTensorsFile(string path, NativeBuffer mapping, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _mapping = mapping;
        Tensors = tensors;
        Metadata = metadata;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public static SafeTensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file not found: {path}", path);
        long length = new FileInfo(path).Length;
        if (length < 8) throw Bad(path, $"file is {length} bytes, too short for the 8-byte header length (truncated or not a safetensors file)");

        var mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        NativeBuffer? mapping = null;
        try
        {
            // Copy-on-write: zero-copy weight tensors may be updated in place (fine-tuning) without touching the file.
            view = mmf.CreateViewAccessor(0, length, MemoryMappedFileAccess.CopyOnWrite);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            var accessor = view;
            // The mapping lives until the reader and every zero-copy tensor over it have released their reference.
            mapping = NativeBuffer.Wrap(p, length, _ =>
            {
                accessor.SafeMemoryMappedViewHandle.ReleasePointer();
                accessor.Dispose();
                mmf.Dispose();
            });
            var (tensors, metadata) = ParseHeader(path, p, length);
            return new SafeTensorsFile(path, mapping, tensors, metadata);
        }
        catch
        {
            if (mapping != null) mapping.Release();
            else
            {
                view?.Dispose();
                mmf.Dispose();
            }
            throw;
        }
    }

    private static (List<SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte* p, long fileLength)
    {
        ulong headerLen = *(ulong*)p; // little-endian on every platform .NET runs this library on
        if (headerLen > MaxHeaderBytes)
            throw Bad(path, $"header length {headerLen} is absurd (> {MaxHeaderBytes} bytes): corrupt or not a safetensors file");
        if (8 + (long)headerLen > fileLength)
            throw Bad(path, $"header length {headerLen} runs past the end of the {fileLength}-byte file (truncated download?)");
        long dataStart = 8 + (long)headerLen;
        long dataLen = fileLength - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(new ReadOnlyMemory<byte>(new ReadOnlySpan<byte>(p + 8, (int)headerLen).ToArray()));
        }
        catch (JsonException e)
        {
            throw Bad(path, "invalid JSON header: " + OneLine(e.Message));
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "the JSON header is not an object");
            var tensors = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw Bad(path, $"duplicate key \"{prop.Name}\" in the header");
                if (prop.Name == "__metadata__") ReadMetadata(path, prop.Value, metadata);
                else tensors.Add(ReadEntry(path, prop.Name, prop.Value, dataStart, dataLen));
            }
            tensors.Sort((a, b) => a.Offset.CompareTo(b.Offset));
            for (int i = 1; i < tensors.Count; i++)
            {
                var prev = tensors[i - 1];
                if (tensors[i].Offset < prev.Offset + prev.ByteLength)
                    throw Bad(path, $"tensors \"{prev.Name}\" and \"{tensors[i].Name}\" overlap in the data area");
            }
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement v, Dictionary<string, string> metadata)
    {
        if (v.ValueKind != JsonValueKind.Object) throw Bad(path, "\"__metadata__\" must be an object of strings");
        foreach (var m in v.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"metadata value \"{m.Name}\" is not a string");
            metadata[m.Name] = m.Value.GetString()!;
        }
    }

    private static SafeTensorInfo ReadEntry(string path, string name, JsonElement v, long dataStart, long dataLen)
    {
        if (v.ValueKind != JsonValueKind.Object) throw Bad(path, $"entry \"{name}\" is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor \"{name}\" has no \"dtype\" string");
        if (!SafeTensorDTypes.TryParse(dt.GetString()!, out var dtype))
            throw Bad(path, $"tensor \"{name}\" has unknown dtype \"{dt.GetString()}\" (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor \"{name}\" has no \"shape\" array");
        var shape = new int[sh.GetArrayLength()];
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim))
                throw Bad(path, $"tensor \"{name}\" has a non-integer dimension {d.GetRawText()}");
            if (dim < 0) throw Bad(path, $"tensor \"{name}\" has negative dimension {dim}");
            if (dim > int.MaxValue) throw Bad(path, $"tensor \"{name}\" has dimension {dim}, larger than supported ({int.MaxValue})");
            shape[k++] = (int)dim;
        }
        if (!v.TryGetProperty("data_offsets", out var offs) || offs.ValueKind != JsonValueKind.Array || offs.GetArrayLength() != 2)
            throw Bad(path, $"tensor \"{name}\" needs \"data_offsets\": [begin, end]");
        if (!offs[0].TryGetInt64(out long begin) || !offs[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad(path, $"tensor \"{name}\" has invalid data_offsets {offs.GetRawText()}");
        if (end > dataLen)
            throw Bad(path, $"tensor \"{name}\" data_offsets {offs.GetRawText()} lie outside the {dataLen}-byte data area (truncated file?)");
        long expected;
        try { expected = checked(ShapeUtil.Numel(shape) * SafeTensorDTypes.Size(dtype)); }
        catch (OverflowException) { throw Bad(path, $"tensor \"{name}\" shape {ShapeUtil.Format(shape)} is too large"); }
        if (end - begin != expected)
            throw Bad(path, $"tensor \"{name}\" has {end - begin} bytes but {SafeTensorDTypes.Name(dtype)} {ShapeUtil.Format(shape)} needs {expected}");
        return new SafeTensorInfo(name, dtype, shape, dataStart + begin, end - begin);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var info) ? info
            : throw new KeyNotFoundException($"{Path}: no tensor named \"{name}\" ({_byName.Count} tensors in the file; wrong checkpoint or key prefix?)");

    /// <summary>The raw little-endian bytes of a tensor, valid while this file is open.</summary>
    public ReadOnlySpan<byte> RawBytes(string name)
    {
        var info = Info(name);
        return new ReadOnlySpan<byte>(Mapping.Pointer + info.Offset, checked((int)info.ByteLength));
    }

    /// <summary>
    /// A float32 tensor (not owned by any scope). F32 data at a 4-byte-aligned offset is a zero-copy view that keeps
    /// the mapping alive until the tensor is disposed; F16/BF16/F64 are converted into a new tensor.
    /// </summary>
    public Tensor ReadF32(string name)
    {
        var info = Info(name);
        var map = Mapping;
        byte* src = map.Pointer + info.Offset;
        long n = info.Numel;
        Tensor t;
        switch (info.DType)
        {
            case SafeTensorDType.F32 when info.Offset % sizeof(float) == 0:
                map.AddRef();
                t = Tensor.FromBuffer(map, info.Offset / sizeof(float), info.Shape);
                break;
            case SafeTensorDType.F32:
                t = Tensor.EmptyPersistent(info.Shape);
                Buffer.MemoryCopy(src, t.Data, info.ByteLength, info.ByteLength);
                break;
            case SafeTensorDType.F16:
                t = Tensor.EmptyPersistent(info.Shape);
                HalfConvert.F16ToF32((ushort*)src, t.Data, n);
                break;
            case SafeTensorDType.BF16:
                t = Tensor.EmptyPersistent(info.Shape);
                HalfConvert.BF16ToF32((ushort*)src, t.Data, n);
                break;
            case SafeTensorDType.F64:
                t = Tensor.EmptyPersistent(info.Shape);
                for (long i = 0; i < n; i++) t.Data[i] = (float)Unsafe.ReadUnaligned<double>(src + i * 8);
                break;
            default:
                throw new InvalidInputException($"{Path}: tensor \"{name}\" is {SafeTensorDTypes.Name(info.DType)}, not a float type; use ReadI64/ReadU8");
        }
        t.Name = name;
        return t;
    }

    public double[] ReadF64(string name) => ReadArray<double>(name, SafeTensorDType.F64);
    public long[] ReadI64(string name) => ReadArray<long>(name, SafeTensorDType.I64);
    public int[] ReadI32(string name) => ReadArray<int>(name, SafeTensorDType.I32);
    public byte[] ReadU8(string name) => ReadArray<byte>(name, SafeTensorDType.U8);

    private T[] ReadArray<T>(string name, SafeTensorDType want) where T : unmanaged
    {
        var info = Info(name);
        if (info.DType != want)
            throw new InvalidInputException($"{Path}: tensor \"{name}\" is {SafeTensorDTypes.Name(info.DType)}, expected {SafeTensorDTypes.Name(want)}");
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(RawBytes(name)).ToArray();
    }

    private NativeBuffer Mapping => _mapping ?? throw new ObjectDisposedException(nameof(SafeTensorsFile), $"{Path} was closed");

    /// <summary>Drops this reader's hold on the mapping; zero-copy tensors already returned stay valid.</summary>
    public void Dispose() => Interlocked.Exchange(ref _mapping, null)?.Release();

    internal static InvalidInputException Bad(string path, string problem) => new($"{path}: {problem}");

    private static string OneLine(string s) => s.Replace('\r', ' ').Replace('\n', ' ');
}
