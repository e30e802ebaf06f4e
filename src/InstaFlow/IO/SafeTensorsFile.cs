// Reader for the safetensors format: the file is memory-mapped, the JSON header is validated up front, and F32
// tensors are returned as zero-copy views of the mapping (other float dtypes are converted to new F32 tensors).
using System.Runtime.CompilerServices;
using System.Text.Json;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.IO;

/// <summary>The reference implementation's dtypes; only the float ones (and I64/I32/U8 as arrays) can be read here.</summary>
public enum SafeTensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, U64, U32, U16, F8_E5M2, F8_E4M3 }

/// <summary>One tensor entry of a safetensors header; <see cref="Offset"/> is relative to the start of the file.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, int[] Shape, long Offset, long ByteLength)
{
    public long Numel => ShapeUtil.Numel(Shape);
}

public static class SafeTensorDTypes
{
    public static int Size(SafeTensorDType t) => t switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 or SafeTensorDType.U64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 or SafeTensorDType.U32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 or SafeTensorDType.U16 => 2,
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
    /// <summary>Headers beyond this size are refused, the reference implementation's bound (real ones are well under 1 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

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
        return MappedFile.Open(path, 8, "too short for the 8-byte header length (truncated or not a safetensors file)", (mapping, length) =>
        {
            var (tensors, metadata) = ParseHeader(path, (byte*)mapping.Pointer, length);
            return new SafeTensorsFile(path, mapping, tensors, metadata);
        });
    }

    // The header is validated exactly as the reference Rust crate (safetensors 0.4, `SafeTensors::read_metadata` and
    // `Metadata::validate`) does, so a file is accepted here if and only if Python's safe_open accepts it: header size
    // bound, UTF-8 JSON object starting with '{', entries with exactly dtype/shape/data_offsets of the right types (no
    // duplicate fields), known dtypes, shape products that fit, and data ranges that, sorted by offset, start at 0,
    // follow one another with no gap or overlap and end exactly at the end of the file.
    private static (List<SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte* p, long fileLength)
    {
        ulong headerLen = *(ulong*)p; // little-endian on every platform .NET runs this library on
        if (headerLen > MaxHeaderBytes)
            throw Bad(path, $"header length {headerLen} is absurd (> {MaxHeaderBytes} bytes): corrupt or not a safetensors file");
        if (8 + (long)headerLen > fileLength)
            throw Bad(path, $"header length {headerLen} runs past the end of the {fileLength}-byte file (truncated download?)");
        long dataStart = 8 + (long)headerLen;
        long dataLen = fileLength - dataStart;

        var headerBytes = new ReadOnlySpan<byte>(p + 8, (int)headerLen);
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw Bad(path, "the JSON header is not valid UTF-8 (corrupt file)");
        if (headerBytes.Length == 0 || headerBytes[0] != (byte)'{')
            throw Bad(path, "the JSON header does not start with '{' (not a safetensors file, or a wrong header length)");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(new ReadOnlyMemory<byte>(headerBytes.ToArray()));
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
            try
            {
                foreach (var prop in doc.RootElement.EnumerateObject())
                {
                    if (!seen.Add(prop.Name)) throw Bad(path, $"duplicate key \"{prop.Name}\" in the header");
                    if (prop.Name == "__metadata__") ReadMetadata(path, prop.Value, metadata);
                    else tensors.Add(ReadEntry(path, prop.Name, prop.Value, dataStart, dataLen));
                }
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json decodes escapes lazily: a lone surrogate (\ud800) only fails when the string is read.
                throw Bad(path, "the JSON header holds an invalid string (" + OneLine(e.Message) + ")");
            }
            tensors.Sort((a, b) => a.Offset != b.Offset ? a.Offset.CompareTo(b.Offset) : a.ByteLength.CompareTo(b.ByteLength));
            long expectedStart = dataStart;
            for (int i = 0; i < tensors.Count; i++)
            {
                var t = tensors[i];
                if (t.Offset < expectedStart)
                    throw Bad(path, $"tensors \"{tensors[i - 1].Name}\" and \"{t.Name}\" overlap in the data area");
                if (t.Offset > expectedStart)
                    throw Bad(path, $"a gap of {t.Offset - expectedStart} bytes before tensor \"{t.Name}\" in the data area (tensors must be contiguous)");
                expectedStart = t.Offset + t.ByteLength;
            }
            if (expectedStart != fileLength)
                throw Bad(path, $"the tensors cover {expectedStart - dataStart} bytes but the data area is {dataLen} bytes (a wrong header length or trailing bytes)");
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement v, Dictionary<string, string> metadata)
    {
        if (v.ValueKind == JsonValueKind.Null) return; // Option<HashMap> in the reference: null is no metadata
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
        JsonElement? dt = null, sh = null, offs = null;
        foreach (var field in v.EnumerateObject())
        {
            ref JsonElement? slot = ref dt;
            if (field.NameEquals("dtype")) slot = ref dt;
            else if (field.NameEquals("shape")) slot = ref sh;
            else if (field.NameEquals("data_offsets")) slot = ref offs;
            else continue; // unknown fields are ignored, as serde does by default
            if (slot != null) throw Bad(path, $"tensor \"{name}\" has a duplicate \"{field.Name}\" field");
            slot = field.Value;
        }
        if (dt is not { ValueKind: JsonValueKind.String } dtype0)
            throw Bad(path, $"tensor \"{name}\" has no \"dtype\" string");
        if (!SafeTensorDTypes.TryParse(dtype0.GetString()!, out var dtype))
            throw Bad(path, $"tensor \"{name}\" has unknown dtype \"{dtype0.GetString()}\" (known: {string.Join(' ', Enum.GetValues<SafeTensorDType>().Select(SafeTensorDTypes.Name))})");
        if (sh is not { ValueKind: JsonValueKind.Array } shapeArr)
            throw Bad(path, $"tensor \"{name}\" has no \"shape\" array");
        var shape = new int[shapeArr.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeArr.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim))
                throw Bad(path, $"tensor \"{name}\" has a non-integer dimension {d.GetRawText()}");
            if (dim < 0) throw Bad(path, $"tensor \"{name}\" has negative dimension {dim}");
            if (dim > int.MaxValue) throw Bad(path, $"tensor \"{name}\" has dimension {dim}, larger than supported ({int.MaxValue})");
            shape[k++] = (int)dim;
        }
        if (offs is not { ValueKind: JsonValueKind.Array } o || o.GetArrayLength() != 2)
            throw Bad(path, $"tensor \"{name}\" needs \"data_offsets\": [begin, end]");
        if (o[0].ValueKind != JsonValueKind.Number || o[1].ValueKind != JsonValueKind.Number
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad(path, $"tensor \"{name}\" has invalid data_offsets {o.GetRawText()} (two integers, begin <= end)");
        if (end > dataLen)
            throw Bad(path, $"tensor \"{name}\" data_offsets {o.GetRawText()} lie outside the {dataLen}-byte data area (truncated file?)");
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

    /// <summary>
    /// The tensor in its stored precision when that is F16 or BF16 (a zero-copy view of the mapping at an even
    /// offset, else a copy), otherwise as <see cref="ReadF32"/>: how weights stay half-size in memory.
    /// </summary>
    public Tensor ReadStored(string name)
    {
        var info = Info(name);
        if (info.DType is not (SafeTensorDType.F16 or SafeTensorDType.BF16)) return ReadF32(name);
        var dtype = info.DType == SafeTensorDType.F16 ? TensorDType.F16 : TensorDType.BF16;
        var map = Mapping;
        Tensor t;
        if (info.Offset % sizeof(ushort) == 0)
        {
            map.AddRef();
            t = Tensor.FromBuffer(map, info.Offset / sizeof(ushort), info.Shape, dtype);
        }
        else
        {
            t = Tensor.EmptyHalfPersistent(dtype, info.Shape);
            Buffer.MemoryCopy(map.Pointer + info.Offset, t.HalfData, info.ByteLength, info.ByteLength);
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
