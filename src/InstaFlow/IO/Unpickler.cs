// An allow-list reader for the pickles torch.save writes: it interprets opcodes as data only, builds tensor
// references from torch's rebuild functions and refuses every other global by name, so nothing in a file is ever run.
using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace InstaFlow.IO;

/// <summary>A global a pickle named (module + qualified name); only allow-listed ones are ever produced.</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;
}

/// <summary>A Python dict (or OrderedDict) in insertion order; keys are whatever the pickle held.</summary>
public sealed class PickleDict
{
    public List<KeyValuePair<object?, object?>> Items { get; } = new();

    public void Set(object? key, object? value)
    {
        for (int i = 0; i < Items.Count; i++)
            if (Equals(Items[i].Key, key)) { Items[i] = new(key, value); return; }
        Items.Add(new(key, value));
    }

    public object? Get(string key) => Items.FirstOrDefault(kv => kv.Key is string s && s == key).Value;
}

/// <summary>An instance of an allow-listed harmless class (a Lightning callback): its state is kept as data, never applied.</summary>
public sealed record PickleOpaque(PickleGlobal Type);

/// <summary>A numpy dtype object (numpy.dtype('f8')), kept only so numpy scalars can be decoded.</summary>
public sealed record NumpyDType(string Code);

/// <summary>One storage of a checkpoint: its element type, declared element count and key in the container.</summary>
public sealed class TorchStorage
{
    public required string Key { get; init; }
    public required TorchDType DType { get; init; }
    public required long Numel { get; init; }
    /// <summary>Where the raw bytes start in the file; set by the container once it has located them.</summary>
    public long DataOffset { get; set; } = -1;
    public long DataBytes { get; set; }
}

public enum TorchDType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool }

/// <summary>A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage.</summary>
public sealed record TorchTensorRef(TorchStorage Storage, long Offset, int[] Shape, long[] Strides);

public sealed class Unpickler
{
    // Bounds on what the input decides, so a hostile file fails cleanly instead of exhausting memory.
    public const int MaxMarkDepth = 1000;
    public const int MaxTensorRank = 32;
    public const int MaxStackItems = 10_000_000;

    private static readonly Dictionary<string, TorchDType> StorageTypes = new()
    {
        ["FloatStorage"] = TorchDType.F32, ["HalfStorage"] = TorchDType.F16, ["BFloat16Storage"] = TorchDType.BF16,
        ["DoubleStorage"] = TorchDType.F64, ["LongStorage"] = TorchDType.I64, ["IntStorage"] = TorchDType.I32,
        ["ShortStorage"] = TorchDType.I16, ["CharStorage"] = TorchDType.I8, ["ByteStorage"] = TorchDType.U8, ["BoolStorage"] = TorchDType.Bool,
    };

