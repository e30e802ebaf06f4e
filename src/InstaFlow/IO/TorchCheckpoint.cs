// Reads PyTorch checkpoints (.pt/.pth/.ckpt/.bin) without running Python: the zip container of torch >= 1.6 (ZIP64
// too) and the legacy pickle stream, with storages memory-mapped and read one tensor at a time, never whole.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.IO;

public sealed unsafe class TorchCheckpoint : IDisposable
{
    /// <summary>data.pkl (or a legacy object pickle) larger than this is treated as corruption: real ones are a few MB.</summary>
    public const long MaxPickleBytes = 1L << 30;
    public const int MaxZipEntries = 10_000_000;

    private NativeBuffer? _mapping;
    private readonly long _length;

    public string Path { get; }
    /// <summary>The unpickled top-level object (dicts, lists, numbers, tensor references).</summary>
    public object? Root { get; }
    /// <summary>"zip" or "legacy".</summary>
    public string Format { get; }

    private TorchCheckpoint(string path, NativeBuffer mapping, long length, Func<TorchCheckpoint, (object?, string)> parse)
    {
        Path = path;
        _mapping = mapping;
        _length = length;
        (Root, Format) = parse(this);
    }

    /// <summary>True when the file starts like a torch checkpoint (a zip, or a protocol-2 pickle).</summary>
    public static bool LooksLikeCheckpoint(ReadOnlySpan<byte> head) =>
        (head.Length >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4) || (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5);

