// Writer for the safetensors format (and the entry point for reading: SafeTensors.Open). Files are written through
// SafeFile (temp file and rename), so a crash never leaves a half-written checkpoint under the real name.
using System.Text.Json;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.IO;

public static unsafe class SafeTensors
{
    public static SafeTensorsFile Open(string path) => SafeTensorsFile.Open(path);

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors,
        SafeTensorDType dtype = SafeTensorDType.F32, IReadOnlyDictionary<string, string>? metadata = null)
        => Save(path, tensors.Select(kv => (kv.Key, kv.Value)), dtype, metadata);

    /// <summary>
    /// Writes float32 tensors stored as <paramref name="dtype"/> (F32, F16 or BF16, rounded to nearest even), plus
    /// optional 1-D I64 vectors (e.g. indices). Entries are laid out in name order; the header is space-padded to a
    /// multiple of 8 bytes like the Python library.
    /// </summary>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors,
        SafeTensorDType dtype = SafeTensorDType.F32, IReadOnlyDictionary<string, string>? metadata = null,
        IEnumerable<(string Name, long[] Values)>? int64 = null)
    {
        if (dtype is not (SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16))
            throw new ArgumentException($"SafeTensors.Save: can store float tensors as F32, F16 or BF16, not {SafeTensorDTypes.Name(dtype)}");
        var list = tensors.Select(t => new Entry(t.Name, dtype, t.Tensor.ShapeArray(), t.Tensor, null))
            .Concat((int64 ?? Enumerable.Empty<(string, long[])>()).Select(v => new Entry(v.Item1, SafeTensorDType.I64, new[] { v.Item2.Length }, null, v.Item2)))
            .OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i].Name == "__metadata__") throw new ArgumentException("SafeTensors.Save: \"__metadata__\" is reserved and cannot name a tensor");
            if (i > 0 && list[i].Name == list[i - 1].Name) throw new ArgumentException($"SafeTensors.Save: duplicate tensor name \"{list[i].Name}\"");
        }

        byte[] header = BuildHeader(list, metadata);
        SafeFile.Write(path, fs =>
        {
            Span<byte> len = stackalloc byte[8];
            BitConverter.TryWriteBytes(len, (ulong)header.Length);
            fs.Write(len);
            fs.Write(header);
            foreach (var e in list)
                if (e.Floats != null) WriteData(fs, e.Floats, dtype);
                else fs.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(e.Longs.AsSpan()));
        });
    }

    private sealed record Entry(string Name, SafeTensorDType DType, int[] Shape, Tensor? Floats, long[]? Longs);

    private static byte[] BuildHeader(List<Entry> list, IReadOnlyDictionary<string, string>? metadata)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in list)
            {
                long bytes = ShapeUtil.Numel(e.Shape) * SafeTensorDTypes.Size(e.DType);
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", SafeTensorDTypes.Name(e.DType));
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        int padded = (int)((ms.Length + 7) / 8 * 8);
        while (ms.Length < padded) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    private static void WriteData(Stream fs, Tensor t, SafeTensorDType dtype)
    {
        long n = t.Numel;
        // A weight kept in the precision asked for is written as it is.
        if ((t.DType == TensorDType.F16 && dtype == SafeTensorDType.F16) || (t.DType == TensorDType.BF16 && dtype == SafeTensorDType.BF16))
        {
            for (long i = 0; i < n; i += ChunkElements)
                fs.Write(new ReadOnlySpan<byte>(t.HalfData + i, (int)Math.Min(ChunkElements, n - i) * sizeof(ushort)));
            return;
        }
        if (t.DType == TensorDType.F32 && dtype == SafeTensorDType.F32)
        {
            float* src = t.Data;
            for (long i = 0; i < n; i += ChunkElements)
                fs.Write(new ReadOnlySpan<byte>(src + i, (int)Math.Min(ChunkElements, n - i) * sizeof(float)));
            return;
        }
        // Convert in chunks (through float32, which every stored type widens to exactly) so saving a large model
        // needs only small staging buffers.
        var wide = new float[Math.Min(n, ChunkElements)];
        var narrow = new ushort[Math.Min(n, ChunkElements)];
        var stored = t.Stored;
        fixed (float* w = wide)
        fixed (ushort* h = narrow)
            for (long i = 0; i < n; i += ChunkElements)
            {
                int m = (int)Math.Min(ChunkElements, n - i);
                stored.Widen(i, w, m);
                if (dtype == SafeTensorDType.F32) { fs.Write(new ReadOnlySpan<byte>(w, m * sizeof(float))); continue; }
                if (dtype == SafeTensorDType.F16) HalfConvert.F32ToF16(w, h, m);
                else HalfConvert.F32ToBF16(w, h, m);
                fs.Write(new ReadOnlySpan<byte>(h, m * sizeof(ushort)));
            }
    }

    private const int ChunkElements = 1 << 20;
}