    // The globals real checkpoints use. Anything else stops the read with its name: a pickle can only call what we
    // interpret here, and we interpret these as data constructors, never by running Python.
    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch._tensor._rebuild_from_type_v2",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "_codecs.encode",
    };

    private static readonly string[] AllowedOpaquePrefixes = { "pytorch_lightning.callbacks.", "lightning.pytorch.callbacks." };

    public static int ItemSize(TorchDType t) => t switch
    {
        TorchDType.F64 or TorchDType.I64 => 8,
        TorchDType.F32 or TorchDType.I32 => 4,
        TorchDType.F16 or TorchDType.BF16 or TorchDType.I16 => 2,
        _ => 1,
    };

    private readonly string _source;
    private readonly Func<object?, object?> _persistentLoad;

    /// <summary>source names the file in errors; persistentLoad turns a persistent id (torch's storage tuple) into an object.</summary>
    public Unpickler(string source, Func<object?, object?> persistentLoad)
    {
        _source = source;
        _persistentLoad = persistentLoad;
    }

    private InvalidInputException Bad(string problem) => new($"{_source}: {problem}");

    /// <summary>Reads one pickle starting at data[pos]; pos is left just after its STOP opcode.</summary>
    public object? Load(ReadOnlySpan<byte> data, ref int pos)
    {
        var stack = new List<object?>();
        var marks = new List<int>();
        var memo = new Dictionary<long, object?>();
        int p = pos;

        object? Pop()
        {
            if (stack.Count == 0) throw Bad($"pickle stack underflow at byte {p}: corrupt file");
            var v = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return v;
        }
        object? Top() => stack.Count > 0 ? stack[^1] : throw Bad($"pickle stack underflow at byte {p}: corrupt file");
        List<object?> PopMark()
        {
            if (marks.Count == 0) throw Bad($"pickle opcode at byte {p} needs a MARK that is not there: corrupt file");
            int m = marks[^1];
            marks.RemoveAt(marks.Count - 1);
            if (m > stack.Count) throw Bad($"pickle MARK past the stack at byte {p}: corrupt file");
            var items = stack.GetRange(m, stack.Count - m);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        void Push(object? v)
        {
            if (stack.Count >= MaxStackItems) throw Bad($"pickle holds more than {MaxStackItems} items on its stack");
            stack.Add(v);
        }

        while (true)
        {
            if (p >= data.Length) throw Bad("the pickle ends without a STOP opcode (truncated file?)");
            byte op = data[p++];
            switch (op)
            {
                case 0x80: Need(data, p, 1); p++; break; // PROTO
                case 0x95: Need(data, p, 8); p += 8; break; // FRAME: frames are only a read-ahead hint
                case (byte)'.': pos = p; return Pop(); // STOP
                case (byte)'(': if (marks.Count >= MaxMarkDepth) throw Bad($"pickle nests deeper than {MaxMarkDepth} levels"); marks.Add(stack.Count); break;
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Need(data, p, 4); Push((long)BinaryPrimitives.ReadInt32LittleEndian(data[p..])); p += 4; break;
                case (byte)'K': Need(data, p, 1); Push((long)data[p]); p += 1; break;
                case (byte)'M': Need(data, p, 2); Push((long)BinaryPrimitives.ReadUInt16LittleEndian(data[p..])); p += 2; break;
                case 0x8a: // LONG1
                {
                    Need(data, p, 1);
                    int n = data[p++];
                    Need(data, p, n);
                    Push(LittleEndianInteger(data.Slice(p, n)));
                    p += n;
                    break;
                }
                case 0x8b: // LONG4: torch never writes integers this large; refuse rather than allocate
                    throw Bad("pickle LONG4 integer (over 255 bytes) is not supported in a checkpoint");
                case (byte)'G': Need(data, p, 8); Push(BinaryPrimitives.ReadDoubleBigEndian(data[p..])); p += 8; break;
                case (byte)'I': case (byte)'L': case (byte)'F': Push(TextNumber(op, ReadLine(data, ref p))); break;
                case (byte)'X': { int n = Length32(data, ref p); Push(Encoding.UTF8.GetString(data.Slice(p, n))); p += n; break; }
                case 0x8c: { Need(data, p, 1); int n = data[p++]; Need(data, p, n); Push(Encoding.UTF8.GetString(data.Slice(p, n))); p += n; break; }
                case (byte)'T': { int n = Length32(data, ref p); Push(Encoding.Latin1.GetString(data.Slice(p, n))); p += n; break; }
                case (byte)'U': { Need(data, p, 1); int n = data[p++]; Need(data, p, n); Push(Encoding.Latin1.GetString(data.Slice(p, n))); p += n; break; }
                case (byte)'B': { int n = Length32(data, ref p); Push(data.Slice(p, n).ToArray()); p += n; break; }
                case (byte)'C': { Need(data, p, 1); int n = data[p++]; Need(data, p, n); Push(data.Slice(p, n).ToArray()); p += n; break; }
                case (byte)'V': Push(ReadLine(data, ref p)); break; // UNICODE (protocol 0, raw-unicode-escape: ASCII in practice)
                case (byte)'S': Push(ReadLine(data, ref p).Trim('\'', '"')); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)'}': Push(new PickleDict()); break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'l': Push(PopMark()); break;
                case (byte)'t': Push(PopMark().ToArray()); break;
                case 0x85: Push(new[] { Pop() }); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case (byte)'d': { var items = PopMark(); var d = new PickleDict(); SetItems(d, items); Push(d); break; }
                case (byte)'a': { var v = Pop(); AsList(Top()).Add(v); break; }
                case (byte)'e': { var items = PopMark(); AsList(Top()).AddRange(items); break; }
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Top()).Set(k, v); break; }
                case (byte)'u': { var items = PopMark(); SetItems(AsDict(Top()), items); break; }
                case 0x8f: Push(new List<object?>()); break; // EMPTY_SET: kept as a list of its items
                case 0x90: { var items = PopMark(); AsList(Top()).AddRange(items); break; } // ADDITEMS
                case 0x91: Push(PopMark()); break; // FROZENSET
                case (byte)'0': Pop(); break;
                case (byte)'1': PopMark(); break;
                case (byte)'2': Push(Top()); break;
                case (byte)'q': Need(data, p, 1); memo[data[p++]] = Top(); break;
                case (byte)'r': Need(data, p, 4); memo[BinaryPrimitives.ReadUInt32LittleEndian(data[p..])] = Top(); p += 4; break;
                case 0x94: memo[memo.Count] = Top(); break; // MEMOIZE
                case (byte)'p': memo[ParseIndex(ReadLine(data, ref p))] = Top(); break;
                case (byte)'h': Need(data, p, 1); Push(MemoGet(memo, data[p++])); break;
                case (byte)'j': Need(data, p, 4); Push(MemoGet(memo, BinaryPrimitives.ReadUInt32LittleEndian(data[p..]))); p += 4; break;
                case (byte)'g': Push(MemoGet(memo, ParseIndex(ReadLine(data, ref p)))); break;
                case (byte)'c': // GLOBAL "module\nname\n"
                {
                    var module = ReadLine(data, ref p);
                    var name = ReadLine(data, ref p);
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL needs two strings");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL needs two strings");
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case (byte)'R': { var args = Pop(); var fn = Pop(); Push(Call(fn, args)); break; }
                case 0x81: { var args = Pop(); var cls = Pop(); Push(New(cls, args)); break; } // NEWOBJ
                case 0x92: { Pop(); var args = Pop(); var cls = Pop(); Push(New(cls, args)); break; } // NEWOBJ_EX
                case (byte)'b': Pop(); break; // BUILD: state of allow-listed objects carries nothing we need
                case (byte)'Q': Push(_persistentLoad(Pop())); break; // BINPERSID
                case (byte)'P': Push(_persistentLoad(ReadLine(data, ref p))); break; // PERSID
                default:
                    throw Bad($"pickle opcode 0x{op:x2} at byte {p - 1} is not one torch.save writes (not a PyTorch checkpoint, or a crafted one); refused");
            }
        }
    }

    private object ResolveGlobal(string module, string name)
    {
        var full = module + "." + name;
        if (module == "torch" && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        if (Allowed.Contains(full) || AllowedOpaquePrefixes.Any(prefix => full.StartsWith(prefix, StringComparison.Ordinal)))
            return new PickleGlobal(module, name);
        throw Bad($"GLOBAL {full} is not an allowed global; a checkpoint holds only tensors, dicts and numbers, so this file was refused " +
            "without running anything (re-save the weights with torch.save(model.state_dict()) or as safetensors)");
    }

    /// <summary>The storage dtype a torch.*Storage global stands for, or an error naming it.</summary>
    public TorchDType StorageDType(object? type) =>
        type is PickleGlobal { Module: "torch" } g && StorageTypes.TryGetValue(g.Name, out var t) ? t
            : throw Bad($"storage type {Describe(type)} is not a torch storage class");

    private object? Call(object? fn, object? argsObj)
    {
        if (fn is not PickleGlobal g) throw Bad($"pickle calls {Describe(fn)}, which is not an allowed global");
        var args = argsObj as object?[] ?? throw Bad($"pickle calls {g.FullName} with {Describe(argsObj)} instead of an argument tuple");
        switch (g.FullName)
        {
            case "collections.OrderedDict":
            {
                var d = new PickleDict();
                if (args.Length > 0 && args[0] is List<object?> pairs)
                    foreach (var pair in pairs)
                        if (pair is object?[] { Length: 2 } kv) d.Set(kv[0], kv[1]);
                return d;
            }
            case "torch._utils._rebuild_tensor":
            case "torch._utils._rebuild_tensor_v2":
                return RebuildTensor(args);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return args.Length > 0 ? args[0] : throw Bad($"{g.FullName} without arguments");
            case "torch._tensor._rebuild_from_type_v2":
                // (func, type, args, state): the tensor comes from func(args); the subclass and its state are dropped.
                if (args.Length < 3) throw Bad($"{g.FullName} with {args.Length} arguments");
                return Call(args[0], args[2]);
            case "numpy.dtype":
                return new NumpyDType(args.Length > 0 && args[0] is string code ? code : throw Bad("numpy.dtype without a type code"));
            case "numpy.core.multiarray.scalar":
            case "numpy._core.multiarray.scalar":
                return NumpyScalar(args);
            case "_codecs.encode":
                // torch pickles numpy scalars' bytes as _codecs.encode(str, "latin1"): the string's chars are the bytes.
                if (args.Length >= 1 && args[0] is string s) return Encoding.Latin1.GetBytes(s);
                throw Bad("_codecs.encode without a string");
            default:
                // Storage classes and Lightning callbacks are data markers; calling them would construct real objects.
                if (g.Module == "torch" && StorageTypes.ContainsKey(g.Name)) throw Bad($"pickle calls the storage class {g.FullName}; refused");
                return new PickleOpaque(g);
        }
    }

    private object New(object? cls, object? args)
    {
        if (cls is PickleGlobal g && AllowedOpaquePrefixes.Any(prefix => g.FullName.StartsWith(prefix, StringComparison.Ordinal))) return new PickleOpaque(g);
        throw Bad($"pickle instantiates {Describe(cls)}, which is not an allowed class");
    }

    private TorchTensorRef RebuildTensor(object?[] args)
    {
        if (args.Length < 4) throw Bad($"_rebuild_tensor_v2 with {args.Length} arguments (expected storage, offset, size, stride, ...)");
        var storage = args[0] as TorchStorage ?? throw Bad($"_rebuild_tensor_v2 on {Describe(args[0])} instead of a storage");
        long offset = args[1] is long o && o >= 0 ? o : throw Bad($"tensor storage offset {Describe(args[1])} is not a non-negative integer");
        var sizeItems = args[2] as object?[] ?? throw Bad("tensor size is not a tuple");
        var strideItems = args[3] as object?[] ?? throw Bad("tensor stride is not a tuple");
        if (sizeItems.Length > MaxTensorRank) throw Bad($"tensor of rank {sizeItems.Length} (more than {MaxTensorRank} dimensions)");
        if (sizeItems.Length != strideItems.Length) throw Bad($"tensor size has {sizeItems.Length} dimensions but stride has {strideItems.Length}");
        var shape = new int[sizeItems.Length];
        var strides = new long[sizeItems.Length];
        for (int i = 0; i < shape.Length; i++)
        {
            shape[i] = sizeItems[i] is long s && s >= 0 && s <= int.MaxValue ? (int)s : throw Bad($"tensor dimension {Describe(sizeItems[i])} is not a size");
            strides[i] = strideItems[i] is long t && t >= 0 && t <= long.MaxValue / 4 ? t : throw Bad($"tensor stride {Describe(strideItems[i])} is not a non-negative integer");
        }
        // The highest element the view touches must lie inside the storage (torch would read past it or resize it).
        long needed;
        try
        {
            long extent = 0, numel = 1;
            for (int i = 0; i < shape.Length; i++)
            {
                numel = checked(numel * shape[i]);
                if (shape[i] > 0) extent = checked(extent + (shape[i] - 1) * strides[i]);
            }
            needed = numel == 0 ? 0 : checked(offset + extent + 1);
        }
        catch (OverflowException) { throw Bad($"tensor size {FormatList(shape)} stride {FormatList(strides)} overflows"); }
        if (needed > storage.Numel)
            throw Bad($"tensor size {FormatList(shape)} stride {FormatList(strides)} offset {offset} needs {needed} elements, the storage declares {storage.Numel} (storage key '{storage.Key}')");
        return new TorchTensorRef(storage, offset, shape, strides);
    }

    private object NumpyScalar(object?[] args)
    {
        if (args.Length < 2 || args[0] is not NumpyDType dt || args[1] is not byte[] bytes) throw Bad("numpy scalar without a dtype and bytes");
        var code = dt.Code.TrimStart('<', '=', '|');
        return code switch
        {
            "f8" when bytes.Length == 8 => BinaryPrimitives.ReadDoubleLittleEndian(bytes),
            "f4" when bytes.Length == 4 => (double)BinaryPrimitives.ReadSingleLittleEndian(bytes),
            "i8" when bytes.Length == 8 => BinaryPrimitives.ReadInt64LittleEndian(bytes),
            "i4" when bytes.Length == 4 => (long)BinaryPrimitives.ReadInt32LittleEndian(bytes),
            "b1" when bytes.Length == 1 => bytes[0] != 0,
            _ => new PickleOpaque(new PickleGlobal("numpy", "scalar:" + dt.Code)), // metadata only; never needed for weights
        };
    }

    private void SetItems(PickleDict d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("pickle SETITEMS with an odd number of items: corrupt file");
        for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
    }

    private List<object?> AsList(object? o) => o as List<object?> ?? throw Bad($"pickle appends to {Describe(o)}, not a list");
    private PickleDict AsDict(object? o) => o as PickleDict ?? throw Bad($"pickle sets items on {Describe(o)}, not a dict");

    private object? MemoGet(Dictionary<long, object?> memo, long key) =>
        memo.TryGetValue(key, out var v) ? v : throw Bad($"pickle refers to memo entry {key}, which was never stored: corrupt file");

    private void Need(ReadOnlySpan<byte> data, int p, int n)
    {
        if (n < 0 || p > data.Length - n) throw Bad("the pickle ends in the middle of an opcode (truncated file?)");
    }

    private int Length32(ReadOnlySpan<byte> data, ref int p)
    {
        Need(data, p, 4);
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(data[p..]);
        p += 4;
        if (n > (uint)(data.Length - p)) throw Bad($"pickle string of {n} bytes runs past the end of the pickle (truncated or corrupt)");
        return (int)n;
    }

    private string ReadLine(ReadOnlySpan<byte> data, ref int p)
    {
        int end = data[p..].IndexOf((byte)'\n');
        if (end < 0) throw Bad("the pickle ends in the middle of a text opcode (truncated file?)");
        var s = Encoding.UTF8.GetString(data.Slice(p, end));
        p += end + 1;
        return s;
    }

    private long ParseIndex(string s) => long.TryParse(s, out long v) ? v : throw Bad($"pickle memo index '{s}' is not a number");

    private object TextNumber(byte op, string s)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (op == (byte)'I' && s == "00") return false;
        if (op == (byte)'I' && s == "01") return true;
        if (op == (byte)'F') return double.TryParse(s, System.Globalization.NumberStyles.Float, inv, out double d) ? d : throw Bad($"pickle float '{s}' is not a number");
        return long.TryParse(s.TrimEnd('L'), System.Globalization.NumberStyles.Integer, inv, out long v) ? v : throw Bad($"pickle integer '{s}' is not a 64-bit number");
    }

    private static object LittleEndianInteger(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return 0L;
        if (b.Length <= 8)
        {
            long v = 0;
            for (int i = b.Length - 1; i >= 0; i--) v = (v << 8) | b[i];
            int unused = 64 - 8 * b.Length;
            return unused == 0 ? v : (v << unused) >> unused; // sign-extend the top byte
        }
        return new BigInteger(b, isUnsigned: false, isBigEndian: false);
    }

    internal static string Describe(object? o) => o switch
    {
        null => "None",
        PickleGlobal g => g.FullName,
        string s => $"'{(s.Length > 40 ? s[..40] + "..." : s)}'",
        object?[] t => $"a {t.Length}-tuple",
        _ => o.GetType().Name,
    };

    private static string FormatList<T>(IEnumerable<T> v) => "[" + string.Join(",", v) + "]";
}