    public static TorchCheckpoint Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint not found: {path}", path);
        return MappedFile.Open(path, 8, "too short for a PyTorch checkpoint", (mapping, length) =>
        {
            var head = new ReadOnlySpan<byte>((byte*)mapping.Pointer, 8);
            if (head[0] == (byte)'P' && head[1] == (byte)'K')
                return new TorchCheckpoint(path, mapping, length, c => (c.ParseZip(), "zip"));
            if (head[0] == 0x80)
                return new TorchCheckpoint(path, mapping, length, c => (c.ParseLegacy(), "legacy"));
            throw new InvalidInputException($"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle; first bytes {System.Convert.ToHexString(head)})");
        });
    }

    private InvalidInputException Bad(string problem) => new($"{Path}: {problem}");

    private byte* Base => (_mapping ?? throw new ObjectDisposedException(nameof(TorchCheckpoint), $"{Path} was closed")).Pointer;

    private ReadOnlySpan<byte> Bytes(long offset, long count)
    {
        if (offset < 0 || count < 0 || offset > _length - count) throw Bad($"a record at byte {offset} of {count} bytes runs past the end of the {_length}-byte file (truncated?)");
        if (count > int.MaxValue) throw Bad($"a record of {count} bytes is too large to parse");
        return new ReadOnlySpan<byte>(Base + offset, (int)count);
    }

    // ---- zip container (torch >= 1.6) ----

    private sealed record ZipEntry(string Name, long DataOffset, long Size);

    private object? ParseZip()
    {
        var entries = ReadCentralDirectory();
        var byName = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        foreach (var e in entries) byName.TryAdd(e.Name, e);
        if (entries.Any(e => e.Name == "constants.pkl" || e.Name.EndsWith("/constants.pkl", StringComparison.Ordinal)))
            throw Bad("this is a TorchScript archive (it has constants.pkl), not a torch.save checkpoint; TorchScript is not supported: " +
                "load the model in Python and save model.state_dict() with torch.save or safetensors");
        var pkls = entries.Where(e => e.Name == "data.pkl" || e.Name.EndsWith("/data.pkl", StringComparison.Ordinal)).ToList();
        if (pkls.Count != 1)
            throw Bad(pkls.Count == 0 ? "zip archive without data.pkl: not a torch.save checkpoint" : $"zip archive with {pkls.Count} data.pkl records: not a torch.save checkpoint");
        // Every record sits under the folder data.pkl is in, named after the file's stem when it was saved.
        string prefix = pkls[0].Name[..^"data.pkl".Length];
        if (byName.TryGetValue(prefix + "byteorder", out var bo) && System.Text.Encoding.ASCII.GetString(Bytes(bo.DataOffset, Math.Min(bo.Size, 16))) is var order && order != "little")
            throw Bad($"byteorder record says '{order}': only little-endian checkpoints are supported");
        if (pkls[0].Size > MaxPickleBytes) throw Bad($"data.pkl is {pkls[0].Size} bytes (over {MaxPickleBytes}): corrupt");

        var storages = new Dictionary<string, TorchStorage>(StringComparer.Ordinal);
        Unpickler? up = null;
        up = new Unpickler(Path, pid =>
        {
            // ('storage', <storage type>, key, location, numel)
            if (pid is not object?[] { Length: >= 5 } t || t[0] is not "storage" || t[2] is not string key || t[4] is not long numel || numel < 0)
                throw Bad($"unsupported persistent id {Unpickler.Describe(pid)} in data.pkl (expected a torch storage)");
            if (storages.TryGetValue(key, out var known)) return known;
            var dtype = up!.StorageDType(t[1]);
            if (!byName.TryGetValue(prefix + "data/" + key, out var rec))
                throw Bad($"data.pkl references storage key '{key}' but the archive has no data/{key} record (truncated or damaged checkpoint)");
            long needBytes = numel > long.MaxValue / 8 ? long.MaxValue : numel * Unpickler.ItemSize(dtype);
            if (needBytes > rec.Size)
                throw Bad($"the storage declares {numel} {DTypeName(dtype)} elements ({needBytes} bytes) but record data/{key} holds {rec.Size} bytes (truncated or damaged checkpoint)");
            var s = new TorchStorage { Key = key, DType = dtype, Numel = numel, DataOffset = rec.DataOffset, DataBytes = needBytes };
            storages[key] = s;
            return s;
        });
        int pos = 0;
        return up.Load(Bytes(pkls[0].DataOffset, pkls[0].Size), ref pos);
    }

    private List<ZipEntry> ReadCentralDirectory()
    {
        // The end-of-central-directory record is in the last 22 + 65535 bytes (a trailing comment may follow it).
        long searchFrom = Math.Max(0, _length - 22 - 65535);
        var tail = Bytes(searchFrom, _length - searchFrom);
        int eocd = -1;
        for (int i = tail.Length - 22; i >= 0; i--)
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail[i..]) == 0x06054b50) { eocd = i; break; }
        if (eocd < 0) throw Bad("no end-of-central-directory record: a truncated or damaged zip (re-download the file)");
        long eocdPos = searchFrom + eocd;
        var e = Bytes(eocdPos, 22);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
        if (count == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF)
        {
            // ZIP64: a locator just before the EOCD points at the 64-bit end record.
            if (eocdPos < 20) throw Bad("ZIP64 archive without its locator: damaged zip");
            var loc = Bytes(eocdPos - 20, 20);
            if (BinaryPrimitives.ReadUInt32LittleEndian(loc) != 0x07064b50) throw Bad("ZIP64 archive without its locator: damaged zip");
            long z64 = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(loc[8..]));
            var z = Bytes(z64, 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(z) != 0x06064b50) throw Bad("ZIP64 end record not where its locator says: damaged zip");
            count = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(z[32..]));
            cdSize = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(z[40..]));
            cdOffset = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(z[48..]));
        }
        if (count > MaxZipEntries || count > cdSize / 46 + 1) throw Bad($"zip central directory claims {count} entries: damaged zip");
        var cd = Bytes(cdOffset, cdSize);
        var list = new List<ZipEntry>((int)count);
        int p = 0;
        for (long i = 0; i < count; i++)
        {
            if (p > cd.Length - 46 || BinaryPrimitives.ReadUInt32LittleEndian(cd[p..]) != 0x02014b50) throw Bad("damaged zip central directory");
            int method = BinaryPrimitives.ReadUInt16LittleEndian(cd[(p + 10)..]);
            long compSize = BinaryPrimitives.ReadUInt32LittleEndian(cd[(p + 20)..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(cd[(p + 24)..]);
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(cd[(p + 28)..]);
            int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(cd[(p + 30)..]);
            int commentLen = BinaryPrimitives.ReadUInt16LittleEndian(cd[(p + 32)..]);
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(cd[(p + 42)..]);
            if (p + 46 + nameLen + extraLen + commentLen > cd.Length) throw Bad("damaged zip central directory");
            var name = System.Text.Encoding.UTF8.GetString(cd.Slice(p + 46, nameLen));
            var extra = cd.Slice(p + 46 + nameLen, extraLen);
            // ZIP64 extra field (id 1): the 64-bit values of whichever fields are 0xFFFFFFFF, in this order.
            for (int x = 0; x + 4 <= extra.Length;)
            {
                int id = BinaryPrimitives.ReadUInt16LittleEndian(extra[x..]);
                int len = BinaryPrimitives.ReadUInt16LittleEndian(extra[(x + 2)..]);
                if (x + 4 + len > extra.Length) break;
                if (id == 1)
                {
                    var f = extra.Slice(x + 4, len);
                    int q = 0;
                    if (size == 0xFFFFFFFF) size = Zip64Value(f, ref q, name);
                    if (compSize == 0xFFFFFFFF) compSize = Zip64Value(f, ref q, name);
                    if (localOffset == 0xFFFFFFFF) localOffset = Zip64Value(f, ref q, name);
                }
                x += 4 + len;
            }
            if (method != 0 || compSize != size)
                throw Bad($"zip record {name} is compressed (method {method}); torch.save writes stored records only, so this file was repacked: re-save it with torch.save");
            // The data follows the local header, whose name and extra field may differ in length from the central copy.
            var local = Bytes(localOffset, 30);
            if (BinaryPrimitives.ReadUInt32LittleEndian(local) != 0x04034b50) throw Bad($"zip record {name}: local header missing (damaged zip)");
            long dataOffset = localOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(local[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
            if (dataOffset > _length - size) throw Bad($"zip record {name} ({size} bytes) runs past the end of the file (truncated?)");
            list.Add(new ZipEntry(name, dataOffset, size));
            p += 46 + nameLen + extraLen + commentLen;
        }
        return list;
    }

    private long Zip64Value(ReadOnlySpan<byte> field, ref int q, string name)
    {
        if (q + 8 > field.Length) throw Bad($"damaged ZIP64 field for {name}");
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(field[q..]);
        q += 8;
        return v <= (ulong)long.MaxValue ? (long)v : throw Bad($"ZIP64 field for {name} is out of range");
    }

    // ---- legacy container (torch < 1.6, or _use_new_zipfile_serialization=False) ----

    private static readonly System.Numerics.BigInteger LegacyMagic = System.Numerics.BigInteger.Parse("119547037146038801333356");

    private object? ParseLegacy()
    {
        var all = Bytes(0, Math.Min(_length, MaxPickleBytes));
        var storages = new Dictionary<string, TorchStorage>(StringComparer.Ordinal);
        Unpickler? up = null;
        up = new Unpickler(Path, pid =>
        {
            // ('storage', <storage type>, key, location, numel, view_metadata)
            if (pid is not object?[] { Length: >= 5 } t || t[0] is not "storage" || t[2] is not string key || t[4] is not long numel || numel < 0)
                throw Bad($"unsupported persistent id {Unpickler.Describe(pid)} (expected a torch storage)");
            if (t.Length >= 6 && t[5] != null) throw Bad($"storage '{key}' is a view of another storage (torch < 0.4 format); not supported");
            if (storages.TryGetValue(key, out var known)) return known;
            return storages[key] = new TorchStorage { Key = key, DType = up!.StorageDType(t[1]), Numel = numel };
        });
        int pos = 0;
        var magic = up.Load(all, ref pos);
        if (magic is not System.Numerics.BigInteger m || m != LegacyMagic)
            throw Bad("starts with a pickle but not torch's magic number: not a PyTorch checkpoint (a plain pickle is never loaded)");
        if (up.Load(all, ref pos) is not long protocol || protocol != 1001) throw Bad("legacy checkpoint with an unknown protocol version (expected 1001)");
        if (up.Load(all, ref pos) is PickleDict sysInfo && sysInfo.Get("little_endian") is false)
            throw Bad("big-endian legacy checkpoint: not supported");
        var root = up.Load(all, ref pos);
        var keys = up.Load(all, ref pos) as List<object?> ?? throw Bad("legacy checkpoint without its list of storage keys");
        long off = pos;
        // Storages follow in the order of that list, each as an int64 element count and the raw bytes.
        foreach (var k in keys)
        {
            var key = k as string ?? throw Bad("legacy storage key is not a string");
            if (!storages.TryGetValue(key, out var s)) throw Bad($"storage key '{key}' is listed but no tensor uses it");
            var countBytes = off <= _length - 8 ? Bytes(off, 8) : throw Bad($"storage '{key}' is missing: the file ends at byte {_length} (truncated?)");
            long count = BinaryPrimitives.ReadInt64LittleEndian(countBytes);
            long size = Unpickler.ItemSize(s.DType);
            if (count < 0 || count > (_length - off - 8) / size)
                throw Bad($"storage '{key}' says it holds {count} elements, more than the rest of the file (truncated?)");
            if (count < s.Numel) throw Bad($"the storage declares {s.Numel} {DTypeName(s.DType)} elements but the file holds {count} for storage '{key}'");
            s.DataOffset = off + 8;
            s.DataBytes = count * size;
            off += 8 + count * size;
        }
        foreach (var s in storages.Values)
            if (s.DataOffset < 0) throw Bad($"the pickle references storage key '{s.Key}' but the file has no data for it (damaged checkpoint)");
        return root;
    }

    internal static string DTypeName(TorchDType t) => t switch
    {
        TorchDType.F32 => "float32", TorchDType.F16 => "float16", TorchDType.BF16 => "bfloat16", TorchDType.F64 => "float64",
        TorchDType.I64 => "int64", TorchDType.I32 => "int32", TorchDType.I16 => "int16", TorchDType.I8 => "int8", TorchDType.U8 => "uint8", _ => "bool",
    };

    // ---- tensors ----

    /// <summary>
    /// The tensors of a state dict: the root dict's tensor values (a top-level "state_dict" dict is unwrapped, as
    /// Lightning checkpoints nest the weights there); non-tensor entries (epoch, global_step, callbacks) are ignored.
    /// </summary>
    public IReadOnlyList<(string Name, TorchTensorRef Tensor)> StateDict()
    {
        var root = Root as PickleDict ?? throw Bad($"the checkpoint holds {Unpickler.Describe(Root)}, not a dict of tensors (a state dict)");
        if (root.Get("state_dict") is PickleDict inner) root = inner;
        var list = new List<(string, TorchTensorRef)>();
        foreach (var (k, v) in root.Items)
            if (k is string name && v is TorchTensorRef t) list.Add((name, t));
        if (list.Count == 0) throw Bad("the checkpoint has no tensors at its top level or under 'state_dict' (a whole pickled model is not supported: save model.state_dict())");
        return list;
    }

    /// <summary>
    /// The tensor's values in logical C order as float32: a zero-copy view of the mapping for a contiguous aligned F32
    /// tensor (valid after this checkpoint is disposed), else a new tensor gathered through the strides.
    /// </summary>
    public Tensor ReadF32(TorchTensorRef r, string name)
    {
        var map = _mapping ?? throw new ObjectDisposedException(nameof(TorchCheckpoint), $"{Path} was closed");
        var s = r.Storage;
        int size = Unpickler.ItemSize(s.DType);
        if (s.DType is TorchDType.Bool) throw Bad($"tensor '{name}' is bool, not a number type");
        long byteStart = s.DataOffset + r.Offset * size;
        if (s.DType == TorchDType.F32 && IsContiguous(r) && byteStart % sizeof(float) == 0)
        {
            map.AddRef();
            var v = Tensor.FromBuffer(map, byteStart / sizeof(float), r.Shape);
            v.Name = name;
            return v;
        }
        var t = Tensor.EmptyPersistent(r.Shape);
        t.Name = name;
        long n = t.Numel;
        if (n == 0) return t;
        byte* src = map.Pointer + s.DataOffset;
        float* dst = t.Data;
        int rank = r.Shape.Length;
        var index = new int[Math.Max(rank, 1)];
        // Walk the logical elements in C order; the innermost dimension is copied as one run when its stride is 1.
        int inner = rank == 0 ? 1 : r.Shape[rank - 1];
        long innerStride = rank == 0 ? 1 : r.Strides[rank - 1];
        for (long done = 0; done < n; done += inner)
        {
            long elem = r.Offset;
            for (int d = 0; d < rank - 1; d++) elem += index[d] * r.Strides[d];
            Convert(src, s.DType, elem, innerStride, dst + done, inner);
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++index[d] < r.Shape[d]) break;
                index[d] = 0;
            }
        }
        return t;
    }

    /// <summary>An integer tensor's values in logical C order (position ids, step counters).</summary>
    /// <summary>
    /// The tensor in its stored precision when it is a contiguous F16/BF16 tensor at an even offset (a zero-copy
    /// view of the mapping), otherwise as <see cref="ReadF32"/>.
    /// </summary>
    public Tensor ReadStored(TorchTensorRef r, string name)
    {
        var map = _mapping ?? throw new ObjectDisposedException(nameof(TorchCheckpoint), $"{Path} was closed");
        var s = r.Storage;
        long byteStart = s.DataOffset + r.Offset * Unpickler.ItemSize(s.DType);
        if (s.DType is not (TorchDType.F16 or TorchDType.BF16) || !IsContiguous(r) || byteStart % sizeof(ushort) != 0) return ReadF32(r, name);
        map.AddRef();
        var v = Tensor.FromBuffer(map, byteStart / sizeof(ushort), r.Shape, s.DType == TorchDType.F16 ? TensorDType.F16 : TensorDType.BF16);
        v.Name = name;
        return v;
    }

    public long[] ReadI64(TorchTensorRef r, string name)
    {
        var t = new TorchTensorRef(r.Storage, r.Offset, r.Shape, r.Strides);
        if (r.Storage.DType is not (TorchDType.I64 or TorchDType.I32 or TorchDType.I16 or TorchDType.I8 or TorchDType.U8))
            throw Bad($"tensor '{name}' is {DTypeName(r.Storage.DType)}, not an integer type");
        // Small tensors only: gather through float64-free integer reads.
        long n = 1;
        foreach (var d in t.Shape) n *= d;
        var result = new long[n];
        byte* src = Base + r.Storage.DataOffset;
        int rank = r.Shape.Length;
        var index = new int[rank];
        for (long i = 0; i < n; i++)
        {
            long elem = r.Offset;
            for (int d = 0; d < rank; d++) elem += index[d] * r.Strides[d];
            result[i] = r.Storage.DType switch
            {
                TorchDType.I64 => Unsafe.ReadUnaligned<long>(src + elem * 8),
                TorchDType.I32 => Unsafe.ReadUnaligned<int>(src + elem * 4),
                TorchDType.I16 => Unsafe.ReadUnaligned<short>(src + elem * 2),
                TorchDType.I8 => (sbyte)src[elem],
                _ => src[elem],
            };
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++index[d] < r.Shape[d]) break;
                index[d] = 0;
            }
        }
        return result;
    }

    private static bool IsContiguous(TorchTensorRef r)
    {
        long expected = 1;
        for (int d = r.Shape.Length - 1; d >= 0; d--)
        {
            if (r.Shape[d] != 1 && r.Strides[d] != expected) return false;
            expected *= r.Shape[d];
        }
        return true;
    }

    private static void Convert(byte* storage, TorchDType dtype, long first, long stride, float* dst, int count)
    {
        switch (dtype)
        {
            case TorchDType.F32 when stride == 1:
                Buffer.MemoryCopy(storage + first * 4, dst, (long)count * 4, (long)count * 4);
                return;
            case TorchDType.F16 when stride == 1:
                HalfConvert.F16ToF32((ushort*)(storage + first * 2), dst, count);
                return;
            case TorchDType.BF16 when stride == 1:
                HalfConvert.BF16ToF32((ushort*)(storage + first * 2), dst, count);
                return;
        }
        for (int i = 0; i < count; i++)
        {
            long e = first + i * stride;
            dst[i] = dtype switch
            {
                TorchDType.F32 => Unsafe.ReadUnaligned<float>(storage + e * 4),
                TorchDType.F16 => (float)Unsafe.ReadUnaligned<Half>(storage + e * 2),
                TorchDType.BF16 => BitConverter.Int32BitsToSingle(Unsafe.ReadUnaligned<ushort>(storage + e * 2) << 16),
                TorchDType.F64 => (float)Unsafe.ReadUnaligned<double>(storage + e * 8),
                TorchDType.I64 => Unsafe.ReadUnaligned<long>(storage + e * 8),
                TorchDType.I32 => Unsafe.ReadUnaligned<int>(storage + e * 4),
                TorchDType.I16 => Unsafe.ReadUnaligned<short>(storage + e * 2),
                TorchDType.I8 => (sbyte)storage[e],
                _ => storage[e],
            };
        }
    }

    /// <summary>Drops this reader's hold on the mapping; zero-copy tensors already returned stay valid.</summary>
    public void Dispose() => Interlocked.Exchange(ref _mapping, null)?.Release();
}
