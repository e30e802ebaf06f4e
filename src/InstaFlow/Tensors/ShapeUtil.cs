// Shape arithmetic and the argument checks shared by all public ops (errors name the shapes involved).
namespace InstaFlow.Tensors;

public static class ShapeUtil
{
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static long Numel(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return n;
    }

    public static void Validate(int[] shape, string op)
    {
        ArgumentNullException.ThrowIfNull(shape);
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"{op}: negative dimension in shape {Format(shape)}");
    }

    public static int NormDim(int dim, int rank, string op)
    {
        int d = dim < 0 ? dim + rank : dim;
        if (d < 0 || d >= rank) throw new ArgumentException($"{op}: dim {dim} is out of range for a tensor of rank {rank}");
        return d;
    }

    public static long FlatIndex(int[] shape, int[] index)
    {
        if (index.Length != shape.Length) throw new ArgumentException($"index of rank {index.Length} for shape {Format(shape)}");
        long flat = 0;
        for (int i = 0; i < shape.Length; i++)
        {
            if ((uint)index[i] >= (uint)shape[i]) throw new IndexOutOfRangeException($"index {Format(index)} is outside shape {Format(shape)}");
            flat = flat * shape[i] + index[i];
        }
        return flat;
    }

    public static int[] Strides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = (int)acc; acc *= shape[i]; }
        return s;
    }

    /// <summary>NumPy broadcasting of two shapes; throws naming both when they are incompatible.</summary>
    public static int[] Broadcast(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string op)
    {
        int r = Math.Max(a.Length, b.Length);
        var o = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i - (r - a.Length) >= 0 ? a[i - (r - a.Length)] : 1;
            int db = i - (r - b.Length) >= 0 ? b[i - (r - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Format(a)} and {Format(b)} cannot be broadcast together (dim {i}: {da} vs {db})");
            o[i] = da == 1 ? db : da;
        }
        return o;
    }

    public static bool SameShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);

    public static void RequireRank(Tensor t, int rank, string op, string what = "input")
    {
        if (t.Rank != rank) throw new ArgumentException($"{op}: {what} must have rank {rank}, got {t.Describe()}");
    }
}
