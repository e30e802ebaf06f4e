// Reverse-mode autograd: ops record a TapeNode on their output when any input needs a gradient; Backward walks
// the graph in reverse topological order and applies the rules in BackwardRules (all in one place).
namespace InstaFlow.Tensors.Autograd;

public enum OpKind
{
    Reshape, Add, Sub, Mul, Div, AddScalar, MulScalar, Neg, Exp, Sqrt, Sigmoid, Silu, Tanh, Gelu, GeluTanh, QuickGelu,
    Sum, Mean, Var, Softmax, MatMul, Linear, Conv2d, GroupNorm, LayerNorm, Upsample, Concat, Narrow, Permute,
    Embedding, Attention, Pad, Pow2, Clamp, Relu, MaxPool2d, GeluGate,
}

public sealed class TapeNode
{
    public OpKind Op;
    public Tensor[] Inputs = Array.Empty<Tensor>();
    public Tensor[] Saved = Array.Empty<Tensor>();
    public int[] Ints = Array.Empty<int>();
    public float[] Floats = Array.Empty<float>();
}

/// <summary>Whether ops record to the tape (thread-local). Inference runs under NoGrad: zero tape overhead.</summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    public static bool IsEnabled => _disabledDepth == 0;

    public static IDisposable NoGrad() => new Disabler();

    private sealed class Disabler : IDisposable
    {
        private bool _done;
        public Disabler() => _disabledDepth++;
        public void Dispose() { if (!_done) { _done = true; _disabledDepth--; } }
    }

    internal static bool ShouldRecord(Tensor a) => _disabledDepth == 0 && a.TracksGrad;
    internal static bool ShouldRecord(Tensor a, Tensor b) => _disabledDepth == 0 && (a.TracksGrad || b.TracksGrad);
    internal static bool ShouldRecord(ReadOnlySpan<Tensor?> xs)
    {
        if (_disabledDepth != 0) return false;
        foreach (var x in xs) if (x != null && x.TracksGrad) return true;
        return false;
    }
}

public static class Tape
{
    internal static void Record(Tensor output, OpKind op, Tensor[] inputs, Tensor[]? saved = null, int[]? ints = null, float[]? floats = null)
    {
        output.Node = new TapeNode
        {
            Op = op, Inputs = inputs, Saved = saved ?? Array.Empty<Tensor>(),
            Ints = ints ?? Array.Empty<int>(), Floats = floats ?? Array.Empty<float>(),
        };
        OpProfile.Current?.Mark("forward", OpNames[(int)op]);
    }

    /// <summary>OpKind names by value, so that profiling marks allocate no strings.</summary>
    private static readonly string[] OpNames = Enum.GetNames<OpKind>();

    /// <summary>
    /// Accumulates d(root)/d(leaf) into leaf.Grad for every leaf with RequiresGrad. root is usually a scalar loss;
    /// otherwise gradOutput gives the seed. Gradients add up across calls (gradient accumulation) until zeroed.
    /// </summary>
    public static void Backward(Tensor root, Tensor? gradOutput = null)
    {
        if (!root.TracksGrad) throw new InvalidOperationException($"Backward: {root.Describe()} does not depend on any tensor with RequiresGrad");
        if (gradOutput == null && root.Numel != 1)
            throw new ArgumentException($"Backward: root {root.Describe()} is not a scalar; pass gradOutput");
        if (gradOutput != null && !ShapeUtil.SameShape(gradOutput.Shape, root.Shape))
            throw new ArgumentException($"Backward: gradOutput {gradOutput.Describe()} does not match root {root.Describe()}");

        using var noGrad = GradMode.NoGrad();
        var profile = OpProfile.Current;
        profile?.Mark("forward", "until the backward pass");
        var order = TopologicalOrder(root);
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        grads[root] = gradOutput ?? Tensor.Full(1f, root.ShapeArray());
        profile?.Mark("backward", "graph order");

        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            if (!grads.TryGetValue(t, out var g)) continue;
            if (t.Node == null)
            {
                if (t.RequiresGrad) AccumulateLeaf(t, g);
                profile?.Mark("backward", "parameter gradients");
                continue;
            }
            var inGrads = BackwardRules.Apply(t.Node, g, t);
            profile?.Mark("backward", OpNames[(int)t.Node.Op]);
            var inputs = t.Node.Inputs;
            for (int k = 0; k < inputs.Length; k++)
            {
                var gi = inGrads[k];
                var x = inputs[k];
                if (gi == null || !x.TracksGrad) continue;
                if (grads.TryGetValue(x, out var prev)) grads[x] = Ops.Add(prev, gi);
                else grads[x] = gi;
            }
            profile?.Mark("backward", "gradient sums");
        }
    }

    private static void AccumulateLeaf(Tensor leaf, Tensor g)
    {
        if (leaf.Grad == null)
        {
            leaf.Grad = Tensor.EmptyPersistent(leaf.ShapeArray());
            g.Span.CopyTo(leaf.Grad.Span);
        }
        else Ops.AddInPlace(leaf.Grad, g);
    }

    private static List<Tensor> TopologicalOrder(Tensor root)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor t, bool expanded)>();
        stack.Push((root, false));
        while (stack.Count > 0)
        {
            var (t, expanded) = stack.Pop();
            if (expanded) { order.Add(t); continue; }
            if (!visited.Add(t)) continue;
            stack.Push((t, true));
            if (t.Node != null)
                foreach (var x in t.Node.Inputs)
                    if (x.TracksGrad && !visited.Contains(x)) stack.Push((x, false));
        }
        return order;
    }
}
